"""History and regressions: summaries, the machine fingerprint, the gate's lines, and
--fail-on-regression end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

from matrix import exit_codes
from matrix.history import HISTORY_FILE, compare, fingerprint, load, record, summary
from matrix.results.aggregate import aggregate
from matrix.results.collect import collect
from probes.status import Status
from tests.helpers import ROOT, make_cell

MACHINE = {"hostname": "a", "platform": "p", "cpu_count": 2, "memory_gb": 23.5}
PRINT = {"cpu": "Xeon", "cpus": 2, "arch": "x86_64", "gpu": "none", "torch": "2.13.0+cpu", "python": "3.11.7"}
OTHER_PRINT = {**PRINT, "cpu": "EPYC"}
SETTINGS: dict = {}


def cell(status: str, latency: float = 0.010, memory: float = 5.0, spread: float = 0.02) -> dict:
    samples = [latency * (1 + spread * (i - 4) / 4) for i in range(9)]
    return {
        "status": status,
        "latency_s": latency,
        "memory_mb": 30 + memory,
        "timings": {"generate": {"samples": samples, "disturbed": 0}},
        "memory": {"model_peak_mb": memory},
    }


def run(run_id, statuses, latency=0.010, memory=5.0, versions=None, print_=PRINT, budgets=None):
    versions = versions or {"old": "4.40.2", "latest": "5.24.0"}
    return {
        "schema": 2,
        "time": "t",
        "run_id": run_id,
        "machine": MACHINE,
        "fingerprints": {env: print_ for env in versions},
        "envs": versions,
        "cells": {key: cell(s, latency, memory) for key, s in statuses.items()},
        "budgets": budgets or {},
        "recommendation": ["old"],
    }


BASE = {"old/m": "pass", "latest/m": "pass", "latest/glm": "fail"}
HISTORY = [run(f"r{n}", BASE, latency=0.010 + 0.0001 * n) for n in range(1, 6)]


def test_an_unchanged_rerun_reports_no_regressions():
    comparison = compare(HISTORY, run("r6", BASE, latency=0.0102), SETTINGS)
    assert not comparison.regressed and not comparison.slower and not comparison.thin_history
    assert comparison.lines()[-1] == "- no regressions"
    assert comparison.lines()[0].startswith("Compared with run r5; timings and memory with earlier runs")


def test_a_planted_break_a_fix_a_slowdown_more_memory_and_a_new_release_are_reported():
    now = run("r6", {**BASE, "old/m": "fail", "latest/glm": "pass"}, latency=0.030, memory=305.0,
              versions={"old": "4.40.2", "latest": "5.25.0"})  # fmt: skip
    comparison = compare(HISTORY, now, SETTINGS)
    assert comparison.regressed
    assert comparison.new_failures == ["old/m (pass -> fail)"]
    assert comparison.fixes == ["latest/glm (fail -> pass)"]
    assert comparison.new_versions == ["latest: transformers 5.24.0 -> 5.25.0"]
    slower = comparison.slower
    assert [line.split(" against ")[0] for line in slower] == [
        "latest/m generate latency 30 ms",
        "latest/m memory model_peak_mb 305.0 MB",
    ]
    machine = "machine "  # each line names its history: how many runs, which machine, and the effect
    assert all(" over 5 earlier runs on " + machine in line and "Xeon x2, no GPU, torch 2.13.0+cpu" in line
               for line in slower)  # fmt: skip
    assert "+19.7 ms (+191 %" in slower[0] and "rank test p" in slower[0]
    assert "+300.0 MB (+6000 %" in slower[1]
    assert any(line.startswith("- slower: latest/m generate latency") for line in comparison.lines())


def test_another_machines_history_is_never_used():
    comparison = compare(HISTORY, run("r6", BASE, latency=0.040, memory=50.0, print_=OTHER_PRINT), SETTINGS)
    assert not comparison.regressed and not comparison.slower
    assert comparison.thin_history == {0: ["latest/m", "old/m"]}
    assert "- not enough history on this machine (0 runs): every cell (2)" in comparison.lines()


def test_one_earlier_run_on_this_machine_is_not_enough():
    earlier = [run("r1", BASE, print_=OTHER_PRINT), run("r2", BASE)]
    comparison = compare(earlier, run("r3", BASE, latency=0.040), SETTINGS)
    assert not comparison.slower and comparison.thin_history == {1: ["latest/m", "old/m"]}
    assert "- not enough history on this machine (1 run): every cell (2)" in comparison.lines()


def test_a_busy_run_is_labelled_unstable_not_judged():
    now = run("r6", BASE, latency=0.080)
    now["cells"]["latest/m"]["timings"]["generate"] = {"samples": [0.010, 0.011], "disturbed": 7}
    comparison = compare(HISTORY, now, SETTINGS)
    assert [line.split(" against ")[0] for line in comparison.slower] == ["old/m generate latency 80 ms"]
    assert comparison.unstable == ["latest/m generate latency (7 of 9 set aside)"]
    assert any(line.startswith("- unstable, not judged (the CPU was busy") for line in comparison.lines())


def test_a_cell_that_can_no_longer_be_judged_is_not_a_new_failure():
    now = run("r6", {**BASE, "old/m": "unavailable", "latest/m": "skipped"})
    comparison = compare(HISTORY, now, SETTINGS)
    assert not comparison.regressed and not comparison.new_failures
    assert comparison.no_verdict == ["latest/m (pass -> skipped)", "old/m (pass -> unavailable)"]


def test_the_budget_and_settings_decide_how_large_a_change_must_be():
    slower = run("r6", BASE, latency=0.020)
    assert len(compare(HISTORY, slower, SETTINGS).slower) == 2
    budgeted = {**slower, "budgets": {"m": {"max_latency_s": 2.0}}}  # 1 % of 2 s = 20 ms > +10 ms
    assert compare(HISTORY, budgeted, SETTINGS).slower == []
    assert len(compare(HISTORY, budgeted, {"regression_budget_pct": 0.1}).slower) == 2


def test_summary_keeps_undisturbed_samples_memory_and_the_machine_fingerprint(tmp_path):
    samples = {
        "wall_s": [0.010, 0.011, 0.090, 0.010],
        "waited_s": [0.0, 0.0, 0.080, 0.0],
        "others_s": [0.0001, 0.0001, 0.085, None],
    }
    facts = {"samples": {"generate": samples}, "host": {"cpu_model": "Xeon", "gpu_driver": ""}}
    machine = {**MACHINE, "machine": "x86_64"}
    versions = {"python": "3.11.7", "torch": "2.13.0+cpu"}
    metrics = {"generate_median_s": 0.0105, "peak_rss_increase_mb": 35.0, "model_peak_mb": 5.0}
    made = make_cell("old", "m", Status.PASS, metrics=metrics, facts=facts, machine=machine, versions=versions)
    made.write(tmp_path / "r1")
    matrix = aggregate(collect(tmp_path / "r1"))
    line = summary(matrix, SimpleNamespace(best=None), "t", {"m": {"budgets": {"max_latency_s": 2}}})
    assert line["cells"]["old/m"] == {
        "status": "pass",
        "latency_s": 0.0105,
        "memory_mb": 35.0,
        "timings": {"generate": {"samples": [0.010, 0.011, 0.010], "disturbed": 1}},
        "memory": {"model_peak_mb": 5.0},
    }
    assert line["fingerprints"]["old"] == PRINT == fingerprint(matrix, "old")
    assert line["budgets"] == {"m": {"max_latency_s": 2.0}}


def test_history_appends_skips_damaged_lines_replaces_a_rerendered_run_and_reads_budgets(tmp_path):
    warnings: list[str] = []
    assert record(tmp_path, run("r1", BASE), SETTINGS, warnings).previous_run is None
    with open(tmp_path / HISTORY_FILE, "a") as history:
        history.write("{torn\n")
    plan = tmp_path / "runs" / "r2" / "old" / "_plan.json"
    plan.parent.mkdir(parents=True)
    plan.write_text(json.dumps({"cells": [{"model": "m", "budgets": {"max_latency_s": 5, "max_memory_mb": 512}}]}))
    second = {key: value for key, value in run("r2", BASE).items() if key != "budgets"}
    assert record(tmp_path, second, SETTINGS, warnings).previous_run == "r1"
    assert record(tmp_path, second, SETTINGS, warnings).previous_run == "r1"
    entries = load(tmp_path, warnings)
    assert [entry["run_id"] for entry in entries] == ["r1", "r2"]
    assert entries[-1]["budgets"] == {"m": {"max_latency_s": 5.0, "max_memory_mb": 512.0}}
    assert any("damaged line 2" in warning for warning in warnings)


def test_fail_on_regression_makes_the_report_exit_4(tmp_path):
    results = tmp_path / "results"

    def report(run_id, status):
        metrics = {"generate_median_s": 0.02}
        made = make_cell("old", "m", status, metrics=metrics, machine=MACHINE, versions={"torch": "2.13.0+cpu"})
        made.write(results / "runs" / run_id)
        return subprocess.run(
            [sys.executable, "-m", "matrix", "report", str(results / "runs" / run_id), "--results", str(results),
             "--fail-on-regression"],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    first = report("r1", Status.PASS)
    assert first.returncode == 0 and "First published run" in first.stdout
    second = report("r2", Status.PASS)
    assert second.returncode == 0 and "- no regressions" in second.stdout
    assert "- not enough history on this machine (1 run): old/m" in second.stdout
    broken = report("r3", Status.FAIL)
    assert broken.returncode == exit_codes.REGRESSION and "- new failure: old/m (pass -> fail)" in broken.stdout
    assert "Since the last published run" in (results / "COMPATIBILITY.md").read_text()
    assert len((results / HISTORY_FILE).read_text().splitlines()) == 3
    assert json.loads((results / HISTORY_FILE).read_text().splitlines()[-1])["run_id"] == "r3"


def test_the_fingerprint_names_the_gpu_and_driver_and_ignores_the_hostname(tmp_path):
    gpu = {"name": "NVIDIA H200", "driver": "550.54.15", "cuda": "12.4"}
    versions = {"python": "3.11.7", "torch": "2.13.0+cu124"}
    for host, stem in (("a", "m"), ("b", "n")):
        machine = {**MACHINE, "hostname": host, "machine": "x86_64"}
        facts = {"host": {"cpu_model": "Xeon", "gpu_driver": "550.54.15"}, "gpu": gpu}
        made = make_cell("new", stem, Status.PASS, facts=facts, machine=machine, versions=versions)
        made.write(tmp_path / f"r-{host}")
    first, second = (aggregate(collect(tmp_path / f"r-{host}")) for host in ("a", "b"))
    expected = {**PRINT, "gpu": "NVIDIA H200, driver 550.54.15", "torch": "2.13.0+cu124"}
    assert fingerprint(first, "new") == fingerprint(second, "new") == expected
