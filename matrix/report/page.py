"""results/index.html: one static, self-contained page built from the same rows.

The recommendation on top, the matrix with coloured cells, filters by status and model,
and a details panel filled on click (phase, exception, diagnosis and fix, timings, memory,
versions, the end of the log), and trends over the last published runs as inline SVG
(matrix/charts.py). No network fetches. Every text that came from a cell is
escaped: in the HTML with `html.escape`, in the embedded JSON with `<` written as `\\u003c`
(so no message can close the script element), and the script sets only `textContent`.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from matrix.recommend import Recommendation
from matrix.report import charts
from matrix.report.render import (
    BLOCKERS_HEADERS,
    blockers_rows,
    blockers_title,
    cell_text,
    diagnosis_label,
    diagnosis_source,
    drift_text,
    loaded,
    machines_line,
)
from matrix.results.aggregate import Matrix
from matrix.signature import UnknownGroup
from probes.record import CellResult, dumps_strict
from probes.status import Status

_COLOURS = {
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

_SCRIPT = """
const cells = JSON.parse(document.getElementById('cells').textContent);
const panel = document.getElementById('details');
function show(key) {
  const cell = cells[key];
  panel.replaceChildren();
  for (const [label, value] of cell) {
    const row = document.createElement('div');
    const name = document.createElement('b');
    name.textContent = label + ': ';
    const text = document.createElement(label === 'log tail' || label === 'traceback' ? 'pre' : 'span');
    text.textContent = value;
    row.append(name, text);
    panel.append(row);
  }
  panel.hidden = false;
}
document.querySelectorAll('td[data-key]').forEach(td => td.addEventListener('click', () => show(td.dataset.key)));
function filter() {
  const status = document.getElementById('status').value;
  const model = document.getElementById('model').value.toLowerCase();
  document.querySelectorAll('#matrix tbody tr').forEach(tr => {
    const byModel = tr.dataset.model.toLowerCase().includes(model);
    const cellsShown = [...tr.querySelectorAll('td[data-status]')].map(td => {
      const show = !status || td.dataset.status === status;
      td.classList.toggle('dim', !show);
      return show;
    });
    tr.hidden = !byModel || !cellsShown.some(Boolean);
  });
}
document.getElementById('status').addEventListener('change', filter);
document.getElementById('model').addEventListener('input', filter);
"""


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
    show the last few); `specs` are the run's model specs, whose budgets the charts draw."""
    details: dict[str, list[tuple[str, str]]] = {}
    head = "".join(f"<th>{html.escape(env.header)}</th>" for env in matrix.envs)
    body = []
    for row in matrix.rows:
        tds = []
        for env in matrix.envs:
            cell = row.cells[env.name]
            if cell is None:
                tds.append('<td class="none">· not run</td>')
                continue
            key = f"{env.name}/{row.label}"
            details[key] = _details(cell)
            tds.append(
                f'<td data-key="{html.escape(key)}" data-status="{cell.status.value}"'
                f' style="background:{_COLOURS[cell.status]}">{html.escape(_plain(cell))}</td>'
            )
        drift = html.escape(drift_text(matrix, row.model, row.variant))
        label = html.escape(row.label)
        shown = html.escape(matrix.label(row))
        body.append(f'<tr data-model="{label}"><th>{shown}</th>{"".join(tds)}<td>{drift}</td></tr>')
    options = "".join(f'<option value="{s.value}">{s.value}</option>' for s in Status)
    unknown_items = "".join(
        f"<li><code>{html.escape(group.exception)}</code> in {html.escape(group.phase)}: "
        f"{html.escape(group.signature)} ({len(group.cells)} cells)</li>"
        for group in unknown
    )
    blob = dumps_strict(details, ensure_ascii=True).replace("<", "\\u003c").replace(">", "\\u003e")
    machines = machines_line(matrix)
    where = f"{len(matrix.machines())} machines" if machines else str(matrix.machine.get("hostname", "?"))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Compatibility matrix {html.escape(matrix.run_id)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; }}
