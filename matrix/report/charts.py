"""Inline SVG pictures of the published history for the page (no scripts, no fetches).

Two kinds, both over the last `RUNS_SHOWN` runs of `results/history.jsonl`, oldest on the left:
- `status_strip`: one per env, a square per (model row, run) in the page's status colours;
- `metric_chart`: one per model row and metric (latency, memory), a line per env on a
  log scale, with the model's budget as a dashed line (a log scale keeps a 30 ms cell and
  its 5 s budget on one picture, and shows a 2x slowdown as the same step anywhere).

Each square and point carries its numbers for a reader and for tests: a `<title>` (the
browser's tooltip) and `data-env`, `data-run`, `data-cell`, `data-status`, `data-value`
attributes (`data-value` is the history's number, written back exactly with `repr`).
Every text that came from the history (env, model, run id, time, machine, status) is
escaped with `html.escape`; a status outside the known colours is drawn white, never
written into a style.

The history's line format belongs to matrix/history.py; this reads only what every version
keeps: `run_id`, `time`, `envs` (name -> transformers), `machine`, and per cell `status`,
`latency_s`, `memory_mb` (a number, or samples / a `{"median": ...}` dict, whose median is drawn).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

RUNS_SHOWN = 12
# Okabe-Ito: told apart with the common colour-vision deficiencies; yellow last (faint on white).
ENV_PALETTE = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#000000", "#f0e442")
BUDGET_COLOUR = "#b00020"
MISSING_FILL = "#ffffff"
METRICS = {
    "latency_s": ("latency", "s", "max_latency_s"),
    "memory_mb": ("memory increase", "MB", "max_memory_mb"),
}

_SQUARE, _GAP, _LABEL_CHARS, _CHAR_W = 16, 3, 36, 7
_WIDTH, _HEIGHT, _LEFT, _RIGHT, _TOP, _BOTTOM = 400, 180, 52, 14, 26, 30


def last_runs(entries: Sequence[Mapping[str, Any]], count: int = RUNS_SHOWN) -> list[Mapping[str, Any]]:
    """The newest `count` readable summaries, oldest first."""
    return [entry for entry in entries if isinstance(entry, Mapping)][-count:]


def cell_of(entry: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    cells = entry.get("cells")
    cell = cells.get(key) if isinstance(cells, Mapping) else None
    return cell if isinstance(cell, Mapping) else None


def status_of(entry: Mapping[str, Any], key: str) -> str | None:
    cell = cell_of(entry, key)
    return None if cell is None or cell.get("status") is None else str(cell["status"])


def value_of(entry: Mapping[str, Any], key: str, metric: str) -> float | None:
    cell = cell_of(entry, key)
    return None if cell is None else number(cell.get(metric))


def number(value: Any) -> float | None:
    """A finite number from a metric: itself, the median of its samples, or its `median`."""
    if isinstance(value, Mapping):
        return number(value.get("median"))
    if isinstance(value, list | tuple):
        samples = [found for found in (number(item) for item in value) if found is not None]
        return float(statistics.median(samples)) if samples else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def versions_of(entry: Mapping[str, Any]) -> Mapping[str, Any]:
    """The run's env name -> transformers version."""
    versions = entry.get("envs")
    return versions if isinstance(versions, Mapping) else {}


def run_label(entry: Mapping[str, Any]) -> str:
    """A short date for an axis: `11-25 22:32` from an ISO time, else the run id."""
    time = str(entry.get("time") or "")
    if len(time) >= 16 and time[4] == "-" and time[10] == "T":
        return f"{time[5:10]} {time[11:16]}"
    return str(entry.get("run_id", "?"))[:16]


def run_about(entry: Mapping[str, Any], env: str | None = None) -> str:
    """A run as a tooltip names it: id, time, machine, and the env's transformers then."""
    parts = [f"run {entry.get('run_id', '?')}"]
    if entry.get("time"):
        parts.append(str(entry["time"]))
    machine = entry.get("machine")
    if isinstance(machine, Mapping) and machine.get("hostname"):
        parts.append(f"on {machine['hostname']}")
    version = versions_of(entry).get(env) if env is not None else None
    if version:
        parts.append(f"transformers {version}")
    return ", ".join(parts)


