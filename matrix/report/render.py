"""Render the aggregated matrix: COMPATIBILITY.md, the terminal table, matrix.json, pins.

All three views take the same `Matrix` rows and `Recommendation`. Text that came from
third-party code (exception messages) is flattened to one line and has table
metacharacters escaped, so a message can never break a Markdown row.
"""

from __future__ import annotations

import datetime
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tabulate as tabulate_module
from tabulate import tabulate

from matrix import __version__
from matrix.newest.blockers import shim_words
from matrix.recommend import Recommendation
from matrix.results.aggregate import Matrix
from matrix.signature import UnknownGroup, normalise
from probes.record import CellResult, write_json_atomic
from probes.status import Status

SCHEMA = 1
TERMINAL_MAX_ROWS = 60
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ud800-\udfff]")


def one_line(text: str, limit: int = 120) -> str:
    """First line of `text`, control characters removed, cut to `limit` characters."""
    text = _ANSI.sub("", text or "")
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")[: limit * 4]
    first = _UNPRINTABLE.sub(" ", first)
    return first if len(first) <= limit else first[: limit - 1] + "…"


_MD_ESCAPES = str.maketrans({char: "\\" + char for char in "\\|`*_<>[]"})


def md_escape(text: str) -> str:
    """Make text safe inside a Markdown table cell."""
    return text.translate(_MD_ESCAPES)


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
            missed = (_BUDGET_WORDS.get(item["budget"], item["budget"]) for item in cell.over_budget)
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


def terminal(
    matrix: Matrix, rec: Recommendation, unknown: Sequence[UnknownGroup] = (), since: Sequence[str] = ()
) -> str:
    """The table (or, past TERMINAL_MAX_ROWS models, status counts per env), why cells
    fail (cause and fix of each known break, each unrecognised kind once), the recommendation."""
    if len(matrix.rows) <= TERMINAL_MAX_ROWS:
        headers, rows = table_rows(matrix, markdown=False)
        table = tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)
    else:
        counted: dict[str, Counter[Status]] = {env.name: Counter() for env in matrix.envs}
        for cell in matrix.all_cells():
            counted[cell.env][cell.status] += 1
        shown = [status for status in Status if any(counted[env][status] for env in counted)]
        rows = [[env.header, *(str(counted[env.name][status]) for status in shown)] for env in matrix.envs]
        table = tabulate(rows, headers=["env", *(s.value for s in shown)], tablefmt="simple")
        table += f"\n\n{len(matrix.rows)} rows: the full table is in COMPATIBILITY.md."
    changes = ["", *since] if since else []
    machines = ["", machines_line(matrix)] if machines_line(matrix) else []
    lines = [table, *machines, *why_cells_fail(matrix, unknown), *changes, "", "Recommendation:", *rec.lines]
    if rec.blockers:
        rows = blockers_rows(rec, markdown=False)
        lines += ["", f"{blockers_title(rec)}:", tabulate(rows, headers=BLOCKERS_HEADERS, tablefmt="simple")]
    return "\n".join(lines)


BLOCKERS_HEADERS = ["model", "newest release as is", "newest with shims", "blocked by"]


def blockers_title(rec: Recommendation) -> str:
    pin = rec.pinned_release
    return f"What blocks the upgrade past transformers=={pin}" if pin else "What blocks the upgrade"


def blockers_rows(rec: Recommendation, markdown: bool) -> list[list[str]]:
    """One row per model: its newest release as is, with shims, and its first break past the pin."""
    rows = [[b["model"], b["as_is"], b["with_shims"], one_line(b["blocked_by"], 240)] for b in rec.blockers]
    return [[md_escape(text) for text in row] for row in rows] if markdown else rows


