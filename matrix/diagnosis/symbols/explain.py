"""What symbol history found, in words a report can show: cause, evidence and fixes.

`symbols.py` finds the break (which release, which definition); this says what the break
is: a removal, a move (with the new import path), a rename, a lost base class, or a
signature change, quoting the last good release's deprecation warning and drawing fixes
only from what the sources show. Confidence is high only when the definition was found
where the message says, and the first release without it is exact.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from matrix.diagnosis.failure import Failure, Symbol
from matrix.diagnosis.finding import Diagnosis
from matrix.diagnosis.symbols.api_lookup import Found, Release

# A new member counts as the old one renamed only when its body is this close to the old one's.
RENAME_SIMILARITY = 0.85
_REPLACEMENT = re.compile(r"\b[Uu]se\s+`?([A-Za-z_][\w.]*(?:\(\))?)`?|\bfrom\s+`?(transformers(?:\.\w+)+)`?")
_MOVED_NAMES_CHECKED = 20


@dataclass(frozen=True)
class Question:
    """How to find one symbol in any release, and the fact about it that the failure hinges on.

    `kind`: export (a module-level name), module, member (of a class), parameter (of a
    function), caller (a transformers function that now passes a keyword). `model_owned`:
    the message names the model's own class, so the transformers class it inherits from
    was inferred; `cap`: the most confidence the way it was found allows.
    """

    kind: str
    symbol: Symbol
    label: str
    locate: Callable[[Release], Found | None]
    state: Callable[[Release], Hashable]
    model_owned: bool = False
    cap: str = "high"


@dataclass(frozen=True)
class Edge:
    """The break as the search left it: `exact` when the two releases are neighbours."""

    last_good: str
    first_bad: str
    exact: bool
    sources_read: int


def explain(question: Question, failure: Failure, before: Release, after: Release, edge: Edge) -> Diagnosis | None:
    """The Diagnosis for a question whose state changed between `before` and `after`."""
    was = question.locate(before)
    if was is None:
        return None
    short_id, cause, evidence, fixes = {
        "module": _module,
        "export": _export,
        "member": _member,
        "parameter": _parameter,
        "caller": _caller,
    }[question.kind](question, failure, was, before, after, edge)
    deprecations = _deprecations(was, before)
    evidence = [
        f"{before.version}: {was.qualname} at {was.where}" + (f" (through {was.via})" if was.via else ""),
        *evidence,
        *(f'{before.version} deprecation: "{message}"' for message in deprecations[:2]),
        _search_line(edge),
    ]
    replacement = _replacement(deprecations, was.name)
    if replacement:
        fixes.append(f"upstream: use {replacement} (the replacement {before.version}'s deprecation names)")
    fixes.append(f"pin transformers<{edge.first_bad}")
    return Diagnosis(
        source="symbol-history",
        id=short_id,
        cause=cause,
        confidence=_confidence(question.cap, "high" if edge.exact else "medium"),
        introduced_in=edge.first_bad,
        last_good=edge.last_good,
        exact=edge.exact,
        symbol=f"{was.module}.{was.qualname}" if was.module != was.name else was.module,
        evidence=evidence,
        fixes=fixes,
    )


Words = tuple[str, str, list[str], list[str]]  # id, cause, evidence, fixes


def _module(question: Question, failure: Failure, was: Found, before: Release, after: Release, edge: Edge) -> Words:
    home = new_home(before, after, was.module)
    gone = f"transformers {after.version} has no module {was.module} ({before.version} had {was.file})"
    if home:
        module, names = home
        cause = f"{gone}; what it provided ({', '.join(names[:4])}) now lives in {module}."
        return f"moved: {was.module} -> {module}", cause, [], [f"upstream: import {', '.join(names[:4])} from {module}"]
    return f"removed module: {was.module}", gone + ".", [], []


def new_home(before: Release, after: Release, module: str) -> tuple[str, list[str]] | None:
    """The module of `after` that defines most of the public names `module` had in `before`."""
    doc = before.module(module) or {"names": {}}
    homes: Counter[str] = Counter()
    found_names: dict[str, list[str]] = {}
    # What a module provided: what it defines, or for a module that only re-exports (a
    # deprecated alias of its new home), what it imports from transformers.
    public = [(n, e) for n, e in doc["names"].items() if not n.startswith("_") and e["kind"] in ("function", "class")]
    public = public or [(n, e) for n, e in doc["names"].items() if e.get("target", "").startswith("transformers.")]
    for name, entry in public[:_MOVED_NAMES_CHECKED]:
        if entry["kind"] == "import":
            found = after.defining(entry["target"], entry.get("name", name))
        else:
            found = next(iter(after.definitions(name)), None)
        if found is not None and found.module != module:
            homes[found.module] += 1
            found_names.setdefault(found.module, []).append(name)
    if not homes:
        return None
    best = homes.most_common(1)[0][0]
    return best, found_names[best]


def _export(question: Question, failure: Failure, was: Found, before: Release, after: Release, edge: Edge) -> Words:
    module, name = question.symbol.owner or "", question.symbol.name
    candidates = list(dict.fromkeys([*after.core(), *after.siblings(module)]))
    # The plainest home first: outside models/, shallowest.
    moved = sorted(after.definitions(name, candidates), key=lambda f: (".models." in f.module, f.module.count(".")))
    gone = f"`from {module} import {name}` works in transformers {before.version} but not in {after.version}"
    if moved:
        new = moved[0]
        fixes = [f"upstream: from {new.module} import {name}"]
        if after.exported("transformers", name):
            fixes.append(f"upstream: or from transformers import {name}")
        cause = f"{gone}: {name} moved to {new.module}."
        return f"moved: {name} -> {new.module}", cause, [f"{after.version}: {name} at {new.where}"], fixes
    renamed = renamed_to(before, was, after)
    if renamed:
        cause = f"{gone}: it became {renamed.name} ({renamed.where})."
        return f"renamed: {name} -> {renamed.name}", cause, [], [f"upstream: import {renamed.name} instead of {name}"]
    return f"removed: {name} from {module}", f"{gone}: {after.version} removed it.", [], []


def _member(question: Question, failure: Failure, was: Found, before: Release, after: Release, edge: Edge) -> Words:
    start = question.label.rsplit(".", 1)[0]
    owner = question.symbol.owner or start
    through = f" (the model's {owner} gets it from {start})" if question.model_owned else ""
    still = after.find_member(was.module, was.owner or "", was.name)
    if still is not None and was.via:
        cause = (
            f"{start} no longer inherits {was.owner} in transformers {after.version}{through}; "
            f"{was.name} is still defined on {was.owner} ({still.where})."
        )
        fix = f"upstream: add {was.owner} to the bases of {owner}"
        return f"no longer inherited: {start}.{was.name}", cause, [], [fix]
    renamed = renamed_to(before, was, after)
    if renamed:
        cause = f"{was.qualname}{through} became {renamed.qualname} in transformers {after.version} ({renamed.where})."
        fix = f"upstream: use {renamed.name} instead of {was.name}"
        return f"renamed: {was.qualname} -> {renamed.name}", cause, [], [fix]
    cause = f"{was.qualname}{through} exists in transformers {before.version} and was removed in {after.version}."
    return f"removed: {was.qualname}", cause, [], []


def _parameter(question: Question, failure: Failure, was: Found, before: Release, after: Release, edge: Edge) -> Words:
    symbol, now = question.symbol, question.locate(after)
    if now is None:
        return f"removed: {was.qualname}", f"{was.qualname} is gone in transformers {after.version}.", [], []
    evidence = [f"{before.version}: {was.signature}", f"{after.version}: {now.signature} at {now.where}"]
    evidence += _caller_lines(failure)
    changed = set(was.parameters) ^ set(now.parameters)
    names = [n for n in (symbol.names or (symbol.name,)) if n in changed] if symbol.kind != "arguments" else []
    if not names:
        cause = (
            f"The signature of {was.qualname} changed in transformers {after.version} ({symbol.detail or 'arguments'})."
        )
        return f"changed signature: {was.name}", cause, evidence, []
    lost = set(names) <= set(was.parameters)
    plural = "s" if len(names) > 1 else ""
    what = f"{was.qualname} {'lost' if lost else 'gained'} the parameter{plural} {_ticks(names)} in {after.version}"
    short_id = f"{'removed' if lost else 'new'} parameter: {names[0]} of {was.qualname}"
    # The message names the model's own override when transformers is the caller.
    if question.model_owned:
        if lost:
            cause, fix = f"{what}, so transformers no longer passes it to the model's {symbol.owner}.", "make optional"
        else:
            cause, fix = (
                f"{what}, and transformers now passes it: the model's {symbol.owner} does not accept it.",
                "accept",
            )
        return short_id, cause, evidence, [f"upstream: {fix} {_ticks(names)} in {symbol.owner}"]
    if lost:
        return (
            short_id,
            f"{what}; the model's code still passes it.",
            evidence,
            [f"upstream: stop passing {_ticks(names)} to {was.name}"],
        )
    return (
        short_id,
        f"{what}; the model's code does not pass it.",
        evidence,
        [f"upstream: pass {_ticks(names)} to {was.name}"],
    )


def _caller(question: Question, failure: Failure, was: Found, before: Release, after: Release, edge: Edge) -> Words:
    symbol, now = question.symbol, question.locate(after)
    where = now.where if now else "?"
    cause = (
        f"transformers {after.version}'s {was.qualname} ({where}) passes `{symbol.name}=` to {symbol.function}, "
        f"which {before.version}'s did not; the model's {symbol.owner} does not accept it."
    )
    return (
        f"now passes: {symbol.name} to {symbol.function}",
        cause,
        _caller_lines(failure),
        [f"upstream: accept `{symbol.name}` in {symbol.owner}"],
    )


def renamed_to(before: Release, was: Found, after: Release) -> Found | None:
    """A name new in `after`, beside `was` (same class or module), whose body is nearly `was`'s."""
    old_body = [line.strip() for line in before.source(was)[1:]]
    if was.entry["kind"] not in ("function", "method", "property", "class") or len(old_body) < 2:
        return None
    if was.owner:
        old_names = set(before.module(was.module)["classes"][was.owner]["members"])  # type: ignore[index]
        candidates = [m for m in after.class_members(was.module, was.owner) if m.name not in old_names]
    else:
        old_names = set(before.module(was.module)["names"])  # type: ignore[index]
        candidates = [f for f in after.module_level(was.module) if f.name not in old_names]
    scored = sorted(
        (
            (difflib.SequenceMatcher(None, old_body, [line.strip() for line in after.source(c)[1:]]).ratio(), c.name, c)
            for c in candidates
            if c.entry["kind"] == was.entry["kind"]
        ),
        reverse=True,
    )
    if scored and scored[0][0] >= RENAME_SIMILARITY and (len(scored) < 2 or scored[1][0] < RENAME_SIMILARITY):
        return scored[0][2]
    return None


