"""results/index.html: one static, self-contained page built from the same rows.

The recommendation on top, the matrix with coloured cells, filters by status and model,
and a details panel filled on click (phase, exception, diagnosis and fix, timings, memory,
versions, the end of the log). No network fetches. Every text that came from a cell is
escaped: in the HTML with `html.escape`, in the embedded JSON with `<` written as `\\u003c`
(so no message can close the script element), and the script sets only `textContent`.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from matrix.aggregate import Matrix
from matrix.diagnosis import UnknownGroup
from matrix.recommend import Recommendation
from matrix.render import cell_text, diagnosis_label, diagnosis_source, drift_text, machines_line
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
  document.querySelectorAll('tbody tr').forEach(tr => {
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
) -> str:
    """The whole page as one string."""
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
</style></head><body>
<h1>Compatibility matrix</h1>
<p>Run <code>{html.escape(matrix.run_id)}</code> on {html.escape(where)},
generated {html.escape(generated_at)}.</p>
{f"<p>{html.escape(machines[:1].upper() + machines[1:])}.</p>" if machines else ""}
<h2>Recommendation</h2>
<ul>{_items(rec.lines)}</ul>
{f"<h2>Since the last published run</h2><ul>{_items(since)}</ul>" if since else ""}
<h2>Matrix</h2>
<p><label>Status <select id="status"><option value="">all</option>{options}</select></label>
<label>Model <input id="model" placeholder="filter by name"></label>
Click a cell for its details.</p>
<table><thead><tr><th>model</th>{head}<th>drift</th></tr></thead>
<tbody>{"".join(body)}</tbody></table>
<div id="details" hidden></div>
{f"<h2>Unrecognised failures</h2><ul>{unknown_items}</ul>" if unknown_items else ""}
<script type="application/json" id="cells">{blob}</script>
<script>{_SCRIPT}</script>
</body></html>
"""


def _items(lines: Sequence[str]) -> str:
    return "".join(f"<li>{html.escape(line.removeprefix('- '))}</li>" for line in lines)


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
        ("over budget", ", ".join(f"{b['budget']} {b['value']} > {b['limit']}" for b in cell.over_budget)),
        ("drift", (cell.drift or {}).get("detail", "")),
        ("versions", ", ".join(f"{k} {v}" for k, v in sorted(cell.versions.items()))),
        ("machine", _machine_text(cell.machine)),
        ("started", cell.started_at),
        ("log", cell.log),
        ("log tail", str(cell.facts.get("log_tail", ""))[-3000:]),
        ("traceback", error.get("traceback", "")[-3000:]),
    ]
    return [(label, str(value)) for label, value in rows if value]
