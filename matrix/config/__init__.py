"""Load and validate `matrix.toml` into a `Config`.

One package, one module per responsibility: `reader` (typed reads and the `ConfigError`
that names file, table and key), `specs` (what a config holds), `env_table`,
`model_table` and `settings_table` (one kind of table each), `loader` (the file and what
crosses tables). Everything a caller needs is importable from here, as before the split.
It needs only the standard library and `packaging` (which nox brings), because the
noxfile imports it to turn the config's envs into sessions.
"""

from __future__ import annotations

from matrix.config.env_table import ENV_KEYS
from matrix.config.loader import KNOWN_KEYS, load, parse
from matrix.config.model_table import DTYPE_KWARGS, LOAD_KWARGS_ELSEWHERE, METRIC_BUDGET, MODEL_KEYS
from matrix.config.reader import ConfigError
from matrix.config.settings_table import SETTINGS_KEYS
from matrix.config.specs import (
    BUDGET_KEYS,
    CHAT_STYLES,
    DEVICES,
    DTYPES,
    LATEST,
    NEXT,
    PATH_PREFIX,
    SOURCE_KEYS,
    TASKS,
    VCS_PREFIX,
    Config,
    EnvSpec,
    ModelSpec,
    Settings,
)

__all__ = [
    "BUDGET_KEYS",
    "CHAT_STYLES",
    "DEVICES",
    "DTYPES",
    "DTYPE_KWARGS",
    "ENV_KEYS",
    "KNOWN_KEYS",
    "LATEST",
    "LOAD_KWARGS_ELSEWHERE",
    "METRIC_BUDGET",
    "MODEL_KEYS",
    "NEXT",
    "PATH_PREFIX",
    "SETTINGS_KEYS",
    "SOURCE_KEYS",
    "TASKS",
    "VCS_PREFIX",
    "Config",
    "ConfigError",
    "EnvSpec",
    "ModelSpec",
    "Settings",
    "load",
    "parse",
]