def _deprecations(was: Found, before: Release) -> list[str]:
    """Deprecation messages of the definition itself, or of its class's __init__."""
    messages = list(was.deprecations)
    if was.entry["kind"] == "class":
        doc = before.module(was.module) or {"classes": {}}
        init = doc["classes"].get(was.name, {}).get("members", {}).get("__init__", {})
        messages += init.get("deprecated", [])
    return messages


def _replacement(messages: list[str], name: str) -> str | None:
    for message in messages:
        for match in _REPLACEMENT.finditer(message):
            candidate = match[1] or match[2]
            if candidate.rstrip("()") != name:
                return candidate
    return None


def _caller_lines(failure: Failure) -> list[str]:
    frames = failure.frames_of("transformers")
    return [f"called from {frames[-1].where}: {frames[-1].source}"] if frames else []


def _search_line(edge: Edge) -> str:
    if edge.exact:
        read = f"{edge.sources_read} releases' sources read"
        return f"first release without it: {edge.first_bad} (after {edge.last_good}; {read})"
    return f"first failing release known: {edge.first_bad}, last good {edge.last_good} (not narrowed to neighbours)"


def _confidence(*levels: str) -> str:
    """The lowest of the levels: evidence is as sure as its weakest step."""
    order = ("high", "medium", "low")
    return max(levels, key=order.index)


def _ticks(names: list[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)
