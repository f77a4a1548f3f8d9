"""Validate published matrix.json files against the schema the package ships
(matrix/schema/matrix.schema.json), for tests/test_schema.py and for the check
tests/conftest.py runs after every test on the results folders it published."""

from __future__ import annotations

import functools
import json
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA_FILE = "schema/matrix.schema.json"


@functools.cache
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads((files("matrix") / SCHEMA_FILE).read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def problems(data: Any) -> list[str]:
    """Each way `data` breaks the schema, as 'where: what' (sorted, so a failure reads the same)."""
    found = validator().iter_errors(data)
    return sorted(f"/{'/'.join(map(str, error.absolute_path))}: {error.message[:200]}" for error in found)


def published_below(folder: Path) -> list[Path]:
    """Every matrix.json a report published below `folder` (one with COMPATIBILITY.md beside it:
    not some package's file inside an env)."""
    return sorted(p for p in folder.rglob("matrix.json") if (p.parent / "COMPATIBILITY.md").is_file())


def problems_below(folder: Path) -> list[str]:
    found = []
    for path in published_below(folder):
        found += [f"{path}: {problem}" for problem in problems(json.loads(path.read_text(encoding="utf-8")))]
    return found
