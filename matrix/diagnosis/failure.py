"""What a failing cell's error names: a symbol, a missing package, and the frames it passed.

The diagnosis layers after the curated table work from what the error itself names, so
this reads the shapes Python 3 and transformers produce, not a list of symbols
anyone has seen before: `'X' object has no attribute 'Y'`, `cannot import name 'Y' from
'M'`, `No module named 'M'`, `f() got an unexpected keyword argument 'k'`, `f() missing
N required positional arguments`, `f() takes N positional arguments but M were given`,
and transformers' own "requires the following packages" / "requires the X library", and
the package an ImportError's own `pip install X` advice names.

Frames come from the recorded traceback text (the probe stores `traceback.format_exc()`),
so they can be read on any machine, long after the model ran.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# What a symbol's `kind` can be; `missing-package` is a verdict of its own, not a symbol.
KINDS = ("attribute", "import", "module", "keyword", "positional", "arguments", "missing-package")

_QUOTED = r"'([^']+)'"
_ATTRIBUTE = re.compile(
    rf"^(?:(?P<what>type object|module) )?(?:{_QUOTED}|(?P<bare>[\w.]+))(?: object)? has no attribute "
    rf"(?:'(?P<attr>[^']+)'|(?P<bareattr>\w+))"
)
_IMPORT = re.compile(rf"cannot import name {_QUOTED} from (?:partially initialized module )?{_QUOTED}")
_NO_MODULE = re.compile(rf"No module named {_QUOTED}")
_CALLABLE = r"(?P<func>[\w.<>]+)\(\)"
_KEYWORD = re.compile(rf"{_CALLABLE} got an unexpected keyword argument {_QUOTED}")
_MULTIPLE = re.compile(rf"{_CALLABLE} got multiple values for (?:keyword )?argument {_QUOTED}")
_MISSING = re.compile(rf"{_CALLABLE} missing \d+ required (?:positional|keyword-only) arguments?: (?P<names>.+)$")
_TAKES = re.compile(rf"{_CALLABLE} takes (?P<expected>.+?) positional arguments? but (?P<given>\d+) (?:was|were) given")
_REQUIRED_PACKAGES = re.compile(r"requires the following packages that were not found in your environment: ([^.]+)\.")
_REQUIRED_LIBRARY = re.compile(r"requires the (\S+) library but it was not found")
# An ImportError's own install advice ("... requires Accelerate: `pip install accelerate`",
# "pip install -U 'bitsandbytes>=0.43'"): the package it names is what the env lacks.
_PIP_INSTALL = re.compile(r"pip install (?:(?:-U|--upgrade|-q)\s+)*[`'\"]?(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)")
_IMPORT_ERRORS = ("ImportError", "ModuleNotFoundError")
# A package name that stands for the model's own remote code, not for something to install.
_MODEL_MODULES = ("transformers_modules",)

_FRAME = re.compile(r'^  File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<function>.+)$')
_SITE = re.compile(r"/(?:site|dist)-packages/(?P<rel>.+)\.py$")
_STDLIB = re.compile(r"/lib/python\d+(?:\.\d+)?/|^<frozen |^<string>$")
# The probe's own modules (`probes/cell.py`, `probes/tasks.py`, ...) sit between the
# harness and the model; they are neither the model's code nor transformers'.
_HARNESS = re.compile(r"/probes/[^/]+\.py$")


@dataclass(frozen=True)
class Symbol:
    """One thing an error names.

    `name` is the attribute, imported name, dotted module, keyword or first missing
    parameter; `owner` the object, module or function it belongs to as the message spells
    it (`ChatGLMTokenizer._pad`, `transformers.cache_utils`); `names` every name when the
    message lists several (missing parameters, missing packages); `owner_kind` tells an
    instance (`'X' object`) from a class (`type object 'X'`) or a module; `detail` keeps
    the counts of a "takes N positional arguments" message.
    """

    kind: str
    name: str
    owner: str | None = None
    owner_kind: str | None = None
    names: tuple[str, ...] = ()
    detail: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"symbol kind {self.kind!r} is not one of {KINDS}")

    @property
    def function(self) -> str | None:
        """The bare function name of a call failure (`_pad` of `ChatGLMTokenizer._pad`)."""
        return (
            self.owner.rsplit(".", 1)[-1]
            if self.owner and self.kind in ("keyword", "positional", "arguments")
            else None
        )

    @property
    def owner_class(self) -> str | None:
        """The class a message qualifies its function or attribute with, when it does."""
        if self.kind == "attribute" and self.owner_kind in ("object", "type"):
            return self.owner
        if self.function and self.owner and "." in self.owner:
            return self.owner.rsplit(".", 2)[-2]
        return None


@dataclass(frozen=True)
class Frame:
    """One traceback frame; `kind` is transformers, model, harness or internal (torch, stdlib)."""

    file: str
    line: int
    function: str
    source: str
    kind: str
    module: str | None = None  # dotted, for transformers' own frames

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line} in {self.function}"


@dataclass(frozen=True)
class Failure:
    """A failing cell's error, read: what it names and the frames it went through."""

    error_type: str
    message: str
    phase: str | None
    symbol: Symbol | None
    frames: list[Frame] = field(default_factory=list)

    def frames_of(self, kind: str) -> list[Frame]:
        return [frame for frame in self.frames if frame.kind == kind]


