"""results/index.html: one static, self-contained page built from the same rows.

The first screen is the answer: the headline (one pin, or the fewest envs), the matrix with a
tally per env, then the release line (matrix/report/line_svg.py). Below: the upcoming
release's breaks, what blocks the upgrade, what changed, the trends (matrix/report/trends.py)
and, last, the bookkeeping. Clicking a cell fills a details panel; focusing a stretch of the
release line shows its window, error and fix. CSS and JS are package files (static/), as in
coverage.py's htmlfiles. Nothing is fetched. Every text that came from a cell is escaped: in
the HTML with `html.escape`, in the embedded JSON with `<` written as `\\u003c` (so no message
can close the script element), and the script sets only `textContent`.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any

from matrix.recommend import Recommendation
from matrix.report.answer import headline, is_upcoming, model_source, split_since, tallies, upcoming_breaks
from matrix.report.cell_details import cell_details
from matrix.report.line_stretches import BREAKS, axis, line_rows
from matrix.report.line_svg import release_line_picture
from matrix.report.rows import (
    BLOCKERS_HEADERS,
    LEGEND,
    STATUS_COLOURS,
    blockers_rows,
    blockers_title,
    cell_text,
    diagnosis_label,
    drift_text,
    machines_line,
    present_statuses,
    short_reason,
)
from matrix.report.text import release_notes_url
from matrix.report.trends import trends_section
from matrix.results.aggregate import Matrix
from matrix.signature import UnknownGroup
from probes.record import CellResult, dumps_strict
from probes.status import Status


@cache
def static(name: str) -> str:
    """A file of matrix/report/static/ (installed with the package)."""
    return resources.files("matrix.report").joinpath("static", name).read_text(encoding="utf-8")


def page(
    matrix: Matrix,
    rec: Recommendation,
    generated_at: str,
    unknown: Sequence[UnknownGroup] = (),
    since: Sequence[str] = (),
    runs: Sequence[Mapping[str, Any]] = (),
    specs: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """The whole page as one string. `runs` are history summaries, oldest first (the trends
    show the last few); `specs` are the run's model specs (each row's source; the budgets the charts draw)."""
    title, lines = headline(matrix, rec)
    changes, bookkeeping = split_since(since)
    details: dict[str, list[tuple[str, str]]] = {}
    table = _matrix(matrix, specs or {}, details)
    blob = dumps_strict(details, ensure_ascii=True).replace("<", "\\u003c").replace(">", "\\u003e")
    unknown_items = "".join(
        f"<li><code>{html.escape(group.exception)}</code> in {html.escape(group.phase)}: "
        f"{html.escape(group.signature)} ({len(group.cells)} cells)</li>"
        for group in unknown
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Compatibility matrix {html.escape(matrix.run_id)}</title>
<style>{static("page.css")}</style></head><body>
<header id="answer"><h1 id="headline">{html.escape(title)}</h1>
{"".join(f"<p>{html.escape(line)}</p>" for line in lines)}</header>
{table}
{_release_line(matrix, rec)}
{_upcoming(matrix)}
{_blockers(rec)}
{f"<h2>Since the last published run</h2><ul>{_items(changes)}</ul>" if changes else ""}
{f"<h2>Unrecognised failures</h2><ul>{unknown_items}</ul>" if unknown_items else ""}
{trends_section(matrix, runs, specs or {})}
{_bookkeeping(matrix, rec, generated_at, bookkeeping)}
<script type="application/json" id="cells">{blob}</script>
<script>{static("page.js")}</script>
</body></html>
"""


def _matrix(matrix: Matrix, specs: Mapping[str, Mapping[str, Any]], details: dict[str, list[tuple[str, str]]]) -> str:
    """The table: a row per model and shim variant (its source beside it), a tally per env under it."""
    head = "".join(
        f'<th data-env="{html.escape(env.name)}">{html.escape(env.header)}'
        + ("<br><small>upcoming release</small>" if is_upcoming(env) else "")
        + "</th>"
        for env in matrix.envs
    )
    body = []
    for row in matrix.rows:
        tds = []
        for env in matrix.envs:
            cell = row.cells[env.name]
            if cell is None:
                tds.append('<td class="none">· not run</td>')
                continue
            key = f"{env.name}/{row.label}"
            details[key] = cell_details(cell)
            tds.append(
                f'<td data-key="{html.escape(key)}" data-status="{cell.status.value}"'
                f' style="background:{STATUS_COLOURS[cell.status]}">{html.escape(_plain(cell))}</td>'
            )
        drift = html.escape(drift_text(matrix, row.model, row.variant))
        label = html.escape(row.label)
        shown = html.escape(matrix.label(row))
        body.append(
            f'<tr data-model="{label}"><th>{shown}</th>{_source(row.variant, specs.get(row.model))}'
            f"{''.join(tds)}<td>{drift}</td></tr>"
        )
    counted = tallies(matrix)
    tally = "".join(
        f'<td class="tally" data-env="{html.escape(env.name)}">{html.escape(str(counted[env.name]))}</td>'
        for env in matrix.envs
    )
    options = "".join(f'<option value="{s.value}">{s.value}</option>' for s in Status)
    legend = " ".join(
        f'<span class="key" style="background:{STATUS_COLOURS[status]}"></span> {status.value}: '
        f"{html.escape(LEGEND[status])}."
        for status in present_statuses(matrix)
    )
    return f"""<section id="matrix-section"><h2>Matrix</h2>
<table id="matrix"><thead><tr><th>model</th><th>source</th>{head}<th>drift</th></tr></thead>
<tbody>{"".join(body)}</tbody>
<tfoot><tr><th>runs</th><td></td>{tally}<td></td></tr></tfoot></table>
<p class="legend" id="legend">{legend}</p>
<p class="filters"><label>Status <select id="status"><option value="">all</option>{options}</select></label>
<label>Model <input id="model" placeholder="filter by name"></label> Click a cell for its details.</p>
<div id="details" hidden></div></section>"""


