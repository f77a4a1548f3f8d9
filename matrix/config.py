"""Load and validate `matrix.toml` into a `Config`.

Every mistake becomes one `ConfigError` whose message names the file, the table and the
key (the way hatch does), so a user fixes it without reading a traceback. This module
needs only the standard library and `packaging` (which nox brings), because the noxfile
imports it to turn the config's envs into sessions.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from matrix import team_code
from matrix.known_breaks import load_known_breaks
from probes.record import SAFE_PART as SAFE_NAME
from probes.shims import SHIM_NAMES

TASKS = ("embedding", "causal-lm")
DEVICES = ("cpu", "cuda", "auto")
DTYPES = ("auto", "float32", "bfloat16", "float16")
# How a chat model is probed after `generate`: its tokenizer's chat template, or its own chat() method.
CHAT_STYLES = ("template", "method")
SOURCE_KEYS = ("hub", "path", "fixture", "pypi")
LATEST = "latest"
BUDGET_KEYS = ("max_latency_s", "max_memory_mb", "min_similarity_accuracy")
# `from_pretrained` keywords the config sets elsewhere (or the probe itself), never in `load_kwargs`.
LOAD_KWARGS_ELSEWHERE = {
    "trust_remote_code": "the model's `trust_remote_code` key",
    "revision": "the model's `revision` key",
    "pretrained_model_name_or_path": "the model's source key",
    "output_loading_info": "the probe (it reads the loading info itself: this would make the call return a tuple)",
}
DTYPE_KWARGS = ("dtype", "torch_dtype")
# A metric budget on what a probe script reports: "<probe>.<metric>" = ">= 0.9" or "<= 2.5".
METRIC_BUDGET = re.compile(r"^\s*(<=|>=)\s*([-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?)\s*$")


class ConfigError(Exception):
    """A mistake in the config; the message says where and what."""


@dataclass(frozen=True)
class EnvSpec:
    """One environment to build: a transformers spec plus optional pins."""

    name: str
    transformers: str
    torch: str | None = None
    python: str | None = None
    pins: tuple[str, ...] = ()
    # What the config's models declare they need (`requires`): every env probes every model.
    model_requires: tuple[str, ...] = ()

    def requirements(self) -> list[str]:
        """The requirement strings handed to the installer, transformers first."""
        spec = "" if self.transformers == LATEST else self.transformers
        reqs = [f"transformers{spec}", f"torch{self.torch or ''}"]
        return reqs + list(self.pins) + [r for r in self.model_requires if r not in self.pins]


@dataclass(frozen=True)
class ModelSpec:
    """One model to probe in every env, and how."""

    name: str
    source_kind: str
    source: str
    task: str
    subdir: str | None = None
    revision: str | None = None
    trust_remote_code: bool = False
    shims: tuple[str, ...] = ()
    timeout: float = 300.0
    device: str = "cpu"
    # None: no dtype is passed to from_pretrained (what a plain call gets in each release).
    dtype: str | None = None
    max_new_tokens: int = 8
    chat: str | None = None
    similarity_check: bool = False
    memory_limit_mb: int | None = None
    optional: bool = False
    budgets: dict[str, float] = field(default_factory=dict)
    # Packages the model's own code imports (sentencepiece, einops, ...), installed in every env.
    requires: tuple[str, ...] = ()
    # The team's own code (matrix/team_code.py): probe scripts run after the built-in phases,
    # and the shims from its files that `shims` uses (by name).
    probes: tuple[team_code.TeamFile, ...] = ()
    team_shims: tuple[team_code.TeamFile, ...] = ()
    # Keywords for from_pretrained, as the deployment passes them.
    load_kwargs: dict[str, Any] = field(default_factory=dict)
    # Budgets on probe scripts' metrics: "<probe>.<metric>" -> (">=" or "<=", limit).
    metric_budgets: dict[str, tuple[str, float]] = field(default_factory=dict)

    @property
    def unpinned_remote_code(self) -> bool:
        """Remote code from the hub without a pinned revision: whatever the repo's main
        branch holds at run time is executed (a local folder's code is the user's own)."""
        return self.trust_remote_code and self.source_kind == "hub" and not self.revision


@dataclass(frozen=True)
class Settings:
    """How the host judges cells: drift tolerances, budget rules, similarity threshold."""

    require_budgets: bool = False
    auto_bisect: bool = False
    # A cell whose outputs drift from the model's reference does not count as serving it.
    drift_blocks: bool = False
    drift_min_cosine: float = 0.9999
    drift_max_abs: float = 1e-4
    similarity_threshold: float = 0.5
    # The regression gate (matrix/gate.py): how many earlier runs on the same machine it looks
    # back on, the z-score a slowdown needs, and the smallest change it reports (all of: a
    # share of the history's mean, an absolute amount, a share of the model's budget).
    regression_lookback: int = 20
    regression_z: float = 5.0
    regression_min_effect_pct: float = 15.0
    regression_min_effect_s: float = 0.002
    regression_min_effect_mb: float = 8.0
    regression_budget_pct: float = 1.0
    # A folder of wheels to build every env from, with the package index switched off.
    wheelhouse: str | None = None
    # Search the release line for the newest single release that runs every model, confirmed by
    # a probe of each (README, "The newest release"), building at most this many envs.
    search_releases: bool = False
    max_release_builds: int = 20
    # The team's own known-break table (same format as matrix/diagnosis/known_breaks.toml),
    # consulted before the built-in one; absolute (a relative path starts at the config's folder).
    known_breaks: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Config:
    """The whole validated config."""

    path: Path
    envs: tuple[EnvSpec, ...]
    models: tuple[ModelSpec, ...]
    settings: Settings = field(default_factory=Settings)

    def warnings(self) -> list[str]:
        """Things that are allowed but risky, said on every run (and marked in the table)."""
        return [
            f"{self.path.name}: [models.{model.name}] trust_remote_code = true without a pinned `revision`: "
            "the code that runs is whatever the repo holds today; pin revision to a commit"
            for model in self.models
            if model.unpinned_remote_code
        ]

    def env(self, name: str) -> EnvSpec:
        """The env called `name` (a KeyError names the known ones)."""
        for env in self.envs:
            if env.name == name:
                return env
        raise KeyError(f"no env {name!r} in {self.path.name}; known: {[e.name for e in self.envs]}")


class _Table:
    """Reads typed keys out of one TOML table and reports mistakes with their place."""

    def __init__(self, file: Path, where: str, data: Any, known: tuple[str, ...]) -> None:
        self.file, self.where = file, where
        if not isinstance(data, dict):
            raise self.error(None, f"must be a table, not {type(data).__name__}")
        self.data = data
        for key, value in data.items():
            if key in known:
                continue
            if isinstance(value, dict) and where.startswith(("envs.", "models.")):  # [envs.tf-4.40] = envs/tf-4/40
                dotted = f"{where}.{key}"
                quoted = dotted.split(".", 1)[0] + f'."{dotted.split(".", 1)[1]}"'
                raise self.error(key, f"unknown key; a name with a dot must be quoted in TOML: write [{quoted}]")
            raise self.error(key, f"unknown key (known keys: {', '.join(known)})")

    def error(self, key: str | None, problem: str) -> ConfigError:
        place = f"{self.file.name}: [{self.where}]" + (f" {key}" if key else "")
        return ConfigError(f"{place}: {problem}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        if key not in self.data:
            return default
        value = self.data[key]
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            want = _type_word(kind) if isinstance(kind, type) else " or ".join(map(_type_word, kind))
            article = "an" if want[0] in "aeiou" else "a"
            raise self.error(key, f"must be {article} {want}, not {_type_word(type(value))} ({value!r})")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str | None) -> str | None:
        value = self.get(key, str, default)
        if value is not None and value not in choices:
            raise self.error(key, f"{value!r} is not one of {', '.join(choices)}")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        values = self.get(key, list, [])
        for index, value in enumerate(values, start=1):
            if not isinstance(value, str):
                raise self.error(key, f"value #{index} must be a string, not {_type_word(type(value))}")
        return tuple(values)

    def positive(self, key: str, default: float) -> float:
        value = self.get(key, (int, float), default)
        if not value > 0 or math.isinf(value):  # `not >` so that nan is refused too
            raise self.error(key, f"must be greater than 0, not {value}")
        return value

    def whole(self, key: str, default: int | None) -> int | None:
        value = self.positive(key, default or 1)
        if key in self.data and value != int(value):
            raise self.error(key, f"must be a whole number, not {value}")
        return int(value) if key in self.data else default


_TOML_WORDS = {dict: "table", str: "string", bool: "boolean", int: "integer", float: "float", list: "list"}


def _type_word(kind: type) -> str:
    """A Python type in TOML's words (a dict is a table: { key = value })."""
    return _TOML_WORDS.get(kind, kind.__name__)


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
    root = _Table(path, "top level", data, ("settings", "envs", "models"))
    settings = _parse_settings(_Table(path, "settings", data.get("settings", {}), tuple(Settings().to_dict())))
    envs = _named_tables(root, "envs", _parse_env)
    models = _named_tables(root, "models", _parse_model)
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
    envs = [replace(env, model_requires=declared) for env in envs]
    return Config(path=path, envs=tuple(envs), models=tuple(models), settings=settings)