table {{ border-collapse: collapse; }} th, td {{ border: 1px solid #bbb; padding: .3rem .5rem; text-align: left; }}
td[data-key] {{ cursor: pointer; }} td.dim {{ opacity: .25; }} td.none {{ color: #888; }}
#details {{ border: 1px solid #888; padding: .8rem; margin-top: 1rem; max-width: 70rem; }}
pre {{ white-space: pre-wrap; background: #f6f6f6; padding: .5rem; max-height: 20rem; overflow: auto; }}
.charts {{ display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; align-items: flex-start; }}
figure {{ margin: 0; }} figcaption {{ font-weight: 600; margin-bottom: .2rem; }}
h4 {{ margin: .8rem 0 .2rem; }} svg text {{ font-size: 11px; }} svg .tick {{ fill: #555; font-size: 10px; }}
svg .what {{ font-weight: 600; }} svg .none {{ fill: #888; }}
.key {{ display: inline-block; width: .9rem; height: .9rem; border: 1px solid #888; vertical-align: middle; }}
.line {{ display: inline-block; width: 1.4rem; height: 3px; vertical-align: middle; }}
</style></head><body>
<h1>Compatibility matrix</h1>
<p>Run <code>{html.escape(matrix.run_id)}</code> on {html.escape(where)},
generated {html.escape(generated_at)}.</p>
{f"<p>{html.escape(machines[:1].upper() + machines[1:])}.</p>" if machines else ""}
<h2>Recommendation</h2>
<ul>{_items(rec.lines)}</ul>
{_blockers(rec)}
{f"<h2>Since the last published run</h2><ul>{_items(since)}</ul>" if since else ""}
<h2>Matrix</h2>
<p><label>Status <select id="status"><option value="">all</option>{options}</select></label>
<label>Model <input id="model" placeholder="filter by name"></label>
Click a cell for its details.</p>
<table id="matrix"><thead><tr><th>model</th>{head}<th>drift</th></tr></thead>
<tbody>{"".join(body)}</tbody></table>
<div id="details" hidden></div>
{f"<h2>Unrecognised failures</h2><ul>{unknown_items}</ul>" if unknown_items else ""}
{_trends(matrix, runs, specs or {})}
<script type="application/json" id="cells">{blob}</script>
<script>{_SCRIPT}</script>
</body></html>
"""


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


def _trends(matrix: Matrix, entries: Sequence[Mapping[str, Any]], specs: Mapping[str, Mapping[str, Any]]) -> str:
    """The history as pictures: statuses per env, then latency and memory per model row."""
    runs = charts.last_runs(entries)
    keys = charts.keys_of(runs)
    if not keys:
        return ""
    envs = charts.ordered([env.name for env in matrix.envs], [env for env, _ in keys])
    stems = charts.ordered([row.label for row in matrix.rows], [stem for _, stem in keys])
    colours = {status.value: colour for status, colour in _COLOURS.items()}
    seen = {charts.status_of(entry, f"{env}/{stem}") for entry in runs for env, stem in keys}
    missing = "; a dashed outline: not in that run" if None in seen else ""
    status_keys = " ".join(
        f'<span class="key" style="background:{colour}"></span> {status.value}'
        for status, colour in _COLOURS.items()
        if status.value in seen
    )
    strips = []
    for env in envs:
        versions = [str(charts.versions_of(entry).get(env)) for entry in runs if charts.versions_of(entry).get(env)]
        caption = f"{env}: transformers {' → '.join(dict.fromkeys(versions))}" if versions else env
        env_stems = [stem for stem in stems if (env, stem) in keys]
        strips.append(
            f"<figure><figcaption>{html.escape(caption)}</figcaption>"
            f"{charts.status_strip(env, env_stems, runs, colours)}</figure>"
        )
    styles = charts.env_colours(envs)
    env_keys = " ".join(
        f'<span class="line" style="background:{colour}"></span> {html.escape(env)}'
        for env, (colour, _) in styles.items()
    )
    models = {row.label: row.model for row in matrix.rows}
    rows = []
    for stem in stems:
        measured = [
            charts.value_of(entry, f"{env}/{stem}", metric)
            for entry in runs
            for env in envs
            for metric in charts.METRICS
        ]
        if all(value is None for value in measured):
            continue
        budgets = (specs.get(models.get(stem, stem.partition("+")[0])) or {}).get("budgets") or {}
        pictures = "".join(
            charts.metric_chart(stem, metric, envs, runs, budgets.get(key), styles)
            for metric, (_, _, key) in charts.METRICS.items()
        )
        rows.append(
            f'<div class="trend" data-stem="{html.escape(stem)}"><h4>{html.escape(stem)}</h4>'
            f'<div class="charts">{pictures}</div></div>'
        )
    machines = charts.machine_count(runs)
    mixed = f" They come from {machines} machines: timings compare poorly across them." if machines > 1 else ""
    plural = "s" if len(runs) != 1 else ""
    budget_key = f'<span class="line" style="background:{charts.BUDGET_COLOUR}"></span> (dashed) the model\'s budget'
    metrics = (
        "<h3>Latency and memory per model</h3>"
        f"<p>{env_keys}; {budget_key}; a hollow point: that cell did not pass.</p>{''.join(rows)}"
        if rows
        else ""
    )
    return (
        '<section id="trends"><h2>Trends</h2>\n'
        f"<p>The last {len(runs)} published run{plural} (results/history.jsonl), oldest on the left."
        f" Hover a square or a point for its run and value.{mixed}</p>\n"
        f"<h3>Statuses per env</h3>\n<p>{status_keys}{missing}.</p>\n"
        f'<div class="charts">{"".join(strips)}</div>\n{metrics}</section>'
    )


def _plain(cell: CellResult) -> str:
    """The table text without the status emoji (the colour says it; not every host has the font)."""
    return cell_text(cell, markdown=False).replace(cell.status.mark, cell.status.value, 1)


def _machine_text(machine: dict[str, Any]) -> str:
    """Where the cell ran: merged runs mix machines, and timings only compare on one."""
    if not machine:
        return ""
    about = [str(machine.get("platform", "")), f"{machine.get('cpu_count', '?')} CPUs"]
    about += [f"{machine['memory_gb']} GB" if machine.get("memory_gb") else "", f"Python {machine.get('python', '?')}"]
    return f"{machine.get('hostname', '?')} ({', '.join(part for part in about if part)})"


def _details(cell: CellResult) -> list[tuple[str, str]]:
    """What the details panel shows for one cell, as (label, text) pairs."""
    error = cell.error or {}
    rows: list[tuple[str, Any]] = [
        ("cell", f"{cell.stem} on {cell.env}"),
        ("status", cell.status.value),
        ("reason", cell.reason),
        ("phase", cell.phase or ""),
        ("exception", error.get("type", "")),
        ("message", error.get("message", "")[:4000]),
    ]
    if cell.diagnosis:
        rows += [
            ("known break", diagnosis_label(cell.diagnosis)),
            ("diagnosis from", diagnosis_source(cell.diagnosis)),
            ("cause", cell.diagnosis["cause"]),
            *(("evidence", line) for line in cell.diagnosis.get("evidence", [])[:5]),
            ("fix", "; ".join(cell.diagnosis["fixes"])),
        ]
    rows += [
        ("timings", ", ".join(f"{k} {v:.3f} s" for k, v in sorted(cell.timings.items()))),
        ("metrics", ", ".join(f"{k} {v}" for k, v in sorted(cell.metrics.items()))),
        ("loaded", _loaded_text(cell)),
        ("over budget", ", ".join(_missed_budget(b) for b in cell.over_budget)),
        ("drift", (cell.drift or {}).get("detail", "")),
        ("versions", ", ".join(f"{k} {v}" for k, v in sorted(cell.versions.items()))),
        ("machine", _machine_text(cell.machine)),
        ("started", cell.started_at),
        ("log", cell.log),
        ("log tail", str(cell.facts.get("log_tail", ""))[-3000:]),
        ("traceback", error.get("traceback", "")[-3000:]),
    ]
    return [(label, str(value)) for label, value in rows if value]


def _missed_budget(missed: dict[str, Any]) -> str:
    """ "max_latency_s 2.4 > 2", "rag.recall 0.5 < 0.9": the value against the bound it misses."""
    bound = missed.get("bound") or (">=" if str(missed["budget"]).startswith("min_") else "<=")
    return f"{missed['budget']} {missed['value']} {'<' if bound == '>=' else '>'} {missed['limit']}"


def _loaded_text(cell: CellResult) -> str:
    """ "float32 on cpu; from_pretrained(torch_dtype=torch.float32)": what the model got, and how."""
    facts = loaded(cell)
    if not facts:
        return ""
    text = f"{facts.get('dtype', '?')} on {facts.get('model_device', '?')}"
    kwargs = facts.get("load_kwargs")
    return text + (f"; from_pretrained({', '.join(f'{k}={v}' for k, v in kwargs.items())})" if kwargs else "")
