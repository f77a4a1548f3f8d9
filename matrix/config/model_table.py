"""One `[models.<name>]` table: where the model comes from, how it is loaded and probed,
its budgets, shims and the team's own probe scripts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement

from matrix import team_code
from matrix.config.env_table import requirement_list
from matrix.config.reader import Table
from matrix.config.specs import BUDGET_KEYS, CHAT_STYLES, DEVICES, DTYPES, SOURCE_KEYS, TASKS, ModelSpec
from probes.shims import SHIM_NAMES

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
MODEL_KEYS = (
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
    "requirements",
    "constraints",
    "probes",
    "load_kwargs",
    *BUDGET_KEYS,
    "metric_budgets",
)


def parse_model(table: Table, name: str) -> ModelSpec:
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
    base = table.base
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
        requires=requirement_list(table, "requires"),
        requirements=table.file_path("requirements"),
        constraints=table.file_path("constraints"),
        probes=probes,
        team_shims=team_shims,
        load_kwargs=_load_kwargs(table),
        metric_budgets=_metric_budgets(table, probes),
    )


def _shims(table: Table, base: Path) -> tuple[tuple[str, ...], tuple[team_code.TeamFile, ...]]:
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


def _probe_scripts(table: Table, base: Path) -> tuple[team_code.TeamFile, ...]:
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


def _load_kwargs(table: Table) -> dict[str, Any]:
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


def _metric_budgets(table: Table, probes: tuple[team_code.TeamFile, ...]) -> dict[str, tuple[str, float]]:
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


def _budgets(table: Table, task: str) -> dict[str, float]:
    """Per-model budgets; the latency budget means per request (embedding) or per reply."""
    budgets = {key: float(table.positive(key, 1)) for key in BUDGET_KEYS if key in table.data}
    accuracy = budgets.get("min_similarity_accuracy")
    if accuracy is not None and (task != "embedding" or accuracy > 1):
        raise table.error("min_similarity_accuracy", "applies to embedding models only, as a fraction such as 0.85")
    return budgets