def _parse_settings(table: _Table) -> Settings:
    default = Settings()
    cosine = float(table.positive("drift_min_cosine", default.drift_min_cosine))
    if cosine > 1:
        raise table.error("drift_min_cosine", f"must be at most 1, not {cosine}")
    return Settings(
        require_budgets=table.get("require_budgets", bool, default.require_budgets),
        auto_bisect=table.get("auto_bisect", bool, default.auto_bisect),
        drift_blocks=table.get("drift_blocks", bool, default.drift_blocks),
        drift_min_cosine=cosine,
        drift_max_abs=float(table.positive("drift_max_abs", default.drift_max_abs)),
        similarity_threshold=_threshold(table, default.similarity_threshold),
        regression_lookback=_lookback(table, default.regression_lookback),
        regression_z=float(table.positive("regression_z", default.regression_z)),
        regression_min_effect_pct=_at_least_0(table, "regression_min_effect_pct", default.regression_min_effect_pct),
        regression_min_effect_s=_at_least_0(table, "regression_min_effect_s", default.regression_min_effect_s),
        regression_min_effect_mb=_at_least_0(table, "regression_min_effect_mb", default.regression_min_effect_mb),
        regression_budget_pct=_at_least_0(table, "regression_budget_pct", default.regression_budget_pct),
        wheelhouse=_wheelhouse(table),
        search_releases=table.get("search_releases", bool, default.search_releases),
        max_release_builds=table.whole("max_release_builds", default.max_release_builds) or default.max_release_builds,
        known_breaks=_known_breaks(table),
    )


