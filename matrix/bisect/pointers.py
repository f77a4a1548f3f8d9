"""The sources point the search: the releases where something the model's own code uses changed.

Old remote code breaks where transformers removes, renames or changes what it leans on: a
name it imports, a private method it calls on `self` (`_extract_past_from_model_output`),
a private method it overrides and transformers calls (`_pad`), a config attribute it reads
that its own config class does not set and the base config handles (`use_cache`, which
5.0 starts treating as a generation parameter). Transformers' own code breaks it too, by
reading from the model's config an attribute the model's config never had: generate's
default cache reads `config.num_hidden_layers` without a fallback since 4.56.0, where
ChatGLM's config calls it `num_layers`. So for a model that generates, the members
generate enters on every call (`GENERATE_PATH`) are read for the config attributes they
take without `getattr` or `hasattr`, less those the model's config classes set and the
base config provides; the set of what is left is one more state along the line.

Before probing, then, the model's own `.py` files are read with `ast` for those uses, and
each use's state is read from the releases' sources with the symbol index
(`matrix.diagnosis.symbols`, read only): an import is there or not; a method has its
parameters and, for a private method the model calls, its body (a change of what it
returns is a change of contract). The releases where the combined state changes are
candidate edges: the window search probes both sides of each before halving
(`matrix.first_bad`, which gets them as data and imports nothing of this).

Finding the changes is itself a binary search over the line, one per change (a few
releases' sources, about 1 s each from uv's cache); the edges are kept under
`<cache>/bisect/pointers/`, so a warm rerun reads no source.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import json
import textwrap
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

POINTERS_SCHEMA = 3  # 2: config attributes the model reads; 3: those generate reads
CONFIG_MODULE = "transformers.configuration_utils"
CONFIG_BASES = ("PreTrainedConfig", "PretrainedConfig")  # the base config class, as 5.x and 4.x name it
# The transformers classes a model's own classes get their private methods from.
BASES = (
    ("transformers.modeling_utils", "PreTrainedModel"),
    ("transformers.generation.utils", "GenerationMixin"),
    ("transformers.tokenization_utils", "PreTrainedTokenizer"),
    ("transformers.tokenization_utils_base", "PreTrainedTokenizerBase"),
    ("transformers.configuration_utils", "PretrainedConfig"),
)


# What `generate` enters on every call of a greedy decode (a name a release lacks is skipped):
# its own steps and the default cache it builds; what they read from the model's config.
GENERATE_PATH = (
    *(
        ("transformers.generation.utils", "GenerationMixin", name)
        for name in (
            "generate",
            "_sample",
            "_prepare_generation_config",
            "_prepare_special_tokens",
            "_prepare_model_inputs",
            "_validate_model_kwargs",
            "_prepare_cache_for_generation",
            "_get_initial_cache_position",
            "_update_model_kwargs_for_generation",
            "prepare_inputs_for_generation",
        )
    ),
    ("transformers.cache_utils", "DynamicCache", "__init__"),
)
GENERATE_READS = "generate-reads"  # the Use kind whose state is that set of attributes


@dataclass(frozen=True, order=True)
class Use:
    """One thing the model's code takes from transformers: `import` (module, name), `call` or `override`."""

    kind: str
    module: str
    name: str


def uses_in(files: list[Path], generates: bool = False) -> list[Use]:
    """What the files import from transformers, the private methods they call on `self` or
    override, and the config attributes they read that no config class of theirs sets;
    for a model that `generates`, also the attributes generate reads that none of them sets
    (one Use: `GENERATE_READS`, its name the attributes they set, comma-separated)."""
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
    if generates and trees:
        found.add(Use(GENERATE_READS, "", ",".join(sorted(config_sets))))
    return sorted(found)


