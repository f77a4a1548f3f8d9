"""What one transformers release defines, read with `ast` and cached as JSON per module.

Symbol history asks "does release R have Y, where, with which parameters, and did it warn
that Y is deprecated?". The answer for one module is a small JSON document: its top-level
names (functions with their signatures, classes, assignments, imports, the names a lazy
`_import_structure` or a star import makes importable), each class's members (methods
with signatures, class attributes, the `self.x` attributes its methods set), each with
its line range, and the text of every deprecation warning a function or the module body
emits. Documents live under `<cache>/sources/index/<version>/<module>.json`, so a second
question about a release parses nothing.

Why `ast` and not griffe (measured on the 228 modules outside `transformers/models/` of
4.48.3 and the 216 of 5.0.0, best of 3, 2 CPUs): `griffe.visit` takes 0.8 s per release
against 0.5 s for `ast.parse` of the same files, and this whole index 0.6 s (0.75 s with
its JSON). griffe keeps no function bodies, while the deprecation messages live in them
(as do the `_import_structure` lazy tables and the calls the traceback layer compares):
griffe would mean parsing every file twice, into a model we would serialise ourselves.
Reading an index back takes 0.02 s per release. A question indexes only the modules it names
and those that mention its name (`api_lookup`): a first question 0.2-0.5 s, a repeat 0.01-0.1 s.
"""

from __future__ import annotations

import ast
import contextlib
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from probes.record import write_json_atomic

SCHEMA = 2
# transformers/models/ holds one package per architecture (thousands of files); a failure
# names the few it needs. utils/dummy_*_objects.py define placeholders for every class that
# needs an optional backend: never where a name really lives.
_NOT_CORE = ("models/", "utils/dummy_")
_WARNING_CALLS = ("warn", "warning", "warning_once", "warning_advice", "warn_once")
_DEPRECATION_CATEGORIES = {"FutureWarning", "DeprecationWarning", "PendingDeprecationWarning"}

Doc = dict[str, Any]


def module_file(package: Path, module: str) -> Path | None:
    """The file of dotted `module` (`transformers.generation.utils`) in a package folder."""
    parts = module.split(".")
    if parts[0] != package.name:
        return None
    base = package.joinpath(*parts[1:])
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def module_name(package: Path, path: Path) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def core_modules(package: Path) -> list[str]:
    """Every module outside `transformers/models/` (and the backend placeholders), sorted."""
    names = []
    for path in package.rglob("*.py"):
        relative = path.relative_to(package).as_posix()
        if not relative.startswith(_NOT_CORE):
            names.append(module_name(package, path))
    return sorted(names)


def load_module(package: Path, module: str, index_dir: Path) -> Doc | None:
    """The index document of `module` (from the cache, else parsed and cached), or None."""
    cached = index_dir / f"{module}.json"
    with contextlib.suppress(OSError, ValueError):
        doc = json.loads(cached.read_text(encoding="utf-8"))
        if doc.get("schema") == SCHEMA:
            return doc if doc.get("file") else None
    path = module_file(package, module)
    doc = read_module(package, module, path) if path else {"schema": SCHEMA, "module": module, "file": None}
    with contextlib.suppress(OSError):  # a cache that cannot be written is only slower
        write_json_atomic(cached, doc)
    return doc if path else None


def read_module(package: Path, module: str, path: Path) -> Doc:
    """Parse one file into its index document (an unparsable file indexes as empty)."""
    doc: Doc = {"schema": SCHEMA, "module": module, "file": path.relative_to(package.parent).as_posix()}
    doc.update(names={}, classes={}, lazy=[], stars=[], all=None, deprecated=[])
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except (SyntaxError, ValueError):
        return doc
    is_package = path.name == "__init__.py"
    for node in _flatten(tree.body):
        _index_statement(doc, node, module, is_package)
    return doc


