"""The known-break table, read and checked: breaks a person has understood and written down.

The table is data (`diagnosis/known_breaks.toml`, and a team's own, `[settings]
known_breaks`): each entry matches a failure by exception type, phase, a message pattern and
optionally a traceback pattern (a team's table can also name the models an entry is about),
and gives a plain cause, the release that introduced it and the fixes. Only the reading is
here, at the bottom, so the config can check a team's table when it loads; the diagnosis
an entry makes is `matrix.diagnosis.table`'s.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version

from probes.record import CellResult

KNOWN_BREAKS = Path(__file__).parent / "diagnosis" / "known_breaks.toml"
_ENTRY_KEYS = {"id", "introduced_in", "cause", "fixes", "exception", "phase", "model", "message", "traceback"}
_LIST_KEYS = ("fixes", "exception", "phase", "model")


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
    models: tuple[str, ...] = ()

    def matches(self, cell: CellResult) -> bool:
        error = cell.error or {}
        if self.models and cell.model not in self.models:
            return False
        if self.exceptions and error.get("type") not in self.exceptions:
            return False
        if self.phases and cell.phase not in self.phases:
            return False
        if self.traceback and not self.traceback.search(error.get("traceback", "")):
            return False
        return bool(self.message.search(error.get("message", "")))


def load_known_breaks(path: Path = KNOWN_BREAKS) -> list[KnownBreak]:
    """Read and check the table; a mistake names the file, the entry and the key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path.name}: not valid TOML: {error}") from None
    found = data.get("break", [])
    if not isinstance(found, list) or not all(isinstance(raw, dict) for raw in found):
        raise ValueError(f"{path.name}: each entry is a [[break]] table (two brackets: a list of tables)")
    entries = []
    for index, raw in enumerate(found, start=1):
        where = f"{path.name}: break #{index} ({raw.get('id', '?')})"
        unknown = set(raw) - _ENTRY_KEYS
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
        for key in ("id", "introduced_in", "cause", "message"):
            if key not in raw:
                raise ValueError(f"{where}: `{key}` is missing")
            if not isinstance(raw[key], str):
                raise ValueError(f"{where}: `{key}` must be a string")
        if not isinstance(raw.get("traceback", ""), str):
            raise ValueError(f"{where}: `traceback` must be a string (a regular expression)")
        for key in _LIST_KEYS:
            value = raw.get(key, [])
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                raise ValueError(f'{where}: `{key}` must be a list of strings, such as {key} = ["..."]')
        try:
            Version(raw["introduced_in"])
        except InvalidVersion:
            problem = f"`introduced_in` {raw['introduced_in']!r} is not a version such as '4.45.0'"
            raise ValueError(f"{where}: {problem}") from None
        for key in ("message", "traceback"):
            try:
                re.compile(raw.get(key, ""))
            except re.error as exc:
                raise ValueError(f"{where}: `{key}` is not a regular expression: {exc}") from None
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
                models=tuple(raw.get("model", [])),
            )
        )
    return entries