def why_cells_fail(matrix: Matrix, unknown: Sequence[UnknownGroup]) -> list[str]:
    """One paragraph per diagnosis (cells, where it came from, cause, evidence, fixes per
    env where the evidence differs), then each unrecognised kind and each cell that did not
    fail by an exception (timeout, crash, env not built, ...)."""
    failing = matrix.failing()
    if not failing:
        return []
    lines = ["", "Why cells fail:"]
    known: dict[tuple[str, str | None], list[CellResult]] = {}
    for cell in failing:
        if cell.diagnosis:
            known.setdefault((cell.diagnosis["id"], cell.diagnosis.get("introduced_in")), []).append(cell)
    for cells in known.values():
        diagnosis = cells[0].diagnosis or {}
        where = ", ".join(f"{cell.stem} on {cell.env}" for cell in cells[:8]) + (" ..." if len(cells) > 8 else "")
        lines += [
            f"- {diagnosis_label(diagnosis)}: {where} [{diagnosis_source(diagnosis)}]",
            f"    cause: {diagnosis['cause']}",
            *(f"    evidence: {line}" for line in diagnosis.get("evidence", [])[:3]),
            *(f"    {line}" for line in fix_lines(cells)),
        ]
    for group in unknown:
        where = ", ".join(f"{stem} on {env}" for env, stem in group.cells[:8])
        lines.append(f"- unrecognised {group.exception} in {group.phase}: {one_line(group.signature, 100)} ({where})")
    others = [cell for cell in failing if not cell.diagnosis and not (cell.error and cell.status is Status.FAIL)]
    lines += grouped_by_reason([cell for cell in others if not cell.status.says_nothing])
    silent = grouped_by_reason([cell for cell in others if cell.status.says_nothing])
    return lines + (["", "No verdict (these say nothing about compatibility):", *silent] if silent else [])


_WHAT_TO_DO = {
    Status.UNAVAILABLE: "reach the hub or fill the HF cache, then run again",
    Status.ENV_FAILED: "fix the env's requirements",
    Status.TIMEOUT: "raise the model's `timeout`, or find what hangs in its log",
}


def grouped_by_reason(cells: Sequence[CellResult]) -> list[str]:
    """One line per (status, reason with what varies removed): the cells it covers and what to do,
    so twenty cells that are offline for one cause read as one line (the Markdown keeps each cell)."""
    groups: dict[tuple[Status, str], list[CellResult]] = {}
    for cell in cells:
        groups.setdefault((cell.status, normalise(cell.reason)), []).append(cell)
    lines = []
    for (status, _), members in groups.items():
        stems = list(dict.fromkeys(cell.stem for cell in members))
        envs = list(dict.fromkeys(cell.env for cell in members))
        shown = ", ".join(stems[:6]) + (f" and {len(stems) - 6} more" if len(stems) > 6 else "")
        todo = f"; {_WHAT_TO_DO[status]}" if status in _WHAT_TO_DO else ""
        reason = one_line(members[0].reason, 150) if len(members) == 1 else one_line(normalise(members[0].reason), 150)
        lines.append(f"- {status.value}: {reason} ({shown} on {', '.join(envs)}){todo}")
    return lines


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


def _markdown_table(rows: list[list[str]], headers: list[str]) -> str:
    """A GitHub table. Column padding only pretties the source, so widths are counted in
    code points (tabulate's wide-character mode costs seconds on thousands of cells)."""
    wide, tabulate_module.WIDE_CHARS_MODE = tabulate_module.WIDE_CHARS_MODE, False
    try:
        return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
    finally:
        tabulate_module.WIDE_CHARS_MODE = wide


def markdown(
    matrix: Matrix,
    rec: Recommendation,
    generated_at: str,
    unknown: Sequence[UnknownGroup] = (),
    since: Sequence[str] = (),
) -> str:
    headers, rows = table_rows(matrix, markdown=True)
    machine = matrix.machine
    counts = ", ".join(
        f"{count} {status.value}" for status, count in sorted(matrix.counts().items(), key=lambda i: i[0].value)
    )
    machines = machines_line(matrix)
    where = (
        f"{len(matrix.machines())} machines"
        if machines
        else f"{machine.get('hostname', '?')} ({machine.get('platform', '?')}, {machine.get('cpu_count', '?')} CPUs)"
    )
    out = [
        "# Compatibility matrix",
        "",
        f"Run `{matrix.run_id}` on {where}, generated {generated_at} by transformers-matrix {__version__}. "
        f"{len(matrix.all_cells())} cells: {counts}.",
        "",
        *([md_escape(machines[0].upper() + machines[1:]) + ".", ""] if machines else []),
        "## Recommendation",
        "",
        *_md_blocks(rec.lines),
        *_md_blockers(rec),
        *(["## Since the last published run", "", *_md_blocks(since)] if since else []),
        "## Matrix",
        "",
        _markdown_table(rows, headers),
        "",
        "Legend: " + "; ".join(f"{status.mark} = {_LEGEND[status]}" for status in Status) + ".",
        "Each passing cell shows the median latency of its task (greedy generation, or one embedding request);"
        " ⚠ marks a missed budget, ≠ outputs that differ from the model's reference env (the oldest where it passes).",
    ]
    failing = matrix.failing()
    if failing:
        out += ["", "## Failures", ""]
        unbuilt = [cell for cell in failing if cell.status is Status.ENV_FAILED]
        for env in dict.fromkeys(cell.env for cell in unbuilt):
            first = next(cell for cell in unbuilt if cell.env == env)
            stems = [cell.stem for cell in unbuilt if cell.env == env]
            out += [f"### env {md_escape(env)} could not be built ({len(stems)} cells)", ""]
            out += [f"- {md_escape(one_line(first.reason, 600))}", f"- cells: {md_escape(', '.join(stems))}", ""]
        for cell in failing:
            if cell.status is not Status.ENV_FAILED:
                out += _failure_entry(cell, matrix)
    if unknown:
        out += ["## Unrecognised failures", "", "Failures no known-break entry explains, one entry per kind:", ""]
        for group in unknown:
            where = ", ".join(f"{stem} on {env}" for env, stem in group.cells)
            signature = md_escape(one_line(group.signature, 200))
            out += [f"- `{md_escape(group.exception)}` in {md_escape(group.phase)}: {signature}"]
            out += [f"  ({len(group.cells)} cells: {md_escape(where)})"]
        out.append("")
    if matrix.warnings:
        out += ["", "## Warnings", "", *[f"- {md_escape(one_line(w, 300))}" for w in matrix.warnings]]
    return "\n".join(out) + "\n"