def _known_breaks(table: _Table) -> str | None:
    """The team's known-break table, checked entry by entry now (absolute path)."""
    given = table.get("known_breaks", str)
    if given is None:
        return None
    base = table.file.resolve().parent
    path = (base / given).resolve()
    if not path.is_file():
        raise table.error("known_breaks", f"file {given!r} does not exist (relative paths start at {base})")
    try:
        load_known_breaks(path)
    except (ValueError, OSError) as error:
        raise table.error("known_breaks", str(error)) from None
    return str(path)


def _lookback(table: _Table, default: int) -> int:
    value = table.whole("regression_lookback", default) or default
    if value < 2:
        raise table.error("regression_lookback", f"must be at least 2 (a z-score needs two earlier runs), not {value}")
    return value


def _at_least_0(table: _Table, key: str, default: float) -> float:
    value = table.get(key, (int, float), default)
    if not value >= 0 or math.isinf(value):  # `not >=` so that nan is refused too
        raise table.error(key, f"must be 0 or more, not {value}")
    return float(value)


def _wheelhouse(table: _Table) -> str | None:
    """The wheelhouse folder, absolute (a relative one starts at the config's folder)."""
    given = table.get("wheelhouse", str)
    if given is None:
        return None
    base = table.file.resolve().parent
    folder = (base / given).resolve()
    if not folder.is_dir():
        raise table.error("wheelhouse", f"folder {given!r} does not exist (relative paths start at {base})")
    if not any(folder.glob("*.whl")):
        raise table.error("wheelhouse", f"folder {given!r} holds no .whl files")
    return str(folder)


