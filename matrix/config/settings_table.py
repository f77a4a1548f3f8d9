"""The `[settings]` table: how the host judges cells, bisects and searches the release line."""

from __future__ import annotations

import math

from matrix.config.reader import Table
from matrix.config.specs import Settings
from matrix.known_breaks import load_known_breaks
from probes.record import SAFE_PART

SETTINGS_KEYS = tuple(Settings().to_dict())


def parse_settings(table: Table) -> Settings:
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
        jobs=table.whole("jobs", default.jobs) or default.jobs,
        machine_label=_machine_label(table),
    )


def _machine_label(table: Table) -> str | None:
    """The machines' published name: a safe name (it is written into every published file)."""
    given = table.get("machine_label", str)
    if given is not None and not SAFE_PART.match(given):
        raise table.error("machine_label", f"{given!r} is not a safe name (letters, digits, '.', '_', '-')")
    return given


def _known_breaks(table: Table) -> str | None:
    """The team's known-break table, checked entry by entry now (absolute path)."""
    given = table.get("known_breaks", str)
    if given is None:
        return None
    path = (table.base / given).resolve()
    if not path.is_file():
        raise table.error("known_breaks", f"file {given!r} does not exist (relative paths start at {table.base})")
    try:
        load_known_breaks(path)
    except (ValueError, OSError) as error:
        raise table.error("known_breaks", str(error)) from None
    return str(path)


def _lookback(table: Table, default: int) -> int:
    value = table.whole("regression_lookback", default) or default
    if value < 2:
        raise table.error("regression_lookback", f"must be at least 2 (a z-score needs two earlier runs), not {value}")
    return value


def _at_least_0(table: Table, key: str, default: float) -> float:
    value = table.get(key, (int, float), default)
    if not value >= 0 or math.isinf(value):  # `not >=` so that nan is refused too
        raise table.error(key, f"must be 0 or more, not {value}")
    return float(value)


def _wheelhouse(table: Table) -> str | None:
    """The wheelhouse folder, absolute (a relative one starts at the config's folder)."""
    given = table.get("wheelhouse", str)
    if given is None:
        return None
    folder = (table.base / given).resolve()
    if not folder.is_dir():
        raise table.error("wheelhouse", f"folder {given!r} does not exist (relative paths start at {table.base})")
    if not any(folder.glob("*.whl")):
        raise table.error("wheelhouse", f"folder {given!r} holds no .whl files")
    return str(folder)


def _threshold(table: Table, default: float) -> float:
    value = float(table.get("similarity_threshold", (int, float), default))
    if not -1 <= value <= 1:
        raise table.error("similarity_threshold", f"must be between -1 and 1, not {value:g}")
    return value