def _source(variant: str, spec: Mapping[str, Any] | None) -> str:
    if variant:
        return '<td class="source"></td>'
    text, url = model_source(spec)
    inner = f'<a href="{html.escape(url)}">{html.escape(text)}</a>' if url else html.escape(text)
    return f'<td class="source">{inner}</td>'


def _release_line(matrix: Matrix, rec: Recommendation) -> str:
    """The picture, a panel for the focused stretch, and each break with its release notes."""
    picture = release_line_picture(matrix, rec)
    releases = axis(matrix, rec)
    rows = line_rows(matrix, rec, releases)
    if not picture:
        return ""
    breaks = "".join(
        f"<li>{html.escape(row.label)}: {_release_link(stretch.first)}"
        + (f" to {html.escape(stretch.last)}" if stretch.last != stretch.first else "")
        + f" {html.escape(stretch.diagnosis or stretch.error.partition(':')[0])}"
        + ("" if stretch.exact_start is None else " (exact)" if stretch.exact_start else " (approximate)")
        + "</li>"
        for row in rows
        for stretch in row.stretches
        if stretch.kind == BREAKS and not stretch.assumed
    )
    return (
        '<section id="release-line-section"><h2>Release line</h2>\n'
        f"<p>{len(releases)} releases from {html.escape(releases[0])} to {html.escape(releases[-1])}, grouped by"
        " minor line. Hover or focus (Tab) a stretch for its window, error and fix.</p>\n"
        f'<div class="line-scroll">{picture}</div><div id="stretch" hidden></div>\n'
        + (f'<h3>Where each break begins</h3><ul id="breaks">{breaks}</ul>' if breaks else "")
        + "</section>"
    )


def _release_link(version: str) -> str:
    url = release_notes_url(version)
    shown = html.escape(version)
    return f'<a href="{html.escape(url)}">{shown}</a>' if url else shown


def _upcoming(matrix: Matrix) -> str:
    """What the pre-release envs break, apart from today's breaks."""
    found = upcoming_breaks(matrix)
    if not found:
        return ""
    items = "".join(
        f"<li>{html.escape(cell.model)} on {_release_link(env.transformers)} (env {html.escape(env.name)}): "
        f"{html.escape(diagnosis_label(cell.diagnosis) if cell.diagnosis else short_reason(cell))}"
        + (f"; fix: {html.escape('; '.join(cell.diagnosis.get('fixes') or []))}" if cell.diagnosis else "")
        + "</li>"
        for env, cell in found
    )
    return f'<section id="upcoming"><h2>Breaks in the upcoming release</h2><ul>{items}</ul></section>'


def _blockers(rec: Recommendation) -> str:
    """What blocks the upgrade: one row per model (the same rows as the Markdown and the terminal)."""
    if not rec.blockers:
        return ""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in BLOCKERS_HEADERS)
    body = "".join(
        f'<tr data-model="{html.escape(row[0])}"><th>{html.escape(row[0])}</th>'
        + "".join(f"<td>{html.escape(text)}</td>" for text in row[1:])
        + "</tr>"
        for row in blockers_rows(rec, markdown=False)
    )
    return (
        f'<h2 id="blockers-title">{html.escape(blockers_title(rec))}</h2>\n'
        f'<table id="blockers"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    )


def _bookkeeping(matrix: Matrix, rec: Recommendation, generated_at: str, history: Sequence[str]) -> str:
    """The run, how the answer was reached (the recommendation's full summary), the history's sufficiency."""
    machines = machines_line(matrix)
    where = f"{len(matrix.machines())} machines" if machines else str(matrix.machine.get("hostname", "?"))
    return (
        '<section id="bookkeeping"><h2>Details</h2>\n'
        f"<p>Run <code>{html.escape(matrix.run_id)}</code> on {html.escape(where)},"
        f" generated {html.escape(generated_at)}.</p>\n"
        + (f"<p>{html.escape(machines[:1].upper() + machines[1:])}.</p>\n" if machines else "")
        + f'<h3>How the answer was reached</h3><ul id="summary">{_items(rec.lines)}</ul>\n'
        + (f"<h3>History on this machine</h3><ul>{_items(history)}</ul>" if history else "")
        + "</section>"
    )


def _items(lines: Sequence[str]) -> str:
    """List items; a line starting with "- " nests under the nearest line above it that does
    not (a "- " line with no such line above stays a top-level item)."""
    items: list[tuple[str, list[str]]] = []
    for line in lines:
        if line.startswith("- ") and items and not items[-1][0].startswith("- "):
            items[-1][1].append(line.removeprefix("- "))
        else:
            items.append((line, []))
    return "".join(f"<li>{html.escape(line.removeprefix('- '))}{_sublist(subs)}</li>" for line, subs in items)


def _sublist(lines: Sequence[str]) -> str:
    return f"<ul>{''.join(f'<li>{html.escape(line)}</li>' for line in lines)}</ul>" if lines else ""


def _plain(cell: CellResult) -> str:
    """The table text without the status emoji (the colour says it; not every host has the font)."""
    return cell_text(cell, markdown=False).replace(cell.status.mark, cell.status.value, 1)