def _threshold(table: _Table, default: float) -> float:
    value = float(table.get("similarity_threshold", (int, float), default))
    if not -1 <= value <= 1:
        raise table.error("similarity_threshold", f"must be between -1 and 1, not {value:g}")
    return value


def _named_tables(root: _Table, key: str, parse_one: Any) -> list[Any]:
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
        parsed.append(parse_one(_Table(root.file, f"{key}.{name}", body, _KNOWN[key]), name))
    return parsed


def _parse_env(table: _Table, name: str) -> EnvSpec:
    spec = table.get("transformers", str)
    if spec is None:
        raise table.error("transformers", "missing: give a version spec such as '4.40.*' or 'latest'")
    torch = table.get("torch", str)
    pins = _requirements(table, "pins")
    python = table.get("python", str)
    if python is not None and not re.fullmatch(r"3\.\d+", python):
        raise table.error("python", f"{python!r} is not a Python version such as '3.11'")
    return EnvSpec(
        name=name,
        transformers=_version_spec(table, "transformers", spec, allow_latest=True),
        torch=None if torch is None else _version_spec(table, "torch", torch, allow_latest=False),
        python=python,
        pins=pins,
    )


def _requirements(table: _Table, key: str) -> tuple[str, ...]:
    """A list of requirement strings; a bad one is named by its position."""
    found = table.strings(key)
    for index, text in enumerate(found, start=1):
        try:
            Requirement(text)
        except InvalidRequirement:
            raise table.error(key, f"value #{index} {text!r} is not a requirement such as 'numpy<2'") from None
    return found


def _version_spec(table: _Table, key: str, text: str, allow_latest: bool) -> str:
    """Normalise '4.40.*' / '4.40.2' to '==...' and check the result is a valid specifier."""
    text = text.strip()
    if text == LATEST and allow_latest:
        return LATEST
    if re.fullmatch(r"\d+(\.\d+)*(\.\*)?", text):
        text = f"=={text}"
    try:
        spec = SpecifierSet(text)
    except InvalidSpecifier:
        hint = "'latest', " if allow_latest else ""
        raise table.error(
            key, f"{text!r} is not a version spec (use {hint}'4.40.*', '==4.40.2' or '>=4.40,<4.42')"
        ) from None
    if not str(spec):
        raise table.error(key, "empty version spec")
    return str(spec)


