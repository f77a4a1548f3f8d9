"""The result of one cell, and how it reaches disk.

One JSON file per cell, written atomically (temp file + rename), so a crash at any moment
leaves either the whole file or none. The same dataclass is read back by `matrix/`, which
re-decides everything from these files without re-running a model.

Everything the project writes is strict JSON (browsers' `JSON.parse` rejects a bare `NaN`):
a NaN or infinite float is written as `null`, and a dict's top-level `non_finite` says which
values those were (RFC 6901 JSON pointer -> "NaN", "Infinity" or "-Infinity"), so a reader
can restore them (`CellResult` does).
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import shutil
import socket
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from probes.redact import redact, redact_data
from probes.status import Status

CELL_SCHEMA = 1
NON_FINITE_KEY = "non_finite"
BASE_VARIANT = ""
# Env, model and shim names become file names: no separators, no leading dot, so no cell
# (nor a shard merged from another machine) can write outside its run folder.
SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def cell_stem(model: str, variant: str) -> str:
    """File stem of a cell: `<model>` or `<model>+<shim>`."""
    return f"{model}+{variant}" if variant else model


@dataclass
class CellResult:
    """Raw facts about one cell. Anything but a pass carries a reason."""

    env: str
    model: str
    variant: str
    status: Status
    reason: str = ""
    phase: str | None = None
    error: dict[str, str] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    device: str = ""
    fingerprint: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    log: str = ""
    machine: dict[str, Any] = field(default_factory=dict)
    started_at: str = ""
    duration_s: float = 0.0
    # Decided on the host from the raw facts above (never by the probe):
    diagnosis: dict[str, Any] | None = None
    drift: dict[str, Any] | None = None
    over_budget: list[dict[str, Any]] = field(default_factory=list)
    # Read from a file (or a child's result): the values that were written as null for being
    # NaN/inf. They are put back on construction, so this is always empty afterwards.
    non_finite: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._restore_non_finite()
        self.status = Status(self.status)
        for name in (self.env, self.model, *filter(None, self.variant.split("+"))):
            if not SAFE_PART.match(name):
                raise ValueError(f"cell name part {name!r} is not a safe file name (letters, digits, '.', '_', '-')")
        # Token shapes in third-party text, also in cells read from another machine's shard
        # (the values of this machine's secrets are redacted when anything is written).
        self.reason = redact(self.reason, secrets=[])
        self.error = redact_data(self.error, secrets=[])
        self.facts = redact_data(self.facts, secrets=[])
        if self.status is not Status.PASS and not self.reason:
            raise ValueError(
                f"cell {self.env}/{cell_stem(self.model, self.variant)}: status {self.status.value} needs a reason"
            )

    def _restore_non_finite(self) -> None:
        flags, self.non_finite = self.non_finite, {}
        if flags:
            current = {f.name: getattr(self, f.name) for f in fields(self) if f.name != NON_FINITE_KEY}
            for name, value in decode_non_finite({**current, NON_FINITE_KEY: flags}).items():
                setattr(self, name, value)

    @property
    def stem(self) -> str:
        return cell_stem(self.model, self.variant)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        del data[NON_FINITE_KEY]  # the writer recomputes it from the values
        return {"schema": CELL_SCHEMA, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CellResult:
        if data.get("schema") != CELL_SCHEMA:
            raise ValueError(f"cell schema {data.get('schema')!r} is not {CELL_SCHEMA}")
        names = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})

    def write(self, run_dir: Path) -> Path:
        """Write `<run_dir>/<env>/<stem>.json` atomically and return its path."""
        path = run_dir / self.env / f"{self.stem}.json"
        write_json_atomic(path, self.to_dict())
        return path


def encode_non_finite(data: Any) -> Any:
    """A copy of JSON-like `data` with every NaN/inf float replaced by None; when `data` is a
    dict and any were found, its `non_finite` key maps each one's JSON pointer to what it was
    (merged into a `non_finite` dict already there). Lists and tuples become lists."""
    found: dict[str, str] = {}
    encoded = _encode(data, "", found)
    if found and isinstance(encoded, dict):
        previous = encoded.get(NON_FINITE_KEY)
        encoded[NON_FINITE_KEY] = {**(previous if isinstance(previous, dict) else {}), **found}
    return encoded


def _encode(value: Any, pointer: str, found: dict[str, str]) -> Any:
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        found[pointer] = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        return None
    if isinstance(value, dict):
        return {key: _encode(item, f"{pointer}/{_escape(str(key))}", found) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(item, f"{pointer}/{index}", found) for index, item in enumerate(value)]
    return value


def decode_non_finite(data: Any) -> Any:
    """Undo `encode_non_finite`: a copy of `data` without its `non_finite` key, each value it
    names put back as a float. A pointer that does not lead to a null is ignored (the file
    was edited or damaged there: the value stays as found)."""
    if not isinstance(data, dict) or NON_FINITE_KEY not in data:
        return data
    data = dict(data)
    flags = data.pop(NON_FINITE_KEY)
    for pointer, kind in flags.items() if isinstance(flags, dict) else ():
        if kind in ("NaN", "Infinity", "-Infinity") and isinstance(pointer, str) and pointer.startswith("/"):
            _put(data, [_unescape(part) for part in pointer.split("/")[1:]], float(kind))
    return data


def _put(container: Any, parts: list[str], value: float) -> None:
    """Set `value` at `parts` below `container` (a dict), copying the containers on the way
    so the caller's nested data is left as it was; only where the target is None."""
    for depth, part in enumerate(parts):
        if isinstance(container, dict) and part in container:
            key: Any = part
        elif isinstance(container, list) and part.isdigit() and int(part) < len(container):
            key = int(part)
        else:
            return
        if depth == len(parts) - 1:
            if container[key] is None:
                container[key] = value
            return
        child = container[key]
        if not isinstance(child, (dict, list)):
            return
        container[key] = child = dict(child) if isinstance(child, dict) else list(child)
        container = child


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _unescape(part: str) -> str:
    return part.replace("~1", "/").replace("~0", "~")


