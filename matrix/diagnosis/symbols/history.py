"""Symbol history: what happened to the name a failure names, read from the releases' sources.

Most breaks of old remote code are a name a release removed, moved or renamed, or a
signature that changed. Given the symbol a failure names (`failure.py`), the last good and
first failing release, this finds where the name lived in the last release that had it
(module, class, file:line, reached through which base class), searches the releases in
between for the exact first one without it (a binary search that fetches only the sources
it needs), and says what that release did: removed it, moved it to another module (the new
import path), renamed it (a new member of the same class with nearly the same body: kept
conservative), stopped inheriting it, or changed a signature. The last good release's own
deprecation warning is quoted: it usually names the replacement.

A question is a pair of functions over a release index: where the symbol is (`locate`) and
the fact the failure hinges on (`state`: present or not, has the parameter or not). The
binary search compares states, so one search serves every kind of symbol.
"""

from __future__ import annotations

import builtins
import dataclasses
import re
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.version import Version

from matrix import first_bad as bisect_search
from matrix.diagnosis.failure import Failure, Symbol
from matrix.diagnosis.finding import Diagnosis
from matrix.diagnosis.frames import call_keywords
from matrix.diagnosis.symbols import explain as symbol_explain
from matrix.diagnosis.symbols.api_lookup import Found, Release
from matrix.diagnosis.symbols.explain import Edge, Question
from matrix.diagnosis.symbols.sources import SourceShelf

# Where a model's own class most likely gets a member from, by how its name ends.
_BASES: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("Config", (("transformers.configuration_utils", "PretrainedConfig"),)),
    ("TokenizerFast", (("transformers.tokenization_utils_fast", "PreTrainedTokenizerFast"),)),
    ("Tokenizer", (("transformers.tokenization_utils", "PreTrainedTokenizer"),)),
    ("Cache", (("transformers.cache_utils", "Cache"),)),
    ("Processor", (("transformers.processing_utils", "ProcessorMixin"),)),
    ("", (("transformers.modeling_utils", "PreTrainedModel"), ("transformers.generation.utils", "GenerationMixin"))),
)
# Types whose names `builtins` does not hold, as error messages spell them.
_BUILTIN_TYPE_NAMES = {"NoneType", "function", "method", "builtin_function_or_method", "module", "generator", "Tensor"}


@dataclass(frozen=True)
class Start:
    """The transformers class through which a message's `owner.name` is reached."""

    module: str
    cls: str
    model_owned: bool
    cap: str


def symbol_history(
    failure: Failure,
    last_good: str,
    first_bad: str,
    shelf: SourceShelf,
    releases: Sequence[str | Version] | None = None,
) -> Diagnosis | None:
    """What the failing release did to the symbol the failure names, or None when the
    sources say nothing (no symbol, never in transformers, unchanged, sources unavailable).

    `releases`: the release list (any superset of those between the two, in any order);
    without it the first bad release cannot be called exact.
    """
    symbol = failure.symbol
    if symbol is None or symbol.kind == "missing-package":
        return None
    good, bad = shelf.release(last_good), shelf.release(first_bad)
    if good is None or bad is None:
        return None
    question = _question(failure, symbol, good)
    if question is None or question.locate(good) is None:
        return None
    if question.state(good) == question.state(bad):
        question = _caller_question(failure, symbol, good)
        if question is None or question.state(good) == question.state(bad):
            return None
    edge = _first_change(question, last_good, first_bad, shelf, releases)
    before, after = shelf.release(edge.last_good), shelf.release(edge.first_bad)
    if before is None or after is None:
        return None
    return symbol_explain.explain(question, failure, before, after, edge)


def _question(failure: Failure, symbol: Symbol, good: Release) -> Question | None:
    name, owner = symbol.name, symbol.owner or ""
    if symbol.kind == "module":
        return Question("module", symbol, name, lambda r: _module(r, name), lambda r: r.has_module(name))
    if symbol.kind == "import" or symbol.owner_kind == "module":
        if not owner.startswith("transformers"):
            return None
        return _presence("export", symbol, f"{owner}.{name}", lambda r: r.exported(owner, name))
    if symbol.kind == "attribute":
        return _member_question(failure, symbol, good)
    return _parameter_question(failure, symbol, good)


def _presence(kind: str, symbol: Symbol, label: str, locate: Callable[[Release], Found | None]) -> Question:
    return Question(kind, symbol, label, locate, lambda r: locate(r) is not None)


def _module(release: Release, name: str) -> Found | None:
    doc = release.module(name)
    if doc is None:
        return None
    entry = {"kind": "module", "line": 1, "deprecated": doc["deprecated"]}
    return Found(release.version, name, None, name, entry, doc["file"])


def _frame_modules(failure: Failure) -> tuple[str, ...]:
    """transformers modules of the traceback, innermost first, then the transformers modules
    the model's own files in the traceback import from (read when this host has them): a
    name the model calls directly, such as a class it builds, is defined in one of those."""
    traced = [f.module for f in reversed(failure.frames_of("transformers")) if f.module]
    return tuple(dict.fromkeys([*traced, *_model_imports(failure)]))


_TRANSFORMERS_IMPORT = re.compile(
    r"^\s*(?:from\s+(transformers(?:\.\w+)*)\s+import|import\s+(transformers(?:\.\w+)*))", re.M
)


