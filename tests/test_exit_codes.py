"""A script tells the report's outcomes apart by exit code, through nox too (matrix/exit_codes.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from matrix import exit_codes
from matrix.__main__ import main
from probes.status import Status
from tests.helpers import ROOT, make_cell

CONFIG = """\
[envs.old]
transformers = "==4.40.2"
torch = "==2.13.0"

[envs.new]
transformers = "==4.41.2"
torch = "==2.13.0"

[models.m]
fixture = "qwen2-tiny"
task = "causal-lm"
"""


def a_run(results: Path, new_status: Status) -> Path:
    run = results / "runs" / "r1"
    make_cell("old", "m", Status.PASS, versions={"transformers": "4.40.2"}).write(run)
    make_cell("new", "m", new_status, versions={"transformers": "4.41.2"}).write(run)
    return run


def test_a_published_report_exits_0_and_an_env_that_could_not_be_built_exits_3(tmp_path, capsys):
    results = tmp_path / "results"
    assert main(["report", str(a_run(results, Status.FAIL)), "--results", str(results)]) == exit_codes.OK
    broken = tmp_path / "broken"
    code = main(["report", str(a_run(broken, Status.ENV_FAILED)), "--results", str(broken)])
    assert code == exit_codes.PROBE_FAILURE
    assert "env(s) new could not be built" in capsys.readouterr().err
    assert (broken / "matrix.json").is_file(), "a probe failure still publishes every other cell"


def test_no_run_folder_is_a_usage_error(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nowhere"), "--results", str(tmp_path)]) == exit_codes.USAGE
    assert "nowhere" in capsys.readouterr().err


@pytest.mark.e2e
def test_nox_passes_the_reports_exit_code_through(tmp_path):
    """`nox -s report` builds its small venv and runs the report: the report's 3 leaves nox as 3,
    and a config nox cannot load leaves it as 2."""
    (tmp_path / "matrix.toml").write_text(CONFIG, encoding="utf-8")
    run = a_run(tmp_path / "results", Status.ENV_FAILED)
    env = {key: value for key, value in os.environ.items() if not key.startswith("MATRIX_")}
    nox = [sys.executable, "-m", "nox", "-f", str(ROOT / "noxfile.py"), "--envdir", str(tmp_path / ".nox")]
    env["MATRIX_CONFIG"] = str(tmp_path / "matrix.toml")
    reported = subprocess.run([*nox, "-s", "report", "--", str(run)], env=env, capture_output=True, text=True)
    assert reported.returncode == exit_codes.PROBE_FAILURE, reported.stdout + reported.stderr
    (tmp_path / "matrix.toml").write_text("[envs.old]\ntransformers = 4\n", encoding="utf-8")
    refused = subprocess.run([*nox, "-l"], env=env, capture_output=True, text=True)
    assert refused.returncode == exit_codes.USAGE, refused.stdout + refused.stderr
    assert "matrix.toml" in refused.stderr


def test_a_jobs_count_that_is_not_a_number_is_a_usage_error_naming_it():
    env = {key: value for key, value in os.environ.items() if not key.startswith("MATRIX_")}
    env["MATRIX_JOBS"] = "two"
    listed = subprocess.run(
        [sys.executable, "-m", "nox", "-f", str(ROOT / "noxfile.py"), "-l"], env=env, capture_output=True, text=True
    )
    assert listed.returncode == exit_codes.USAGE, listed.stdout + listed.stderr
    assert "MATRIX_JOBS='two'" in listed.stderr