def _parse_model(table: _Table, name: str) -> ModelSpec:
    given = [key for key in SOURCE_KEYS if key in table.data]
    if len(given) != 1:
        found = f" (found: {', '.join(given)})" if given else ""
        raise table.error(None, f"give exactly one source key of {', '.join(SOURCE_KEYS)}{found}")
    kind = given[0]
    source = table.get(kind, str)
    if not source.strip():
        raise table.error(kind, "must not be empty")
    if kind == "hub" and not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", source):
        raise table.error(kind, f"{source!r} is not a hub id such as 'org/name'")
    if kind == "fixture":
        from probes.fixtures import FIXTURE_NAMES

        if source not in FIXTURE_NAMES:
            raise table.error(kind, f"unknown fixture {source!r} (known: {', '.join(FIXTURE_NAMES)})")
    if kind == "pypi":
        try:
            Requirement(source)
        except InvalidRequirement:
            raise table.error(kind, f"{source!r} is not a requirement such as 'package==1.0'") from None
    subdir = table.get("subdir", str)
    if subdir is not None and kind != "pypi":
        raise table.error("subdir", "only applies to a model from a `pypi` package")
    if subdir is not None and (not subdir.strip() or subdir.startswith("/") or ".." in Path(subdir).parts):
        raise table.error("subdir", f"{subdir!r} leaves the package: give a relative folder inside it")
    if "revision" in table.data and kind != "hub":
        raise table.error("revision", "only applies to a model from the `hub`")
    task = table.choice("task", TASKS, None)
    if task is None:
        raise table.error("task", f"missing: one of {', '.join(TASKS)}")
    base = table.file.resolve().parent
    shims, team_shims = _shims(table, base)
    probes = _probe_scripts(table, base)
    max_new_tokens = table.whole("max_new_tokens", 8) or 8
    chat = table.choice("chat", CHAT_STYLES, None)
    if chat is not None and task != "causal-lm":
        raise table.error("chat", "only applies to task = 'causal-lm'")
    if table.get("similarity_check", bool, False) and task != "embedding":
        raise table.error("similarity_check", "only applies to task = 'embedding'")
    return ModelSpec(
        name=name,
        source_kind=kind,
        source=source,
        subdir=subdir,
        task=task,
        revision=table.get("revision", str),
        trust_remote_code=table.get("trust_remote_code", bool, False),
        shims=shims,
        timeout=float(table.positive("timeout", 300.0)),
        device=table.choice("device", DEVICES, "cpu") or "cpu",
        dtype=table.choice("dtype", DTYPES, None),
        max_new_tokens=max_new_tokens,
        chat=chat,
        similarity_check=table.get("similarity_check", bool, False),
        memory_limit_mb=table.whole("memory_limit_mb", None),
        optional=table.get("optional", bool, False),
        budgets=_budgets(table, task),
        requires=_requirements(table, "requires"),
        probes=probes,
        team_shims=team_shims,
        load_kwargs=_load_kwargs(table),
        metric_budgets=_metric_budgets(table, probes),
    )


def _shims(table: _Table, base: Path) -> tuple[tuple[str, ...], tuple[team_code.TeamFile, ...]]:
    """The variants (built-in names and the team's `file.py:function`, alone or joined by
    '+'), as names, and the team's shims they use."""
    variants: list[str] = []
    team: dict[str, team_code.TeamFile] = {}
    for index, variant in enumerate(table.strings("shims"), start=1):
        names = []
        for part in variant.split("+"):
            if part in SHIM_NAMES:
                names.append(part)
                continue
            if ":" not in part:
                known = ", ".join(SHIM_NAMES)
                raise table.error(
                    "shims", f"value #{index} {part!r} is not a known shim (known: {known}; or 'file.py:function')"
                )
            try:
                found = team_code.shim(base, part)
            except team_code.TeamCodeError as error:
                raise table.error("shims", f"value #{index}: {error}") from None
            if found.name in SHIM_NAMES:
                problem = (
                    f"value #{index} {part!r}: a team's shim is named after its function ('_' read as '-'), and "
                    f"{found.name!r} is a built-in shim's name: rename the function"
                )
                raise table.error("shims", problem)
            same = team.get(found.name)
            if same is not None and (same.path, same.function) != (found.path, found.function):
                raise table.error("shims", f"value #{index} {part!r}: another shim is already named {found.name!r}")
            team[found.name] = found
            names.append(found.name)
        repeated = next((name for name in names if names.count(name) > 1), None)
        if repeated:
            raise table.error("shims", f"value #{index} {variant!r} names {repeated!r} twice")
        variants.append("+".join(names))
    if len(set(variants)) != len(variants):
        raise table.error("shims", "lists the same shim twice")
    return tuple(variants), tuple(team.values())


def _probe_scripts(table: _Table, base: Path) -> tuple[team_code.TeamFile, ...]:
    found: list[team_code.TeamFile] = []
    for index, given in enumerate(table.strings("probes"), start=1):
        try:
            script = team_code.probe_script(base, given)
        except team_code.TeamCodeError as error:
            raise table.error("probes", f"value #{index}: {error}") from None
        if any(other.name == script.name for other in found):
            problem = (
                f"value #{index} {given!r}: another probe script is named {script.name!r} "
                "(a probe is named after its file): rename one of the files"
            )
            raise table.error("probes", problem)
        found.append(script)
    return tuple(found)


