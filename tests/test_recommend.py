"""Aggregation and the recommendation, including an exhaustive check on random matrices."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from matrix.recommend import recommend
from matrix.results.aggregate import aggregate
from matrix.results.collect import Run
from probes.status import Status
from tests.helpers import make_cell

VERSIONS = {"old": "4.40.2", "mid": "4.50.3", "new": "5.24.0"}


def build(outcomes: dict[tuple[str, str, str], Status], versions: dict[str, str] = VERSIONS):
    """A matrix from {(env, model, variant): status}."""
    cells = [make_cell(env, model, status, variant=variant) for (env, model, variant), status in outcomes.items()]
    envs = {env: {"name": env, "packages": {"transformers": version}} for env, version in versions.items()}
    models = list(dict.fromkeys(model for _, model, _ in outcomes))
    return aggregate(Run(Path("runs/r1"), envs, cells, models))


def grid(table: dict[str, str], shim_rows: dict[str, str] | None = None):
    """Rows of one letter per env (old, mid, new): P pass, F fail, S pass-with-shim."""
    letters = {"P": Status.PASS, "F": Status.FAIL, "S": Status.PASS_WITH_SHIM, "E": Status.ENV_FAILED}
    outcomes = {}
    for model, row in table.items():
        for env, letter in zip(VERSIONS, row, strict=True):
            outcomes[(env, model, "")] = letters[letter]
    for model, row in (shim_rows or {}).items():
        for env, letter in zip(VERSIONS, row, strict=True):
            outcomes[(env, model, "fix")] = letters[letter]
    return build(outcomes)


def test_columns_are_ordered_by_resolved_version_and_rows_by_plan():
    matrix = build({("new", "b", ""): Status.PASS, ("old", "a", ""): Status.PASS, ("mid", "a", ""): Status.FAIL})
    assert [env.name for env in matrix.envs] == ["old", "mid", "new"]
    assert [row.label for row in matrix.rows] == ["b", "a"]
    assert matrix.cell("mid", "b") is None


def test_one_env_that_runs_everything_without_shims_wins():
    rec = recommend(grid({"a": "PPP", "glm": "PFF"}, {"glm": "SSF"}))
    assert rec.kind == "single" and rec.best.envs == ("old",)
    assert rec.lines[0] == "Pin old (transformers 4.40.2): it runs 2/2 models: a, glm."
    assert "- old (4.40.2) covers all models without shims" in rec.lines
    assert "- mid (4.50.3) covers all models with shim fix for glm" in rec.lines
    assert "- new (5.24.0) covers 1/2 models without shims" in rec.lines


def test_a_shim_beats_a_second_env():
    rec = recommend(grid({"a": "FPP", "glm": "PFF"}, {"glm": "FSF"}))
    assert rec.best.envs == ("mid",)
    assert rec.best.shims == 1
    assert rec.lines[0] == "Pin mid (transformers 4.50.3): it runs 2/2 models: a, glm (with shim fix)."


def test_newest_env_breaks_ties():
    assert recommend(grid({"a": "PPP", "b": "PPP"})).best.envs == ("new",)


def test_split_when_no_env_runs_everything():
    rec = recommend(grid({"a": "PFF", "b": "FFP", "c": "PPP"}))
    assert rec.kind == "split" and rec.best.envs == ("old", "new")
    assert rec.lines[1] == "- old (transformers 4.40.2) for 1/3 models: a"
    assert rec.lines[2] == "- new (transformers 5.24.0) for 2/3 models: b, c"


def test_optional_models_never_force_an_extra_env():
    matrix = grid({"a": "PFF", "extra": "FFP"})
    assert recommend(matrix).best.envs == ("old", "new")
    rec = recommend(matrix, optional=frozenset({"extra"}))
    assert rec.best.envs == ("old",) and rec.uncovered == []
    assert "Optional (never force an extra env): extra." in rec.lines


def test_required_budgets_drop_cells_over_budget():
    matrix = grid({"a": "PPP"})
    matrix.cell("new", "a").over_budget = [{"budget": "max_latency_s", "limit": 2, "value": 3}]
    assert recommend(matrix).best.envs == ("new",)
    assert recommend(matrix, require_budgets=True).best.envs == ("mid",)


def test_models_no_env_runs_are_named():
    rec = recommend(grid({"a": "PPP", "dead": "FFE"}))
    assert rec.uncovered == ["dead"] and rec.best.envs == ("new",)
    assert "No env runs: dead." in rec.lines
    assert recommend(grid({"dead": "FFF"})).kind == "none"


def _brute_force(matrix):
    """Every subset of envs, scored by the stated preference order."""
    rank = {env.name: i for i, env in enumerate(matrix.envs)}
    ways: dict[str, list[tuple[str, str]]] = {}
    for row in matrix.rows:
        for env, cell in row.cells.items():
            if cell is not None and cell.status.passed:
                ways.setdefault(row.model, []).append((env, row.variant))
    best = None
    if not ways:
        return None
    for size in range(1, len(rank) + 1):
        for combo in itertools.combinations(rank, size):
            if not all(any(env in combo for env, _ in found) for found in ways.values()):
                continue
            shims = sum(min(bool(v) for env, v in found if env in combo) for found in ways.values())
            score = (size, shims, sorted(-rank[e] for e in combo))
            best = score if best is None or score < best else best
        if best:
            return best
    return None


@pytest.mark.parametrize("seed", range(200))
def test_search_matches_brute_force_on_random_matrices(seed):
    rng = random.Random(seed)
    envs = {f"e{i}": f"4.{40 + i}.0" for i in range(rng.randint(2, 8))}
    outcomes = {}
    for model in range(rng.randint(1, 9)):
        for env in envs:
            outcomes[(env, f"m{model}", "")] = rng.choice([Status.PASS, Status.FAIL, Status.FAIL])
            if model % 2:
                outcomes[(env, f"m{model}", "fix")] = rng.choice([Status.PASS_WITH_SHIM, Status.FAIL])
    matrix = build(outcomes, envs)
    rec = recommend(matrix)
    expected = _brute_force(matrix)
    if expected is None:
        assert rec.best is None
        return
    rank = {env.name: i for i, env in enumerate(matrix.envs)}
    got = (len(rec.best.envs), rec.best.shims, sorted(-rank[e] for e in rec.best.envs))
    assert got == expected


def test_bisect_bounds_become_exact_lines():
    bisects = {
        "glm": {
            "model": "glm",
            "last_good": "4.41.2",
            "first_bad": "4.42.0",
            "exact": True,
            "first_bad_error": {"phase": "generate", "type": "ValueError", "message": "too many values"},
            "bound": {"range": "transformers>=4.40,<4.42", "pin": "transformers==4.41.2"},
        },
        "gone": {"last_good": "1", "first_bad": "2", "bound": {"range": "r", "pin": "p"}},
    }
    rec = recommend(grid({"a": "PPP", "glm": "PFF"}), bisects=bisects)
    assert rec.lines[-1] == (
        "Bisect: glm works up to 4.41.2 and breaks in 4.42.0 (ValueError in generate): "
        "transformers>=4.40,<4.42, newest good pinned: transformers==4.41.2."
    )
    assert list(rec.to_dict()["bounds"]) == ["glm"]


def test_variant_rows_keep_the_configs_shim_order():
    cells = [make_cell("old", "m", Status.FAIL), make_cell("old", "m", Status.PASS_WITH_SHIM, variant="zeta")]
    cells.append(make_cell("old", "m", Status.PASS_WITH_SHIM, variant="alpha"))
    planned = [("m", ""), ("m", "zeta"), ("m", "alpha")]
    envs = {"old": {"name": "old", "packages": {"transformers": "4.40.2"}}}
    matrix = aggregate(Run(Path("runs/r1"), envs, cells, ["m"], planned=planned))
    assert [row.label for row in matrix.rows] == ["m", "m+zeta", "m+alpha"]


def judged(cells):
    """A matrix whose outputs are judged (drift against each model's reference env)."""
    from matrix.judge.drift import judge_outputs, with_judgements

    envs = {env: {"name": env, "packages": {"transformers": version}} for env, version in VERSIONS.items()}
    matrix = aggregate(Run(Path("runs/r1"), envs, cells, list(dict.fromkeys(c.model for c in cells))))
    return with_judgements(matrix, judge_outputs(matrix, {}, {}))


def test_an_env_whose_outputs_changed_is_named_but_never_the_pin():
    # b's tokens change in new (a silent break: uninitialised buffers, re-initialised weights)
    cells = [
        make_cell("old", "a", Status.FAIL),
        make_cell("mid", "a", Status.PASS),
        make_cell("new", "a", Status.PASS),
        make_cell("old", "b", Status.PASS, fingerprint={"tokens": [1, 2, 3]}),
        make_cell("mid", "b", Status.PASS, fingerprint={"tokens": [1, 2, 3]}),
        make_cell("new", "b", Status.PASS, fingerprint={"tokens": [1, 2, 4]}),
    ]
    rec = recommend(judged(cells))
    assert rec.best.envs == ("mid",) and rec.pin() == {"transformers": "4.50.3", "evidence": "env mid", "shims": {}}
    assert rec.different_outputs == {"b": ["new"]}
    assert rec.to_dict()["different_outputs"] == {"b": ["new"]}
    assert "- new (5.24.0) covers 1/2 models without shims; runs b with different outputs" in rec.lines
    assert [item["different_outputs"] for item in rec.per_env] == [[], [], ["b"]]
    assert any("runs, different outputs in new; not counted as running it" in line for line in rec.lines)


def test_changed_outputs_cost_a_second_env_rather_than_count_as_running():
    cells = [
        make_cell("old", "b", Status.FAIL),
        make_cell("mid", "b", Status.PASS, fingerprint={"tokens": [1, 2, 3]}),
        make_cell("new", "b", Status.PASS, fingerprint={"tokens": [7, 7, 9]}),
        make_cell("new", "a", Status.PASS),
        make_cell("old", "a", Status.FAIL),
        make_cell("mid", "a", Status.FAIL),
    ]
    rec = recommend(judged(cells))
    # a runs only in new; b runs unchanged only in mid: two envs, never new for b
    assert rec.best.envs == ("mid", "new")
    assert {(c.model, c.env) for c in rec.best.choices} == {("a", "new"), ("b", "mid")}
    cells[1] = make_cell("mid", "b", Status.FAIL)  # now b's reference is new's own output: nothing differs
    assert recommend(judged(cells)).different_outputs == {}
