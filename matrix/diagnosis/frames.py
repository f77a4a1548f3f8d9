"""The traceback layer: a failure inside the model's own code, and the transformers code that called it.

`'NoneType' object has no attribute 'shape'` or `'tuple' object has no attribute
'get_seq_length'` name no transformers symbol: the break is in what transformers now
hands the model (a cache object instead of a tuple, None where a tensor was). The
traceback says where: the model's innermost frame (file:line and the expression that
failed) and the nearest transformers frame above it, the function that called into the
model. Comparing that function between the last good and the first failing release (its
signature, the keyword arguments it passes to each callee, the lines that changed) shows
what it now does differently. When the failure is raised inside transformers code that
the model's own code called (a private helper the model calls directly), or there is no
model frame at all (transformers itself reads something the model's config lacks), the
innermost transformers frame is compared instead; and when that failure is an attribute
transformers itself assigns somewhere else, the places that assign it are named (an
attribute only `generate()` sets is missing when the model calls a helper directly).

This is circumstantial evidence, so confidence is medium at best: the changed caller is
where to look, not proof of the cause.
"""

from __future__ import annotations

import ast
import difflib
import textwrap
from pathlib import PurePosixPath

from matrix.diagnosis.failure import Failure, Frame
from matrix.diagnosis.finding import Diagnosis
from matrix.diagnosis.symbols.api_lookup import Found, Release
from matrix.diagnosis.symbols.sources import SourceShelf

MAX_DIFF_LINES = 12
MAX_LINE = 160


MODEL_CODE = "the model's code"


def _whose_code(phase: str | None) -> str:
    """Whose code the frames outside transformers are: the model's, or, in a `probe:<name>`
    phase, the team's probe script (both are code that calls into transformers)."""
    if phase and phase.startswith("probe:"):
        return f"probe script {phase.removeprefix('probe:')}'s code"
    return MODEL_CODE


def traceback_history(
    failure: Failure, last_good: str, first_bad: str, shelf: SourceShelf, failed_in: str | None = None
) -> Diagnosis | None:
    """The model's frame, the transformers frame that called it, and how that function
    changed from `last_good` to `first_bad`; None without a transformers frame or sources.

    `failed_in`: the release the traceback was recorded with (its line numbers tell
    same-named methods apart); `first_bad` is assumed when not given.
    """
    model, caller, inside = split_frames(failure.frames)
    if caller is None or caller.module is None:
        return None
    before, after = shelf.release(last_good), shelf.release(first_bad)
    recorded = shelf.release(failed_in) if failed_in else after
    if before is None or after is None or recorded is None:
        return None
    called = function_at(recorded, caller)
    if called is None:
        return None
    old, new = same_function(before, called), same_function(after, called)
    changes = compare(before, old, after, new)
    error = f"{failure.error_type}: {failure.message.strip()[:160]}"
    code = _whose_code(failure.phase)
    if model and not inside:
        evidence = [
            f"{'model' if code == MODEL_CODE else 'probe script'} frame: {_short(model)}",
            f"transformers frame that called it: {_short(caller)} ({called.qualname})",
        ]
        subject = code[0].upper() + code[1:]
        cause = f"{subject} fails at {_short(model)} ({error}), called from transformers' {called.qualname}. "
    elif model:
        evidence = [f"failed inside transformers: {_short(caller)}", f"called by {code}: {_short(model)}"]
        where = _short(model)
        cause = f"transformers' {called.qualname}, called directly by {code} at {where}, fails ({error}). "
    else:
        evidence = [f"failed inside transformers: {_short(caller)}"]
        cause = f"transformers' {called.qualname} fails ({error}). "
    evidence += changes
    symbol = failure.symbol
    if symbol is not None and symbol.kind == "attribute":
        setters = assignments(after, symbol.name)
        evidence += [f"{after.version} sets .{symbol.name} only in: {', '.join(setters)}"] if setters else []
    if changes:
        cause += (
            f"{called.qualname} changed between {last_good} and {first_bad}: see the evidence for what it now does."
        )
        short_id = f"{'caller changed' if model and not inside else 'changed'}: {called.qualname}"
    else:
        cause += f"{called.qualname} is the same in {last_good} and {first_bad}; the change lies in what it calls."
        short_id = f"model code: {PurePosixPath(model.file).name}:{model.line}" if model else f"in: {called.qualname}"
    if model and inside:
        fixes = [
            f"upstream: stop calling {called.qualname} directly from {model.function}, or prepare what it now reads"
        ]
    elif model:
        owner = "the model's" if code == MODEL_CODE else "the probe script's"
        fixes = [f"upstream: adapt {owner} {model.function} to what {called.qualname} does in {first_bad}"]
    else:
        fixes = []
    return Diagnosis(
        source="traceback",
        id=short_id,
        cause=cause,
        confidence="medium" if changes else "low",
        introduced_in=first_bad,
        last_good=last_good,
        symbol=f"{called.module}.{called.qualname}",
        evidence=evidence,
        fixes=[*fixes, f"pin transformers<{first_bad}"],
    )


