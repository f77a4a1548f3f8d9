"""Shared test helpers: write configs, build cell results."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from probes.record import CellResult
from probes.status import Status

ROOT = Path(__file__).resolve().parent.parent

GOOD_CONFIG = """
[envs."tf-4.40"]
transformers = "4.40.*"
torch = "==2.13.0"

[envs.latest]
transformers = "latest"

[models.qwen]
fixture = "qwen2-tiny"
task = "causal-lm"
"""


@pytest.fixture
def write_config(tmp_path: Path):
    """Write TOML text (dedented) to tmp_path/matrix.toml and return the path."""

    def write(text: str, name: str = "matrix.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


def make_cell(env: str, model: str, status: Status | str, variant: str = "", **extra) -> CellResult:
    """A cell result as the runner would write it (reason filled in for non-passes)."""
    status = Status(status)
    if status is not Status.PASS and "reason" not in extra:
        extra["reason"] = f"{status.value} reason"
    return CellResult(env=env, model=model, variant=variant, status=status, **extra)