def _config_class_sets(tree: ast.Module) -> set[str]:
    """The attributes the model's own config classes (named *Config) set on `self`, declare
    in their body or map with `attribute_map`."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name.endswith("Config"):
            found |= _self_stores(node) | _declared(node)
            for item in node.body:
                if not (isinstance(item, ast.Assign) and isinstance(item.value, ast.Dict)):
                    continue
                if "attribute_map" in [getattr(t, "id", "") for t in item.targets]:
                    found |= {str(k.value) for k in item.value.keys if isinstance(k, ast.Constant)}
    return found


def _self_stores(node: ast.AST) -> set[str]:
    """The attributes `node` sets on `self`."""
    return {
        target.attr
        for target in ast.walk(node)
        if isinstance(target, ast.Attribute) and isinstance(target.ctx, ast.Store)
        if isinstance(target.value, ast.Name) and target.value.id == "self"
    }


def _declared(cls: ast.ClassDef) -> set[str]:
    """Names a class body assigns or annotates (a dataclass-style config's fields)."""
    found = set()
    for item in cls.body:
        if isinstance(item, ast.Assign):
            found |= {t.id for t in item.targets if isinstance(t, ast.Name)}
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            found.add(item.target.id)
    return found


def config_reads_without_fallback(source: str) -> set[str]:
    """The attributes a function of transformers reads from a config with no fallback:
    `config.X`, `self.config.X`, `<config>.get_text_config().X` and names bound to those,
    less the methods it calls and any X it also asks `getattr`/`hasattr` about."""
    try:
        tree = ast.parse(textwrap.dedent(source))
    except (SyntaxError, ValueError):
        return set()
    nodes = list(ast.walk(tree))
    guarded = {
        node.args[1].value
        for node in nodes
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")
        if len(node.args) > 1 and isinstance(node.args[1], ast.Constant)
    }
    aliases = {"config"}
    for node in nodes:  # `decoder_config = self.config.get_text_config()`
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            aliases |= {node.targets[0].id} if _is_config(node.value, aliases) else set()
    called = {id(node.func) for node in nodes if isinstance(node, ast.Call)}
    return {
        node.attr
        for node in nodes
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load) and id(node) not in called
        if not node.attr.startswith("_") and node.attr not in guarded and _is_config(node.value, aliases)
    }


def _is_config(node: ast.expr, aliases: set[str]) -> bool:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get_text_config":
        node = node.func.value
    if isinstance(node, ast.Name):
        return node.id in aliases
    return isinstance(node, ast.Attribute) and node.attr == "config"


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
    if use.kind == "config":  # does the base config class still provide it, and how?
        return _config_state(release, use.name)
    if use.kind == GENERATE_READS:
        read: set[str] = set()
        for module, cls, name in GENERATE_PATH:
            found = release.member(module, cls, name) if release.has_module(module) else None
            if found is not None:
                read |= config_reads_without_fallback("\n".join(release.source(found)))
        return frozenset(read - set(use.name.split(",")) - _base_config(release)[0])
    for module, cls in BASES:
        found = release.member(module, cls, use.name) if release.has_module(module) else None
        if found is None:
            continue
        if use.kind == "override":
            return tuple(found.parameters)
        body = "\n".join(line.strip() for line in release.source(found))
        return tuple(found.parameters), hashlib.sha256(body.encode()).hexdigest()[:16]
    return None


@functools.lru_cache(maxsize=8)
def _base_config(release: Release) -> tuple[set[str], list[str], ast.ClassDef | None]:
    """The release's base config class: what it provides (its members, the attributes its
    body declares and those it sets on `self`), its source lines and its tree; parsed once
    per release, though every config use of the model asks it."""
    for cls in CONFIG_BASES:
        found = release.exported(CONFIG_MODULE, cls) if release.has_module(CONFIG_MODULE) else None
        if found is None or found.entry.get("kind") != "class":
            continue
        lines = textwrap.dedent("\n".join(release.source(found))).splitlines()
        try:
            node = ast.parse("\n".join(lines)).body[0]
        except (SyntaxError, ValueError, IndexError):
            return set(), [], None
        if isinstance(node, ast.ClassDef):
            methods = {n.name for n in ast.walk(node) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
            return _declared(node) | methods | _self_stores(node), lines, node
    return set(), [], None


def _config_state(release: Release, name: str) -> Hashable:
    """Whether the base config provides `name`, and the code lines of it that name it (as
    an attribute, a parameter, a key): a release that starts treating a config key apart
    changes them (5.0 moves the generation parameters out of the config and names
    `use_cache` as the one left in it)."""
    provided, lines, node = _base_config(release)
    if node is None:
        return False, ()
    named = {
        n.lineno
        for n in ast.walk(node)
        if (isinstance(n, ast.Attribute) and n.attr == name)
        or (isinstance(n, ast.arg) and n.arg == name)
        or (isinstance(n, ast.Constant) and n.value == name)
        or (isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name) and n.target.id == name)
    }
    return name in provided, tuple(sorted({lines[i - 1].strip() for i in named}))


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


def candidate_edges(files: list[Path], line: list[str], cache: Path, generates: bool = False) -> dict[str, Any]:
    """{"edges", "uses", "read", "seconds"}: the line's candidate edges for the model's code
    (cached); `generates`: the model's probe runs generate (GENERATE_PATH counts)."""
    start = time.perf_counter()
    uses = uses_in(files, generates)
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
