"""Each model's track over the release line searched for the newest pin: what the run's cells
and the bisect's windows say, judged as the recommendation judges (a cell that runs with
outputs other than the model's reference is "outputs differ": it runs, but never as the pin).
"""

from __future__ import annotations

from typing import Any

from packaging.version import Version

from matrix.bisect.outcome import error_of, outcome_of, outputs_outcome
from matrix.newest import search as newest
from matrix.releases import is_final
from matrix.results.aggregate import Matrix, serves
from probes.record import CellResult


def search_line(matrix: Matrix, releases: list[Version]) -> list[str]:
    """Final releases from the run's oldest to its newest built env (and the envs' own versions;
    an env on a pre-release or a local build is not on the line: it is what is not released)."""
    versions = [env.version for env in matrix.envs if env.built and env.version is not None and is_final(env.version)]
    if not versions:
        return []
    low, high = min(versions), max(versions)
    return [str(v) for v in sorted({*(r for r in releases if low <= r <= high), *versions})]


def tracks_of(
    matrix: Matrix, bisects: dict[str, dict[str, Any]], settings: dict[str, Any], models: list[str]
) -> newest.Tracks:
    """Each model's and variant's track: the bisect's windows, and the run's cells as points.

    A cell serves its model by the recommendation's rule (`serves`: budgets when required,
    no degenerate output, no drift when it blocks); one that passes but does not serve is a
    failure here too. A cell that says nothing is no point.
    """
    require_budgets, drift_blocks = bool(settings.get("require_budgets")), bool(settings.get("drift_blocks"))
    tracks: newest.Tracks = {}
    for row in matrix.rows:
        if row.model not in models:
            continue
        report = bisects.get(row.model) or {}
        windows = report.get("windows") if not row.variant else (report.get("variants") or {}).get(row.variant)
        track = newest.Track(windows=list(windows or []))
        for env in matrix.envs:
            cell = row.cells.get(env.name)
            if cell is None or env.version is None or not is_final(env.version) or cell.status.says_nothing:
                continue
            outcome = outcome_of(cell)
            if cell.status.passed and not serves(cell, require_budgets, drift_blocks):
                outcome = f"{cell.phase or '-'} judged: {_why_not_serving(cell)}"
            elif cell.status.passed and (cell.drift or {}).get("differs"):  # runs, other outputs: never the pin
                outcome = outputs_outcome(str((cell.drift or {}).get("detail"))) or outcome
            track.points[str(env.version)] = {
                "outcome": outcome,
                "error": error_of(cell),
                "source": "cell",
                "env": env.name,
            }
        tracks.setdefault(row.model, {})[row.variant] = track
    return tracks


def _why_not_serving(cell: CellResult) -> str:
    drift = cell.drift or {}
    if drift.get("degenerate") or drift.get("differs"):
        return str(drift.get("detail"))
    return "over budget: " + ", ".join(str(item.get("budget")) for item in cell.over_budget)


def passes_everywhere(track: newest.Track | None) -> bool:
    """Passes in every env that said something: the model the bisect never looks at."""
    outcomes = [point.get("outcome") for point in (track.points.values() if track else [])]
    return bool(outcomes) and all(outcome == newest.PASS for outcome in outcomes if outcome is not None)
