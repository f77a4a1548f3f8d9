"""The one status enum every module uses (probes write it, matrix reads it).

It lives in `probes/` because probes run inside envs where this project is not installed,
and `matrix/` may import `probes/` but never the other way round.
"""

from __future__ import annotations

import enum


class Status(str, enum.Enum):
    """What happened to one cell (env x model x variant)."""

    PASS = "pass"
    PASS_WITH_SHIM = "pass-with-shim"
    FAIL = "fail"
    INVALID_MODEL = "invalid-model"
    UNAVAILABLE = "unavailable"
    ENV_FAILED = "env-failed"
    TIMEOUT = "timeout"
    CRASHED = "crashed"
    OOM = "oom"
    SKIPPED = "skipped"

    @property
    def passed(self) -> bool:
        """True when the model works in this env (with or without a shim)."""
        return self is Status.PASS or self is Status.PASS_WITH_SHIM

    @property
    def says_nothing(self) -> bool:
        """True for outcomes that say nothing about compatibility (no verdict either way)."""
        return self in (Status.UNAVAILABLE, Status.SKIPPED, Status.ENV_FAILED)

    @property
    def mark(self) -> str:
        """A short, plain-text mark for tables."""
        return _MARKS[self]


_MARKS = {
    Status.PASS: "✅ pass",
    Status.PASS_WITH_SHIM: "🩹 pass-with-shim",
    Status.FAIL: "❌ fail",
    Status.INVALID_MODEL: "⛔ invalid-model",
    Status.UNAVAILABLE: "❔ unavailable",
    Status.ENV_FAILED: "🧱 env-failed",
    Status.TIMEOUT: "⏱ timeout",
    Status.CRASHED: "💥 crashed",
    Status.OOM: "🧨 oom",
    Status.SKIPPED: "⏭ skipped",
}
