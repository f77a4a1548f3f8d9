"""Imports point down: each module of matrix/ and probes/ imports only its own layer or lower.

The layers, from the bottom: the probes (which never import the host library), the ground
modules every layer shares, then envs, results, judge, diagnosis, bisect, newest,
recommend, history, report, and the entry points on top. Every import counts, those
inside functions and `if TYPE_CHECKING:` blocks too: a deferred import is still an edge.
Besides the order, the import graph has no circle (two modules of one layer may import
each other's names only one way).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("matrix", "probes")

LAYERS = (
    "probes",
    "ground",
    "envs",
    "results",
    "judge",
    "diagnosis",
    "bisect",
    "newest",
    "recommend",
    "history",
    "report",
    "entry",
)
# A module's layer: the first pattern its root-relative path matches ("folder/*.py": a file
# of that folder; "folder/**/*.py": a file anywhere under it; else the path itself).
_PLACES: tuple[tuple[str, str], ...] = (
    ("probes/**/*.py", "probes"),
    ("matrix/__init__.py", "ground"),
    ("matrix/config.py", "ground"),
    ("matrix/config/*.py", "ground"),
    ("matrix/team_code.py", "ground"),
    ("matrix/releases.py", "ground"),
    ("matrix/proc.py", "ground"),
    ("matrix/signature.py", "ground"),
    ("matrix/first_bad.py", "ground"),
    ("matrix/known_breaks.py", "ground"),
    ("matrix/exit_codes.py", "ground"),
    ("matrix/envs/*.py", "envs"),
    ("matrix/results/*.py", "results"),
    ("matrix/judge/*.py", "judge"),
    ("matrix/diagnosis/**/*.py", "diagnosis"),
    ("matrix/bisect/*.py", "bisect"),
    ("matrix/newest/*.py", "newest"),
    ("matrix/recommend.py", "recommend"),
    ("matrix/recommend_lines.py", "recommend"),
    ("matrix/history/*.py", "history"),
    ("matrix/report/*.py", "report"),
    ("matrix/__main__.py", "entry"),
    ("matrix/pipeline.py", "entry"),
    ("matrix/cli.py", "entry"),
    ("matrix/init.py", "entry"),
    ("matrix/sessions.py", "entry"),
    ("matrix/starter/*.py", "entry"),
)


def layer_of(relative: str) -> str | None:
    """The layer of the module at this root-relative path, or None when none is set."""
    for pattern, layer in _PLACES:
        if pattern.endswith("/**/*.py"):
            if relative.startswith(pattern.removesuffix("**/*.py")):
                return layer
        elif pattern.endswith("/*.py"):
            if Path(relative).parent.as_posix() == pattern.removesuffix("/*.py"):
                return layer
        elif relative == pattern:
            return layer
    return None


@dataclass(frozen=True)
class Edge:
    """One import: the importing file, its line, and the project module it reaches."""

    source: str
    line: int
    target: str


def module_name(relative: str) -> str:
    """`matrix/envs/run.py` -> `matrix.envs.run`; a package's `__init__.py` -> the package."""
    parts = list(Path(relative).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def module_file(name: str, files: set[str]) -> str | None:
    """The root-relative file of a project module, or None when it is no module of ours."""
    base = name.replace(".", "/")
    for candidate in (f"{base}.py", f"{base}/__init__.py"):
        if candidate in files:
            return candidate
    return None


def imports(relative: str, source: str, files: set[str]) -> list[Edge]:
    """Every project module the source imports, wherever the import statement stands.

    `from package import name` reaches the submodule `package.name` when there is one
    (that is what it loads), else the package itself."""
    here = module_name(relative)
    package = here if relative.endswith("__init__.py") else here.rpartition(".")[0]
    edges: list[Edge] = []
    for node in ast.walk(ast.parse(source, filename=relative)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names = []
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                names.append(submodule if module_file(submodule, files) else base)
        else:
            continue
        for name in names:
            # `import a.b.c` loads a, a.b and a.b.c: the deepest one of ours is the edge
            parts = name.split(".")
            for cut in range(len(parts), 0, -1):
                target = module_file(".".join(parts[:cut]), files)
                if target is not None:
                    if target != relative:
                        edges.append(Edge(relative, node.lineno, target))
                    break
    return edges


def forbidden(edges: list[Edge]) -> list[str]:
    """The edges that point up, each in words naming the file, the line and both layers."""
    problems = []
    for edge in edges:
        source, target = layer_of(edge.source), layer_of(edge.target)
        if source is None or target is None:
            unplaced = edge.source if source is None else edge.target
            problems.append(f"{edge.source}:{edge.line}: {unplaced} has no layer (add it to _PLACES)")
        elif LAYERS.index(target) > LAYERS.index(source):
            problems.append(
                f"{edge.source}:{edge.line}: imports {edge.target} ({target}, layer {LAYERS.index(target)}) "
                f"from {source} (layer {LAYERS.index(source)}): imports must point down"
            )
    return problems


def circles(edges: list[Edge]) -> list[list[str]]:
    """The import circles of the graph (each once, as the files along it)."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)
    found: list[list[str]] = []
    seen: set[frozenset[str]] = set()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                loop = path[path.index(nxt) :]
                if frozenset(loop) not in seen:
                    seen.add(frozenset(loop))
                    found.append([*loop, nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def _files() -> list[str]:
    return sorted(path.relative_to(ROOT).as_posix() for top in SCANNED for path in (ROOT / top).rglob("*.py"))


FILES = _files()
ALL = set(FILES)


def _edges(relative: str) -> list[Edge]:
    return imports(relative, (ROOT / relative).read_text(encoding="utf-8"), ALL)


@pytest.mark.parametrize("relative", FILES)
def test_imports_point_down(relative: str) -> None:
    assert layer_of(relative) is not None, f"{relative} has no layer: add it to _PLACES in {Path(__file__).name}"
    problems = forbidden(_edges(relative))
    assert not problems, "\n".join(problems)


def test_no_import_circles() -> None:
    edges = [edge for relative in FILES for edge in _edges(relative)]
    loops = circles(edges)
    assert not loops, "\n".join(" -> ".join(loop) for loop in loops)


def test_every_layer_is_used() -> None:
    assert {layer_of(relative) for relative in FILES} == set(LAYERS)


# The checker itself: an upward edge, a deferred one, a relative one, a circle are caught.
_FAKE = {
    "matrix/__init__.py",
    "matrix/config.py",
    "matrix/recommend.py",
    "matrix/newest/__init__.py",
    "matrix/newest/confirm.py",
    "matrix/diagnosis/__init__.py",
    "matrix/diagnosis/table.py",
    "matrix/diagnosis/symbols/__init__.py",
    "matrix/diagnosis/symbols/history.py",
    "matrix/diagnosis/symbols/explain.py",
    "probes/__init__.py",
    "probes/record.py",
}


def test_an_upward_import_inside_a_function_is_caught() -> None:
    source = "import json\n\ndef load():\n    from matrix.diagnosis.table import load_known_breaks\n"
    problems = forbidden(imports("matrix/config.py", source, _FAKE))
    assert problems == [
        "matrix/config.py:4: imports matrix/diagnosis/table.py (diagnosis, layer 5) from ground (layer 1): "
        "imports must point down"
    ]


@pytest.mark.parametrize(
    ("relative", "source", "target"),
    [
        ("matrix/newest/confirm.py", "from matrix.recommend import serves\n", "matrix/recommend.py"),
        ("matrix/newest/confirm.py", "import matrix.recommend\n", "matrix/recommend.py"),
        ("matrix/newest/confirm.py", "from .. import recommend\n", "matrix/recommend.py"),
        ("probes/record.py", "import matrix\n", "matrix/__init__.py"),
        (
            "probes/record.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import matrix.config\n",
            "matrix/config.py",
        ),
    ],
)
def test_planted_upward_edges_are_caught(relative: str, source: str, target: str) -> None:
    problems = forbidden(imports(relative, source, _FAKE))
    assert len(problems) == 1 and f"imports {target} " in problems[0], problems


def test_downward_and_outside_imports_pass() -> None:
    source = "import os\nimport packaging.version\nfrom matrix import config\nfrom probes.record import x\n"
    edges = imports("matrix/recommend.py", source, _FAKE)
    assert [edge.target for edge in edges] == ["matrix/config.py", "probes/record.py"]
    assert forbidden(edges) == []


def test_a_circle_is_caught() -> None:
    history = "from matrix.diagnosis.symbols import explain\n"
    explain = "def f():\n    from matrix.diagnosis.symbols.history import Edge\n"
    edges = imports("matrix/diagnosis/symbols/history.py", history, _FAKE)
    edges += imports("matrix/diagnosis/symbols/explain.py", explain, _FAKE)
    assert forbidden(edges) == []  # one layer: only the circle check sees it
    assert circles(edges) == [
        [
            "matrix/diagnosis/symbols/explain.py",
            "matrix/diagnosis/symbols/history.py",
            "matrix/diagnosis/symbols/explain.py",
        ]
    ]


def test_a_module_without_a_layer_is_reported() -> None:
    assert layer_of("matrix/brand_new.py") is None
    problems = forbidden([Edge("matrix/recommend.py", 1, "matrix/brand_new.py")])
    assert problems == ["matrix/recommend.py:1: matrix/brand_new.py has no layer (add it to _PLACES)"]
