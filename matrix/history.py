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
in matrix/gate.py; with fewer than two such runs the report says so instead of guessing.
Each regression line names the history it was judged against and the effect size.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matrix.judge import gate
from matrix.recommend import Recommendation
from matrix.results.aggregate import Matrix
from probes.record import CellResult, dumps_strict
from probes.status import Status

HISTORY_FILE = "history.jsonl"
SCHEMA = 2
LATENCY_KEYS = ("generate_median_s", "embed_median_s")
# The memory metrics the gate judges: what the model itself adds on the CPU (matrix/gate.py
# and probes/cell.py say why not the peak RSS increase), the peak CUDA allocation on a GPU.
MEMORY_KEYS = ("model_peak_mb", "peak_cuda_increase_mb")
BUDGET_OF_UNIT = {"s": "max_latency_s", "MB": "max_memory_mb"}
LISTED = 8  # keys named on one grouped line before "and N more"


@dataclass
class Comparison:
    """What changed since the previous published run, and what the gate found."""

    previous_run: str | None
    rules: gate.Rules = field(default_factory=gate.Rules)
    new_failures: list[str] = field(default_factory=list)
    no_verdict: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)
    slower: list[str] = field(default_factory=list)
    unstable: list[str] = field(default_factory=list)
    # Number of earlier runs on this machine -> the cells that had that few (fewer than 2).
    thin_history: dict[int, list[str]] = field(default_factory=dict)
    new_versions: list[str] = field(default_factory=list)
    judged: list[str] = field(default_factory=list)  # the passing cells the gate looked at

    @property
    def regressed(self) -> bool:
        """New failures or regressions the gate reported: what --fail-on-regression fails on."""
        return bool(self.new_failures or self.slower)

    def lines(self) -> list[str]:
        if self.previous_run is None:
            return ["First published run: nothing to compare with."]
        rules = self.rules
        lines = [
            f"Compared with run {self.previous_run}; timings and memory with earlier runs on the same machine "
            f"(slower when z >= {rules.z:g} over the last {rules.lookback} runs and a rank test p <= "
            f"{gate.RANK_ALPHA:g}, and the change reaches {rules.min_effect_pct:g} %, {rules.min_effect_s * 1000:g} ms "
            f"({rules.min_effect_mb:g} MB for memory) and {rules.budget_pct:g} % of the budget):"
        ]
        lines += [f"- new failure: {item}" for item in self.new_failures]
        lines += [f"- no verdict now: {item}" for item in self.no_verdict]
        lines += [f"- fixed: {item}" for item in self.fixes]
        lines += [f"- slower: {item}" for item in self.slower]
        if self.unstable:
            lines.append(
                "- unstable, not judged (the CPU was busy: most samples waited while other processes ran): "
                + _listed(self.unstable)
            )
        for runs, keys in sorted(self.thin_history.items()):
            plural = "run" if runs == 1 else "runs"
            which = f"every cell ({len(keys)})" if len(keys) > 1 and len(keys) == len(self.judged) else _listed(keys)
            lines.append(f"- not enough history on this machine ({runs} {plural}): {which}")
        lines += [f"- new version: {item}" for item in self.new_versions]
        if not self.regressed:
            lines.append("- no regressions")
        return lines


