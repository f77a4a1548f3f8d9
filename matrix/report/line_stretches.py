"""The release line as stretches: for each model row, runs of releases the evidence says the same of.

A team wants to see *where along the releases* each model works, not only in the run's few
envs. The bisect reports (`rec.bounds`: windows per model and shim variant) say it for the
releases they probed and the windows between; the run's cells and the release search's own
probes add points; between two points that agree, a release is assumed, and where they
disagree and nothing was probed it is unknown. Consecutive releases with the same verdict
(works, works with a shim, breaks with one diagnosis, assumed, unknown) form one stretch; the
edge where a stretch begins is exact when both releases beside it were probed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from packaging.version import InvalidVersion, Version

from matrix.recommend import Recommendation
from matrix.report.text import one_line
from matrix.results.aggregate import Matrix, Row

WORKS, SHIM, BREAKS, ASSUMED, UNKNOWN = "works", "works-with-shim", "breaks", "assumed", "unknown"
KIND_WORDS = {
    WORKS: "works",
    SHIM: "works with shim",
    BREAKS: "breaks",
    ASSUMED: "assumed (not probed; the releases on both sides agree)",
    UNKNOWN: "not probed / unknown",
}


@dataclass(frozen=True)
class Stretch:
    """Releases `first`..`last` (inclusive, `count` of them on the axis) with one verdict."""

    first: str
    last: str
    count: int
    kind: str
    diagnosis: str = ""  # the break's diagnosis id, when one explains it
    error: str = ""  # "ValueError in generate: too many values to unpack"
    fix: str = ""
    exact_start: bool | None = None  # the edge where it begins: exact, approximate, or no edge (the first)
    source: str = ""  # "bisect", "cell", "search" or "" (assumed / unknown)

    @property
    def assumed(self) -> bool:
        """A break no probe of these releases saw: its neighbours on both sides fail alike."""
        return self.kind == BREAKS and not self.source

    @property
    def window(self) -> str:
        return self.first if self.first == self.last else f"{self.first}–{self.last}"

    def about(self, label: str) -> str:
        """The tooltip: window, verdict, error, fix, and how sure the edge is."""
        what = KIND_WORDS[self.kind] + (f" with {self.diagnosis}" if self.diagnosis else "")
        what += " (assumed: not probed, the releases on both sides break alike)" if self.assumed else ""
        plural = "" if self.count == 1 else "s"
        parts = [f"{label}: {self.window} ({self.count} release{plural}): {what}"]
        parts += [self.error] if self.error else []
        parts += [f"fix: {self.fix}"] if self.fix else []
        if self.exact_start is not None:
            parts.append(f"edge at {self.first} {'exact' if self.exact_start else 'approximate'}")
        return "; ".join(parts)


@dataclass(frozen=True)
class LineRow:
    label: str
    model: str
    variant: str
    stretches: tuple[Stretch, ...]


def axis(matrix: Matrix, rec: Recommendation) -> list[str]:
    """The releases from the oldest env to the newest: the release search's line when it made one
    (with the envs' own versions, pre-releases too, put in place), else every release the evidence names."""
    envs = [env.version for env in matrix.envs if env.built and env.version is not None]
    named: set[str] = {str(version) for version in envs}
    named |= set((rec.newest or {}).get("line") or [])
    if not (rec.newest or {}).get("line"):
        for found in rec.bounds.values():
            for windows in _variant_windows(found).values():
                named |= {str(w[end]) for w in windows for end in ("from", "to") if w.get(end)}
    releases = sorted((v for v in map(_version, named) if v is not None), key=lambda v: v)
    if envs:
        releases = [v for v in releases if min(envs) <= v <= max(envs)]
    return [str(v) for v in releases]


def line_rows(matrix: Matrix, rec: Recommendation, releases: list[str]) -> list[LineRow]:
    """One row per model and shim variant, in the matrix's order."""
    searched = (rec.newest or {}).get("tracks") or {}
    return [
        LineRow(row.label, row.model, row.variant, tuple(_stretches(row, matrix, rec, searched, releases)))
        for row in matrix.rows
    ]


def _stretches(row: Row, matrix: Matrix, rec: Recommendation, searched: dict[str, Any], releases: list[str]):
    track = (searched.get(row.model) or {}).get(row.variant) or {}
    windows = _variant_windows(rec.bounds.get(row.model) or {}).get(row.variant) or list(track.get("windows") or [])
    points = _points(row, matrix, searched)
    anchors = set(points) | {str(w[end]) for w in windows for end in ("from", "to")}
    verdicts = [_verdict(release, windows, points, anchors) for release in releases]
    out: list[Stretch] = []
    start = 0
    for index in range(1, len(releases) + 1):
        if index < len(releases) and _key(verdicts[index]) == _key(verdicts[start]):
            continue
        kind, diagnosis, error, fix, source = verdicts[start]
        if kind == WORKS and row.variant:
            kind = SHIM
        exact = None if start == 0 else _edge_exact(releases[start - 1], releases[start], windows, anchors, kind)
        if out and out[-1].kind == UNKNOWN:
            exact = False  # the change lies somewhere in the unknown stretch before
        if out and _runs(out[-1].kind) and _runs(kind):
            exact = None  # probed and assumed alike: the outcome does not change here, so no edge
        out.append(
            Stretch(releases[start], releases[index - 1], index - start, kind, diagnosis, error, fix, exact, source)
        )
        start = index
    return out


def _runs(kind: str) -> bool:
    return kind in (WORKS, SHIM, ASSUMED)


def _key(verdict: tuple[str, str, str, str, str]) -> tuple[str, str]:
    kind, diagnosis, error, _, _ = verdict
    return kind, diagnosis or (error.partition(":")[0] if kind == BREAKS else "")


def _verdict(release: str, windows: list[dict[str, Any]], points: dict[str, tuple], anchors: set[str]):
    """(kind, diagnosis id, error, fix, source) for one release: its window, else its point,
    else its nearest probed neighbours when they agree."""
    at = _version(release)
    if at is not None and at.is_prerelease and release in points:
        return points[release]  # the bisect's windows span final releases only: the env's own cell decides
    for window in windows:
        low, high = _version(window.get("from")), _version(window.get("to"))
        if at is not None and low is not None and high is not None and low <= at <= high:
            return _from_window(window)
    if release in points:
        return points[release]
    known = sorted(((v, r) for r in anchors if (v := _version(r)) is not None and at is not None), key=lambda p: p[0])
    below = next((_verdict(r, windows, points, set()) for v, r in reversed(known) if at is not None and v < at), None)
    above = next((_verdict(r, windows, points, set()) for v, r in known if at is not None and v > at), None)
    if below and above and below[0] == above[0] and below[0] in (WORKS, BREAKS):
        if below[0] == WORKS:
            return ASSUMED, "", "", "", ""
        if _key(below) == _key(above):
            return BREAKS, below[1], below[2], below[3], ""
    return UNKNOWN, "", "", "", ""


def _from_window(window: dict[str, Any]) -> tuple[str, str, str, str, str]:
    if window.get("outcome") == "pass":
        return WORKS, "", "", "", "bisect"
    if window.get("outcome") != "fail":
        return UNKNOWN, "", f"probed, no verdict: {window.get('outcome')}", "", "bisect"
    diagnosis = window.get("diagnosis") or {}
    fixes = "; ".join(diagnosis.get("fixes") or [])
    return BREAKS, str(diagnosis.get("id") or ""), _error_text(window.get("error") or {}), fixes, "bisect"


def _points(row: Row, matrix: Matrix, searched: dict[str, Any]) -> dict[str, tuple[str, str, str, str, str]]:
    """The run's cells of this row (by the env's version), then the release search's probes."""
    found: dict[str, tuple[str, str, str, str, str]] = {}
    track = (searched.get(row.model) or {}).get(row.variant) or {}
    for release, point in (track.get("points") or {}).items():
        outcome = point.get("outcome") if isinstance(point, dict) else None
        if outcome is None:
            continue
        kind = WORKS if outcome == "pass" else BREAKS
        found[str(release)] = (kind, "", "" if kind == WORKS else _error_text(point.get("error") or {}), "", "search")
    for env in matrix.envs:
        cell = row.cells.get(env.name)
        if cell is None or env.version is None or cell.status.says_nothing:
            continue
        if cell.status.passed:
            found[str(env.version)] = (WORKS, "", "", "", "cell")
            continue
        diagnosis = cell.diagnosis or {}
        error = _error_text({**(cell.error or {}), "phase": cell.phase}) if cell.error else one_line(cell.reason, 160)
        fixes = "; ".join(diagnosis.get("fixes") or [])
        found[str(env.version)] = (BREAKS, str(diagnosis.get("id") or ""), error, fixes, "cell")
    return found


def _edge_exact(before: str, start: str, windows: list[dict[str, Any]], anchors: set[str], kind: str) -> bool:
    """A bisect window's own flag where the stretch begins at a window; else both sides probed."""
    if kind == UNKNOWN:
        return False
    for window in windows:
        if window.get("from") == start and "exact_from" in window:
            return bool(window["exact_from"])
    for window in windows:
        if window.get("to") == before and "exact_to" in window:
            return bool(window["exact_to"])
    return before in anchors and start in anchors


def _error_text(error: dict[str, Any]) -> str:
    if not error.get("type"):
        return ""
    where = f" in {error['phase']}" if error.get("phase") else ""
    message = one_line(str(error.get("message") or ""), 160)
    return f"{error['type']}{where}" + (f": {message}" if message else "")


def _variant_windows(report: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """A bisect report's windows per variant ("" for the base row)."""
    return {"": list(report.get("windows") or []), **(report.get("variants") or {})}


def _version(text: Any) -> Version | None:
    try:
        return Version(str(text))
    except InvalidVersion:
        return None
