"""A misbehaving cell becomes a status, keeps its log, and leaves every other cell intact.

Runs the real forked runner in a real transformers 4.40.2 env on remote-code models whose
forward pass raises, segfaults, hangs, exits, allocates without end, or leaves a
grandchild process behind.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from matrix import proc
from matrix.envs.run import ensure_fixtures
from probes.status import Status
from tests.fault_models import write_faulty_model
from tests.helpers import ROOT

pytestmark = pytest.mark.e2e

EXPECTED = {
    "raise": (Status.FAIL, "forward", "RuntimeError"),
    "segfault": (Status.CRASHED, None, None),
    "hang": (Status.TIMEOUT, None, None),
    "exit": (Status.FAIL, "forward", "SystemExit"),
    "os_exit": (Status.CRASHED, None, None),
    "oom": (Status.OOM, "forward", "MemoryError"),
    "grandchild": (Status.PASS, None, None),
    "flood": (Status.PASS, None, None),
    "bad_bytes": (Status.FAIL, "forward", "ValueError"),
    "huge": (Status.FAIL, "forward", "RuntimeError"),
    "none": (Status.PASS, None, None),
}


@pytest.fixture(scope="module")
def fault_run(tf440_python, fixture_cache, tmp_path_factory):
    tokenizer_dir = ensure_fixtures(tf440_python, ["codebert-tiny"], fixture_cache)["codebert-tiny"]
    base = tmp_path_factory.mktemp("faults")
    cells = []
    for fault in EXPECTED:
        folder = write_faulty_model(base / "models" / fault, fault, tokenizer_from=Path(tokenizer_dir))
        cells.append(
            {
                "model": fault,
                "variant": "",
                "source_kind": "path",
                "location": str(folder),
                "task": "embedding",
                "revision": None,
                "trust_remote_code": True,
                "timeout": 8.0 if fault == "hang" else 120.0,
                "device": "cpu",
                "dtype": "float32",
                "max_new_tokens": 4,
                "similarity_check": False,
                "memory_limit_mb": 1024 if fault == "oom" else None,
                "warm": ["roberta"],
            }
        )
    run_dir = base / "run"
    plan = base / "plan.json"
    plan.write_text(json.dumps({"env": "faults", "run_dir": str(run_dir), "cells": cells}))
    started = time.perf_counter()
    done = proc.run([tf440_python, "-m", "probes.runner", plan], env={"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"})
    return done, run_dir / "faults", base, time.perf_counter() - started


def load(cell_dir, name):
    return json.loads((cell_dir / f"{name}.json").read_text())


def test_the_run_completes_with_one_file_per_cell(fault_run):
    done, cell_dir, _, _ = fault_run
    assert done.ok, done.output
    assert sorted(p.stem for p in cell_dir.glob("*.json")) == sorted(EXPECTED)
    assert len([line for line in done.output.splitlines() if f"/{len(EXPECTED)} " in line]) == len(EXPECTED)


@pytest.mark.parametrize("fault", list(EXPECTED))
def test_each_fault_is_the_right_status_with_its_log(fault_run, fault):
    _, cell_dir, _, _ = fault_run
    cell = load(cell_dir, fault)
    status, phase, error_type = EXPECTED[fault]
    assert cell["status"] == status.value, cell["reason"]
    if phase:
        assert cell["phase"] == phase
    if error_type:
        assert cell["error"]["type"] == error_type
    assert (cell_dir.parent / cell["log"]).is_file()
    if status is not Status.PASS:
        assert cell["reason"]


def test_fault_details(fault_run):
    _, cell_dir, base, _ = fault_run
    assert "SIGSEGV" in load(cell_dir, "segfault")["reason"]
    assert "Fatal Python error: Segmentation fault" in (cell_dir / "segfault.log").read_text()
    assert "no result within 8 s" in load(cell_dir, "hang")["reason"]
    assert "exited with code 7" in load(cell_dir, "os_exit")["reason"]
    assert "planted failure" in load(cell_dir, "raise")["error"]["message"]
    assert "Traceback" in load(cell_dir, "raise")["error"]["traceback"]
    good = load(cell_dir, "none")
    assert good["metrics"]["embed_median_s"] > 0 and good["fingerprint"]["embedding"]["dim"] == 4


def test_floods_and_hostile_messages_are_kept_safely(fault_run):
    _, cell_dir, _, _ = fault_run
    assert (cell_dir / "flood.log").stat().st_size >= 50 * 2**20
    assert "bad bytes \\udcff\\udcfe end" in load(cell_dir, "bad_bytes")["error"]["message"]
    huge = load(cell_dir, "huge")
    assert len(huge["error"]["message"]) <= 70000 and "characters cut" in huge["error"]["message"]
    assert (cell_dir / "huge.json").stat().st_size < 500_000


def test_grandchildren_are_killed_with_their_cell(fault_run):
    _, _, base, _ = fault_run
    pid = int((base / "models" / "grandchild" / "grandchild.pid").read_text())
    stat = Path(f"/proc/{pid}/stat")
    for _ in range(50):
        if not stat.exists() or stat.read_text().split()[2] == "Z":
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"grandchild {pid} still running")
