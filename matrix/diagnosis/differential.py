"""Differential evidence: what changed for the model's code between the last good and the first bad release.

For a break that names no symbol (a behaviour change the model's own code trips over, or
outputs that change with no exception), the two releases of an exact window are probed
again with the recorder on (probes/recorder.py) and their records are diffed here, in the
order the issue of breaks without a symbol set out:

1. what transformers handed the model's code: per function of the model's module, the
   arguments of its first call (type, None-ness, length or shape, a Cache's class and
   length);
2. the config as the model's code read it: attributes whose value (or presence) differs;
3. the loaded state: tensors that stopped matching the checkpoint, buffers that are not
   what `__init__` computes, tensors that turned non-finite or all-zero.

The cause is the first difference that reaches the failing line (its name is on the line
the traceback ends on in the model's code) or, for a changed output, the first change in
the loaded state; a difference on the traceback's functions that is not on the line is
named with less confidence. Pure: everything is read from the two records.

A bisect window carries the records as `recorded = {"last_good": {"release": ...,
"recorder": {...}, "status": ...}, "first_bad": {...}}` (each cell's `recorder` facts, asked
with the cell spec key `record`, and its status); `from_window` reads that shape, and only
when the last good side ran: a release that broke another way is no baseline.
"""

from __future__ import annotations

import json
import re
from typing import Any

from matrix.diagnosis import describe
from matrix.diagnosis.finding import Diagnosis
from probes.record import CellResult

_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<function>\S+)\n(?P<text>[^\n]*)')


def side_of(cell: CellResult, release: str) -> dict[str, Any]:
    """One side of a window's `recorded`, from a cell probed with the recorder on."""
    return {"release": release, "status": cell.status.value, "recorder": (cell.facts or {}).get("recorder")}


def from_window(window: dict[str, Any], error: dict[str, Any] | None, before: str | None = None) -> Diagnosis | None:
    """The differential diagnosis of a bisect window that carries both recorder records.

    `before`: the release just before the window; a record of an older last good release
    (the model's reference, past a window that broke another way) still compares what
    changed, but the edge is not exact and no change on it is sure."""
    recorded = window.get("recorded") or {}
    good, bad = recorded.get("last_good") or {}, recorded.get("first_bad") or {}
    if not (good.get("recorder") and bad.get("recorder")):
        return None
    if good.get("status", "pass") not in ("pass", "pass-with-shim"):
        return None  # the release before broke another way: its record is no baseline
    exact = before is None or str(good["release"]) == before
    return diagnose(good["recorder"], bad["recorder"], str(good["release"]), str(bad["release"]), error, exact)


def diagnose(
    good: dict[str, Any],
    bad: dict[str, Any],
    last_good: str,
    first_bad: str,
    error: dict[str, Any] | None,
    exact: bool = True,
) -> Diagnosis | None:
    """The first difference between the two records that explains the failure (`error`:
    type, message, traceback of the first bad release) or, without an error or with
    non-finite outputs, the changed output."""
    frames = _model_frames((error or {}).get("traceback", ""), bad)
    line = frames[-1] if frames else None
    changes = call_changes(good, bad) + config_changes(good, bad) + state_changes(good, bad)
    if not changes:
        return None
    numeric = not error or error.get("type") == "NonFiniteOutputs"
    chosen, confidence = _choose(changes, line, frames, numeric)
    if chosen is None:
        return None
    if not exact and confidence == "high":
        confidence = "medium"  # releases between the two were not compared
    evidence = [describe.evidence_line(chosen, last_good, first_bad)]
    if chosen["kind"] == "tensor":
        alike = [c["name"] for c in changes if c["kind"] == "tensor" and c["flag"] == chosen["flag"]]
        total = len((bad.get("state") or {}).get("tensors") or {})
        if len(alike) > 1:
            evidence.append(f"{len(alike)} of {total} loaded tensors the same way: {', '.join(alike[:8])}")
    if line is not None:
        evidence.append(f"failing line: {line['file']}:{line['line']} in {line['function']}: {line['text']}")
    others = [
        c for c in changes if c is not chosen and not (c["kind"] == "tensor" and c.get("flag") == chosen.get("flag"))
    ]
    others = others[:4]
    evidence += [f"also changed: {describe.evidence_line(change, last_good, first_bad)}" for change in others]
    return Diagnosis(
        source="differential",
        id=describe.short_id(chosen),
        cause=describe.cause(chosen, last_good, first_bad),
        confidence=confidence,
        introduced_in=first_bad,
        last_good=last_good,
        exact=exact,
        symbol=chosen["symbol"],
        evidence=evidence,
        fixes=describe.fixes(chosen, last_good, first_bad),
    )


