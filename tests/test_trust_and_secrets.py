"""Remote code runs only when trusted, and no secret reaches a file, a log, a table or the page.

Real runner, real transformers 4.40.2 env, remote-code models from tests/fault_models.py:
one prints every token it can see and raises with them in its message; one is not trusted.
"""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path

import pytest

from matrix import proc
from matrix.envs.run import ensure_fixtures
from matrix.recommend import recommend
from matrix.report.page import page
from matrix.report.render import markdown, terminal
from matrix.results.aggregate import UNPINNED_MARK, aggregate
from matrix.results.collect import Run
from probes.record import CellResult
from probes.redact import MARK, redact
from tests.fault_models import write_faulty_model
from tests.helpers import ROOT, make_cell, nox_list

HF_SHAPED = "hf_" + secrets.token_hex(17)  # a Hugging Face token: caught by value and by shape
PLAIN = "plain-" + secrets.token_hex(6)  # not token-shaped: caught by value only


def spec(name: str, folder: Path, trusted: bool) -> dict:
    return {
        "model": name,
        "variant": "",
        "source_kind": "path",
        "location": str(folder),
        "task": "embedding",
        "revision": None,
        "trust_remote_code": trusted,
        "timeout": 120.0,
        "device": "cpu",
        "dtype": "float32",
        "max_new_tokens": 4,
        "similarity_check": False,
        "memory_limit_mb": None,
        "warm": ["roberta"],
    }


@pytest.fixture(scope="module")
def planted_run(tf440_python, fixture_cache, tmp_path_factory):
    tokenizer = Path(ensure_fixtures(tf440_python, ["codebert-tiny"], fixture_cache)["codebert-tiny"])
    base = tmp_path_factory.mktemp("secrets")
    markers = base / "imported"
    markers.mkdir()
    cells = [
        spec("leaky", write_faulty_model(base / "models" / "leaky", "leak", tokenizer), trusted=True),
        spec("untrusted", write_faulty_model(base / "models" / "untrusted", "none", tokenizer), trusted=False),
    ]
    run_dir = base / "runs" / "20261125T000000Z-abcd"
    plan = base / "plan.json"
    plan.write_text(json.dumps({"env": "tf-4.40", "run_dir": str(run_dir), "cells": cells}))
    planted = {"HF_TOKEN": HF_SHAPED, "HF_SECOND_TOKEN": PLAIN}
    runner = proc.run(
        [tf440_python, "-m", "probes.runner", plan],
        env={"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "MATRIX_TEST_IMPORT_MARKERS": str(markers), **planted},
    )
    results = base / "results"
    report = proc.run(
        [sys.executable, "-m", "matrix", "report", run_dir, "--results", results],
        env={"PYTHONPATH": str(ROOT), **planted},
    )
    return runner, report, run_dir, results, markers


def test_model_code_saw_the_token_so_the_test_means_something(planted_run):
    _, _, run_dir, _, _ = planted_run
    cell = json.loads((run_dir / "tf-4.40" / "leaky.json").read_text())
    assert cell["status"] == "fail" and cell["error"]["type"] == "RuntimeError"
    assert cell["error"]["message"].count(MARK) >= 3, cell["error"]["message"]
    assert f"tokens: ['{MARK}', '{MARK}']" in (run_dir / "tf-4.40" / "leaky.log").read_text()


def test_no_planted_secret_in_any_file_or_output(planted_run):
    runner, report, run_dir, results, _ = planted_run
    assert runner.ok and report.ok, runner.output + report.output
    files = [path for folder in (run_dir, results) for path in folder.rglob("*") if path.is_file()]
    assert {"COMPATIBILITY.md", "matrix.json", "index.html", "history.jsonl"} <= {path.name for path in files}
    assert any(path.suffix == ".log" for path in files)
    for path in files:
        text = path.read_bytes().decode("utf-8", "replace")
        for planted in (HF_SHAPED, PLAIN):
            assert planted not in text, f"{planted[:6]}... found in {path}"
    for output in (runner.output, report.output):
        assert HF_SHAPED not in output and PLAIN not in output


def test_untrusted_remote_code_never_runs(planted_run):
    _, _, run_dir, _, markers = planted_run
    cell = json.loads((run_dir / "tf-4.40" / "untrusted.json").read_text())
    assert cell["status"] == "fail" and cell["phase"] == "config"
    assert "trust_remote_code=True" in cell["error"]["message"]
    ran = sorted(path.name for path in markers.iterdir())
    assert ran == ["leaky"], f"remote code that ran: {ran}"  # the trusted one did: the marker works


def test_token_shapes_are_redacted_whatever_their_origin():
    foreign = "hf_" + "A1b2" * 8  # from a shard made on another machine: not in our environment
    text = f"x {foreign} https://bob:pa55word@index.example/simple Authorization: Bearer abc.def-123456"
    cleaned = redact(text, secrets=[])
    assert foreign not in cleaned and "pa55word" not in cleaned and "abc.def-123456" not in cleaned
    assert "https://[REDACTED]@index.example" in cleaned and cleaned.count(MARK) == 3


@pytest.mark.parametrize("name", ["../../etc", "a/b", ".hidden", ""])
def test_cell_names_cannot_leave_the_run_folder(name):
    with pytest.raises(ValueError, match="not a safe file name"):
        CellResult(env=name or "x", model="m" if name else "", variant="", status="pass")


def test_unpinned_remote_code_is_marked_in_every_table_and_warned_about():
    cells = [make_cell("tf-4.40", "glm", "pass"), make_cell("tf-4.40", "qwen", "pass")]
    specs = {"glm": {"unpinned_remote_code": True}, "qwen": {"unpinned_remote_code": False}}
    matrix = aggregate(Run(Path("runs/r1"), {}, cells, ["glm", "qwen"], model_specs=specs))
    rec = recommend(matrix)
    assert [matrix.label(row) for row in matrix.rows] == [f"glm {UNPINNED_MARK}", "qwen"]
    assert f"| glm {UNPINNED_MARK} |" in markdown(matrix, rec, "now")
    assert f"glm {UNPINNED_MARK}" in terminal(matrix, rec)
    assert f"<th>glm {UNPINNED_MARK}</th>" in page(matrix, rec, "now")
    (warning,) = matrix.warnings
    assert warning.startswith("glm: trust_remote_code = true without a pinned revision")


def test_a_run_id_cannot_name_a_folder_outside_results():
    done = nox_list(MATRIX_RUN_ID="../../outside")
    assert done.returncode == 2
    assert "error: MATRIX_RUN_ID '../../outside' is not a folder name" in done.stderr
