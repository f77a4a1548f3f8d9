"""The sources point the search: the releases where something the model's own code uses changed.

Old remote code breaks where transformers removes, renames or changes what it leans on: a
name it imports, a private method it calls on `self` (`_extract_past_from_model_output`),
a private method it overrides and transformers calls (`_pad`), a config attribute it reads
that its own config class does not set while `PretrainedConfig` did (`use_cache`, gone
from its defaults in 5.0). So before probing, the model's own `.py` files are read with
`ast` for those uses, and each use's state is read from the releases' sources with the
symbol index (`matrix.diagnosis.symbols`, read only): an import is there or not; a method
has its parameters and, for a private method the model calls, its body (a change of what
it returns is a change of contract). The releases where the combined state changes are
candidate edges: the window search probes both sides of each before halving
(`matrix.first_bad`, which gets them as data and imports nothing of this).

Finding the changes is itself a binary search over the line, one per change (a few
releases' sources, about 1 s each from uv's cache); the edges are kept under
`<cache>/bisect/pointers/`, so a warm rerun reads no source.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matrix.bisect.cache import digest
from matrix.diagnosis.symbols.api_lookup import Release
from matrix.diagnosis.symbols.sources import SourceShelf
from matrix.first_bad import Edge
from probes.record import write_json_atomic

POINTERS_SCHEMA = 2  # 2: config attributes the model reads
CONFIG_BASE = ("transformers.configuration_utils", "PretrainedConfig")
# The transformers classes a model's own classes get their private methods from.
BASES = (
    ("transformers.modeling_utils", "PreTrainedModel"),
    ("transformers.generation.utils", "GenerationMixin"),
    ("transformers.tokenization_utils", "PreTrainedTokenizer"),
    ("transformers.tokenization_utils_base", "PreTrainedTokenizerBase"),
    ("transformers.configuration_utils", "PretrainedConfig"),
)


@dataclass(frozen=True, order=True)
class Use:
    """One thing the model's code takes from transformers: `import` (module, name), `call` or `override`."""

    kind: str
    module: str
    name: str


def uses_in(files: list[Path]) -> list[Use]:
    """What the files import from transformers, the private methods they call on `self` or
    override, and the config attributes they read that no config class of theirs sets."""
    found: set[Use] = set()
    trees = []
    for path in files:
        try:
            trees.append(ast.parse(path.read_text(encoding="utf-8", errors="replace")))
        except (OSError, SyntaxError, ValueError):
            continue
    config_sets = {name for tree in trees for name in _config_class_sets(tree)}
    for tree in trees:
        own = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        found.update(Use("config", "", name) for name in _config_reads(tree) - config_sets)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "transformers":
                found.update(Use("import", str(node.module), alias.name) for alias in node.names if alias.name != "*")
            elif isinstance(node, ast.ClassDef):
                methods = [n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
                found.update(Use("override", "", name) for name in methods if _private(name))
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                target, name = node.func.value, node.func.attr
                if isinstance(target, ast.Name) and target.id == "self" and _private(name) and name not in own:
                    found.add(Use("call", "", name))
    return sorted(found)


def _config_class_sets(tree: ast.Module) -> set[str]:
    """The attributes the model's own config classes (named *Config) set on `self`."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name.endswith("Config"):
            for target in ast.walk(node):
                if not (isinstance(target, ast.Attribute) and isinstance(target.ctx, ast.Store)):
                    continue
                if isinstance(target.value, ast.Name) and target.value.id == "self":
                    found.add(target.attr)
    return found


def _config_reads(tree: ast.Module) -> set[str]:
    """`config.X` and `self.config.X` read anywhere in the model's code."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            owner = node.value
            named = isinstance(owner, ast.Name) and owner.id == "config"
            on_self = isinstance(owner, ast.Attribute) and owner.attr == "config" and isinstance(owner.value, ast.Name)
            if (named or on_self) and not node.attr.startswith("_"):
                found.add(node.attr)
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def state(release: Release, use: Use) -> Hashable:
    """What the release offers for one use (None: it does not have it)."""
    if use.kind == "import":
        return release.exported(use.module, use.name) is not None
    if use.kind == "config":  # does the base config class still provide it?
        module, cls = CONFIG_BASE
        return release.has_module(module) and release.member(module, cls, use.name) is not None
    for module, cls in BASES:
        found = release.member(module, cls, use.name) if release.has_module(module) else None
        if found is None:
            continue
        if use.kind == "override":
            return tuple(found.parameters)
        body = "\n".join(line.strip() for line in release.source(found))
        return tuple(found.parameters), hashlib.sha256(body.encode()).hexdigest()[:16]
    return None


def changes(line: list[str], state_of: Callable[[str], Hashable | None]) -> list[Edge]:
    """Every (last release before, first release with) a change of state along `line`, oldest first.

    A binary search per change (the state is taken to hold between two releases that
    agree); a release whose sources cannot be read (None) is left out of the line.
    """
    line, known, edges = list(line), {}, []

    def at(index: int) -> Hashable | None:
        if line[index] not in known:
            known[line[index]] = state_of(line[index])
        return known[line[index]]

    lo = 0
    while lo < len(line) and at(lo) is None:
        lo += 1
    while lo < len(line) - 1:
        hi = len(line) - 1
        if at(hi) is None:
            line.pop(hi)
            continue
        if at(hi) == at(lo):
            break
        a, b = lo, hi
        while b - a > 1:
            middle = (a + b) // 2
            if at(middle) is None:
                line.pop(middle)
                b -= 1
                continue
            a, b = (middle, b) if at(middle) == at(lo) else (a, middle)
        edges.append((line[a], line[b]))
        lo = b
    return edges


def candidate_edges(files: list[Path], line: list[str], cache: Path) -> dict[str, Any]:
    """{"edges", "uses", "read", "seconds"}: the line's candidate edges for the model's code (cached)."""
    start = time.perf_counter()
    uses = uses_in(files)
    if not uses or len(line) < 2:
        return {"edges": [], "uses": len(uses), "read": 0, "seconds": 0.0}
    key = digest({"schema": POINTERS_SCHEMA, "uses": [list(dataclasses_tuple(u)) for u in uses], "line": line})
    store = cache / "bisect" / "pointers" / f"{key[:32]}.json"
    with contextlib.suppress(OSError, ValueError):
        saved = json.loads(store.read_text(encoding="utf-8"))
        return {**saved, "read": 0, "seconds": round(time.perf_counter() - start, 2), "cached": True}
    shelf = SourceShelf(cache)

    def state_of(version: str) -> Hashable | None:
        release = shelf.release(version)
        return None if release is None else tuple(state(release, use) for use in uses)

    edges = changes(line, state_of)
    found = {"edges": [list(edge) for edge in edges], "uses": len(uses)}
    with contextlib.suppress(OSError):
        write_json_atomic(store, found)
    return {**found, "read": len(shelf.read), "seconds": round(time.perf_counter() - start, 2), "cached": False}


def dataclasses_tuple(use: Use) -> tuple[str, str, str]:
    return use.kind, use.module, use.name
