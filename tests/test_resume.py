"""Kill a real run with SIGKILL at random moments, resume it each time, and get the same
cells as a run that was never interrupted (no cell redone once finished, none half written)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, nox_command

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CONFIG = """
[envs."tf-4.40"]
transformers = "==4.40.2"
torch = "==2.13.0"

[envs."tf-4.50"]
transformers = "==4.50.3"
torch = "==2.13.0"

[models.qwen2-tiny]
fixture = "qwen2-tiny"
task = "causal-lm"

[models.codebert-tiny]
fixture = "codebert-tiny"
task = "embedding"
"""
KILLS = 20


def start(tmp: Path, run_id: str, *posargs: str) -> subprocess.Popen[bytes]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MATRIX_")}
    env.update(
        MATRIX_CONFIG=str(tmp / "matrix.toml"),
        MATRIX_RESULTS=str(tmp / "results"),
        MATRIX_CACHE=str(ROOT / ".cache"),
        MATRIX_RUN_ID=run_id,
        # One nox process for every session: nox starts `-j` children in sessions of their
        # own, so the group's SIGKILL (everything stops at once, as at a power loss) would
        # leave them running beside the resumed run.
        MATRIX_JOBS="1",
    )
    args = nox_command(tmp / "nox", "-s", "matrix")
    return subprocess.Popen(
        [*args, *(["--", *posargs] if posargs else [])],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: SIGKILL takes nox, uv, the runner
    )


def cell_set(run_dir: Path) -> dict[tuple[str, str], str]:
    found = {}
    for path in run_dir.glob("*/*.json"):
        if not path.name.startswith(("_", ".")):
            data = json.loads(path.read_text())  # a half-written file would fail here
            found[(data["env"], path.stem)] = data["status"]
    return found


def test_a_run_killed_at_random_moments_resumes_to_the_uninterrupted_result(tmp_path):
    (tmp_path / "matrix.toml").write_text(CONFIG)
    assert start(tmp_path, "whole").wait(timeout=900) == 0
    expected = cell_set(tmp_path / "results" / "runs" / "whole")
    assert len(expected) == 4

    rng = random.Random(2026)
    started = time.perf_counter()
    finished_early = 0
    seen: dict[Path, int] = {}
    for _ in range(KILLS):
        proc = start(tmp_path, "killed", "--resume")
        time.sleep(rng.uniform(0.2, 8.0))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            finished_early += 1
        proc.wait(timeout=60)
        for path in (tmp_path / "results" / "runs" / "killed").glob("*/[!._]*.json"):
            assert seen.setdefault(path, path.stat().st_mtime_ns) == path.stat().st_mtime_ns, f"{path} was redone"
    assert start(tmp_path, "killed", "--resume").wait(timeout=900) == 0
    seconds = time.perf_counter() - started

    run_dir = tmp_path / "results" / "runs" / "killed"
    assert cell_set(run_dir) == expected
    print(f"{KILLS} kills ({finished_early} runs finished before their kill), resumed in {seconds:.0f} s")
