"""History and regressions on pairs of recorded runs, and --fail-on-regression end to end."""

from __future__ import annotations

import json
import subprocess
import sys

from matrix.history import HISTORY_FILE, compare, load, record
from probes.status import Status
from tests.conftest import ROOT, make_cell

MACHINE = {"hostname": "a", "platform": "p", "cpu_count": 2, "memory_gb": 23.5}


def run(run_id, statuses, latency=0.02, memory=100.0, versions=None, machine=MACHINE):
    return {
        "schema": 1,
        "time": "t",
        "run_id": run_id,
        "machine": machine,
        "envs": versions or {"old": "4.40.2", "latest": "5.24.0"},
        "cells": {key: {"status": s, "latency_s": latency, "memory_mb": memory} for key, s in statuses.items()},
        "recommendation": ["old"],
    }


BASE = {"old/m": "pass", "latest/m": "pass", "latest/glm": "fail"}
SETTINGS = {"regression_latency_pct": 25.0, "regression_memory_pct": 20.0}


def test_an_unchanged_rerun_reports_no_regressions():
    comparison = compare(run("r1", BASE), run("r2", BASE), SETTINGS)
    assert not comparison.regressed
    assert comparison.lines() == ["Compared with run r1:", "- no regressions"]


def test_a_planted_break_a_fix_a_slowdown_and_a_new_release_are_reported():
    now = run("r2", {**BASE, "old/m": "fail", "latest/glm": "pass"}, latency=0.03, memory=130.0,
              versions={"old": "4.40.2", "latest": "5.25.0"})  # fmt: skip
    comparison = compare(run("r1", BASE), now, SETTINGS)
    assert comparison.regressed
    assert comparison.new_failures == ["old/m (pass -> fail)"]
    assert comparison.fixes == ["latest/glm (fail -> pass)"]
    assert comparison.slower == [
        "latest/m latency_s 0.02 s -> 0.03 s (+50 %, limit 25 %)",
        "latest/m memory_mb 100 MB -> 130 MB (+30 %, limit 20 %)",
    ]
    assert comparison.new_versions == ["latest: transformers 5.24.0 -> 5.25.0"]


def test_small_changes_and_other_machines():
    comparison = compare(
        run("r1", BASE), run("r2", BASE, latency=0.024, machine={**MACHINE, "hostname": "b"}), SETTINGS
    )
    assert not comparison.regressed and comparison.different_machine
    assert "- the two runs come from different machines: timings compare poorly" in comparison.lines()


def test_history_appends_skips_damaged_lines_and_replaces_a_rerendered_run(tmp_path):
    warnings: list[str] = []
    assert record(tmp_path, run("r1", BASE), SETTINGS, warnings).previous_run is None
    with open(tmp_path / HISTORY_FILE, "a") as history:
        history.write("{torn\n")
    assert record(tmp_path, run("r2", BASE), SETTINGS, warnings).previous_run == "r1"
    assert record(tmp_path, run("r2", BASE), SETTINGS, warnings).previous_run == "r1"
    assert [entry["run_id"] for entry in load(tmp_path, warnings)] == ["r1", "r2"]
    assert any("damaged line 2" in warning for warning in warnings)


def test_fail_on_regression_makes_the_report_exit_1(tmp_path):
    results = tmp_path / "results"

    def report(run_id, status):
        make_cell("old", "m", status, metrics={"generate_median_s": 0.02}).write(results / "runs" / run_id)
        return subprocess.run(
            [sys.executable, "-m", "matrix", "report", str(results / "runs" / run_id), "--results", str(results),
             "--fail-on-regression"],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    first = report("r1", Status.PASS)
    assert first.returncode == 0 and "First published run" in first.stdout
    second = report("r2", Status.PASS)
    assert second.returncode == 0 and "- no regressions" in second.stdout
    broken = report("r3", Status.FAIL)
    assert broken.returncode == 1 and "- new failure: old/m (pass -> fail)" in broken.stdout
    assert "Since the last published run" in (results / "COMPATIBILITY.md").read_text()
    assert len((results / HISTORY_FILE).read_text().splitlines()) == 3
    assert json.loads((results / HISTORY_FILE).read_text().splitlines()[-1])["run_id"] == "r3"
