"""Questions to one release's index: is this name exported, where is this class, what does it inherit.

A failure names a symbol by the name the model's code used, not by where it is defined:
`DynamicCache.get_max_length` is defined on `Cache`, `from transformers import X` is a lazy
export, a model class reaches `generate` through `PreTrainedModel`'s bases. These lookups
follow imports, lazy tables, star imports, aliases and base classes through the index,
loading only the modules a question touches. A search for a name over the core modules
first keeps the files whose text contains it (about 10 ms for all of them), so a question
parses a handful of files, not hundreds.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from matrix.diagnosis.symbols.api_index import (
    INDEX_FORMAT,
    Doc,
    core_modules,
    load_module,
    module_file,
    module_name,
)
from probes.record import write_json_atomic

_MAX_HOPS = 6


@dataclass(frozen=True)
class Found:
    """Where a release defines a name: `owner` is its class (None for a module-level name),
    `via` the class it was looked up through when that is another one (a subclass)."""

    version: str
    module: str
    owner: str | None
    name: str
    entry: Doc
    file: str
    via: str | None = None

    @property
    def qualname(self) -> str:
        return f"{self.owner}.{self.name}" if self.owner else self.name

    @property
    def where(self) -> str:
        return f"{self.file}:{self.entry.get('line') or '?'}"

    @property
    def deprecations(self) -> list[str]:
        return list(self.entry.get("deprecated", []))

    @property
    def parameters(self) -> list[str]:
        """Parameter names, without the `*`, `**` and `=` of the signature."""
        return [p.strip("*=") for p in self.entry.get("params", []) if p not in ("*", "/")]

    @property
    def signature(self) -> str:
        return f"{self.name}({', '.join(self.entry.get('params', []))})"


class Release:
    """The index of one release, loaded module by module as questions need it."""

    def __init__(self, version: str, package: Path, cache: Path) -> None:
        self.version, self.package = version, package
        self.index_dir = cache / "sources" / "index" / f"v{INDEX_FORMAT}" / version
        self._docs: dict[str, Doc | None] = {}
        self._core: list[str] | None = None
        self._mentions: dict[str, set[Path]] = {}

    def module(self, name: str) -> Doc | None:
        if name not in self._docs:
            self._docs[name] = load_module(self.package, name, self.index_dir)
        return self._docs[name]

    def module_path(self, name: str) -> Path | None:
        """The file of a dotted module in this release, if it has one."""
        return module_file(self.package, name)

    def has_module(self, name: str) -> bool:
        return module_file(self.package, name) is not None

    def core(self) -> list[str]:
        """The core module names, listed once per release and kept beside its index."""
        if self._core is None:
            listing = self.index_dir / "core-modules.json"
            with contextlib.suppress(OSError, ValueError):
                self._core = list(json.loads(listing.read_text(encoding="utf-8")))
            if self._core is None:
                self._core = core_modules(self.package)
                with contextlib.suppress(OSError):
                    write_json_atomic(listing, self._core)
        return self._core

    def siblings(self, module: str) -> list[str]:
        """The modules beside `module` in its package folder, as this release has them (a
        name that left `models/llama/modeling_llama.py` may be in `models/llama/` still)."""
        parent = module.rsplit(".", 1)[0]
        init = module_file(self.package, parent)
        if init is None or init.name != "__init__.py":
            return []
        return sorted(module_name(self.package, path) for path in init.parent.glob("*.py") if path != init)

    def mentioning(self, needles: tuple[str, ...], modules: list[str] | None = None) -> list[str]:
        """The modules (default: the core set) whose text contains any of `needles`."""
        encoded, found = [needle.encode() for needle in needles], []
        for name in self.core() if modules is None else modules:
            path = module_file(self.package, name)
            text = path.read_bytes() if path else b""
            if any(needle in text for needle in encoded):
                found.append(name)
        return found

    def exported(self, module: str, name: str, hops: int = 0) -> Found | None:
        """What `from <module> import <name>` would get, without importing anything."""
        doc = self.module(module)
        if doc is None or hops > _MAX_HOPS:
            return None
        entry = doc["names"].get(name)
        if entry is None and (name in doc["lazy"] or name in (doc["all"] or [])):
            entry = {"kind": "lazy", "line": None}
        if entry is None and self.has_module(f"{module}.{name}"):
            entry = {"kind": "module", "line": 1}
        if entry is not None:
            return Found(self.version, module, None, name, entry, doc["file"])
        for star in doc["stars"]:
            if not self._may_define(star, name):
                continue
            target = self.module(star)
            if target and (target["all"] is None or name in target["all"]):
                found = self.exported(star, name, hops + 1)
                if found:
                    return found
        return None

    def _may_define(self, module: str, name: str) -> bool:
        """Whether `module`'s file (any file of a package) contains `name` at all: star imports
        (`from .models import *`) reach every model of a release, and this keeps a lookup from
        parsing them (one text scan of the release per name, about 0.3 s)."""
        path = module_file(self.package, module)
        if path is None:
            return False
        if name not in self._mentions:
            needle = name.encode()
            self._mentions[name] = {p for p in self.package.rglob("*.py") if needle in p.read_bytes()}
        if path.name != "__init__.py":
            return path in self._mentions[name]
        return any(path.parent in hit.parents for hit in self._mentions[name])

    def classes(self, name: str, prefer: tuple[str, ...] = ()) -> Iterator[tuple[str, str, Doc]]:
        """(module, class name, class doc) of classes called `name` (aliases followed),
        those in `prefer` modules first, then the core modules that define one; lazily, so
        a caller that takes the first one scans nothing else."""
        seen = set()
        for module in self._preferred_then_mentioning(prefer, (f"class {name}", f"{name} =")):
            if module in seen:
                continue
            seen.add(module)
            doc = self.module(module)
            real = doc["names"].get(name, {}).get("alias", name) if doc else name
            if doc and real in doc["classes"]:
                yield module, real, doc["classes"][real]

    def _preferred_then_mentioning(self, prefer: tuple[str, ...], needles: tuple[str, ...]) -> Iterator[str]:
        yield from (m for m in prefer if self.has_module(m))
        yield from self.mentioning(needles)

    def lineage(self, module: str, name: str) -> list[tuple[str, str, Doc]]:
        """The class and its transformers base classes, nearest first (like an MRO)."""
        order: list[tuple[str, str, Doc]] = []
        queue = [(module, name)]
        while queue and len(order) < 40:
            current_module, current = queue.pop(0)
            doc = self.module(current_module)
            if doc is None or current not in doc["classes"] or (current_module, current) in [o[:2] for o in order]:
                continue
            cls = doc["classes"][current]
            order.append((current_module, current, cls))
            queue.extend(base for text in cls["bases"] if (base := self._resolve_base(current_module, text)))
        return order

    def defining(self, module: str, name: str) -> Found | None:
        """Where `from <module> import <name>` leads once imports and re-exports are followed."""
        found = self.exported(module, name)
        for _ in range(_MAX_HOPS):
            if found is None or found.entry["kind"] != "import":
                return found
            target = found.entry.get("target", "")
            if not target.startswith(self.package.name):
                return found
            found = self.exported(target, found.entry.get("name", found.name))
        return found

    def _resolve_base(self, module: str, text: str) -> tuple[str, str] | None:
        """A base class as a class statement spells it (`Cache`, `modeling_utils.PreTrainedModel`)."""
        *path, short = text.split("[", 1)[0].split(".")
        doc = self.module(module)
        if doc is None:
            return None
        if not path and short in doc["classes"]:
            return module, short
        found = self.defining(module, path[0] if path else short)
        if found and path and found.entry["kind"] == "module":  # `from . import modeling_utils`
            found = self.defining(f"{found.module}.{found.name}", short)
        if found and found.entry["kind"] == "class":
            return found.module, found.name
        return None

    def member(self, module: str, cls: str, name: str) -> Found | None:
        """`name` as `cls` has it, defined on the class itself or inherited."""
        for defining_module, owner, doc in self.lineage(module, cls):
            entry = doc["members"].get(name)
            module_doc = self.module(defining_module)
            if entry is not None and module_doc is not None:
                via = cls if owner != cls else None
                return Found(self.version, defining_module, owner, name, entry, module_doc["file"], via)
        return None

    def find_member(self, module: str, cls: str, name: str) -> Found | None:
        """`cls.name`, wherever `cls` lives in this release (`module` first)."""
        for found_module, found_cls, _ in self.classes(cls, prefer=(module,)):
            found = self.member(found_module, found_cls, name)
            if found is not None:
                return found
        return None

    def function(self, module: str, name: str) -> Found | None:
        """A function or method called `name` in `module` (module level first)."""
        found = self.exported(module, name)
        if found and found.entry["kind"] == "function":
            return found
        members = self.members_named(name, [module]) if self.has_module(module) else []
        return next((m for m in members if m.entry["kind"] in ("method", "property")), None)

    def definitions(self, name: str, modules: list[str] | None = None) -> list[Found]:
        """Where `name` is defined at module level (not merely imported)."""
        found = []
        for module in self.mentioning((f"def {name}(", f"class {name}", f"{name} =", f"{name}:"), modules):
            doc = self.module(module)
            entry = doc["names"].get(name) if doc else None
            if doc and entry and entry["kind"] in ("function", "class", "assign"):
                found.append(Found(self.version, module, None, name, entry, doc["file"]))
        return found

    def members_named(self, name: str, modules: list[str] | None = None) -> list[Found]:
        """Every class member called `name`, in the core modules (or `modules`)."""
        found = []
        for module in self.mentioning((f"def {name}(", f"self.{name}", f"{name} =", f"{name}:"), modules):
            doc = self.module(module)
            if doc is None:
                continue
            for owner, cls in doc["classes"].items():
                if name in cls["members"]:
                    found.append(Found(self.version, module, owner, name, cls["members"][name], doc["file"]))
        return found

    def class_members(self, module: str, cls: str) -> list[Found]:
        """The members `cls` defines itself, wherever it lives in this release."""
        for found_module, found_cls, doc in itertools.islice(self.classes(cls, prefer=(module,)), 1):
            file = (self.module(found_module) or {}).get("file", "")
            return [Found(self.version, found_module, found_cls, n, e, file) for n, e in doc["members"].items()]
        return []

    def module_level(self, module: str) -> list[Found]:
        """The functions, classes and assignments `module` defines itself."""
        doc = self.module(module)
        if doc is None:
            return []
        kinds = ("function", "class", "assign")
        return [
            Found(self.version, module, None, n, e, doc["file"]) for n, e in doc["names"].items() if e["kind"] in kinds
        ]

    def source(self, found: Found) -> list[str]:
        """The lines of a function, method or class, as the release's file has them."""
        path = self.package.parent / found.file
        start, end = found.entry.get("line"), found.entry.get("end") or found.entry.get("line")
        if not start:
            return []
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        return lines[start - 1 : end]
