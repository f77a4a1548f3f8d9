"""The recommendation's words: the summary lines every renderer prints.

Kept apart from the choosing (matrix/recommend.py): what is recommended is decided there
from the cells; here it is said, with each bisected model's windows, the models no env
runs and why, and the outputs that changed (named "runs, different outputs", never as
running the model).
"""

from __future__ import annotations

from typing import Any

from matrix.envs.plan import variant_words
from matrix.results.aggregate import Matrix

# The recommendation and its options are matrix/recommend.py's classes (Recommendation,
# Option); typed loosely here so the words never import the module that uses them.
Recommendation = Any
Option = Any


def window_lines(bounds: dict[str, dict[str, Any]]) -> list[str]:
    """Each bisected model's windows over the release line: where it works, where each break begins."""
    lines = []
    for model, found in sorted(bounds.items()):
        windows = found.get("windows")
        if not windows:
            error = found.get("first_bad_error") or {}
            why = f" ({error.get('type')} in {error.get('phase')})" if error.get("type") else ""
            exact = "" if found.get("exact", True) else " (approximate: some releases could not be tested)"
            lines.append(
                f"Bisect: {model} works up to {found['last_good']} and breaks in {found['first_bad']}{why}{exact}: "
                f"{found['bound']['range']}, newest good pinned: {found['bound']['pin']}."
            )
            continue
        lines.append(f"Bisect: {model} {describe_windows(windows)}.")
        for variant, shim_windows in sorted((found.get("variants") or {}).items()):
            lines.append(f"- with {variant}: {describe_windows(shim_windows)}")
    return lines


def describe_windows(windows: list[dict[str, Any]]) -> str:
    """ "works 4.40.2-4.41.2 and 4.48.2-4.48.3; breaks in 4.42.0 (ValueError in generate, exact) ..."."""
    works = [_span(w) for w in windows if w.get("outcome") == "pass"]
    breaks = []
    for window in windows:
        if window.get("outcome") == "pass":
            continue
        error = window.get("error") or {}
        why = f"{error.get('type')} in {error.get('phase')}" if error.get("type") else window.get("outcome", "fails")
        known = (window.get("diagnosis") or {}).get("id")
        exact = "exact" if window.get("exact_from") else "approximate"
        breaks.append(f"{window['from']} breaks ({f'{known}: ' if known else ''}{why}, {exact})")
    parts = [f"works {' and '.join(works)}" if works else "works in no probed release"]
    return "; ".join(parts + breaks)


def _span(window: dict[str, Any]) -> str:
    return window["from"] if window["from"] == window["to"] else f"{window['from']}-{window['to']}"


def describe(matrix: Matrix, rec: Recommendation, optional: frozenset[str]) -> list[str]:
    versions = {env.name: env.transformers for env in matrix.envs}
    headers = {env.name: env.header for env in matrix.envs}
    total = len(matrix.models)
    lines = []
    if rec.best is not None:
        if rec.kind == "single" and rec.pinned_release:
            env = rec.best.envs[0]
            lines.append(
                f"Of the run's envs, {env} (transformers {versions[env]}) runs {_served(rec.best, env, total)}."
            )
        elif rec.kind == "single":
            env = rec.best.envs[0]
            lines.append(f"Pin {env} (transformers {versions[env]}): it runs {_served(rec.best, env, total)}.")
        else:
            count = len(rec.best.envs)
            lines.append(
                f"Of the run's envs, none runs every model alone; these {count} together do:"
                if rec.pinned_release
                else f"No single env runs every model; use {count} envs:"
            )
            lines += [
                f"- {env} (transformers {versions[env]}) for {_served(rec.best, env, total)}" for env in rec.best.envs
            ]
    if rec.uncovered:
        lines.append(f"No env runs: {', '.join(rec.uncovered)}.")
        lines += [f"- {model}: {_why_not(matrix, model)}" for model in rec.uncovered]
    if optional:
        lines.append(f"Optional (never force an extra env): {', '.join(sorted(optional))}.")
    lines += _drift_lines(matrix, rec)
    lines.append("Each env alone:")
    for item in rec.per_env:
        covered = len(item["plain"]) + len(item["with_shim"])
        amount = "all" if covered == total else f"{covered}/{total}"
        if item["with_shim"]:
            how = "with " + ", ".join(f"{variant_words(shim)} for {model}" for model, shim in item["shims"].items())
        else:
            how = "without shims"
        line = (
            f"- {headers[item['env']]} covers {amount} models {how}"
            if covered
            else f"- {headers[item['env']]} covers none"
        )
        if item.get("different_outputs"):
            line += f"; runs {', '.join(item['different_outputs'])} with different outputs"
        lines.append(line)
    return lines


def _why_not(matrix: Matrix, model: str) -> str:
    """Each env's verdict on a model no env runs: its diagnosis, else its exception or status."""
    parts = []
    for env in matrix.envs:
        cell = matrix.cell(env.name, model)
        if cell is None:
            continue
        if cell.status.passed and (cell.drift or {}).get("differs"):
            why = f"runs, different outputs (against {(cell.drift or {}).get('reference')})"
        elif cell.diagnosis:
            since = cell.diagnosis.get("introduced_in")
            why = f"{cell.diagnosis['id']} (since {since})" if since else cell.diagnosis["id"]
        elif cell.error and cell.error.get("type"):
            why = f"{cell.status.value}, {cell.error['type']} in {cell.phase}"
        else:
            why = cell.status.value
        parts.append(f"{env.name} {why}")
    return "; ".join(parts)


def _drift_lines(matrix: Matrix, rec: Recommendation) -> list[str]:
    """One line per model whose outputs change between its reference env and a later one
    (those envs run it with different outputs and do not count as running it), and one per
    degenerate generation."""
    lines = []
    versions = {env.name: env.transformers for env in matrix.envs}
    for row in matrix.rows:
        drifts = [(cell.env, cell.drift) for cell in row.cells.values() if cell is not None and cell.drift]
        for env, drift in drifts:
            if drift.get("degenerate"):
                lines.append(f"{row.label} on {env}: {drift['detail']}; not counted as running it.")
        if row.variant:
            continue
        changed = [env for env, drift in drifts if drift["differs"]]
        if changed:
            reference = versions[drifts[0][1]["reference"]]
            where = ", ".join(versions[env] for env in changed)
            envs = ", ".join(changed)
            lines.append(
                f"Outputs of {row.model} change between {reference} and {where}: "
                f"runs, different outputs in {envs}; not counted as running it."
            )
    return lines


def _served(option: Option, env: str, total: int) -> str:
    parts = [c.model + (f" (with shim {c.shim})" if c.shim else "") for c in option.models_of(env)]
    return f"{len(parts)}/{total} models: {', '.join(parts)}"
