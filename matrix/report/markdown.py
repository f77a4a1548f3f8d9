"""COMPATIBILITY.md: the answer, the matrix and every failure, in GitHub Markdown.

Every text that came from a cell goes through `md_escape`, so no exception message can
break a table row or smuggle in markup.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import tabulate as tabulate_module
from tabulate import tabulate

from matrix import __version__
from matrix.recommend import Recommendation
from matrix.report.answer import headline, is_upcoming, model_source, split_since, tallies, upcoming_breaks
from matrix.report.line_stretches import BREAKS, KIND_WORDS, Stretch, axis, line_rows
from matrix.report.log_links import log_place
from matrix.report.rows import (
    BLOCKERS_HEADERS,
    LEGEND,
    blockers_rows,
    blockers_title,
    diagnosis_label,
    diagnosis_source,
    machines_line,
    present_statuses,
    short_reason,
    table_rows,
)
from matrix.report.text import md_escape, md_link, one_line, release_notes_url
from matrix.results.aggregate import Matrix
from matrix.signature import UnknownGroup
from probes.record import CellResult
from probes.status import Status

LINE_SVG = "release-line.svg"  # written beside COMPATIBILITY.md (matrix/report/render.py)


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
    specs: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """The answer first (headline, the matrix with a tally per env, the release line), then the
    evidence (upcoming breaks, blockers, changes, failures), the bookkeeping last."""
    title, lines = headline(matrix, rec)
    changes, bookkeeping = split_since(since)
    out = [
        "# Compatibility matrix",
        "",
        f"**{md_escape(title)}.** " + " ".join(md_escape(line) for line in lines),
        "",
        "## Matrix",
        "",
        _matrix_table(matrix, specs or {}),
        "",
        "Legend: " + "; ".join(f"{status.mark} = {LEGEND[status]}" for status in present_statuses(matrix)) + ".",
        "Each passing cell shows the median latency of its task (greedy generation, or one embedding request);"
        " ⚠ marks a missed budget, ≠ outputs that differ from the model's reference env (the oldest where it passes).",
        *_release_line(matrix, rec),
        *_upcoming(matrix),
        *_md_blockers(rec),
        *(["## Since the last published run", "", *_md_blocks(changes)] if changes else []),
    ]
    upcoming = {env.name for env in matrix.envs if is_upcoming(env)}
    failing = [cell for cell in matrix.failing() if cell.env not in upcoming]
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
    out += ["", "## Details", "", *_run_line(matrix, generated_at), "", "### How the answer was reached", ""]
    out += _md_blocks(rec.lines)
    if bookkeeping:
        out += ["### History on this machine", "", *_md_blocks(bookkeeping)]
    return "\n".join(out).rstrip("\n") + "\n"


def _run_line(matrix: Matrix, generated_at: str) -> list[str]:
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
    line = (
        f"Run `{matrix.run_id}` on {where}, generated {generated_at} by transformers-matrix {__version__}. "
        f"{len(matrix.all_cells())} cells: {counts}."
    )
    return [line, *(["", md_escape(machines[0].upper() + machines[1:]) + "."] if machines else [])]


def _matrix_table(matrix: Matrix, specs: Mapping[str, Mapping[str, Any]]) -> str:
    """The table with each row's source beside its name and, last, how many models each env runs."""
    headers, rows = table_rows(matrix, markdown=True)
    sources = [md_link(*model_source(specs.get(row.model))) if not row.variant else "" for row in matrix.rows]
    rows = [[row[0], source, *row[1:]] for row, source in zip(rows, sources, strict=True)]
    counted = tallies(matrix)
    rows.append(["**runs**", "", *(md_escape(str(counted[env.name])) for env in matrix.envs), ""])
    return _markdown_table(rows, [headers[0], "source", *headers[1:]])


def _release_line(matrix: Matrix, rec: Recommendation) -> list[str]:
    """The picture (results/release-line.svg) and, in words, each row's stretches."""
    releases = axis(matrix, rec)
    rows = line_rows(matrix, rec, releases)
    if not releases or not rows:
        return []
    out = [
        "",
        "## Release line",
        "",
        f"![Where each model works from transformers {releases[0]} to {releases[-1]}]({LINE_SVG})",
        "",
        f"{len(releases)} releases from {releases[0]} to {releases[-1]}; each break names the release it"
        " begins in (linked to its release notes) and whether that edge is exact (both sides probed).",
        "",
    ]
    for row in rows:
        out.append(f"- **{md_escape(row.label)}**: " + "; ".join(_stretch_words(s) for s in row.stretches))
    return [*out, ""]


def _stretch_words(stretch: Stretch) -> str:
    if stretch.kind != BREAKS:
        return f"{md_escape(KIND_WORDS[stretch.kind].partition(' (')[0])} {md_escape(stretch.window)}"
    start = md_link(stretch.first, release_notes_url(stretch.first))
    why = f" with {md_escape(stretch.diagnosis)}" if stretch.diagnosis else ""
    error = f" ({md_escape(stretch.error.partition(':')[0])})" if stretch.error else ""
    edge = "" if stretch.exact_start is None else (", exact" if stretch.exact_start else ", approximate")
    to = f" to {md_escape(stretch.last)}" if stretch.last != stretch.first else ""
    assumed = " (assumed)" if stretch.assumed else ""
    return f"breaks from {start}{to}{why}{error}{edge}{assumed}"


def _upcoming(matrix: Matrix) -> list[str]:
    """The upcoming release's breaks, apart from today's."""
    found = upcoming_breaks(matrix)
    if not found:
        return []
    out = ["", "## Breaks in the upcoming release", ""]
    for env, cell in found:
        diagnosis = cell.diagnosis or {}
        what = diagnosis_label(diagnosis) if diagnosis else short_reason(cell)
        fix = "; ".join(diagnosis.get("fixes") or [])
        version = md_link(env.transformers, release_notes_url(env.transformers))
        out.append(
            f"- {md_escape(cell.model)} on {version} (env {md_escape(env.name)}): {md_escape(what)}"
            + (f"; fix: {md_escape(fix)}" if fix else "")
        )
    return [*out, ""]


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
        if diagnosis.get("introduced_in"):
            since = str(diagnosis["introduced_in"])
            lines.append(f"- breaks in: {md_link(since, release_notes_url(since))} (its release notes)")
        lines.append(f"- cause: {md_escape(diagnosis['cause'])}")
        lines += [f"- evidence: {md_escape(line)}" for line in diagnosis.get("evidence", [])[:5]]
        lines.append(f"- fix: {md_escape('; '.join(diagnosis['fixes']) or 'none the evidence supports')}")
    if cell.log:
        lines.append(f"- log: {log_place(matrix.run_id, cell.log)}")
    return lines + [""]