def split_frames(frames: list[Frame]) -> tuple[Frame | None, Frame | None, bool]:
    """(the model's innermost frame, the transformers frame to compare, whether the failure
    was raised inside that transformers frame).

    The failure raised in the model's code: the transformers frame that called into it.
    Raised in transformers code the model called: that innermost transformers frame.
    No model frame: the innermost transformers frame.
    """
    model_at = next((i for i in range(len(frames) - 1, -1, -1) if frames[i].kind == "model"), None)
    below = [] if model_at is None else [f for f in frames[model_at + 1 :] if f.kind == "transformers"]
    if below:
        return frames[model_at], below[-1], True  # type: ignore[index]
    above = frames if model_at is None else frames[:model_at]
    caller = next((frame for frame in reversed(above) if frame.kind == "transformers"), None)
    return (frames[model_at] if model_at is not None else None), caller, model_at is None


def assignments(release: Release, attribute: str, limit: int = 4) -> list[str]:
    """Where a release's core modules assign `<something>.<attribute> = ...`, as
    `file:line in function` (the function found by parsing only the files that match)."""
    needle = f".{attribute} ="
    places = []
    for module in release.mentioning((needle,)):
        path = release.module_path(module)
        if path is None:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        for number, line in enumerate(text.splitlines(), start=1):
            if needle in line:
                holder = min(
                    (f for f in functions if f.lineno <= number <= (f.end_lineno or f.lineno)),
                    key=lambda f: (f.end_lineno or f.lineno) - f.lineno,
                    default=None,
                )
                where = f" in {holder.name}" if holder else ""
                places.append(f"{module.removeprefix('transformers.').replace('.', '/')}.py:{number}{where}")
    return places[:limit]


def function_at(release: Release, frame: Frame) -> Found | None:
    """The function or method of `frame.module` whose lines hold the frame's line (by name
    alone when none does: the traceback may come from another release)."""
    candidates = [found for found in [release.exported(frame.module or "", frame.function)] if found]
    candidates = [c for c in candidates if c.entry["kind"] == "function"]
    candidates += (
        release.members_named(frame.function, [frame.module or ""]) if release.has_module(frame.module or "") else []
    )
    candidates = [c for c in candidates if c.entry["kind"] in ("function", "method", "property")]
    holding = [c for c in candidates if c.entry["line"] <= frame.line <= (c.entry.get("end") or c.entry["line"])]
    return next(iter(holding or candidates), None)


def same_function(release: Release, found: Found) -> Found | None:
    if found.owner:
        return release.find_member(found.module, found.owner, found.name)
    return release.function(found.module, found.name)


def compare(before: Release, old: Found | None, after: Release, new: Found | None) -> list[str]:
    """What changed in one function between two releases, one fact a line (nothing if equal)."""
    if old is None or new is None:
        known = old or new
        if known is None:
            return []
        present, absent = (after, before) if new else (before, after)
        return [f"{known.qualname} exists in {present.version} but not in {absent.version}"]
    old_lines, new_lines = before.source(old)[1:], after.source(new)[1:]
    changes = []
    if old.signature != new.signature:
        changes.append(f"signature: {before.version} {old.signature} -> {after.version} {new.signature}")
    old_calls, new_calls = call_keywords(before.source(old)), call_keywords(after.source(new))
    for callee in sorted(set(old_calls) | set(new_calls)):
        was_passed, now_passed = old_calls.get(callee, set()), new_calls.get(callee, set())
        passed = [f"+{k}=" for k in sorted(now_passed - was_passed)] + [
            f"-{k}=" for k in sorted(was_passed - now_passed)
        ]
        if passed:
            changes.append(f"calls {callee}(): {', '.join(passed)}")
    diff = [line[:MAX_LINE] for line in _changed_lines(old_lines, new_lines)]
    if diff:
        shown = diff[:MAX_DIFF_LINES]
        more = f" (+{len(diff) - len(shown)} more)" if len(diff) > len(shown) else ""
        changes.append(f"{new.qualname} {before.version} -> {after.version}, changed lines{more}: " + " | ".join(shown))
    return changes


def _changed_lines(old: list[str], new: list[str]) -> list[str]:
    """`-`/`+` lines of a diff that ignores indentation, blank lines and comments."""

    def code(lines: list[str]) -> list[str]:
        return [s for line in lines if (s := line.strip()) and not s.startswith("#")]

    diff = difflib.unified_diff(code(old), code(new), n=0, lineterm="")
    return [line for line in diff if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def _short(frame: Frame) -> str:
    """`transformers/generation/utils.py:2651 in _sample: <expression>`: enough to find it."""
    source = f": {frame.source}" if frame.source else ""
    path = frame.file.rsplit("-packages/", 1)[-1] if frame.module else PurePosixPath(frame.file).name
    return f"{path}:{frame.line} in {frame.function}{source}"


def call_keywords(lines: list[str]) -> dict[str, set[str]]:
    """Keyword arguments a function's source passes, by the callee's name (`_pad`: {...})."""
    try:
        tree = ast.parse(textwrap.dedent("\n".join(lines)))
    except SyntaxError:
        return {}
    passed: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            passed.setdefault(name, set()).update(k.arg for k in node.keywords if k.arg)
    return passed
