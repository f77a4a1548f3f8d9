"""Shim verification by outputs, drift against the reference env, and budgets."""

from __future__ import annotations

from pathlib import Path

from matrix.judge.drift import judge_outputs, similarity_accuracy, with_judgements
from matrix.recommend import recommend
from matrix.results.aggregate import aggregate
from matrix.results.collect import Run
from probes.status import Status
from tests.helpers import make_cell

VERSIONS = {"old": "4.40.2", "mid": "4.50.3", "new": "5.24.0"}
SETTINGS = {"drift_min_cosine": 0.9999, "drift_max_abs": 1e-4, "similarity_threshold": 0.5}


def tokens(*ids):
    return {"fingerprint": {"tokens": list(ids)}, "metrics": {"generate_median_s": 0.02, "peak_rss_increase_mb": 50}}


def vectors(*rows):
    return {"fingerprint": {"embedding": {"vectors": [list(r) for r in rows]}}, "metrics": {"embed_median_s": 0.01}}


def matrix_of(*cells, specs=None):
    envs = {env: {"packages": {"transformers": version}} for env, version in VERSIONS.items()}
    models = list(dict.fromkeys(cell.model for cell in cells))
    matrix = aggregate(Run(Path("runs/r"), envs, list(cells), models))
    matrix = with_judgements(matrix, judge_outputs(matrix, specs or {}, SETTINGS))
    return matrix


def test_a_shim_that_reproduces_the_reference_tokens_passes():
    matrix = matrix_of(
        make_cell("old", "glm", Status.PASS, **tokens(1, 2, 3)),
        make_cell("mid", "glm", Status.FAIL),
        make_cell("mid", "glm", Status.PASS_WITH_SHIM, variant="fix", **tokens(1, 2, 3)),
    )
    shimmed = matrix.cell("mid", "glm", "fix")
    assert shimmed.status is Status.PASS_WITH_SHIM
    assert shimmed.drift == {"reference": "old", "differs": False, "detail": "same outputs"}


def test_a_shim_that_changes_outputs_is_a_failure_that_says_so():
    matrix = matrix_of(
        make_cell("old", "glm", Status.PASS, **tokens(1, 2, 3)),
        make_cell("mid", "glm", Status.PASS_WITH_SHIM, variant="fix", **tokens(1, 9, 3)),
    )
    shimmed = matrix.cell("mid", "glm", "fix")
    assert shimmed.status is Status.FAIL
    assert shimmed.reason == "shim changes outputs: generated tokens differ from old (2/3 equal)"
    assert recommend(matrix).best.envs == ("old",)


def test_a_shim_without_any_unshimmed_pass_is_kept_but_marked_unverified():
    matrix = matrix_of(make_cell("mid", "glm", Status.PASS_WITH_SHIM, variant="fix", **tokens(1)))
    cell = matrix.cell("mid", "glm", "fix")
    assert cell.status is Status.PASS_WITH_SHIM and "unverified" in cell.reason


def test_drift_is_a_flag_against_the_oldest_passing_env_and_a_recommendation_line():
    matrix = matrix_of(
        make_cell("old", "enc", Status.FAIL),
        make_cell("mid", "enc", Status.PASS, **vectors((1.0, 0.0), (0.0, 1.0))),
        make_cell("new", "enc", Status.PASS, **vectors((1.0, 0.001), (0.0, 1.0))),
    )
    assert matrix.cell("mid", "enc").drift is None
    drift = matrix.cell("new", "enc").drift
    assert drift["reference"] == "mid" and drift["differs"]
    assert "max abs diff 0.001" in drift["detail"]
    rec = recommend(matrix)
    line = "Outputs of enc change between 4.50.3 and 5.24.0: runs, different outputs in new; not counted as running it."
    assert line in rec.lines
    assert rec.best.envs == ("mid",) and rec.different_outputs == {"enc": ["new"]}


def test_tiny_float_noise_is_not_drift():
    matrix = matrix_of(
        make_cell("old", "enc", Status.PASS, **vectors((0.6, 0.8))),
        make_cell("new", "enc", Status.PASS, **vectors((0.60001, 0.79999))),
    )
    assert matrix.cell("new", "enc").drift["differs"] is False


def test_budgets_mark_cells_but_keep_them_passing():
    specs = {"glm": {"budgets": {"max_latency_s": 0.01, "max_memory_mb": 1024}}}
    matrix = matrix_of(make_cell("old", "glm", Status.PASS, **tokens(1)), specs=specs)
    cell = matrix.cell("old", "glm")
    assert cell.status is Status.PASS
    assert cell.over_budget == [{"budget": "max_latency_s", "limit": 0.01, "value": 0.02}]


def test_similarity_accuracy_budget():
    facts = {"similarity": {"scores": [0.9, 0.7, 0.2, 0.6], "labels": [True, True, False, False]}}
    cell = make_cell("old", "enc", Status.PASS, facts=facts, **vectors((1.0,)))
    assert similarity_accuracy(cell, 0.5) == 0.75
    specs = {"enc": {"budgets": {"min_similarity_accuracy": 0.85}}}
    matrix = matrix_of(cell, specs=specs)
    assert matrix.cell("old", "enc").over_budget == [
        {"budget": "min_similarity_accuracy", "limit": 0.85, "value": 0.75}
    ]
