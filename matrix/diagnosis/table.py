"""The curated layer: breaks a person has understood and written down.

The table is data (`known_breaks.toml` beside this file, read and checked by
`matrix.known_breaks`): each entry matches a failure by exception type, phase, a message
pattern and optionally a traceback pattern (a team's own table, `[settings] known_breaks`,
can also name the models an entry is about), and gives a plain cause, the release that
introduced it and the fixes. It is consulted first because
its cause text is written by someone who understood the break; everything it does not
know is left to the layers that read the evidence (symbol history, the traceback).
"""

from __future__ import annotations

from matrix.diagnosis.finding import Diagnosis
from matrix.known_breaks import KnownBreak
from probes.record import CellResult


def from_table(cell: CellResult, table: list[KnownBreak]) -> Diagnosis | None:
    """The first table entry that explains this failing cell, if any."""
    entry = next((entry for entry in table if entry.matches(cell)), None)
    return _diagnosis(entry) if entry else None


def _diagnosis(entry: KnownBreak) -> Diagnosis:
    return Diagnosis(
        source="table",
        id=entry.id,
        cause=entry.cause,
        confidence="high",
        introduced_in=entry.introduced_in,
        fixes=list(entry.fixes),
    )
