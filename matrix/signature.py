"""A failure's signature: what stays the same when the same break happens again.

Phase, exception type and the message with what varies between occurrences (paths,
addresses, numbers, hashes) removed. Two cells with one signature failed the same way:
the report shows each unexplained kind of failure once, and the bisect uses signatures to
tell one break from the next.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from probes.record import CellResult
from probes.status import Status

_NORMALISERS = (
    (re.compile(r"0x[0-9a-fA-F]+"), "<addr>"),
    (re.compile(r"(?:[A-Za-z]:)?(?:[\\/][\w.\-+@]+){2,}[\\/]?"), "<path>"),
    (re.compile(r"\b[0-9a-f]{7,64}\b"), "<hash>"),
    (re.compile(r"\d+(?:\.\d+)*"), "N"),
    (re.compile(r"\s+"), " "),
)


def normalise(message: str) -> str:
    """The message's first line with what varies between occurrences removed."""
    first = next((line for line in message.splitlines() if line.strip()), "")
    for pattern, replacement in _NORMALISERS:
        first = pattern.sub(replacement, first)
    return first.strip()[:300]


def failure_signature(cell: CellResult) -> tuple[str, str, str]:
    """(exception type, phase, normalised message) of a failing cell."""
    error = cell.error or {}
    return error.get("type", ""), cell.phase or "", normalise(error.get("message", cell.reason))


@dataclass
class UnknownGroup:
    """Failures no layer explains, sharing one signature."""

    signature: str
    exception: str
    phase: str
    example: str
    cells: list[tuple[str, str]] = field(default_factory=list)  # (env, cell stem)

    def to_dict(self) -> dict[str, Any]:
        return {
            "signature": self.signature,
            "exception": self.exception,
            "phase": self.phase,
            "example": self.example,
            "cells": [{"env": env, "cell": stem} for env, stem in self.cells],
        }


def group_unknown(cells: list[CellResult]) -> list[UnknownGroup]:
    """Group failing cells without a diagnosis by their signature."""
    groups: dict[tuple[str, str, str], UnknownGroup] = {}
    for cell in cells:
        if cell.status is not Status.FAIL or cell.diagnosis:
            continue
        key = failure_signature(cell)
        example = (cell.error or {}).get("message", cell.reason)[:300]
        group = groups.setdefault(key, UnknownGroup(key[2], key[0], key[1], example))
        group.cells.append((cell.env, cell.stem))
    return list(groups.values())
