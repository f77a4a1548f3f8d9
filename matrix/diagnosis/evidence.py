"""The matrix's own evidence about a failing cell: where the failure begins, and what rescues it.

Two questions every diagnosis needs answered from the cells, not from a table:

- *Where does this failure begin?* The bisect's windows when it ran for this model and
  variant (exact where both sides of an edge were probed), else the run's own envs: the
  newest older env where the row passed, and the oldest env failing with this very
  signature (a model that breaks twice gets each failure its own start).
- *What rescues it here?* The shim variants whose cells passed for this model in this env
  (combinations included); a shim whose cell failed here is never advised, and when every
  shim failed the fix says so. Then the release bounds, then the explaining layer's own
  text, minus any shim the cells contradict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from packaging.version import InvalidVersion, Version

from matrix.envs.plan import variant_words
from matrix.results.aggregate import Matrix
from matrix.signature import failure_signature, normalise
from probes.record import CellResult
from probes.status import Status

_SHIM_ADVICE = re.compile(r"\bshim ([A-Za-z0-9._+-]+)")


@dataclass(frozen=True)
class Bounds:
    """Where one failure begins on the release line.

    `before`: the newest release known not to fail this way (it may fail another way), the
    release whose sources are compared with `first_bad`'s; `last_good`: the newest older
    release where the model ran; `exact`: `before` and `first_bad` are adjacent releases,
    both observed.
    """

    first_bad: str
    before: str | None
    last_good: str | None
    exact: bool
    source: str  # "bisect" or "envs"


def bounds(cell: CellResult, matrix: Matrix, bisect: dict[str, Any] | None) -> Bounds | None:
    """Where `cell`'s failure begins, from the bisect's windows, else from the run's envs."""
    version = _version_of(cell.env, matrix)
    if version is None:
        return None
    windows = _windows(cell, bisect)
    found = _from_windows(cell, version, windows) if windows else None
    if found is not None:
        return found
    found = _from_envs(cell, version, matrix)
    newest_pass = max(
        (Version(w["to"]) for w in windows if w.get("outcome") == "pass" and Version(w["to"]) < version), default=None
    )
    if newest_pass is not None and (found.last_good is None or newest_pass > Version(found.last_good)):
        found = replace(found, last_good=str(newest_pass))  # the bisect saw it run on a newer release
    return found


def variant_windows(report: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """A bisect report's windows per variant ("" for the base row)."""
    return {"": report.get("windows") or [], **(report.get("variants") or {})}


def _windows(cell: CellResult, bisect: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The bisect's windows for this cell's variant (the base row's for the base cell)."""
    if not bisect:
        return []
    return list(((bisect.get("variants") or {}).get(cell.variant) if cell.variant else bisect.get("windows")) or [])


def _from_windows(cell: CellResult, version: Version, windows: list[dict[str, Any]]) -> Bounds | None:
    wanted = failure_signature(cell)
    last_good: str | None = None
    for index, window in enumerate(windows):
        start, end = Version(window["from"]), Version(window["to"])
        if window.get("outcome") == "pass":
            last_good = window["to"]
        if not (start <= version <= end) and not (index == len(windows) - 1 and version > end):
            continue
        if window.get("outcome") == "pass" or not _same_failure(window.get("error") or {}, wanted):
            return None  # the bisect saw something else here: let the envs speak
        before = windows[index - 1]["to"] if index else None
        exact = bool(window.get("exact_from")) and before is not None
        return Bounds(window["from"], before, last_good, exact, "bisect")
    return None


def _same_failure(error: dict[str, Any], wanted: tuple[str, str, str]) -> bool:
    return (error.get("type", ""), error.get("phase", ""), normalise(error.get("message", ""))) == wanted


def _from_envs(cell: CellResult, version: Version, matrix: Matrix) -> Bounds:
    row = matrix.row(cell.model, cell.variant)
    wanted = failure_signature(cell)
    older = []
    for env in matrix.envs:
        other = row.cells.get(env.name)
        if env.version is None or other is None or env.version > version or other.status.says_nothing:
            continue
        same = other.status is Status.FAIL and failure_signature(other) == wanted
        older.append((env.version, other.status.passed, same))
    older.sort()
    last_good = next((str(v) for v, passed, _ in reversed(older) if passed), None)
    first_bad, before = str(version), None
    for v, _, same in reversed(older):  # walk back while the same failure holds
        if not same:
            before = str(v)
            break
        first_bad = str(v)
    return Bounds(first_bad, before, last_good, False, "envs")


def rescuing_shims(cell: CellResult, matrix: Matrix) -> tuple[list[str], list[str]]:
    """(variants whose cells pass for this model in this env, variants whose cells fail there)."""
    passed: list[str] = []
    failed: list[str] = []
    for row in matrix.rows:
        if row.model != cell.model or not row.variant or row.variant == cell.variant:
            continue
        other = row.cells.get(cell.env)
        if other is None or other.status.says_nothing:
            continue
        (passed if other.status.passed else failed).append(row.variant)
    passed.sort(key=lambda v: (v.count("+"), v))
    return passed, failed


def evidence_fixes(cell: CellResult, matrix: Matrix, found: Bounds | None, advice: list[str]) -> list[str]:
    """The fixes the cells support, most direct first, then `advice` the cells do not contradict."""
    release = next((env.transformers for env in matrix.envs if env.name == cell.env), cell.env)
    passed, failed = rescuing_shims(cell, matrix)
    fixes = [f"{_shim_words(v)} (its cell passes on {release})" for v in passed]
    if failed and not passed:
        fixes.append(f"no shim rescues it on {release} (tried: {', '.join(failed)})")
    if found is not None and found.last_good:
        newest = "the newest release that runs it" if found.exact else "the newest release seen running it"
        shimmed = f" with {_shim_words(cell.variant)}" if cell.variant else ""
        fixes.append(f"pin transformers=={found.last_good}{shimmed} ({newest})")
    for line in advice:
        named = _SHIM_ADVICE.search(line)
        if named and (named.group(1) not in passed or line == f"shim {named.group(1)}"):
            continue  # a shim the cells show failing (or never tried) here, or one already named above
        if line.startswith("pin transformers") and found is not None and found.last_good and fixes:
            continue  # the evidence's own pin says it with a release the cells saw passing
        if line not in fixes:
            fixes.append(line)
    return fixes


def _shim_words(variant: str) -> str:
    return variant_words(variant) + (" together" if "+" in variant else "")


def _version_of(env: str, matrix: Matrix) -> Version | None:
    column = next((e for e in matrix.envs if e.name == env), None)
    if column is None:
        return None
    try:
        return Version(column.transformers)
    except InvalidVersion:
        return None
