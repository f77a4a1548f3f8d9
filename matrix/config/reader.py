"""Typed reads out of one TOML table, and the one error every config mistake becomes.

Every mistake is a `ConfigError` whose message names the file, the table and the key (the
way hatch does), so a user fixes it without reading a traceback.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    """A mistake in the config; the message says where and what."""


class Table:
    """Reads typed keys out of one TOML table and reports mistakes with their place."""

    def __init__(self, file: Path, where: str, data: Any, known: tuple[str, ...]) -> None:
        self.file, self.where = file, where
        if not isinstance(data, dict):
            raise self.error(None, f"must be a table, not {type(data).__name__}")
        self.data = data
        for key, value in data.items():
            if key in known:
                continue
            if isinstance(value, dict) and where.startswith(("envs.", "models.")):  # [envs.tf-4.40] = envs/tf-4/40
                dotted = f"{where}.{key}"
                quoted = dotted.split(".", 1)[0] + f'."{dotted.split(".", 1)[1]}"'
                raise self.error(key, f"unknown key; a name with a dot must be quoted in TOML: write [{quoted}]")
            raise self.error(key, f"unknown key (known keys: {', '.join(known)})")

    @property
    def base(self) -> Path:
        """The config's folder: where a relative path in it starts."""
        return self.file.resolve().parent

    def error(self, key: str | None, problem: str) -> ConfigError:
        place = f"{self.file.name}: [{self.where}]" + (f" {key}" if key else "")
        return ConfigError(f"{place}: {problem}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        if key not in self.data:
            return default
        value = self.data[key]
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            want = type_word(kind) if isinstance(kind, type) else " or ".join(map(type_word, kind))
            article = "an" if want[0] in "aeiou" else "a"
            raise self.error(key, f"must be {article} {want}, not {type_word(type(value))} ({value!r})")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str | None) -> str | None:
        value = self.get(key, str, default)
        if value is not None and value not in choices:
            raise self.error(key, f"{value!r} is not one of {', '.join(choices)}")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        values = self.get(key, list, [])
        for index, value in enumerate(values, start=1):
            if not isinstance(value, str):
                raise self.error(key, f"value #{index} must be a string, not {type_word(type(value))}")
        return tuple(values)

    def positive(self, key: str, default: float) -> float:
        value = self.get(key, (int, float), default)
        if not value > 0 or math.isinf(value):  # `not >` so that nan is refused too
            raise self.error(key, f"must be greater than 0, not {value}")
        return value

    def whole(self, key: str, default: int | None) -> int | None:
        value = self.positive(key, default or 1)
        if key in self.data and value != int(value):
            raise self.error(key, f"must be a whole number, not {value}")
        return int(value) if key in self.data else default

    def file_path(self, key: str) -> str | None:
        """An existing file the key names, absolute (a relative path starts at the config's folder)."""
        given = self.get(key, str)
        if given is None:
            return None
        if not given.strip():
            raise self.error(key, "must not be empty")
        path = (self.base / given).resolve()
        if not path.is_file():
            problem = "is a folder, not a file" if path.exists() else "does not exist"
            raise self.error(key, f"file {given!r} {problem} (relative paths start at {self.base})")
        return str(path)


_TOML_WORDS = {dict: "table", str: "string", bool: "boolean", int: "integer", float: "float", list: "list"}


def type_word(kind: type) -> str:
    """A Python type in TOML's words (a dict is a table: { key = value })."""
    return _TOML_WORDS.get(kind, kind.__name__)
