"""Shared test helpers: write configs, build cell results."""

from __future__ import annotations

import subprocess
import sys
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

# Two pinned envs (4.40 and 4.50): what most small configs of the tests start with.
TWO_ENVS = """
[envs."tf-4.40"]
transformers = "4.40.*"
torch = "==2.13.0"

[envs."tf-4.50"]
transformers = "4.50.*"
torch = "==2.13.0"
"""

# Two envs, one model: the smallest matrix that still has shards to merge and sessions to
# run side by side (tests/test_parallel.py, test_merge.py, test_workflow.py).
TWO_ENVS_ONE_MODEL = (
    TWO_ENVS
    + """
[models.qwen2-tiny]
fixture = "qwen2-tiny"
task = "causal-lm"
"""
)


def nox_list(**env: str) -> subprocess.CompletedProcess[str]:
    """`nox -l` on our noxfile, with only PATH and `env` in the environment (what a user's
    shell could set): how config and run-id mistakes reach a user."""
    return subprocess.run(
        [sys.executable, "-m", "nox", "-l", "-f", str(ROOT / "noxfile.py")],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


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


@pytest.fixture(scope="session")
def tf440_python(tmp_path_factory) -> Path:
    """A real uv env with transformers 4.40.2 and torch 2.13 (about 2 s from a warm uv cache)."""
    from matrix import proc
    from matrix.config import EnvSpec
    from matrix.envs.run import install_env

    venv = tmp_path_factory.mktemp("envs") / "tf-4.40.2"
    created = proc.run(["uv", "venv", "--quiet", "--python", sys.executable, venv])
    assert created.ok, created.output
    python = venv / "bin" / "python"
    installed = install_env(python, EnvSpec(name="t", transformers="==4.40.2", torch="==2.13.0"))
    assert installed.ok, installed.output
    return python


@pytest.fixture(scope="session")
def fixture_cache() -> Path:
    """Generated fixture models are shared with `nox -s matrix` (same bytes, built once)."""
    return ROOT / ".cache"