def _md_blockers(rec: Recommendation) -> list[str]:
    if not rec.blockers:
        return []
    headers = [md_escape(h) for h in BLOCKERS_HEADERS]
    return [f"## {blockers_title(rec)}", "", _markdown_table(blockers_rows(rec, markdown=True), headers), ""]


def _md_blocks(lines: Sequence[str]) -> list[str]:
    """Summary lines as Markdown: each plain line its own paragraph, "- " lines one list."""
    out: list[str] = []
    for line in lines:
        item = line.startswith("- ")
        if out and not (item and out[-1].startswith("- ")):
            out.append("")
        out.append("- " + md_escape(line[2:]) if item else md_escape(line))
    return [*out, ""]


def _failure_entry(cell: CellResult, matrix: Matrix) -> list[str]:
    env = next(e for e in matrix.envs if e.name == cell.env)
    error = cell.error or {}
    lines = [f"### {md_escape(cell.stem)} on {md_escape(env.header)}: {cell.status.value}", ""]
    lines.append(f"- phase: {md_escape(cell.phase or '-')}")
    lines.append(f"- reason: {md_escape(one_line(cell.reason, 400))}")
    if error.get("type"):
        lines.append(f"- exception: `{md_escape(error['type'])}`")
        lines.append(f"- message: {md_escape(one_line(error.get('message', ''), 300))}")
    if cell.diagnosis:
        diagnosis = cell.diagnosis
        lines.append(f"- diagnosis: {md_escape(diagnosis_label(diagnosis))} ({diagnosis_source(diagnosis)})")
        lines.append(f"- cause: {md_escape(diagnosis['cause'])}")
        lines += [f"- evidence: {md_escape(line)}" for line in diagnosis.get("evidence", [])[:5]]
        lines.append(f"- fix: {md_escape('; '.join(diagnosis['fixes']) or 'none the evidence supports')}")
    if cell.log:
        lines.append(f"- log: `runs/{matrix.run_id}/{cell.log}`")
    return lines + [""]


def matrix_json(
    matrix: Matrix, rec: Recommendation, generated_at: str, unknown: Sequence[UnknownGroup] = ()
) -> dict[str, Any]:
    """The machine-readable result (schema-versioned, with a meta block)."""
    return {
        "schema": SCHEMA,
        "meta": {
            "tool": "transformers-matrix",
            "version": __version__,
            "generated_at": generated_at,
            "run_id": matrix.run_id,
            "machine": matrix.machine,
            "machines": [{"label": label, "machine": fp, "envs": envs} for label, fp, envs in matrix.machines()],
        },
        "envs": [
            {
                "name": env.name,
                "transformers": env.transformers,
                "torch": env.torch,
                "built": env.built,
                "install_s": env.install_s,
                "packages": env.packages,
            }
            for env in matrix.envs
        ],
        "models": matrix.models,
        "cells": [_cell_json(cell) for cell in matrix.all_cells()],
        "not_run": [{"env": env, "model": row.model, "variant": row.variant} for env, row in matrix.not_run()],
        "recommendation": rec.to_dict(),
        "unrecognised_failures": [group.to_dict() for group in unknown],
        "warnings": matrix.warnings,
    }


