"""Say why a cell failed: match it against the known-break table, group the rest.

The table is data (`known_breaks.toml` beside this file): each entry matches a failure by
exception type, phase, a message pattern and optionally a traceback pattern, and gives a
plain cause, the release that introduced it and the fixes. Failures no entry matches are
grouped by a normalised message (paths, addresses, numbers, hashes removed), so one new
kind of break shows once, with the envs and models it hits.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from probes.record import CellResult
from probes.status import Status

KNOWN_BREAKS = Path(__file__).with_name("known_breaks.toml")
_ENTRY_KEYS = {"id", "introduced_in", "cause", "fixes", "exception", "phase", "message", "traceback"}


@dataclass(frozen=True)
class KnownBreak:
    """One row of the known-break table."""

    id: str
    introduced_in: str
    cause: str
    fixes: tuple[str, ...]
    message: re.Pattern[str]
    exceptions: tuple[str, ...] = ()
    phases: tuple[str, ...] = ()
    traceback: re.Pattern[str] | None = None

    def matches(self, cell: CellResult) -> bool:
        error = cell.error or {}
        if self.exceptions and error.get("type") not in self.exceptions:
            return False
        if self.phases and cell.phase not in self.phases:
            return False
        if self.traceback and not self.traceback.search(error.get("traceback", "")):
            return False
        return bool(self.message.search(error.get("message", "")))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "introduced_in": self.introduced_in, "cause": self.cause, "fixes": list(self.fixes)}


@dataclass
class UnknownGroup:
    """Failures no table entry explains, sharing one normalised message."""

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


def load_known_breaks(path: Path = KNOWN_BREAKS) -> list[KnownBreak]:
    """Read and check the table; a mistake names the entry and key."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    entries = []
    for index, raw in enumerate(data.get("break", []), start=1):
        where = f"{path.name}: break #{index} ({raw.get('id', '?')})"
        unknown = set(raw) - _ENTRY_KEYS
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
        for key in ("id", "introduced_in", "cause", "message"):
            if not isinstance(raw.get(key), str):
                raise ValueError(f"{where}: `{key}` must be a string")
        try:
            Version(raw["introduced_in"])
            entries.append(
                KnownBreak(
                    id=raw["id"],
                    introduced_in=raw["introduced_in"],
                    cause=raw["cause"],
                    fixes=tuple(raw.get("fixes", [])),
                    message=re.compile(raw["message"]),
                    exceptions=tuple(raw.get("exception", [])),
                    phases=tuple(raw.get("phase", [])),
                    traceback=re.compile(raw["traceback"]) if raw.get("traceback") else None,
                )
            )
        except (re.error, InvalidVersion) as exc:
            raise ValueError(f"{where}: {exc}") from None
    return entries


def diagnose(cell: CellResult, table: list[KnownBreak]) -> KnownBreak | None:
    """The first table entry that explains this failing cell, if any."""
    if cell.status is not Status.FAIL or not cell.error:
        return None
    return next((entry for entry in table if entry.matches(cell)), None)


_NORMALISERS = (
    (re.compile(r"0x[0-9a-fA-F]+"), "<addr>"),
    (re.compile(r"(?:[A-Za-z]:)?(?:[\\/][\w.\-+@]+){2,}[\\/]?"), "<path>"),
    (re.compile(r"\b[0-9a-f]{7,64}\b"), "<hash>"),
    (re.compile(r"\d+(?:\.\d+)*"), "N"),
    (re.compile(r"\s+"), " "),
)


def normalise(message: str) -> str:
    """The message with what varies between occurrences (paths, addresses, numbers) removed."""
    first = next((line for line in message.splitlines() if line.strip()), "")
    for pattern, replacement in _NORMALISERS:
        first = pattern.sub(replacement, first)
    return first.strip()[:300]


def group_unknown(cells: list[CellResult]) -> list[UnknownGroup]:
    """Group failing cells without a diagnosis by exception, phase and normalised message."""
    groups: dict[tuple[str, str, str], UnknownGroup] = {}
    for cell in cells:
        if cell.status is not Status.FAIL or cell.diagnosis:
            continue
        error = cell.error or {}
        key = (error.get("type", ""), cell.phase or "", normalise(error.get("message", cell.reason)))
        group = groups.setdefault(key, UnknownGroup(key[2], key[0], key[1], error.get("message", cell.reason)[:300]))
        group.cells.append((cell.env, cell.stem))
    return list(groups.values())


def classify(cells: list[CellResult], table: list[KnownBreak]) -> list[UnknownGroup]:
    """Attach a diagnosis to every failing cell the table explains; group the others."""
    for cell in cells:
        entry = diagnose(cell, table)
        cell.diagnosis = entry.to_dict() if entry else None
    return group_unknown(cells)
