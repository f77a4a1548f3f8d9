"""The result of one cell, and how it reaches disk.

One JSON file per cell, written atomically (temp file + rename), so a crash at any moment
leaves either the whole file or none. The same dataclass is read back by `matrix/`, which
re-decides everything from these files without re-running a model.
"""

from __future__ import annotations

import json
import os
import platform
import re
import socket
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from probes.redact import redact, redact_data
from probes.status import Status

CELL_SCHEMA = 1
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

    def __post_init__(self) -> None:
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

    @property
    def stem(self) -> str:
        return cell_stem(self.model, self.variant)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
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


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that readers see the old file, or the whole new one, never a part;
    secrets are redacted first (everything this project stores goes through here)."""
    data = redact_data(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=True, ensure_ascii=False, default=str)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