def summary(
    matrix: Matrix, rec: Recommendation, generated_at: str, model_specs: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The compact line a run leaves in the history (budgets from `model_specs` when given;
    `record` otherwise reads them from the run's plans under the results folder)."""
    cells = {f"{cell.env}/{cell.stem}": _cell_summary(cell) for cell in matrix.all_cells()}
    machine = matrix.machine
    line: dict[str, Any] = {
        "schema": SCHEMA,
        "time": generated_at,
        "run_id": matrix.run_id,
        "machine": {key: machine.get(key) for key in ("hostname", "platform", "cpu_count", "memory_gb")},
        "fingerprints": {env.name: fingerprint(matrix, env.name) for env in matrix.envs},
        "envs": {env.name: env.transformers for env in matrix.envs},
        "cells": cells,
        "recommendation": list(rec.best.envs) if rec.best else [],
    }
    if model_specs is not None:
        line["budgets"] = _budgets(model_specs)
    return line


def _cell_summary(cell: CellResult) -> dict[str, Any]:
    latency = next((cell.metrics[k] for k in LATENCY_KEYS if k in cell.metrics), None)
    raw = _mapping(cell.facts.get("samples"))
    timings: dict[str, Any] = {}
    for key, median in cell.metrics.items():
        if not key.endswith("_median_s"):
            continue
        name = key.removesuffix("_median_s")
        found = _mapping(raw.get(name))
        if isinstance(found.get("wall_s"), list) and found["wall_s"]:
            measured = gate.undisturbed(found["wall_s"], found.get("waited_s") or [], found.get("others_s") or [])
        elif _is_number(median):  # a probe from before samples were kept: its median is its one sample
            measured = gate.Measurement((float(median),))
        else:
            continue
        timings[name] = {"samples": list(measured.samples), "disturbed": measured.disturbed}
    return {
        "status": cell.status.value,
        "latency_s": latency,
        "memory_mb": cell.metrics.get("peak_rss_increase_mb"),
        "timings": timings,
        "memory": {key: cell.metrics[key] for key in MEMORY_KEYS if _is_number(cell.metrics.get(key))},
    }


def fingerprint(matrix: Matrix, env: str) -> dict[str, Any]:
    """What timings depend on, for the cells of `env`: CPU model and count, architecture, GPU
    and driver, torch build, Python. Not the hostname: a fresh CI runner of the same kind
    shares its history with the previous one."""
    cells = [row.cells.get(env) for row in matrix.rows]
    ran = [cell for cell in cells if cell is not None and cell.machine]
    if not ran:
        return {}
    best = next((cell for cell in ran if isinstance(cell.facts.get("host"), dict)), ran[0])
    host = _mapping(best.facts.get("host"))
    gpu = next((_mapping(cell.facts["gpu"]) for cell in ran if isinstance(cell.facts.get("gpu"), dict)), None)
    if gpu:
        gpu_text = f"{gpu.get('name', '?')}, driver {gpu.get('driver') or '?'}"
    else:
        gpu_text = f"NVIDIA driver {host['gpu_driver']}" if host.get("gpu_driver") else "none"
    return {
        "cpu": host.get("cpu_model") or "?",
        "cpus": best.machine.get("cpu_count"),
        "arch": best.machine.get("machine") or "?",
        "gpu": gpu_text,
        "torch": best.versions.get("torch") or "?",
        "python": best.versions.get("python") or best.machine.get("python") or "?",
    }


def machine_id(print_: Mapping[str, Any]) -> str:
    """A short stable name for a fingerprint."""
    return hashlib.sha256(json.dumps(print_, sort_keys=True, default=str).encode()).hexdigest()[:8]


def describe(print_: Mapping[str, Any]) -> str:
    gpu = print_.get("gpu") or "none"
    return (
        f"machine {machine_id(print_)}: {print_.get('cpu')} x{print_.get('cpus')}, "
        f"{'no GPU' if gpu == 'none' else gpu}, torch {print_.get('torch')}, Python {print_.get('python')}"
    )


def _budgets(model_specs: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = {}
    for name, spec in model_specs.items():
        budgets = spec.get("budgets") if isinstance(spec, Mapping) else None
        if isinstance(budgets, Mapping):
            kept = {k: float(v) for k, v in budgets.items() if k in BUDGET_OF_UNIT.values() and _is_number(v)}
            if kept:
                found[str(name)] = kept
    return found


def _plan_budgets(results: Path, run_id: str, warnings: list[str]) -> dict[str, dict[str, float]]:
    """The budgets in the run's plans, when the run folder is under `results/runs`."""
    specs: dict[str, Any] = {}
    for plan_file in sorted((results / "runs" / run_id).glob("*/_plan.json")):
        try:
            plan = json.loads(plan_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            warnings.append(f"budgets not read from {plan_file}: {exc}")
            continue
        for spec in plan.get("cells", []) if isinstance(plan, dict) else []:
            if isinstance(spec, dict) and spec.get("model"):
                specs.setdefault(spec["model"], spec)
    return _budgets(specs)


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


def compare(earlier: list[dict[str, Any]], current: dict[str, Any], settings: Mapping[str, Any]) -> Comparison:
    """Status changes since the last of `earlier` (oldest first), and the gate's verdict on
    every timing and memory metric of the current run's passing cells."""
    if not earlier:
        return Comparison(previous_run=None)
    previous = earlier[-1]
    result = Comparison(previous_run=str(previous["run_id"]), rules=gate.Rules.from_settings(settings))
    for key, now in sorted(current["cells"].items()):
        before = previous["cells"].get(key)
        if not isinstance(before, dict) or not isinstance(now, dict):
            continue
        passed_now, passed_before = _passed(now), _passed(before)
        change = f"{key} ({before.get('status')} -> {now.get('status')})"
        if passed_before and not passed_now:
            (result.no_verdict if _says_nothing(now) else result.new_failures).append(change)
        elif passed_now and not passed_before:
            result.fixes.append(change)
    _judge_metrics(earlier, current, result)
    for env, version in current["envs"].items():
        old = previous.get("envs", {}).get(env)
        if old and old != version:
            result.new_versions.append(f"{env}: transformers {old} -> {version}")
    return result


def _judge_metrics(earlier: list[dict[str, Any]], current: dict[str, Any], result: Comparison) -> None:
    rules = result.rules
    prints = current.get("fingerprints") or {}
    budgets = current.get("budgets") or {}
    for key, now in sorted(current["cells"].items()):
        if not isinstance(now, dict) or not _passed(now):
            continue
        env, _, stem = key.partition("/")
        here = prints.get(env)
        same_machine = [entry for entry in earlier if here and (entry.get("fingerprints") or {}).get(env) == here]
        history = [entry["cells"].get(key) for entry in same_machine]
        history = [cell for cell in history if isinstance(cell, dict) and _passed(cell)]
        budget_of = budgets.get(stem.split("+", 1)[0]) or {}
        fewest: int | None = None
        result.judged.append(key)
        for name, unit, measured, past in _metrics(now, history):
            verdict = gate.judge(measured, past, rules, unit, budget_of.get(BUDGET_OF_UNIT[unit]))
            if verdict.kind == gate.UNSTABLE:
                result.unstable.append(f"{key} {name} ({verdict.total - verdict.kept} of {verdict.total} set aside)")
            elif verdict.kind == gate.NO_HISTORY:
                fewest = verdict.runs if fewest is None else min(fewest, verdict.runs)
            elif verdict.kind == gate.REGRESSION:
                result.slower.append(_regression_line(key, name, verdict, here or {}))
        if fewest is not None:
            result.thin_history.setdefault(fewest, []).append(key)


def _metrics(
    now: dict[str, Any], history: list[dict[str, Any]]
) -> list[tuple[str, str, gate.Measurement, list[gate.Measurement]]]:
    """(name, unit, this run's measurement, the history's) for each metric of a cell."""
    found: list[tuple[str, str, gate.Measurement | None, list[gate.Measurement]]] = []
    for name, data in sorted((now.get("timings") or {}).items()):
        past = [_timing(cell.get("timings", {}).get(name)) for cell in history]
        found.append((f"{name} latency", "s", _timing(data), [m for m in past if m is not None]))

    for name, value in sorted((now.get("memory") or {}).items()):
        if _is_number(value):
            past_values = [(cell.get("memory") or {}).get(name) for cell in history]
            memory = [
                gate.Measurement((float(v),)) for v in past_values if isinstance(v, int | float) and _is_number(v)
            ]
            found.append((f"memory {name}", "MB", gate.Measurement((float(value),)), memory))
    return [(name, unit, measured, past) for name, unit, measured, past in found if measured is not None]


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _timing(data: Any) -> gate.Measurement | None:
    if not isinstance(data, dict) or not isinstance(data.get("samples"), list):
        return None
    samples = tuple(float(value) for value in data["samples"] if _is_number(value))
    disturbed = data.get("disturbed")
    return gate.Measurement(samples, int(disturbed) if isinstance(disturbed, int) else 0)


def _regression_line(key: str, name: str, verdict: gate.Verdict, print_: Mapping[str, Any]) -> str:
    unit = verdict.unit
    value, mean, spread, effect = verdict.value or 0.0, verdict.mean or 0.0, verdict.spread or 0.0, verdict.effect
    rank = f", rank test p {verdict.p:.1g}" if verdict.p is not None else ""
    return (
        f"{key} {name} {_amount(value, unit)} against {_amount(mean, unit)} (sd {_amount(spread, unit)}) "
        f"over {verdict.runs} earlier runs on {describe(print_)}: +{_amount(effect or 0.0, unit)} "
        f"(+{verdict.effect_pct or 0.0:.0f} %, needed {_amount(verdict.needed or 0.0, unit)}), z {verdict.z:.1f}{rank}"
    )


def _amount(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.3g} ms" if abs(value) < 1 else f"{value:.3g} s"
    return f"{value:.1f} MB"


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:LISTED])
    return shown + (f" and {len(keys) - LISTED} more" if len(keys) > LISTED else "")


def _passed(cell: Mapping[str, Any]) -> bool:
    return str(cell.get("status", "")).startswith("pass")


def _says_nothing(cell: Mapping[str, Any]) -> bool:
    try:
        return Status(cell.get("status")).says_nothing
    except ValueError:
        return False


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def record(results: Path, current: dict[str, Any], settings: Mapping[str, Any], warnings: list[str]) -> Comparison:
    """Judge the run against the other runs in the history, then append it (a re-render of
    the same run replaces its line instead of adding one)."""
    if "budgets" not in current:
        current = {**current, "budgets": _plan_budgets(results, str(current["run_id"]), warnings)}
    entries = [entry for entry in load(results, warnings) if entry["run_id"] != current["run_id"]]
    comparison = compare(entries, current, settings)
    lines = [dumps_strict(entry, sort_keys=True) for entry in [*entries, current]]
    path = results / HISTORY_FILE
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)
    return comparison
