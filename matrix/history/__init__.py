"""History and regressions: every published run leaves one summary line; each new run is
judged against the history.

`results/history.jsonl` (one per config: the results folder sits beside it) holds one
compact JSON object per run: time, machine, the fingerprint of the machine each env ran on
(CPU model and count, GPU and driver, torch build, Python), resolved versions, budgets, and
per cell its status, key metrics, the undisturbed samples of each latency and its memory.
Like pytest-benchmark's storage, a damaged line is skipped with a warning.

Each report compares the run with the history. Statuses with the previous run: new
failures (a passing cell that now fails; `unavailable`, `skipped` and `env-failed` say
nothing about the model and are listed apart), fixes, a new `latest` release. Timings and
memory only with earlier runs of the same env on the same machine fingerprint, by the gate
in matrix/judge/gate.py; with fewer than two such runs the report says so instead of guessing.
Each regression line names the history it was judged against and the effect size.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matrix.history.changes import Comparison, compare
from matrix.history.summary import describe, fingerprint, machine_id, plan_budgets, summary
from probes.record import dumps_strict, write_text_atomic

__all__ = [
    "HISTORY_FILE", "Comparison", "compare", "describe", "fingerprint", "load", "machine_id", "record", "summary",
]  # fmt: skip

HISTORY_FILE = "history.jsonl"


def load(results: Path, warnings: list[str]) -> list[dict[str, Any]]:
    """Every readable summary line, oldest first."""
    path = results / HISTORY_FILE
    if not path.exists():
        return []
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            entry = json.loads(line)
            if not isinstance(entry, dict) or "run_id" not in entry or not isinstance(entry.get("cells"), dict):
                raise ValueError("not a run summary")
            entries.append(entry)
        except ValueError as exc:
            warnings.append(f"skipped damaged line {number} of {path}: {exc}")
    return entries


def record(results: Path, current: dict[str, Any], settings: Mapping[str, Any], warnings: list[str]) -> Comparison:
    """Judge the run against the other runs in the history, then append it (a re-render of
    the same run replaces its line instead of adding one)."""
    if "budgets" not in current:
        current = {**current, "budgets": plan_budgets(results, str(current["run_id"]), warnings)}
    entries = [entry for entry in load(results, warnings) if entry["run_id"] != current["run_id"]]
    comparison = compare(entries, current, settings)
    lines = [dumps_strict(entry, sort_keys=True) for entry in [*entries, current]]
    write_text_atomic(results / HISTORY_FILE, "\n".join(lines) + "\n")
    return comparison