def _short(text: str, limit: int = _LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _attr(value: Any) -> str:
    return escape(str(value), quote=True)


def _label_width(names: Sequence[str]) -> int:
    return max([len(_short(name)) for name in names] + [4]) * _CHAR_W + 10


def status_strip(env: str, stems: Sequence[str], runs: Sequence[Mapping[str, Any]], colours: Mapping[str, str]) -> str:
    """One env's statuses: a row per model (variant), a column per run, a square per cell."""
    left = _label_width(stems)
    width = left + max(len(runs) * (_SQUARE + _GAP), 180) + 8
    height = 6 + len(stems) * (_SQUARE + _GAP) + 22
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="strip" data-chart="status" data-env="{_attr(env)}"'
        f' width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img"'
        f' aria-label="{_attr(f"statuses of {env} over the last {len(runs)} runs")}">'
    ]
    for row, stem in enumerate(stems):
        y = 6 + row * (_SQUARE + _GAP)
        parts.append(
            f'<text x="{left - 8}" y="{y + _SQUARE - 4}" text-anchor="end">{escape(_short(stem))}'
            f"<title>{escape(stem)}</title></text>"
        )
        for column, entry in enumerate(runs):
            x = left + column * (_SQUARE + _GAP)
            status = status_of(entry, f"{env}/{stem}")
            about = f"{env}/{stem}, {run_about(entry, env)}: {status or 'not in this run'}"
            common = (
                f'x="{x}" y="{y}" width="{_SQUARE}" height="{_SQUARE}" data-run="{_attr(entry.get("run_id", ""))}"'
                f' data-cell="{_attr(f"{env}/{stem}")}"'
            )
            if status is None:
                parts.append(
                    f'<rect {common} class="missing" fill="none" stroke="#bbb" stroke-dasharray="2 2">'
                    f"<title>{escape(about)}</title></rect>"
                )
            else:
                fill = colours.get(status, MISSING_FILL)
                parts.append(
                    f'<rect {common} data-status="{_attr(status)}" fill="{fill}" stroke="#888" stroke-width=".5">'
                    f"<title>{escape(about)}</title></rect>"
                )
    if runs:
        span = run_label(runs[0]) + (f" → {run_label(runs[-1])}" if len(runs) > 1 else "")
        parts.append(f'<text x="{left}" y="{height - 6}" class="tick">{escape(span)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def metric_chart(
    stem: str,
    metric: str,
    envs: Sequence[str],
    runs: Sequence[Mapping[str, Any]],
    budget: float | None,
    styles: Mapping[str, tuple[str, str]],
) -> str:
    """One model row's latency or memory per env over the runs, with its budget line."""
    what, unit, budget_key = METRICS[metric]
    series = {env: [value_of(entry, f"{env}/{stem}", metric) for entry in runs] for env in envs}
    values = [value for points in series.values() for value in points if value is not None]
    budget = number(budget)
    plot_w, plot_h = _WIDTH - _LEFT - _RIGHT, _HEIGHT - _TOP - _BOTTOM
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="{metric}" data-stem="{_attr(stem)}"'
        f' data-budget="{"" if budget is None else repr(budget)}" width="{_WIDTH}" height="{_HEIGHT}"'
        f' viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img"'
        f' aria-label="{_attr(f"{what} of {stem} per env over the last {len(runs)} runs")}">'
        f'<text x="4" y="14" class="what">{escape(what)}, {unit} (log scale)</text>'
        f'<rect x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#ccc"/>'
    )
    parts = [head]
    positive = [value for value in [*values, budget] if value is not None and value > 0]
    if not values:
        parts.append(
            f'<text x="{_LEFT + plot_w / 2}" y="{_TOP + plot_h / 2}" text-anchor="middle" class="none">'
            f"no {escape(what)} measured in these runs</text></svg>"
        )
        return "".join(parts)
    # Zero or less (a memory increase can be) sits on the bottom edge; its title gives the value.
    low, high = (min(positive) / 1.4, max(positive) * 1.4) if positive else (0.1, 10.0)

    def y_of(value: float) -> float:
        if value <= low:
            return float(_TOP + plot_h)
        return _TOP + plot_h * (1 - (math.log10(value) - math.log10(low)) / (math.log10(high) - math.log10(low)))

    def x_of(column: int) -> float:
        return _LEFT + plot_w * (column + 0.5) / max(len(runs), 1)

    for tick in _ticks(low, high):
        y = round(y_of(tick))
        parts.append(
            f'<line x1="{_LEFT}" x2="{_LEFT + plot_w}" y1="{y}" y2="{y}" stroke="#e4e4e4"/>'
            f'<text x="{_LEFT - 4}" y="{y + 3.5}" text-anchor="end" class="tick">{tick:g}</text>'
        )
    if budget is not None:
        y = round(y_of(budget))  # on whole pixels: the 2 px line is painted in its own colour
        parts.append(
            f'<line class="budget" data-value="{budget!r}" x1="{_LEFT}" x2="{_LEFT + plot_w}" y1="{y}" y2="{y}"'
            f' stroke="{BUDGET_COLOUR}" stroke-width="2" stroke-dasharray="6 4">'
            f"<title>{escape(f'{budget_key} {budget:g} {unit}')}</title></line>"
            f'<text x="{_LEFT + plot_w - 4}" y="{y - 4}" text-anchor="end" fill="{BUDGET_COLOUR}">'
            f"budget {budget:g} {unit}</text>"
        )
    for env in envs:
        colour, dash = styles[env]
        points = series[env]
        path, pen_down = [], False
        for column, value in enumerate(points):
            if value is None:
                pen_down = False
                continue
            path.append(f"{'L' if pen_down else 'M'}{x_of(column):.1f},{y_of(value):.1f}")
            pen_down = True
        if path:
            dashes = f' stroke-dasharray="{dash}"' if dash else ""
            parts.append(
                f'<path d="{" ".join(path)}" fill="none" stroke="{colour}" stroke-width="2"{dashes}'
                f' data-env="{_attr(env)}"/>'
            )
        for column, value in enumerate(points):
            if value is None:
                continue
            entry = runs[column]
            status = status_of(entry, f"{env}/{stem}") or "?"
            passed = status.startswith("pass")
            about = f"{env}/{stem}, {run_about(entry, env)}: {what} {value:g} {unit} ({status})"
            parts.append(
                f'<circle cx="{x_of(column):.1f}" cy="{y_of(value):.1f}" r="{3.5 if passed else 3}"'
                f' fill="{colour if passed else "#fff"}" stroke="{colour}" stroke-width="1.5"'
                f' data-env="{_attr(env)}" data-run="{_attr(entry.get("run_id", ""))}"'
                f' data-status="{_attr(status)}" data-value="{value!r}"><title>{escape(about)}</title></circle>'
            )
    parts += [
        f'<line x1="{x_of(column):.1f}" x2="{x_of(column):.1f}" y1="{_TOP + plot_h}" y2="{_TOP + plot_h + 4}"'
        ' stroke="#999"/>'
        for column in range(len(runs))
    ]
    parts += _run_axis(runs, _LEFT, plot_w, _HEIGHT - 8)
    parts.append("</svg>")
    return "".join(parts)


def _ticks(low: float, high: float) -> list[float]:
    """Decades inside [low, high]; with fewer than three, their 2x and 5x too."""
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    decades = [10.0**power for power in range(first, last + 1)]
    ticks = [tick for tick in decades if low <= tick <= high]
    if len(ticks) < 3:
        ticks = sorted(tick * step for tick in decades for step in (1, 2, 5) if low <= tick * step <= high)
    return [float(f"{tick:.12g}") for tick in ticks]


def _run_axis(runs: Sequence[Mapping[str, Any]], left: float, width: float, y: float) -> list[str]:
    """The first and the last run's dates under the columns (each column's title names its run)."""
    if not runs:
        return []
    parts = [f'<text x="{left}" y="{y}" class="tick">{escape(run_label(runs[0]))}</text>']
    if len(runs) > 1:
        parts.append(
            f'<text x="{left + width}" y="{y}" text-anchor="end" class="tick">{escape(run_label(runs[-1]))}</text>'
        )
    return parts