def _model_imports(failure: Failure) -> list[str]:
    """The transformers modules the model's files in the traceback import, in file order."""
    found: list[str] = []
    for path in dict.fromkeys(frame.file for frame in reversed(failure.frames_of("model"))):
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue  # a cell from another machine: its files are not here
        found += [a or b for a, b in _TRANSFORMERS_IMPORT.findall(text)]
    return found


def _bases_for(owner: str) -> tuple[tuple[str, str], ...]:
    for suffix, bases in _BASES:
        if owner.endswith(suffix):
            return bases
    return ()


def _is_builtin(owner: str) -> bool:
    """`'NoneType' object`, `'tuple' object`: a value of the wrong kind, not a transformers class."""
    return isinstance(getattr(builtins, owner, None), type) or owner in _BUILTIN_TYPE_NAMES


def _owner_start(good: Release, failure: Failure, owner: str, name: str) -> Start | None:
    """Where `owner.name` is reached from in the last good release: `owner` itself when
    transformers defines it (and then nowhere else), else the base class a model's own class
    most likely has, else a class of the traceback's transformers modules with such a member."""
    if _is_builtin(owner):
        return None
    frames = _frame_modules(failure)
    owned_by_transformers = False
    for module, cls, _ in good.classes(owner, prefer=frames):
        owned_by_transformers = True
        if good.member(module, cls, name):
            return Start(module, cls, False, "high")
    if owned_by_transformers:
        return None
    for module, cls in _bases_for(owner):
        found = good.find_member(module, cls, name)
        if found:
            return Start(module, found.via or found.owner or cls, True, "medium")
    candidates = good.members_named(name, [m for m in frames if good.has_module(m)])
    return Start(candidates[0].module, candidates[0].owner or "", True, "low") if candidates else None


def _member_question(failure: Failure, symbol: Symbol, good: Release) -> Question | None:
    start = _owner_start(good, failure, symbol.owner or "", symbol.name)
    if start is None:
        return None

    def locate(r: Release) -> Found | None:
        return r.find_member(start.module, start.cls, symbol.name)

    presence = _presence("member", symbol, f"{start.cls}.{symbol.name}", locate)
    return dataclasses.replace(presence, model_owned=start.model_owned, cap=start.cap)


def _positional_count(found: Found | None) -> int:
    """How many arguments a function takes by position (`self` included)."""
    count = 0
    for param in found.entry.get("params", []) if found else []:
        if param.startswith("*"):
            break
        count += param != "/"
    return count


def _parameter_question(failure: Failure, symbol: Symbol, good: Release) -> Question | None:
    """The transformers function a call failure names (`X.f` or `f`), and its parameters."""
    function = symbol.function or ""
    owner = symbol.owner_class
    start = _owner_start(good, failure, owner, function) if owner else None
    if start is not None:
        module, cls, label = start.module, start.cls, f"{start.cls}.{function}"
    else:
        in_frames = [good.exported(m, function) for m in _frame_modules(failure)]
        found = [f for f in in_frames if f and f.entry["kind"] == "function"] or good.definitions(function)
        if not found:
            return None
        module, cls, label = found[0].module, "", function

    def locate(r: Release) -> Found | None:
        return r.find_member(module, cls, function) if cls else r.defining(module, function)

    def state(r: Release) -> Hashable:
        found = locate(r)
        params = found.parameters if found else []
        if symbol.kind == "keyword":
            return symbol.name in params
        if symbol.kind == "positional":
            return tuple(name in params for name in symbol.names)
        return _positional_count(found)

    model_owned, cap = (start.model_owned, start.cap) if start else (False, "high")
    return Question("parameter", symbol, label, locate, state, model_owned, cap)


def _caller_question(failure: Failure, symbol: Symbol, good: Release) -> Question | None:
    """For an unexpected keyword that no transformers signature explains: does the
    transformers frame that made the call now pass that keyword?"""
    frames = failure.frames_of("transformers")
    if symbol.kind != "keyword" or not frames or not frames[-1].module:
        return None
    frame, function = frames[-1], symbol.function or ""

    def locate(r: Release) -> Found | None:
        return r.function(frame.module or "", frame.function)

    def state(r: Release) -> Hashable:
        found = locate(r)
        return found is not None and symbol.name in call_keywords(r.source(found)).get(function, set())

    return Question("caller", symbol, f"{frame.function}", locate, state)


def _first_change(
    question: Question, last_good: str, first_bad: str, shelf: SourceShelf, releases: Sequence[str | Version] | None
) -> Edge:
    """Binary search of the releases between for the first whose state differs from the last
    good's. A release whose sources cannot be had is skipped (the bound is then not exact)."""
    low, high = Version(last_good), Version(first_bad)
    between = sorted(v for v in {Version(str(v)) for v in releases or ()} if low < v < high)
    good = shelf.release(last_good)
    baseline = question.state(good) if good else None

    def same_as_good(version: str) -> bool | None:
        release = shelf.release(version)
        return None if release is None else question.state(release) == baseline

    found = bisect_search.first_bad([last_good, *(str(v) for v in between), first_bad], same_as_good)
    read = 2 + sum(1 for _, said in found.probed if said is not None)
    return Edge(found.last_good, found.first_bad, releases is not None and not found.unresolved, read)