def loaded(cell: CellResult) -> dict[str, Any]:
    """How the model was loaded: the keywords passed to from_pretrained beyond
    trust_remote_code and revision, and the dtype and device its parameters got."""
    return {key: cell.facts[key] for key in ("load_kwargs", "dtype", "model_device") if key in cell.facts}


def _cell_json(cell: CellResult) -> dict[str, Any]:
    error = cell.error or {}
    return {
        "env": cell.env,
        "model": cell.model,
        "variant": cell.variant,
        "status": cell.status.value,
        "reason": cell.reason,
        "phase": cell.phase,
        "error": {"type": error.get("type", ""), "message": error.get("message", "")} if cell.error else None,
        "metrics": cell.metrics,
        "timings": cell.timings,
        "device": cell.device,
        "loaded": loaded(cell),
        "fingerprint": cell.fingerprint,
        "diagnosis": cell.diagnosis,
        "drift": cell.drift,
        "over_budget": cell.over_budget,
        "log": cell.log,
        "machine": cell.machine,
        "started_at": cell.started_at,
    }


def pins(matrix: Matrix, rec: Recommendation) -> dict[str, str]:
    """The pin file of the one answer, for `uv pip install -r`: the release the search confirmed
    (`transformers-<release>.txt`) when it made one, else one file per recommended env
    (`<env>.txt`: one env when it runs every model, the fewest envs otherwise)."""
    for key in ("as_is", "with_shims"):
        answer = (rec.newest or {}).get(key)
        if answer and answer.get("packages"):
            return {f"transformers-{answer['release']}": _release_pins(matrix, rec, answer)}
    files: dict[str, str] = {}
    if rec.best is None:
        return files
    for name in rec.best.envs:
        env = next(e for e in matrix.envs if e.name == name)
        served = ", ".join(choice.model for choice in rec.best.models_of(name))
        header = [
            f"# Exact pins of env {name} (transformers {env.transformers}), run {matrix.run_id}.",
            f"# Serves: {served}. Install with: uv pip install -r {name}.txt",
        ]
        if "+" in env.torch:
            header.append(f"# torch {env.torch} is a local build: point UV_FIND_LINKS at a folder holding it.")
        files[name] = "\n".join(header + [f"{pkg}=={version}" for pkg, version in env.packages.items()]) + "\n"
    return files


def _release_pins(matrix: Matrix, rec: Recommendation, answer: dict[str, Any]) -> str:
    """The pin file of a release the search confirmed: the confirm env's freeze."""
    release, packages = answer["release"], answer["packages"]
    how = shim_words(answer["choices"])
    served = f"all {len(answer['choices'])} models " + (f"with {how}" if how else "as is")
    header = [
        f"# Exact pins of transformers {release}, run {matrix.run_id}: the newest release that runs {served},",
        f"# confirmed by a probe of each; frozen from env {answer['env']}.",
        f"# Install with: uv pip install -r transformers-{release}.txt",
    ]
    if "+" in packages.get("torch", ""):
        header.append(f"# torch {packages['torch']} is a local build: point UV_FIND_LINKS at a folder holding it.")
    return "\n".join(header + [f"{pkg}=={version}" for pkg, version in packages.items()]) + "\n"


def now_utc() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def write_outputs(
    results: Path,
    matrix: Matrix,
    rec: Recommendation,
    generated_at: str,
    unknown: Sequence[UnknownGroup] = (),
    since: Sequence[str] = (),
) -> list[Path]:
    """Write every published file under `results/` (stale pin files removed)."""
    results.mkdir(parents=True, exist_ok=True)
    written = [results / "matrix.json", results / "COMPATIBILITY.md"]
    write_json_atomic(written[0], matrix_json(matrix, rec, generated_at, unknown))
    written[1].write_text(markdown(matrix, rec, generated_at, unknown, since), encoding="utf-8")
    pin_dir = results / "pins"
    pin_dir.mkdir(exist_ok=True)
    for old in pin_dir.glob("*.txt"):
        old.unlink()
    for name, text in pins(matrix, rec).items():
        (pin_dir / f"{name}.txt").write_text(text, encoding="utf-8")
        written.append(pin_dir / f"{name}.txt")
    return written


_BUDGET_WORDS = {"max_latency_s": "latency", "max_memory_mb": "memory", "min_similarity_accuracy": "similarity"}
_LEGEND = {
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
