"""Read a run folder back: the env facts and every cell file.

Like pytest-benchmark's storage, a damaged file is reported and skipped, never fatal: a
run that lost one file still publishes every other cell.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matrix.envs.plan import ENV_FACTS_FILE, PLAN_FILE
from probes.record import CellResult

# Written at the top of a run folder made by `report --merge`: where each cell came from and
# what the merge warned about, so a re-render of the merged run repeats those warnings.
MERGE_FILE = "_merge.json"
# A run's bisect reports, written by the bisect of the run's pass -> fail pairs (see bisect_file).
BISECT_PREFIX = "_bisect-"


class CollectError(Exception):
    """The run folder itself is missing or holds nothing to report."""


@dataclass
class Run:
    """Everything a run folder holds, in the order the plan gave."""

    run_dir: Path
    envs: dict[str, dict[str, Any]]
    cells: list[CellResult]
    model_order: list[str]
    warnings: list[str] = field(default_factory=list)
    # From the plans: what each model was asked to do (task, budgets, optional) and the
    # judging settings, so a report can be re-made from the run folder alone.
    model_specs: dict[str, dict[str, Any]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    # (model, variant) of every planned cell, so a cell that never ran still gets its row.
    planned: list[tuple[str, str]] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return self.run_dir.name


def newest_run(results: Path) -> Path:
    """The newest folder under results/runs (run ids sort by time)."""
    runs = sorted(p for p in (results / "runs").glob("*") if p.is_dir()) if (results / "runs").is_dir() else []
    if not runs:
        raise CollectError(f"no runs under {results / 'runs'}: run `nox -s matrix` first")
    return runs[-1]


def collect(run_dir: Path) -> Run:
    """Load the env facts and cell files of `run_dir`."""
    if not run_dir.is_dir():
        raise CollectError(f"run folder {run_dir} does not exist")
    envs: dict[str, dict[str, Any]] = {}
    cells: list[CellResult] = []
    model_order: list[str] = []
    warnings: list[str] = []
    model_specs: dict[str, dict[str, Any]] = {}
    settings: dict[str, Any] = {}
    planned: list[tuple[str, str]] = []
    merged = read_json(run_dir / MERGE_FILE, warnings)
    if isinstance(merged, dict):
        warnings += [str(warning) for warning in merged.get("warnings", [])]
    for env_dir in sorted(p for p in run_dir.iterdir() if p.is_dir()):
        facts = read_json(env_dir / ENV_FACTS_FILE, warnings)
        envs[env_dir.name] = facts if isinstance(facts, dict) else {"name": env_dir.name}
        plan = read_json(env_dir / PLAN_FILE, warnings)
        if isinstance(plan, dict):
            settings.update(plan.get("settings") or {})
            model_order += [name for name in plan.get("models", []) if name not in model_order]
            for spec in plan.get("cells", []) + plan.get("left_out", []):  # left out: decided on the host
                model_specs.setdefault(spec.get("model"), spec)
                if spec.get("model") not in model_order:
                    model_order.append(spec.get("model"))
                if (spec.get("model"), spec.get("variant", "")) not in planned:
                    planned.append((spec.get("model"), spec.get("variant", "")))
        for path in sorted(env_dir.glob("*.json")):
            if path.name.startswith(("_", ".")):
                continue
            data = read_json(path, warnings)
            if data is None:
                continue
            try:
                cells.append(CellResult.from_dict(data))
            except (TypeError, ValueError, KeyError) as exc:
                warnings.append(f"skipped damaged cell file {path}: {exc}")
    if not cells:
        raise CollectError(f"run folder {run_dir} holds no cell files")
    for cell in cells:
        if cell.model not in model_order:
            model_order.append(cell.model)
    return Run(run_dir, envs, cells, model_order, warnings, model_specs, settings, planned)


def read_json(path: Path, warnings: list[str]) -> Any:
    """The JSON in `path`; None when it is missing, or damaged (with a warning)."""
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        warnings.append(f"skipped damaged file {path}: {exc}")
        return None


def bisect_file(run_dir: Path, model: str) -> Path:
    """Where a run's bisect of `model` is kept: a host file at the top of the run folder (a
    `_` file, beside `_hub.json`), so neither collect nor merge takes it for an env folder."""
    return run_dir / f"{BISECT_PREFIX}{model}.json"


def collect_bisects(run_dir: Path) -> dict[str, dict[str, Any]]:
    """The bisects of this run (`<run_dir>/_bisect-<model>.json`), by model.

    Only reports made for this run count (their `run` names it), so a report never shows
    the bisect of another run's question; one without a first break has no bound to give.
    """
    found: dict[str, dict[str, Any]] = {}
    warnings: list[str] = []
    for path in sorted(run_dir.glob(f"{BISECT_PREFIX}*.json")):
        data = read_json(path, warnings)
        if isinstance(data, dict) and data.get("run") == run_dir.name and data.get("first_bad") and data.get("bound"):
            found[str(data.get("model", path.stem.removeprefix(BISECT_PREFIX)))] = data
    return found


# The newest-release search of a run (matrix/confirm.py), beside its bisects.
NEWEST_FILE = "_newest.json"


def newest_file(run_dir: Path) -> Path:
    return run_dir / NEWEST_FILE


def collect_newest(run_dir: Path) -> dict[str, Any] | None:
    """This run's newest-release search (`<run_dir>/_newest.json`), or None (none, damaged, or another run's)."""
    data = read_json(newest_file(run_dir), [])
    return data if isinstance(data, dict) and data.get("run") == run_dir.name else None
