"""A probed cell as the window search sees it: an outcome (PASS, a failure's signature, or
"outputs differ"), and the error the report shows. Pure functions of a cell (and the
model's reference cell), shared by the prober and the batch runner."""

from __future__ import annotations

from typing import Any

from matrix.first_bad import OUTPUTS_DIFFER, PASS, Outcome
from matrix.judge.drift import SAME, difference
from matrix.signature import failure_signature
from probes.record import CellResult
from probes.status import Status


def outcome_of(cell: CellResult) -> Outcome:
    """PASS, the failure's signature (phase, exception type, normalised message), or None."""
    if cell.status.says_nothing:
        return None
    if cell.status.passed:
        return PASS
    kind, phase, message = failure_signature(cell)
    what = kind if cell.status is Status.FAIL else f"{cell.status.value} {kind}".strip()
    return f"{phase or '-'} {what or '-'}: {message}"


def judged_outcome(cell: CellResult, reference: CellResult | None, settings: dict[str, Any]) -> Outcome:
    """`outcome_of`, except that a passing cell whose outputs differ from the reference's is
    "outputs differ: <which outputs>" (without the counts, so one change is one outcome)."""
    outcome = outcome_of(cell)
    if outcome != PASS or reference is None or cell is reference:
        return outcome
    return outputs_outcome(difference(reference, cell, settings)) or outcome


def outputs_outcome(diff: str | None) -> Outcome:
    """The outcome a difference in outputs stands for (None: the same, or nothing to compare)."""
    if diff in (None, SAME):
        return None
    what = str(diff).split(" differ")[0]
    return f"{OUTPUTS_DIFFER}: {what}"


# The end of a failure's traceback kept with it: the innermost frames, where the model's
# code meets transformers (what the diagnosis of a break no cell of the run saw reads).
TRACEBACK_TAIL = 4000


def error_of(cell: CellResult) -> dict[str, Any] | None:
    """The failure as the report shows it: phase, exception type, message, traceback's end."""
    if cell.status.passed or cell.status.says_nothing:
        return None
    error = cell.error or {}
    return {
        "phase": cell.phase,
        "type": error.get("type") or cell.status.value,
        "message": error.get("message", cell.reason)[:2000],
        "traceback": str(error.get("traceback") or "")[-TRACEBACK_TAIL:],
    }
