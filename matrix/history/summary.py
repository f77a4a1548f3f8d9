"""The compact line a run leaves in `results/history.jsonl`: time, machine, the fingerprint
of the machine each env ran on, resolved versions, budgets, and per cell its status, key
metrics, the undisturbed samples of each latency and its memory."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matrix.judge import gate
from matrix.recommend import Recommendation
from matrix.results.aggregate import Matrix
from probes.record import CellResult

SCHEMA = 2
LATENCY_KEYS = ("generate_median_s", "embed_median_s")
# The memory metrics the gate judges: what the model itself adds on the CPU (matrix/judge/gate.py
# and probes/memory.py say why not the peak RSS increase), the peak CUDA allocation on a GPU.
MEMORY_KEYS = ("model_peak_mb", "peak_cuda_increase_mb")
BUDGET_OF_UNIT = {"s": "max_latency_s", "MB": "max_memory_mb"}


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
        line["budgets"] = budgets_of(model_specs)
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
        elif is_number(median):  # a probe from before samples were kept: its median is its one sample
            measured = gate.Measurement((float(median),))
        else:
            continue
        timings[name] = {"samples": list(measured.samples), "disturbed": measured.disturbed}
    return {
        "status": cell.status.value,
        "latency_s": latency,
        "memory_mb": cell.metrics.get("peak_rss_increase_mb"),
        "timings": timings,
        "memory": {key: cell.metrics[key] for key in MEMORY_KEYS if is_number(cell.metrics.get(key))},
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


def budgets_of(model_specs: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = {}
    for name, spec in model_specs.items():
        budgets = spec.get("budgets") if isinstance(spec, Mapping) else None
        if isinstance(budgets, Mapping):
            kept = {k: float(v) for k, v in budgets.items() if k in BUDGET_OF_UNIT.values() and is_number(v)}
            if kept:
                found[str(name)] = kept
    return found


def plan_budgets(results: Path, run_id: str, warnings: list[str]) -> dict[str, dict[str, float]]:
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
    return budgets_of(specs)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