def _flatten(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements of a body, with those inside if/try/with blocks (TYPE_CHECKING, fallbacks)."""
    for node in body:
        if isinstance(node, ast.If | ast.Try | ast.With):
            for block in ("body", "orelse", "finalbody"):
                yield from _flatten(getattr(node, block, []))
            for handler in getattr(node, "handlers", []):
                yield from _flatten(handler.body)
        else:
            yield node


def _index_statement(doc: Doc, node: ast.stmt, module: str, is_package: bool) -> None:
    names = doc["names"]
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        names[node.name] = _function(node)[0]
    elif isinstance(node, ast.ClassDef):
        names[node.name] = {"kind": "class", "line": node.lineno, "end": node.end_lineno}
        doc["classes"][node.name] = _class(node)
    elif isinstance(node, ast.Import | ast.ImportFrom):
        _index_import(doc, node, module, is_package)
    elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for name in _assigned_names(targets):
            if names.get(name, {}).get("kind") in (None, "import"):
                names[name] = {"kind": "assign", "line": node.lineno}
                if isinstance(node.value, ast.Name):  # `OldName = NewName`: an alias a lookup follows
                    names[name]["alias"] = node.value.id
        if "__all__" in _assigned_names(targets) and isinstance(node.value, ast.List | ast.Tuple):
            doc["all"] = _strings(node.value)
        if any(_is_lazy_structure(target) for target in targets):
            doc["lazy"].extend(_strings(node.value) if isinstance(node.value, ast.List | ast.Tuple) else [])
            if isinstance(node.value, ast.Dict):
                doc["lazy"].extend(text for value in node.value.values if value for text in _strings(value))
    elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        call = node.value
        if isinstance(call.func, ast.Attribute) and _is_lazy_structure(call.func.value):
            doc["lazy"].extend(text for arg in call.args for text in _strings(arg))
        elif message := _deprecation(call):
            doc["deprecated"].append(message)


def _is_lazy_structure(node: ast.expr) -> bool:
    """`_import_structure` or `_import_structure[...]`: the table a lazy `__init__` exports from."""
    if isinstance(node, ast.Subscript):
        node = node.value
    return isinstance(node, ast.Name) and node.id == "_import_structure"


def _index_import(doc: Doc, node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> None:
    names = doc["names"]
    if isinstance(node, ast.Import):
        for alias in node.names:
            bound = alias.asname or alias.name.split(".")[0]
            names.setdefault(bound, {"kind": "import", "line": node.lineno, "target": alias.name})
        return
    source = _absolute(node, module, is_package)
    for alias in node.names:
        if alias.name == "*":
            doc["stars"].append(source)
        else:
            entry = {"kind": "import", "line": node.lineno, "target": source, "name": alias.name}
            names.setdefault(alias.asname or alias.name, entry)


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _assigned_names(targets: Sequence[ast.expr]) -> list[str]:
    found = []
    for target in targets:
        if isinstance(target, ast.Name):
            found.append(target.id)
        elif isinstance(target, ast.Tuple | ast.List):
            found.extend(_assigned_names(list(target.elts)))
    return found


def _strings(node: ast.AST) -> list[str]:
    return [item.value for item in ast.walk(node) if isinstance(item, ast.Constant) and isinstance(item.value, str)]


def _class(node: ast.ClassDef) -> Doc:
    members: dict[str, Doc] = {}
    instance_attributes: list[tuple[str, int]] = []
    for item in _flatten(node.body):
        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
            members[item.name], assigned = _function(item, method=True)
            instance_attributes += assigned
        elif isinstance(item, ast.ClassDef):
            members[item.name] = {"kind": "class", "line": item.lineno, "end": item.end_lineno}
        elif isinstance(item, ast.Assign | ast.AnnAssign):
            targets = item.targets if isinstance(item, ast.Assign) else [item.target]
            for name in _assigned_names(targets):
                members.setdefault(name, {"kind": "attribute", "line": item.lineno})
    for name, line in instance_attributes:
        members.setdefault(name, {"kind": "attribute", "line": line})
    bases = [ast.unparse(base) for base in node.bases]
    return {"line": node.lineno, "end": node.end_lineno, "bases": bases, "members": members}


def _function(node: ast.FunctionDef | ast.AsyncFunctionDef, method: bool = False) -> tuple[Doc, list[tuple[str, int]]]:
    """A function's index entry, and the `self.x` attributes (with lines) its body assigns."""
    decorators = [ast.unparse(item) for item in node.decorator_list]
    kind = "property" if method and any(d.endswith("property") for d in decorators) else "method"
    entry: Doc = {"kind": kind if method else "function", "line": node.lineno, "end": node.end_lineno}
    entry["params"] = parameters_of(node.args)
    messages = [text for text in decorators if "deprecat" in text.lower()]
    assigned = []
    for statement in _statements(node.body):
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
            if text := _deprecation(statement.value):
                messages.append(text)
        elif isinstance(statement, ast.Assign | ast.AnnAssign):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            assigned += [(name, statement.lineno) for name in _self_attributes(targets)]
    if messages:
        entry["deprecated"] = messages
    return entry, assigned


def _statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Every statement of a body, into if/for/while/with/try/match blocks and nested defs.

    Statements only, not expressions: a warning is issued by a call statement and an
    attribute set by an assignment, and skipping expressions makes indexing twice as fast.
    """
    for statement in body:
        yield statement
        for block in ("body", "orelse", "finalbody"):
            yield from _statements(getattr(statement, block, []))
        for nested in [*getattr(statement, "handlers", []), *getattr(statement, "cases", [])]:
            yield from _statements(nested.body)


def _self_attributes(targets: Sequence[ast.expr]) -> list[str]:
    """The `x` of `self.x = ...`: instance attributes a class's methods set."""
    return [
        target.attr
        for target in targets
        if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self"
    ]


def parameters_of(args: ast.arguments) -> list[str]:
    """Parameters as Python prints them: `x`, `x=` (has a default), `/`, `*`, `*args`, `**kw`."""
    positional = args.posonlyargs + args.args
    first_default = len(positional) - len(args.defaults)
    out = [arg.arg + ("=" if index >= first_default else "") for index, arg in enumerate(positional)]
    if args.posonlyargs:
        out.insert(len(args.posonlyargs), "/")
    if args.vararg:
        out.append("*" + args.vararg.arg)
    elif args.kwonlyargs:
        out.append("*")
    defaults = args.kw_defaults  # one per keyword-only parameter, None where it has none
    out += [arg.arg + ("" if default is None else "=") for arg, default in zip(args.kwonlyargs, defaults, strict=True)]
    if args.kwarg:
        out.append("**" + args.kwarg.arg)
    return out


# Bump when what a module's document holds changes: documents live under a folder named for it.
INDEX_FORMAT = 2
# How a warning announces that something goes away ("is deprecated", "will be removed in v4.46").
_GOING_AWAY = re.compile(r"deprecat|will be removed|removed in v?\d", re.IGNORECASE)


def _deprecation(call: ast.Call) -> str | None:
    """The message of a warnings.warn / logger.warning(_once) call that announces a deprecation
    or a removal."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    if name not in _WARNING_CALLS or not call.args:
        return None
    text = message_text(call.args[0])
    category = {ast.unparse(arg) for arg in [*call.args[1:], *(k.value for k in call.keywords)]}
    if _GOING_AWAY.search(text) or category & _DEPRECATION_CATEGORIES:
        return " ".join(text.split())
    return None


def message_text(node: ast.expr) -> str:
    """A message expression's text: constants and f-string parts joined, `{expr}` for the rest."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(message_text(value) for value in node.values)
    if isinstance(node, ast.FormattedValue):
        return "{" + ast.unparse(node.value) + "}"
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return message_text(node.left) + message_text(node.right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return message_text(node.func.value)
    return "{" + ast.unparse(node) + "}"