def dumps_strict(data: Any, **options: Any) -> str:
    """`json.dumps` that never writes NaN/Infinity: `encode_non_finite` first, then
    `allow_nan=False`, so a value that slips past raises instead of writing invalid JSON."""
    return json.dumps(encode_non_finite(data), allow_nan=False, **options)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that readers see the old file, or the whole new one, never a part;
    secrets are redacted first (everything this project stores goes through here), and
    non-finite floats are written as null with a `non_finite` flag (strict JSON)."""
    data = encode_non_finite(redact_data(data))
    _write_atomic(path, json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False, default=str, allow_nan=False))


def write_text_atomic(path: Path, text: str) -> None:
    """Write a text file the same way, with secrets redacted."""
    _write_atomic(path, redact(text))


def _write_atomic(path: Path, text: str) -> None:
    """The one atomic writer: a temp file beside `path`, synced, then renamed over it (and
    removed, whatever happens, when the rename does not happen)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def place_folder(final: Path, fill: Callable[[Path], None]) -> Path:
    """`fill` a temporary folder beside `final`, then rename it into place: a folder at
    `final` is always complete, and an interrupted fill leaves nothing a later run would take
    for a finished one. When another process put `final` there first (the same contents:
    every caller's folder is determined by its name), theirs is kept. What `fill` raises is
    raised; the temporary folder never stays behind."""
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        fill(staging)
        staging.chmod(0o755)  # mkdtemp makes it owner-only; a cache may be shared
        try:
            os.rename(staging, final)
        except OSError:
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def machine_fingerprint() -> dict[str, Any]:
    """Enough about the host to tell two runs' machines apart."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            total_kb = int(meminfo.readline().split()[1])
    except (OSError, ValueError, IndexError):
        total_kb = 0
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count() or 0,
        "memory_gb": round(total_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
    }