def _load_kwargs(table: _Table) -> dict[str, Any]:
    """`from_pretrained` keywords: TOML values as they are; a dtype must name a torch dtype."""
    kwargs: dict[str, Any] = table.get("load_kwargs", dict, {})
    for key, value in kwargs.items():
        if key in LOAD_KWARGS_ELSEWHERE:
            raise table.error("load_kwargs", f"{key!r} is set by {LOAD_KWARGS_ELSEWHERE[key]}, not here")
        if not key.isidentifier():
            raise table.error("load_kwargs", f"{key!r} is not a keyword argument name")
        if key in DTYPE_KWARGS and value not in DTYPES:
            raise table.error("load_kwargs", f"{key} = {value!r} is not one of {', '.join(DTYPES)}")
        if not _plain_value(value):
            raise table.error("load_kwargs", f"{key} = {value}: give text, numbers, booleans, lists or tables")
    inside = [key for key in DTYPE_KWARGS if key in kwargs]
    if len(inside) > 1:
        raise table.error("load_kwargs", "gives the dtype twice (dtype and torch_dtype): keep one")
    if inside and "dtype" in table.data:
        raise table.error("load_kwargs", f"{inside[0]} repeats the model's `dtype` key: keep one")
    return dict(kwargs)


def _plain_value(value: Any) -> bool:
    """Whether a TOML value travels as JSON to the env (TOML dates and times do not)."""
    if isinstance(value, list):
        return all(map(_plain_value, value))
    if isinstance(value, dict):
        return all(map(_plain_value, value.values()))
    return isinstance(value, (str, int, float, bool))


def _metric_budgets(table: _Table, probes: tuple[team_code.TeamFile, ...]) -> dict[str, tuple[str, float]]:
    """`metric_budgets = { "rag.recall_at_1" = ">= 0.9" }`: a bound on what a probe script reports."""
    budgets: dict[str, tuple[str, float]] = {}
    names = [probe.name for probe in probes]
    for key, bound in table.get("metric_budgets", dict, {}).items():
        if isinstance(bound, dict):  # { rag.recall = ">= 0.9" }: TOML reads a dotted key as a table
            first = next(iter(bound), "metric")
            problem = f'write the key in quotes: {{ "{key}.{first}" = ... }} (unquoted, TOML splits it at the dot)'
            raise table.error("metric_budgets", problem)
        probe, _, metric = key.partition(".")
        if probe not in names or not metric:
            known = ", ".join(names) or "none: add `probes` first"
            problem = f"{key!r} is not '<probe>.<metric>' of a probe script (probes: {known})"
            raise table.error("metric_budgets", problem)
        match = METRIC_BUDGET.match(bound) if isinstance(bound, str) else None
        if match is None:
            raise table.error("metric_budgets", f"{key} = {bound!r}: write a bound such as '>= 0.9' or '<= 2.5'")
        budgets[key] = (match.group(1), float(match.group(2)))
    return budgets


def _budgets(table: _Table, task: str) -> dict[str, float]:
    """Per-model budgets; the latency budget means per request (embedding) or per reply."""
    budgets = {key: float(table.positive(key, 1)) for key in BUDGET_KEYS if key in table.data}
    accuracy = budgets.get("min_similarity_accuracy")
    if accuracy is not None and (task != "embedding" or accuracy > 1):
        raise table.error("min_similarity_accuracy", "applies to embedding models only, as a fraction such as 0.85")
    return budgets


_KNOWN = {
    "envs": ("transformers", "torch", "python", "pins"),
    "models": (
        *SOURCE_KEYS,
        "subdir",
        "task",
        "revision",
        "trust_remote_code",
        "shims",
        "timeout",
        "device",
        "dtype",
        "max_new_tokens",
        "chat",
        "similarity_check",
        "memory_limit_mb",
        "optional",
        "requires",
        "probes",
        "load_kwargs",
        *BUDGET_KEYS,
        "metric_budgets",
    ),
}