def call_changes(good: dict[str, Any], bad: dict[str, Any]) -> list[dict[str, Any]]:
    """Arguments of the first call of each model function that differ between the records,
    in the order the bad release called the functions."""
    before = {(call["file"], call["function"]): call for call in good.get("calls") or []}
    found = []
    for call in bad.get("calls") or []:
        old = before.get((call["file"], call["function"]))
        if old is None or not old.get("first") or not call.get("first"):
            continue
        was, now = old["first"][0], call["first"][0]
        for name in [key for key in now if key in was] + [key for key in now if key not in was]:
            if name in was and _same(was[name], now[name]):
                continue
            if name not in was and not _meaningful(now[name]):
                continue  # a keyword a new release adds, with nothing in it
            found.append(
                {
                    "kind": "argument",
                    "function": call["function"],
                    "file": call["file"],
                    "phase": call.get("phase", ""),
                    "name": name.lstrip("*"),
                    "was": was.get(name, describe.ABSENT),
                    "now": now[name],
                    "symbol": f"{call['function']}({name.lstrip('*')})",
                }
            )
    return found


def config_changes(good: dict[str, Any], bad: dict[str, Any]) -> list[dict[str, Any]]:
    """Config attributes the model's code read whose first value differs (or that one
    release had and the other lacked)."""
    before = {(read["file"], read["attribute"]): read for read in good.get("config_reads") or []}
    found = []
    for read in bad.get("config_reads") or []:
        old = before.get((read["file"], read["attribute"]))
        was = old["values"][0] if old and old.get("values") else describe.NOT_READ
        now = read["values"][0] if read.get("values") else None
        if old is not None and _same(was, now):
            continue
        found.append(
            {
                "kind": "config",
                "file": read["file"],
                "name": read["attribute"],
                "was": was,
                "now": now,
                "symbol": f"config.{read['attribute']}",
            }
        )
    return found


def state_changes(good: dict[str, Any], bad: dict[str, Any]) -> list[dict[str, Any]]:
    """Loaded tensors that became wrong: not what __init__ computes (buffers), no longer
    the checkpoint's, non-finite or all-zero where the last good release had them right."""
    before = (good.get("state") or {}).get("tensors") or {}
    found = []
    for name, now in ((bad.get("state") or {}).get("tensors") or {}).items():
        was = before.get(name)
        if was is None:
            continue
        for flag, wrong in (
            ("matches_init", False),
            ("matches_checkpoint", False),
            ("nonfinite", None),
            ("all_zero", True),
        ):
            bad_now = (now.get(flag) or 0) > 0 if wrong is None else now.get(flag) is wrong
            bad_then = (was.get(flag) or 0) > 0 if wrong is None else was.get(flag) is wrong
            if bad_now and not bad_then:
                found.append({"kind": "tensor", "flag": flag, "name": name, "was": was, "now": now, "symbol": name})
                break
    # buffers first (a computed value the load skipped), then parameters, in model order
    return sorted(found, key=lambda change: change["now"].get("kind") != "buffer")


def _choose(
    changes: list[dict[str, Any]], line: dict[str, str] | None, frames: list[dict[str, str]], numeric: bool
) -> tuple[dict[str, Any] | None, str]:
    if line is not None:
        words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", line["text"]))
        on_line = [c for c in changes if c["kind"] != "tensor" and c["name"] in words]
        here = [c for c in on_line if c.get("function", line["function"]) == line["function"]]
        if here or on_line:
            return (here or on_line)[0], "high"
        on_stack = {frame["function"] for frame in frames}
        stacked = [c for c in changes if c["kind"] == "argument" and c["function"] in on_stack]
        if stacked:
            return stacked[0], "medium"
    tensors = [c for c in changes if c["kind"] == "tensor"]
    if numeric and tensors:
        return tensors[0], "high" if tensors[0]["flag"] in ("matches_init", "matches_checkpoint") else "medium"
    if tensors:
        return tensors[0], "low"
    return (changes[0], "low") if changes else (None, "low")


def _model_frames(traceback: str, record: dict[str, Any]) -> list[dict[str, str]]:
    """The traceback's frames in the model's own files (outermost first): file base name,
    line, function (its qualified name where the record knows it) and source text."""
    calls = record.get("calls") or []
    files = {call["file"] for call in calls}
    frames: list[dict[str, str]] = []
    for match in _FRAME.finditer(traceback or ""):
        file = match["file"].replace("\\", "/").rsplit("/", 1)[-1]
        if file in files:
            function = _qualified(calls, file, str(match["function"]), int(match["line"]))
            text = str(match["text"]).strip()
            frames.append({"file": file, "line": str(match["line"]), "function": function, "text": text})
    return frames


def _qualified(calls: list[dict[str, Any]], file: str, name: str, line: int) -> str:
    """The qualified name of the recorded function `name` of `file` whose body holds `line`
    (the one that starts last before it: methods of different classes share names)."""
    starts = [
        (call.get("line") or 0, call["function"])
        for call in calls
        if call["file"] == file and call["function"].rsplit(".", 1)[-1] == name and (call.get("line") or 0) <= line
    ]
    return max(starts)[1] if starts else name


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _meaningful(value: Any) -> bool:
    return value is not None and value is not False
