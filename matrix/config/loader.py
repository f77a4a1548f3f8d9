"""Read `matrix.toml` and validate it into a `Config`: the top level, the named tables, and
what crosses tables (a model's `path` folder, what the models ask every env to install)."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

from matrix.config.env_table import ENV_KEYS, parse_env
from matrix.config.model_table import MODEL_KEYS, parse_model
from matrix.config.reader import ConfigError, Table
from matrix.config.settings_table import SETTINGS_KEYS, parse_settings
from matrix.config.specs import Config
from probes.record import SAFE_PART as SAFE_NAME

# The keys each table accepts (docs/config.md documents exactly these).
KNOWN_KEYS = {"settings": SETTINGS_KEYS, "envs": ENV_KEYS, "models": MODEL_KEYS}


def load(path: str | Path) -> Config:
    """Read and validate the config file at `path`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file (set MATRIX_CONFIG to another one)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path.name}: not valid TOML: {exc}") from None
    return parse(data, path)


def parse(data: dict[str, Any], path: Path) -> Config:
    """Validate already-parsed TOML data (the file path is only used in messages)."""
    root = Table(path, "top level", data, ("settings", "envs", "models"))
    settings = parse_settings(Table(path, "settings", data.get("settings", {}), SETTINGS_KEYS))
    envs = _named_tables(root, "envs", parse_env)
    models = _named_tables(root, "models", parse_model)
    root_dir = path.resolve().parent
    for model in models:
        folder = root_dir / model.source
        if model.source_kind == "path" and not folder.is_dir():
            problem = "is a file, not a folder" if folder.exists() else "does not exist"
            raise ConfigError(
                f"{path.name}: [models.{model.name}] path: "
                + (f"folder {model.source!r} {problem}" if not folder.exists() else f"{model.source!r} {problem}")
                + f" (relative paths start at {root_dir})"
            )
    declared = tuple(dict.fromkeys(req for model in models for req in model.requires))
    # Every env probes every model, so what a model's files ask for goes into every env.
    envs = [
        replace(
            env,
            model_requires=declared,
            requirement_files=_joined(env.requirement_files, (m.requirements for m in models)),
            constraint_files=_joined(env.constraint_files, (m.constraints for m in models)),
        )
        for env in envs
    ]
    return Config(path=path, envs=tuple(envs), models=tuple(models), settings=settings)


def _joined(own: tuple[str, ...], more: Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*own, *(file for file in more if file)]))


def _named_tables(root: Table, key: str, parse_one: Any) -> list[Any]:
    tables = root.get(key, dict)
    if not tables:
        raise root.error(key, f"no [{key}.<name>] table: the matrix needs at least one")
    seen: dict[str, str] = {}
    parsed = []
    for name, body in tables.items():
        if not SAFE_NAME.match(name):
            raise root.error(
                f"{key}.{name}",
                "unsafe name: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            )
        folded = name.lower()
        if folded in seen:
            raise root.error(f"{key}.{name}", f"duplicate of [{key}.{seen[folded]}] (names differ only in case)")
        seen[folded] = name
        parsed.append(parse_one(Table(root.file, f"{key}.{name}", body, KNOWN_KEYS[key]), name))
    return parsed
