"""The page's Trends section: the published history as pictures (matrix/report/charts.py draws them).

Statuses per env first, then latency and memory per model row with its budget; each picture
covers the last `charts.RUNS_SHOWN` runs. With no history there is no section.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

from matrix.report import charts
from matrix.report.rows import STATUS_COLOURS
from matrix.results.aggregate import Matrix


def trends_section(matrix: Matrix, entries: Sequence[Mapping[str, Any]], specs: Mapping[str, Mapping[str, Any]]) -> str:
    """The history as pictures: statuses per env, then latency and memory per model row."""
    runs = charts.last_runs(entries)
    keys = keys_of(runs)
    if not keys:
        return ""
    envs = ordered([env.name for env in matrix.envs], [env for env, _ in keys])
    stems = ordered([row.label for row in matrix.rows], [stem for _, stem in keys])
    colours = {status.value: colour for status, colour in STATUS_COLOURS.items()}
    seen = {charts.status_of(entry, f"{env}/{stem}") for entry in runs for env, stem in keys}
    missing = "; a dashed outline: not in that run" if None in seen else ""
    status_keys = " ".join(
        f'<span class="key" style="background:{colour}"></span> {status.value}'
        for status, colour in STATUS_COLOURS.items()
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
    styles = env_colours(envs)
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
    machines = machine_count(runs)
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


def machine_count(runs: Sequence[Mapping[str, Any]]) -> int:
    return len({json.dumps(entry.get("machine"), sort_keys=True, default=str) for entry in runs})


def keys_of(runs: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """Every (env, row) the runs have a cell for, in first-seen order."""
    found: dict[tuple[str, str], None] = {}
    for entry in runs:
        cells = entry.get("cells")
        for key in cells if isinstance(cells, Mapping) else ():
            env, slash, stem = str(key).partition("/")
            if slash:
                found[(env, stem)] = None
    return list(found)


def ordered(preferred: Sequence[str], seen: Sequence[str]) -> list[str]:
    """`seen`, in `preferred`'s order first, then the others in first-seen order."""
    present, first = set(seen), set(preferred)
    return [name for name in preferred if name in present] + [name for name in dict.fromkeys(seen) if name not in first]


def env_colours(envs: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Each env's line colour and dash pattern (solid for the first eight)."""
    return {
        env: (charts.ENV_PALETTE[index % len(charts.ENV_PALETTE)], "" if index < len(charts.ENV_PALETTE) else "5 3")
        for index, env in enumerate(envs)
    }
