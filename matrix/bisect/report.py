"""A finished search as the report's JSON: windows, breaks, and the first break's old fields.

Each outcome is shown with the evidence behind it (the status and error of a release that
has it: a probe's, or the run's own cell for a release the run had), so a window says
"fails in generate with ValueError ..." and not just a signature.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from packaging.version import Version

from matrix.first_bad import PASS, Search

Details = Callable[[str], dict[str, Any]]  # release -> {"status", "error"} of what it said


def windows_json(search: Search, details: Details) -> list[dict[str, Any]]:
    """[{from, to, outcome, signature, error, exact_from, exact_to, unresolved_before}, ...]."""
    found = []
    for window in search.windows():
        entry: dict[str, Any] = {"from": window.first, "to": window.last, "outcome": "pass"}
        if window.outcome != PASS:
            said = details(window.first)
            entry.update(outcome=said.get("status") or "fail", signature=window.outcome, error=said.get("error"))
        entry.update(exact_from=window.exact_from, exact_to=window.exact_to)
        entry["unresolved_before"] = list(window.unresolved_before)
        found.append(entry)
    return found


def breaks_json(search: Search, details: Details) -> list[dict[str, Any]]:
    """Each transition into a failure: [{last_good, first_bad, before, signature, error, exact, unresolved}]."""
    return [
        {
            "last_good": found.last,  # the last release with the outcome before (a pass, or another failure)
            "first_bad": found.first,
            "before": found.before,
            "signature": found.after,
            "error": details(found.first).get("error"),
            "exact": found.exact,
            "unresolved": list(found.unresolved),
        }
        for found in search.breaks()
    ]


def first_break(breaks: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first break after the good end (the old report's single answer)."""
    return next((b for b in breaks if b["before"] == PASS), None)


def suggested_bound(good_floor: str, last_good: str, first_bad: str) -> dict[str, str]:
    """`transformers>=<floor major.minor>,<<first bad>` and the exact pin of the newest good."""
    floor, bad = Version(good_floor), Version(first_bad)
    upper = f"{bad.major}.{bad.minor}" if not any(bad.release[2:]) else str(bad)
    return {"range": f"transformers>={floor.major}.{floor.minor},<{upper}", "pin": f"transformers=={last_good}"}


def summary_lines(name: str, windows: list[dict[str, Any]]) -> list[str]:
    """'works 4.40.2-4.41.2; 4.42.0-4.43.4 fails with ValueError in generate: ...'."""
    parts = []
    for window in windows:
        span = window["from"] if window["from"] == window["to"] else f"{window['from']}-{window['to']}"
        if window["outcome"] == PASS:
            parts.append(f"works {span}")
            continue
        error = window.get("error") or {}
        what = (
            f"{error.get('type')} in {error.get('phase')}: {error.get('message', '')}" if error else window["signature"]
        )
        verb = "fails" if window["outcome"] == "fail" else f"ends in {window['outcome']}"
        parts.append(f"{span} {verb} with {' '.join(what.split())[:160]}")
    return [f"[bisect {name}] {part}" for part in parts]