def read_failure(error: Mapping[str, Any], phase: str | None = None) -> Failure:
    """A cell's `error` (`{"type", "message", "traceback"}`) and phase, read."""
    message = str(error.get("message") or "")
    error_type = str(error.get("type") or "")
    symbol = parse_message(message)
    if symbol is None and error_type in _IMPORT_ERRORS and (match := _PIP_INSTALL.search(message)):
        symbol = Symbol("missing-package", match["name"], names=(match["name"],))
    return Failure(error_type, message, phase, symbol, parse_frames(str(error.get("traceback") or "")))


def parse_message(message: str) -> Symbol | None:
    """The symbol or missing package an exception message names, else None."""
    for line in message.strip().splitlines() or [""]:
        symbol = _parse_line(line.strip())
        if symbol is not None:
            return symbol
    return None


def _parse_line(text: str) -> Symbol | None:
    if match := _IMPORT.search(text):
        return Symbol("import", match[1], owner=match[2], owner_kind="module")
    if match := _NO_MODULE.search(text):
        return _module_symbol(match[1])
    if match := _REQUIRED_PACKAGES.search(text):
        packages = tuple(name.strip() for name in match[1].split(",") if name.strip())
        return Symbol("missing-package", packages[0], names=packages) if packages else None
    if match := _REQUIRED_LIBRARY.search(text):
        return Symbol("missing-package", match[1], names=(match[1],))
    if match := _ATTRIBUTE.search(text):
        owner = match[2] or match["bare"]
        owner_kind = {"module": "module", "type object": "type"}.get(match["what"] or "", "object")
        return Symbol("attribute", match["attr"] or match["bareattr"], owner=owner, owner_kind=owner_kind)
    if match := _KEYWORD.search(text) or _MULTIPLE.search(text):
        return Symbol("keyword", match[2], owner=match["func"], owner_kind="function")
    if match := _MISSING.search(text):
        names = tuple(re.findall(_QUOTED, match["names"]))
        return Symbol("positional", names[0], owner=match["func"], owner_kind="function", names=names)
    if match := _TAKES.search(text):
        detail = f"takes {match['expected']} positional arguments but {match['given']} were given"
        return Symbol("arguments", match["func"], owner=match["func"], owner_kind="function", detail=detail)
    return None


def _module_symbol(module: str) -> Symbol | None:
    """A transformers module is a symbol question; any other module is a missing package."""
    top = module.split(".", 1)[0]
    if top == "transformers":
        return Symbol("module", module, owner_kind="module")
    if top in _MODEL_MODULES:
        return None
    return Symbol("missing-package", top, names=(top,))


def parse_frames(traceback_text: str) -> list[Frame]:
    """Frames of the last traceback in the text (a chained exception's own), outermost first."""
    text = traceback_text.rsplit("Traceback (most recent call last):", 1)[-1]
    lines = text.splitlines()
    frames = []
    for index, line in enumerate(lines):
        match = _FRAME.match(line)
        if not match:
            continue
        following = lines[index + 1] if index + 1 < len(lines) else ""
        source = following.strip() if following.startswith("    ") and not _FRAME.match(following) else ""
        kind, module = classify_file(match["file"])
        frames.append(Frame(match["file"], int(match["line"]), match["function"], source, kind, module))
    return frames


def classify_file(path: str) -> tuple[str, str | None]:
    """(kind, dotted module): whose code a traceback's file is."""
    site = _SITE.search(path)
    if site:
        parts = site["rel"].split("/")
        if parts[0] == "transformers":
            module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            return "transformers", module
        return "internal", None
    if _STDLIB.search(path):
        return "internal", None
    if _HARNESS.search(path):
        return "harness", None
    return "model", None
