"""History and regressions: every published run leaves one summary line; each new run is
compared with the last published one.

`results/history.jsonl` holds one compact JSON object per run (time, machine, envs with
resolved versions, status and key metrics per cell). The comparison names new failures,
fixes, a new `latest` release and performance regressions beyond thresholds, and says when
the two runs came from different machines (timings then compare poorly). Like
pytest-benchmark's storage, a damaged line is skipped with a warning.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matrix.aggregate import Matrix
from matrix.recommend import Recommendation
from probes.record import dumps_strict

HISTORY_FILE = "history.jsonl"
LATENCY_KEYS = ("generate_median_s", "embed_median_s")


@dataclass
class Comparison:
    """What changed since the previous published run."""

    previous_run: str | None
    new_failures: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)
    slower: list[str] = field(default_factory=list)
    new_versions: list[str] = field(default_factory=list)
    different_machine: bool = False

    @property
    def regressed(self) -> bool:
        return bool(self.new_failures or self.slower)

    def lines(self) -> list[str]:
        if self.previous_run is None:
            return ["First published run: nothing to compare with."]
        lines = [f"Compared with run {self.previous_run}:"]
        if self.different_machine:
            lines.append("- the two runs come from different machines: timings compare poorly")
        lines += [f"- new failure: {item}" for item in self.new_failures]
        lines += [f"- fixed: {item}" for item in self.fixes]
        lines += [f"- slower: {item}" for item in self.slower]
        lines += [f"- new version: {item}" for item in self.new_versions]
        if not self.regressed:
            lines.append("- no regressions")
        return lines


def summary(matrix: Matrix, rec: Recommendation, generated_at: str) -> dict[str, Any]:
    """The compact line a run leaves in the history."""
    cells = {}
    for cell in matrix.all_cells():
        latency = next((cell.metrics[k] for k in LATENCY_KEYS if k in cell.metrics), None)
        cells[f"{cell.env}/{cell.stem}"] = {
            "status": cell.status.value,
            "latency_s": latency,
            "memory_mb": cell.metrics.get("peak_rss_increase_mb"),
        }
    machine = matrix.machine
    return {
        "schema": 1,
        "time": generated_at,
        "run_id": matrix.run_id,
        "machine": {key: machine.get(key) for key in ("hostname", "platform", "cpu_count", "memory_gb")},
        "envs": {env.name: env.transformers for env in matrix.envs},
        "cells": cells,
        "recommendation": list(rec.best.envs) if rec.best else [],
    }


def load(results: Path, warnings: list[str]) -> list[dict[str, Any]]:
    """Every readable summary line, oldest first."""
    path = results / HISTORY_FILE
    if not path.exists():
        return []
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            entry = json.loads(line)
            if not isinstance(entry, dict) or "run_id" not in entry:
                raise ValueError("not a run summary")
            entries.append(entry)
        except ValueError as exc:
            warnings.append(f"skipped damaged line {number} of {path}: {exc}")
    return entries


def compare(previous: dict[str, Any] | None, current: dict[str, Any], settings: dict[str, Any]) -> Comparison:
    """New failures, fixes, slower cells and new versions between two summaries."""
    if previous is None:
        return Comparison(previous_run=None)
    result = Comparison(previous_run=previous["run_id"], different_machine=previous["machine"] != current["machine"])
    latency_pct = settings.get("regression_latency_pct", 25.0)
    memory_pct = settings.get("regression_memory_pct", 20.0)
    for key, now in sorted(current["cells"].items()):
        before = previous["cells"].get(key)
        if before is None:
            continue
        passed_now, passed_before = now["status"].startswith("pass"), before["status"].startswith("pass")
        if passed_before and not passed_now:
            result.new_failures.append(f"{key} ({before['status']} -> {now['status']})")
        elif passed_now and not passed_before:
            result.fixes.append(f"{key} ({before['status']} -> {now['status']})")
        elif passed_now:
            result.slower += _slower(key, before, now, latency_pct, memory_pct)
    for env, version in current["envs"].items():
        old = previous["envs"].get(env)
        if old and old != version:
            result.new_versions.append(f"{env}: transformers {old} -> {version}")
    return result


def _slower(key: str, before: dict[str, Any], now: dict[str, Any], latency_pct: float, memory_pct: float) -> list[str]:
    found = []
    for metric, pct, unit in (("latency_s", latency_pct, "s"), ("memory_mb", memory_pct, "MB")):
        old, new = before.get(metric), now.get(metric)
        if old and new and new > old * (1 + pct / 100):
            found.append(
                f"{key} {metric} {old:g} {unit} -> {new:g} {unit} (+{(new / old - 1) * 100:.0f} %, limit {pct:g} %)"
            )
    return found


def record(results: Path, current: dict[str, Any], settings: dict[str, Any], warnings: list[str]) -> Comparison:
    """Compare with the last other run in the history, then append this run (a re-render of
    the same run replaces its line instead of adding one)."""
    entries = [entry for entry in load(results, warnings) if entry["run_id"] != current["run_id"]]
    comparison = compare(entries[-1] if entries else None, current, settings)
    lines = [dumps_strict(entry, sort_keys=True) for entry in [*entries, current]]
    path = results / HISTORY_FILE
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)
    return comparison
