"""Verdicts of their own: a missing package, non-finite outputs, a degenerate generation, drift that blocks."""

from __future__ import annotations

from pathlib import Path

from matrix.diagnosis import diagnose, load_known_breaks
from matrix.judge.drift import judge_outputs, with_judgements
from matrix.recommend import recommend
from matrix.report.render import cell_text
from matrix.results.aggregate import aggregate
from matrix.results.collect import Run
from probes.status import Status
from tests.helpers import make_cell

VERSIONS = {"old": "4.40.2", "new": "4.50.3"}
REQUIRED = (
    "This modeling file requires the following packages that were not found in your environment: einops. "
    "Run `pip install einops`"
)


def run_of(cells, packages=None, settings=None):
    packages = packages or {}
    envs = {
        env: {"name": env, "packages": {"transformers": version, **packages.get(env, {})}}
        for env, version in VERSIONS.items()
    }
    matrix = aggregate(Run(Path("runs/r1"), envs, cells, list(dict.fromkeys(c.model for c in cells))))
    matrix = with_judgements(matrix, judge_outputs(matrix, {}, settings or {}))
    diagnose(matrix, load_known_breaks())
    return matrix


def test_a_missing_package_names_it_says_to_declare_it_and_that_the_demand_left_transformers():
    matrix = run_of(
        [
            make_cell("old", "m", Status.PASS),
            make_cell("new", "m", Status.FAIL, phase="config", error={"type": "ImportError", "message": REQUIRED}),
        ],
        packages={"old": {"einops": "0.8.0"}},
    )
    diagnosis = matrix.cell("new", "m").diagnosis
    assert diagnosis["source"] == "missing-package" and diagnosis["id"] == "missing package: einops"
    assert "transformers 4.40.2 installed as its own dependency" in diagnosis["cause"]
    assert diagnosis["fixes"][-1] == 'declare it: requires = ["einops"] in [models.m]'
    assert not any("pip install" in fix for fix in diagnosis["fixes"])


def test_a_release_that_ran_the_model_without_the_package_means_the_demand_changed():
    matrix = run_of(
        [
            make_cell("old", "m", Status.PASS),
            make_cell("new", "m", Status.FAIL, phase="config", error={"type": "ImportError", "message": REQUIRED}),
        ],
    )
    diagnosis = matrix.cell("new", "m").diagnosis
    assert "transformers 4.40.2 ran it without einops, so the demand changed with the release" in diagnosis["cause"]
    assert diagnosis["fixes"][-1] == "or use transformers 4.40.2, which runs it without einops"


def test_a_missing_module_of_a_package_is_the_same_verdict():
    matrix = run_of(
        [make_cell("old", "m", Status.FAIL, phase="load", error={"type": "ModuleNotFoundError",
                                                                  "message": "No module named 'sentencepiece'"})]
    )  # fmt: skip
    diagnosis = matrix.cell("old", "m").diagnosis
    assert diagnosis["id"] == "missing package: sentencepiece"
    assert "must declare it" in diagnosis["cause"]


def test_non_finite_outputs_are_their_own_verdict():
    message = "non-finite outputs in forward: 12 of 5376 values are NaN, 0 are inf"
    matrix = run_of(
        [
            make_cell("old", "m", Status.PASS),
            make_cell("new", "m", Status.FAIL, phase="forward", error={"type": "NonFiniteOutputs", "message": message}),
        ]
    )
    diagnosis = matrix.cell("new", "m").diagnosis
    assert diagnosis["source"] == "non-finite" and diagnosis["id"] == "non-finite outputs"
    assert diagnosis["introduced_in"] == "4.50.3" and diagnosis["last_good"] == "4.40.2"
    assert "pin transformers==4.40.2 (the newest release seen running it)" in diagnosis["fixes"]


def test_a_generation_collapsed_to_one_token_is_degenerate_and_does_not_serve():
    matrix = run_of(
        [
            make_cell("old", "m", Status.PASS, fingerprint={"tokens": [5, 9, 2, 7]}),
            make_cell("new", "m", Status.PASS, fingerprint={"tokens": [0, 0, 0, 0]}),
        ]
    )
    cell = matrix.cell("new", "m")
    assert cell.drift["degenerate"] and "id 0 x4" in cell.drift["detail"]
    assert "degenerate" in cell_text(cell, markdown=False)
    rec = recommend(matrix)
    assert rec.best.envs == ("old",)
    assert any("not counted as running it" in line for line in rec.lines)


def test_a_drifting_cell_never_serves_whatever_drift_blocks_says():
    cells = [
        make_cell("old", "m", Status.PASS, fingerprint={"tokens": [5, 9, 2, 7]}),
        make_cell("new", "m", Status.PASS, fingerprint={"tokens": [5, 9, 2, 8]}),
    ]
    matrix = run_of(cells)
    for blocks in (False, True):
        rec = recommend(matrix, drift_blocks=blocks)
        assert rec.best.envs == ("old",) and rec.pin()["transformers"] == rec.per_env[0]["transformers"]
        assert rec.different_outputs == {"m": ["new"]}
