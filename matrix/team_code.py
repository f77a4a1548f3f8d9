"""The team's own code a config names: probe scripts and shims, checked on the host.

A config can point at Python files beside it (`probes = ["checks/rag.py"]`, `shims =
["fixes/rope.py:fix_rope"]`). They run inside every env (`probes/team.py`); the host, which
has no torch, checks them statically with `ast` when the config loads, so a typo is one
config error naming the file, table and key, not a failed cell in every env:

- the path is a `.py` file inside the config's folder (a path that climbs out is refused:
  the config's folder is what a team keeps in its repository);
- a probe script defines `def probe(model, tokenizer, ctx)` at top level;
- a shim file defines the named function with two positional parameters `(model,
  tokenizer)`; a module-level `fix_rope.stage = "tokenizer"` says it must run as soon as
  the tokenizer loads (default "model": after the model loads).

Each file's sha256 travels with the plan, so the bisect's cached facts change when the
team's code does.
"""

from __future__ import annotations

import ast
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

PROBE_FUNCTION = "probe"
PROBE_PARAMETERS = ("model", "tokenizer", "ctx")
SHIM_PARAMETERS = ("model", "tokenizer")
SHIM_STAGES = ("model", "tokenizer")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class TeamCodeError(ValueError):
    """A probe script or shim the config names cannot be used; the message says why."""


@dataclass(frozen=True)
class TeamFile:
    """One function in a file of the team's: where it is and what it says of itself."""

    name: str  # how the matrix names it: the probe script's stem, or the shim's function with '-' for '_'
    path: str  # absolute
    function: str
    sha256: str
    stage: str = "model"

    def to_plan(self) -> dict[str, str]:
        """What the runner needs inside the env (the hash makes the bisect's cache keys move with it)."""
        keys = ("name", "path", "function", "stage", "sha256")
        return {key: getattr(self, key) for key in keys}


def probe_script(base: Path, given: str) -> TeamFile:
    """A probe script `given` (relative to `base`, the config's folder), checked."""
    path, tree = _read(base, given)
    function = _function(tree, PROBE_FUNCTION, given)
    _check_parameters(function, PROBE_PARAMETERS, given)
    if not _IDENTIFIER.match(path.stem):
        raise TeamCodeError(f"{given!r}: a probe is named after its file: use letters, digits and '_' in the name")
    return TeamFile(path.stem, str(path), PROBE_FUNCTION, _sha256(path))


def shim(base: Path, given: str) -> TeamFile:
    """A shim `file.py:function` (the file relative to `base`), checked, with its declared stage."""
    file_part, _, function_name = given.rpartition(":")
    if not file_part:
        raise TeamCodeError(f"{given!r} is not a built-in shim's name or 'file.py:function'")
    if not _IDENTIFIER.match(function_name):
        raise TeamCodeError(f"{given!r}: {function_name!r} after the ':' is not a Python function name")
    path, tree = _read(base, file_part)
    function = _function(tree, function_name, file_part)
    _check_parameters(function, SHIM_PARAMETERS, f"{file_part}:{function_name}")
    stage = _declared_stage(tree, function_name, file_part)
    name = function_name.strip("_").replace("_", "-")
    return TeamFile(name, str(path), function_name, _sha256(path), stage)


def _read(base: Path, given: str) -> tuple[Path, ast.Module]:
    if not given.endswith(".py"):
        raise TeamCodeError(f"{given!r} is not a .py file")
    base = base.resolve()
    path = (base / given).resolve()
    if not path.is_relative_to(base):
        raise TeamCodeError(f"{given!r} is outside the config's folder {base}: keep the team's code beside its config")
    if not path.is_file():
        raise TeamCodeError(f"file {given!r} does not exist (relative paths start at {base})")
    try:
        source = path.read_text(encoding="utf-8-sig")  # Python reads a file that starts with a BOM too
        return path, ast.parse(source, filename=str(path))
    except (OSError, UnicodeDecodeError) as error:
        raise TeamCodeError(f"cannot read {given!r}: {error}") from None
    except SyntaxError as error:
        raise TeamCodeError(f"{given!r} line {error.lineno}: not valid Python: {error.msg}") from None


def _function(tree: ast.Module, name: str, file: str) -> ast.FunctionDef:
    """The file's top-level definition of `name`: the last one, as importing the file would leave it."""
    for node in reversed(tree.body):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
        if isinstance(node, ast.AsyncFunctionDef) and node.name == name:
            raise TeamCodeError(f"{file}: {name}() is async; define it with plain `def`")
    defined = [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]
    known = f" (it defines: {', '.join(defined)})" if defined else ""
    raise TeamCodeError(f"{file} defines no top-level function {name}(){known}")


def _check_parameters(function: ast.FunctionDef, wanted: tuple[str, ...], where: str) -> None:
    """Exactly `len(wanted)` positional parameters without defaults (names are free), nothing
    else that is required: the runner calls it with those arguments, positionally."""
    arguments = function.args
    positional = [*arguments.posonlyargs, *arguments.args]
    required_keywords = [a.arg for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True) if d is None]
    required = len(positional) - len(arguments.defaults)
    accepts = required <= len(wanted) and (len(positional) >= len(wanted) or arguments.vararg is not None)
    if not accepts or required_keywords:
        found = ", ".join(a.arg for a in positional) or "no parameters"
        raise TeamCodeError(
            f"{where}: def {function.name}({found}) must take ({', '.join(wanted)}): it is called with those "
            f"{len(wanted)} arguments"
        )


def _declared_stage(tree: ast.Module, function: str, file: str) -> str:
    """`function.stage = "tokenizer"` at the file's top level, else "model"."""
    stage = "model"
    for node in tree.body:
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            if (
                isinstance(target, ast.Attribute)
                and target.attr == "stage"
                and isinstance(target.value, ast.Name)
                and target.value.id == function
            ):
                value = node.value.value if isinstance(node.value, ast.Constant) else None
                if value not in SHIM_STAGES:
                    raise TeamCodeError(
                        f"{file}: {function}.stage must be one of {', '.join(map(repr, SHIM_STAGES))}, "
                        f"not {ast.unparse(node.value)}"
                    )
                stage = str(value)
    return stage


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
