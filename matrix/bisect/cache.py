"""Probe outcomes as cached facts: a question the bisect has answered is never asked again.

What a probe says depends only on its inputs: the model's files, the probe code, the
release, the variant, the rest of the env (torch, pins, python) and what the model was
asked to do. Each answer is stored under `<cache>/bisect/facts/<key>.json`, the key a hash
of those inputs, so a warm `nox -s matrix` makes no probe, and a changed model file or
probe source makes a new key (the old fact is simply never read again).

Model files are hashed by content (sizes and mtimes differ between machines that hold the
same bytes); each file's hash is kept per folder by (path, size, mtime), so an unchanged
folder costs a `stat` per file. An answer that says nothing (the env could not be built,
the model was unavailable) may be a passing network fault, so it is kept for a day only.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import platform
import time
from pathlib import Path
from typing import Any

from probes.record import write_json_atomic

FACTS_SCHEMA = 2  # 2: a failure keeps its traceback's end
SAYS_NOTHING_TTL_S = 24 * 3600
PROBES_DIR = Path(__file__).resolve().parents[2] / "probes"
_SKIP_PARTS = {"__pycache__", ".git"}


def digest(data: Any) -> str:
    """sha256 of the canonical JSON of `data`."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@functools.cache
def probe_code_version(root: Path = PROBES_DIR) -> str:
    """A hash of the probe sources (every .py under probes/): what runs inside the envs."""
    files = sorted(p for p in root.rglob("*.py") if not _SKIP_PARTS & set(p.relative_to(root).parts))
    return digest([[str(p.relative_to(root)), hashlib.sha256(p.read_bytes()).hexdigest()] for p in files])[:16]


def folder_fingerprint(folder: Path, cache: Path) -> str:
    """A hash of every file's relative path and contents under `folder`.

    File hashes are reused from `<cache>/bisect/hashes/` while a file's size and mtime are
    unchanged; hidden files and `__pycache__` are not part of a model.
    """
    folder = folder.resolve()
    store = cache / "bisect" / "hashes" / f"{hashlib.sha256(str(folder).encode()).hexdigest()[:24]}.json"
    known: dict[str, list[Any]] = {}
    with contextlib.suppress(OSError, ValueError):
        saved = json.loads(store.read_text(encoding="utf-8"))
        if saved.get("folder") == str(folder):
            known = saved.get("files", {})
    files: dict[str, list[Any]] = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if not path.is_file() or any(p.startswith(".") or p in _SKIP_PARTS for p in relative.parts):
            continue
        stat = path.stat()
        before = known.get(str(relative))
        if before and before[:2] == [stat.st_size, stat.st_mtime_ns]:
            files[str(relative)] = before
        else:
            files[str(relative)] = [stat.st_size, stat.st_mtime_ns, _file_hash(path)]
    if files != known:
        with contextlib.suppress(OSError):
            write_json_atomic(store, {"folder": str(folder), "files": files})
    return digest(sorted((name, entry[2]) for name, entry in files.items()))[:16]


def _file_hash(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


class Facts:
    """`<cache>/bisect/facts/<key>.json`: one probe's answer per key."""

    def __init__(self, cache: Path) -> None:
        self.folder = cache / "bisect" / "facts"

    @staticmethod
    def key(inputs: dict[str, Any]) -> str:
        return digest({"schema": FACTS_SCHEMA, **inputs})[:32]

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored answer, or None when there is none (or it says nothing and is old)."""
        try:
            fact = json.loads((self.folder / f"{key}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(fact, dict) or fact.get("schema") != FACTS_SCHEMA or "outcome" not in fact:
            return None
        if fact["outcome"] is None and time.time() - float(fact.get("stored_at", 0)) > SAYS_NOTHING_TTL_S:
            return None
        return fact

    def put(self, key: str, inputs: dict[str, Any], answer: dict[str, Any]) -> None:
        """Store an answer (it must carry `outcome`); a cache that cannot be written is no error."""
        fact = {"schema": FACTS_SCHEMA, "inputs": inputs, "stored_at": time.time(), **answer}
        with contextlib.suppress(OSError):
            self.folder.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.folder / f"{key}.json", fact)


def python_of(spec_python: str | None) -> str:
    """How the env's interpreter is named in a key: the version asked for, or this Python's."""
    return spec_python or platform.python_version()
