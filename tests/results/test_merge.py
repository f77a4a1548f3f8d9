"""Shards from several machines merged into one run (`report --merge`), and partial runs:
cells that never ran show as "· not run" in every view."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from matrix.__main__ import main
from matrix.envs.plan import ENV_FACTS_FILE, PLAN_FILE
from matrix.recommend import recommend
from matrix.report.page import page
from matrix.report.render import markdown, matrix_json, terminal
from matrix.results.aggregate import aggregate
from matrix.results.collect import MERGE_FILE, collect
from probes.public import host_alias
from probes.record import write_json_atomic
from tests.helpers import TWO_ENVS_ONE_MODEL, make_cell
from tests.report.test_render import WHEN

HOST_A = {"hostname": "host-a", "platform": "Linux-x86_64", "cpu_count": 2, "memory_gb": 7.8, "python": "3.11.7"}
HOST_B = {"hostname": "host-b", "platform": "Linux-aarch64", "cpu_count": 8, "memory_gb": 31.0, "python": "3.11.9"}
GEN = {"generate_median_s": 0.02}
# Published files name a machine by the hash of its hostname (probes/public.py): two machines
# stay two, and no published file says what they are called. The run folder and the terminal
# keep the hostnames.
A, B = host_alias("host-a"), host_alias("host-b")


def env_folder(run: Path, env: str, machine: dict, transformers: str, models: list[tuple[str, str]]) -> Path:
    """An env folder as a probe session leaves it: env facts, the runner plan."""
    folder = run / env
    packages = {"transformers": transformers, "torch": "2.13.0+cpu"}
    write_json_atomic(
        folder / ENV_FACTS_FILE, {"name": env, "status": "built", "machine": machine, "packages": packages}
    )
    specs = [{"model": model, "variant": variant, "task": "causal-lm"} for model, variant in models]
    write_json_atomic(folder / PLAN_FILE, {"env": env, "settings": {}, "cells": specs})
    return folder


def cell(env: str, model: str, machine: dict, started: str, variant: str = "", status: str = "pass", **extra):
    return make_cell(env, model, status, variant=variant, machine=machine, started_at=started, metrics=GEN, **extra)


@pytest.fixture
def shards(tmp_path: Path) -> Path:
    """Two machines' CI artifacts as the workflow downloads them: host-a ran tf-4.40, host-b
    ran latest and re-ran one tf-4.40 cell later (a duplicate; its tf-4.40 facts differ)."""
    models = [("qwen", ""), ("glm", ""), ("glm", "extract-past")]
    run_a = tmp_path / "shards" / "probe-tf-4.40" / "runs" / "20261125T100000Z-aaaa"
    env_folder(run_a, "tf-4.40", HOST_A, "4.40.2", models)
    cell("tf-4.40", "qwen", HOST_A, "2026-11-25T10:00:05+00:00").write(run_a)
    cell("tf-4.40", "glm", HOST_A, "2026-11-25T10:00:06+00:00").write(run_a)
    cell("tf-4.40", "glm", HOST_A, "2026-11-25T10:00:07+00:00", "extract-past", "pass-with-shim").write(run_a)
    (run_a / "tf-4.40" / "qwen.log").write_text("host-a log of qwen\n")
    run_b = tmp_path / "shards" / "probe-latest" / "runs" / "20261125T100000Z-aaaa"
    env_folder(run_b, "latest", HOST_B, "5.2.0", models)
    env_folder(run_b, "tf-4.40", HOST_B, "4.40.2", models)
    cell("latest", "qwen", HOST_B, "2026-11-25T10:01:00+00:00").write(run_b)
    error = {"type": "AttributeError", "message": "no attribute 'x'"}
    cell("latest", "glm", HOST_B, "2026-11-25T10:01:01+00:00", status="fail", phase="generate", error=error).write(
        run_b
    )
    cell("tf-4.40", "qwen", HOST_B, "2026-11-25T11:00:00+00:00").write(run_b)  # newer than host-a's
    (run_b / "tf-4.40" / "qwen.log").write_text("host-b log of qwen\n")
    return tmp_path / "shards"


def merged_run(results: Path) -> Path:
    runs = sorted((results / "runs").iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def test_merge_keeps_newest_duplicate_machines_and_warns(shards, tmp_path, capsys):
    results = tmp_path / "results"
    assert main(["report", "--merge", str(shards), "--results", str(results)]) == 0
    out, err = capsys.readouterr()
    run = merged_run(results)
    assert sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()) == [
        MERGE_FILE,
        "latest/_env.json",
        "latest/_plan.json",
        "latest/glm.json",
        "latest/qwen.json",
        "tf-4.40/_env.json",
        "tf-4.40/_plan.json",
        "tf-4.40/glm+extract-past.json",
        "tf-4.40/glm.json",
        "tf-4.40/qwen.json",
        "tf-4.40/qwen.log",
    ]
    assert (run / "tf-4.40" / "qwen.log").read_text() == "host-b log of qwen\n", "the winner's log goes with it"
    data = json.loads((results / "matrix.json").read_text())
    hosts = {(c["env"], c["model"], c["variant"]): c["machine"]["hostname"] for c in data["cells"]}
    assert hosts == {
        ("tf-4.40", "qwen", ""): B,
        ("tf-4.40", "glm", ""): A,
        ("tf-4.40", "glm", "extract-past"): A,
        ("latest", "qwen", ""): B,
        ("latest", "glm", ""): B,
    }
    assert data["not_run"] == [{"env": "latest", "model": "glm", "variant": "extract-past"}]
    assert [m["label"] for m in data["meta"]["machines"]] == [B, A]
    a_folder = shards / "probe-tf-4.40" / "runs" / "20261125T100000Z-aaaa" / "tf-4.40"
    b_folder = shards / "probe-latest" / "runs" / "20261125T100000Z-aaaa" / "tf-4.40"
    duplicate = (
        f"warning: duplicate cell tf-4.40/qwen: kept {b_folder / 'qwen.json'} (started 2026-11-25T11:00:00+00:00),"
        f" dropped {a_folder / 'qwen.json'} (started 2026-11-25T10:00:05+00:00)"
    )
    assert duplicate in err.splitlines()
    facts = f"warning: env tf-4.40: facts differ between {a_folder} (host-a) and {b_folder} (host-b)"
    assert f"{facts}; kept those of {a_folder}" in err.splitlines(), "host-a won 2 of the env's 3 cells"
    assert json.loads((run / "tf-4.40" / ENV_FACTS_FILE).read_text())["machine"] == HOST_A
    line = f"cells from 2 machines: {B} (tf-4.40, latest), {A} (tf-4.40)"
    assert line in out.splitlines(), "the terminal (a CI job's public log) names machines as the page does"
    compatibility = (results / "COMPATIBILITY.md").read_text()
    assert f"Cells from 2 machines: {B} (tf-4.40, latest), {A} (tf-4.40)." in compatibility
    assert f"Run `{run.name}` on 2 machines" in compatibility
    kept = "duplicate cell tf-4.40/qwen: kept shards/probe-latest/runs/20261125T100000Z-aaaa/tf-4.40/qwen.json"
    assert kept in compatibility, "the merge's warnings are published, paths relative to the results' folder"
    assert "host-a" not in compatibility and str(tmp_path) not in compatibility
    html = (results / "index.html").read_text()
    assert f"Cells from 2 machines: {B} (tf-4.40, latest), {A} (tf-4.40)." in html
    assert "host-a" not in html and "host-b" not in html
    details = json.loads(re.search(r'id="cells">(.*?)</script>', html, re.S).group(1))
    assert dict(details["tf-4.40/glm"])["machine"] == f"{A} (Linux-x86_64, 2 CPUs, 7.8 GB, Python 3.11.7)"
    assert dict(details["latest/qwen"])["machine"].startswith(f"{B} (Linux-aarch64, 8 CPUs")


def test_the_merged_run_rerenders_with_report_newest(shards, tmp_path, capsys):
    results = tmp_path / "results"
    assert main(["report", "--merge", str(shards), "--results", str(results)]) == 0
    first = json.loads((results / "matrix.json").read_text())
    capsys.readouterr()
    assert main(["report", "newest", "--results", str(results)]) == 0
    out, err = capsys.readouterr()
    again = json.loads((results / "matrix.json").read_text())
    assert again["meta"]["run_id"] == first["meta"]["run_id"] == merged_run(results).name
    assert again["cells"] == first["cells"]
    assert "cells from 2 machines" in out and "warning: duplicate cell tf-4.40/qwen" in err
    assert main(["report", "--results", str(results)]) == 0, "no RUN_DIR and no --merge: the newest run"
    assert json.loads((results / "matrix.json").read_text())["meta"]["run_id"] == first["meta"]["run_id"]


def test_a_tie_goes_to_the_later_merge_folder(tmp_path, capsys):
    same = "2026-11-25T10:00:00+00:00"
    for name, machine in (("one", HOST_A), ("two", HOST_B)):
        cell("tf-4.40", "qwen", machine, same).write(tmp_path / name / "r1")
    results = tmp_path / "results"
    assert main(["report", "--merge", str(tmp_path / "one"), str(tmp_path / "two"), "--results", str(results)]) == 0
    assert "(same start time: the later --merge folder wins)" in capsys.readouterr().err
    assert json.loads((results / "matrix.json").read_text())["cells"][0]["machine"] == {**HOST_B, "hostname": B}


def test_report_run_dir_with_merge_merges_both(shards, tmp_path, capsys):
    """What `nox -s matrix -- --merge DIR` runs: its own fresh run plus the shards."""
    own = tmp_path / "results" / "runs" / "20261125T090000Z-own0"
    cell("tf-4.50", "qwen", HOST_A, "2026-11-25T09:00:00+00:00").write(own)
    results = tmp_path / "results"
    assert main(["report", str(own), "--merge", str(shards), "--results", str(results), "--fail-on-regression"]) == 0
    assert "Merged the shards of 2 folders into" in capsys.readouterr().out
    data = json.loads((results / "matrix.json").read_text())
    assert {c["env"] for c in data["cells"]} == {"tf-4.40", "tf-4.50", "latest"}
    assert data["meta"]["run_id"] != own.name


def test_results_folder_merges_its_runs_not_its_bisect_cells(tmp_path, capsys):
    source = tmp_path / "old-results"
    cell("tf-4.40", "qwen", HOST_A, "2026-11-25T09:00:00+00:00").write(source / "runs" / "r1")
    cell("tf-4.41.2", "qwen", HOST_A, "2026-11-25T09:00:00+00:00").write(source / "bisect" / "qwen")
    results = tmp_path / "results"
    assert main(["report", "--merge", str(source), "--results", str(results)]) == 0
    assert [p.name for p in merged_run(results).iterdir() if p.is_dir()] == ["tf-4.40"]


def test_damaged_and_misplaced_shard_files_are_skipped_with_a_warning(tmp_path, capsys):
    run = tmp_path / "shard" / "r1"
    cell("tf-4.40", "qwen", HOST_A, "2026-11-25T09:00:00+00:00").write(run)
    (run / "tf-4.40" / "torn.json").write_text('{"schema": 1, "env"')
    misplaced = cell("elsewhere", "glm", HOST_A, "2026-11-25T09:00:00+00:00").to_dict()
    (run / "tf-4.40" / "glm.json").write_text(json.dumps(misplaced))
    results = tmp_path / "results"
    assert main(["report", "--merge", str(tmp_path / "shard"), "--results", str(results)]) == 0
    err = capsys.readouterr().err
    assert f"skipped damaged file {run / 'tf-4.40' / 'torn.json'}" in err
    assert f"skipped cell file {run / 'tf-4.40' / 'glm.json'}: it says it is elsewhere/glm" in err
    assert sorted(p.name for p in (merged_run(results) / "tf-4.40").iterdir()) == ["qwen.json"]


def test_missing_or_empty_merge_folders_are_one_line_errors(shards, tmp_path, capsys):
    results = tmp_path / "results"
    missing = tmp_path / "nowhere"
    assert main(["report", "--merge", str(shards), str(missing), "--results", str(results)]) == 2
    assert capsys.readouterr().err == f"error: --merge {missing}: no such folder\n"
    empty = tmp_path / "empty" / "runs" / "r1" / "tf-4.40"
    write_json_atomic(empty / ENV_FACTS_FILE, {"name": "tf-4.40", "machine": HOST_A})
    assert main(["report", "--merge", str(tmp_path / "empty"), "--results", str(results)]) == 2
    assert capsys.readouterr().err == (
        f"error: --merge {tmp_path / 'empty'}: no cell files below it (expected <run-id>/<env>/<model>.json)\n"
    )
    assert not (results / "runs").exists() or not any((results / "runs").iterdir()), "no half merge is left"


def test_one_machine_has_no_machines_line(tmp_path, capsys):
    run = tmp_path / "runs" / "r1"
    cell("tf-4.40", "qwen", HOST_A, "2026-11-25T09:00:00+00:00").write(run)
    cell("latest", "qwen", HOST_A, "2026-11-25T09:00:01+00:00").write(run)
    matrix = aggregate(collect(run))
    rec = recommend(matrix)
    assert "machines" not in terminal(matrix, rec) and "machines" not in markdown(matrix, rec, WHEN)
    assert "2 machines" not in page(matrix, rec, WHEN)


# Partial runs: a shard that never came, a runner that stopped half way.


def partial_run(tmp_path: Path) -> Path:
    """tf-4.40 ran one of its three planned cells; latest left no folder at all."""
    run = tmp_path / "runs" / "r1"
    env_folder(run, "tf-4.40", HOST_A, "4.40.2", [("qwen", ""), ("glm", ""), ("glm", "extract-past")])
    cell("tf-4.40", "qwen", HOST_A, "2026-11-25T09:00:00+00:00").write(run)
    return run


def test_cells_never_run_show_as_not_run_in_every_view(tmp_path):
    matrix = aggregate(collect(partial_run(tmp_path)))
    rec = recommend(matrix)
    assert [row.label for row in matrix.rows] == ["qwen", "glm", "glm+extract-past"]
    table = terminal(matrix, rec).splitlines()
    assert [line.split()[0] for line in table if "· not run" in line] == ["glm", "glm+extract-past"]
    md_rows = [line for line in markdown(matrix, rec, WHEN).splitlines() if line.startswith("| glm")]
    assert len(md_rows) == 2 and all("· not run" in line for line in md_rows)
    data = matrix_json(matrix, rec, WHEN)
    assert data["not_run"] == [
        {"env": "tf-4.40", "model": "glm", "variant": ""},
        {"env": "tf-4.40", "model": "glm", "variant": "extract-past"},
    ]
    assert [c["model"] for c in data["cells"]] == ["qwen"]
    assert page(matrix, rec, WHEN).count('<td class="none">· not run</td>') == 2
    assert "glm" in rec.uncovered


def test_a_run_missing_a_whole_env_still_renders(tmp_path, capsys):
    run = partial_run(tmp_path)
    results = tmp_path / "results"
    assert main(["report", str(run), "--results", str(results)]) == 0
    data = json.loads((results / "matrix.json").read_text())
    assert [env["name"] for env in data["envs"]] == ["tf-4.40"]
    assert "Pin tf-4.40 (transformers 4.40.2): it runs 1/2 models: qwen." in capsys.readouterr().out


@pytest.mark.e2e
def test_two_real_probe_shards_merge_as_the_workflow_does(tmp_path, nox_envdir):
    """Two probe sessions, each into its own artifact folder under one run id, then the merge job."""
    from tests.envs.test_parallel import nox, statuses

    config = tmp_path / "small.toml"
    config.write_text(TWO_ENVS_ONE_MODEL)
    for env in ("tf-4.40", "tf-4.50"):
        shard = tmp_path / "shards" / f"probe-{env}"
        run_id = "20261125T120000Z-ci00"
        done, _ = nox(
            tmp_path, config, "-s", f"probe(env='{env}')", results=shard, envdir=nox_envdir, MATRIX_RUN_ID=run_id
        )
        assert done.returncode == 0, done.stdout[-3000:]
    results = tmp_path / "results"
    merge_args = ["-s", "report", "--", "--merge", str(tmp_path / "shards"), "--fail-on-regression"]
    done, _ = nox(tmp_path, config, *merge_args, results=results, envdir=nox_envdir)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert statuses(results) == {("tf-4.40", "qwen2-tiny", ""): "pass", ("tf-4.50", "qwen2-tiny", ""): "pass"}
    run = merged_run(results)
    assert sorted(str(p.relative_to(run)) for p in run.glob("*/*")) == [
        "tf-4.40/_env.json",
        "tf-4.40/_plan.json",
        "tf-4.40/qwen2-tiny.json",
        "tf-4.40/qwen2-tiny.log",
        "tf-4.50/_env.json",
        "tf-4.50/_plan.json",
        "tf-4.50/qwen2-tiny.json",
        "tf-4.50/qwen2-tiny.log",
    ]
    data = json.loads((results / "matrix.json").read_text())
    assert [env["transformers"][:4] for env in data["envs"]] == ["4.40", "4.50"]
    assert len(data["meta"]["machines"]) == 1 and "machines:" not in done.stdout, "both shards came from this host"
