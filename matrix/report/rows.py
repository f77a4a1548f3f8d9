"""The rows every renderer shares: cell texts, the table, the blockers, diagnosis labels.

Built once and handed to the Markdown, terminal, JSON and HTML renderers (as coverage.py
builds its report rows once), so the views can never disagree about a cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from matrix.recommend import Recommendation
from matrix.report.text import md_escape, one_line
from matrix.results.aggregate import Matrix
from probes.record import CellResult
from probes.status import Status

BUDGET_WORDS = {"max_latency_s": "latency", "max_memory_mb": "memory", "min_similarity_accuracy": "similarity"}
LEGEND = {
    Status.PASS: "runs as is",
    Status.PASS_WITH_SHIM: "runs with the named shim",
    Status.FAIL: "raised an error (phase and exception shown)",
    Status.INVALID_MODEL: "no such model id or revision",
    Status.UNAVAILABLE: "files could not be had (offline, gated): says nothing about compatibility",
    Status.ENV_FAILED: "the env could not be built",
    Status.TIMEOUT: "killed after its time limit",
    Status.CRASHED: "the process died (signal or exit)",
    Status.OOM: "ran out of memory",
    Status.SKIPPED: "not run here (reason shown)",
}
STATUS_COLOURS = {  # the page's cell backgrounds and the trends' squares
    Status.PASS: "#c8f0c8",
    Status.PASS_WITH_SHIM: "#e4f5b0",
    Status.FAIL: "#f6c1c1",
    Status.INVALID_MODEL: "#e0c8f0",
    Status.UNAVAILABLE: "#e6e6e6",
    Status.ENV_FAILED: "#f3d9b1",
    Status.TIMEOUT: "#f9e0a8",
    Status.CRASHED: "#f0a8a8",
    Status.OOM: "#f0b8d8",
    Status.SKIPPED: "#eeeeee",
}
BLOCKERS_HEADERS = ["model", "newest release as is", "newest with shims", "blocked by"]


def present_statuses(matrix: Matrix) -> list[Status]:
    """The statuses that occur in the run, in the enum's order (a legend lists only these)."""
    seen = {cell.status for cell in matrix.all_cells()}
    return [status for status in Status if status in seen]


def cell_text(cell: CellResult | None, markdown: bool) -> str:
    """A status mark plus a short reason (failures) or a key timing (passes), and flags."""
    if cell is None:
        return "· not run"
    if cell.status.passed:
        metrics = cell.metrics
        if "generate_median_s" in metrics:
            detail = f"gen {metrics['generate_median_s'] * 1000:.0f} ms"
        elif "embed_median_s" in metrics:
            detail = f"embed {metrics['embed_median_s'] * 1000:.0f} ms"
        else:
            detail = ""
        if cell.over_budget:
            missed = (BUDGET_WORDS.get(item["budget"], item["budget"]) for item in cell.over_budget)
            detail += " ⚠ over " + ", ".join(missed)
        if cell.drift and cell.drift.get("degenerate"):
            detail += " ⚠ degenerate"
        elif cell.drift and cell.drift.get("differs"):
            detail += " ≠ drift"
    else:
        detail = short_reason(cell)
    text = f"{cell.status.mark} {detail}".strip()
    return md_escape(text) if markdown else text


def short_reason(cell: CellResult) -> str:
    if cell.diagnosis:
        return diagnosis_label(cell.diagnosis)
    if cell.error and cell.error.get("type") and cell.status is Status.FAIL:
        return f"{cell.error['type']} in {cell.phase}"
    return one_line(cell.reason, 60)


def drift_text(matrix: Matrix, model: str, variant: str) -> str:
    """The drift column: where this row's outputs differ from its reference env."""
    drifts = [(cell.env, cell.drift) for cell in matrix.row(model, variant).cells.values() if cell and cell.drift]
    if not drifts:
        return "-"
    differs = [env for env, drift in drifts if drift["differs"]]
    reference = drifts[0][1]["reference"]
    return f"differs in {', '.join(differs)} (vs {reference})" if differs else f"same as {reference}"


def machines_line(matrix: Matrix) -> str:
    """For a run merged from several machines, "cells from 2 machines: host-a (tf-4.40), host-b (latest)";
    else the empty string."""
    machines = matrix.machines()
    if len(machines) < 2:
        return ""
    where = ", ".join(f"{label} ({', '.join(envs)})" for label, _, envs in machines)
    return f"cells from {len(machines)} machines: {where}"


def table_rows(matrix: Matrix, markdown: bool) -> tuple[list[str], list[list[str]]]:
    headers = ["model", *(env.header for env in matrix.envs), "drift"]
    rows = [
        [
            matrix.label(row),
            *(cell_text(row.cells[env.name], markdown) for env in matrix.envs),
            drift_text(matrix, row.model, row.variant),
        ]
        for row in matrix.rows
    ]
    if markdown:
        headers = [md_escape(h) for h in headers]
        rows = [[md_escape(r[0]), *r[1:]] for r in rows]
    return headers, rows


def blockers_title(rec: Recommendation) -> str:
    pin = rec.pinned_release
    return f"What blocks the upgrade past transformers=={pin}" if pin else "What blocks the upgrade"


def blockers_rows(rec: Recommendation, markdown: bool) -> list[list[str]]:
    """One row per model: its newest release as is, with shims, and its first break past the pin."""
    rows = [[b["model"], b["as_is"], b["with_shims"], one_line(b["blocked_by"], 240)] for b in rec.blockers]
    return [[md_escape(text) for text in row] for row in rows] if markdown else rows


def diagnosis_label(diagnosis: dict[str, Any]) -> str:
    """ "<id> (since <release>)", the release marked "~" when the evidence could not pin it exactly."""
    since = diagnosis.get("introduced_in")
    if not since:
        return str(diagnosis["id"])
    approximate = "" if diagnosis.get("exact") or diagnosis.get("source") == "table" else "~"
    return f"{diagnosis['id']} (since {approximate}{since})"


def diagnosis_source(diagnosis: dict[str, Any]) -> str:
    """Where an explanation came from and how sure it is: "symbol-history, high"."""
    return f"{diagnosis.get('source', 'table')}, {diagnosis.get('confidence', 'high')}"


def fix_lines(cells: Sequence[CellResult]) -> list[str]:
    """ "fix: ..." once when every cell has the same fixes, else one line per cell."""
    fixes = [tuple((cell.diagnosis or {}).get("fixes", [])) for cell in cells]
    if len(set(fixes)) == 1:
        return [f"fix: {'; '.join(fixes[0])}"] if fixes[0] else []
    return [f"fix ({cell.stem} on {cell.env}): {'; '.join(fix)}" for cell, fix in zip(cells, fixes, strict=True) if fix]


def loaded(cell: CellResult) -> dict[str, Any]:
    """How the model was loaded: the keywords passed to from_pretrained beyond
    trust_remote_code and revision, and the dtype and device its parameters got."""
    return {key: cell.facts[key] for key in ("load_kwargs", "dtype", "model_device") if key in cell.facts}
