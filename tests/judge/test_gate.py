"""The regression gate's judging, on plain numbers (matrix/gate.py)."""

from __future__ import annotations

import math

import pytest

from matrix.config import Settings
from matrix.judge import gate
from matrix.judge.gate import NO_HISTORY, OK, REGRESSION, UNSTABLE, Measurement, Rules, judge, rank_test_greater

RULES = Rules()


def run(median: float, spread: float = 0.02, count: int = 9) -> Measurement:
    """One run's samples: `count` values around `median`, `spread` apart (relative)."""
    half = count // 2
    return Measurement(tuple(median * (1 + spread * (i - half) / max(half, 1)) for i in range(count)))


def window(*medians: float) -> list[Measurement]:
    return [run(median) for median in medians]


HISTORY = window(0.0100, 0.0102, 0.0099, 0.0101, 0.0100)


def test_a_rerun_inside_its_history_is_not_a_regression():
    verdict = judge(run(0.0102), HISTORY, RULES, "s")
    assert verdict.kind == OK
    assert verdict.runs == 5 and verdict.z is not None and verdict.z < RULES.z


def test_a_2x_slowdown_is_a_regression_with_its_effect_and_history():
    verdict = judge(run(0.0200), HISTORY, RULES, "s")
    assert verdict.kind == REGRESSION
    assert verdict.runs == 5
    assert verdict.effect == pytest.approx(0.0200 - 0.01004)
    assert verdict.effect_pct == pytest.approx(99.2, abs=0.5)
    assert verdict.p is not None and verdict.p < gate.RANK_ALPHA


def test_fewer_than_two_stable_earlier_runs_is_no_history_whatever_the_change():
    assert judge(run(0.05), [], RULES, "s").kind == NO_HISTORY
    one = judge(run(0.05), window(0.01), RULES, "s")
    assert (one.kind, one.runs) == (NO_HISTORY, 1)
    busy = Measurement((0.01,), disturbed=20)  # an unstable earlier run does not count
    assert judge(run(0.05), [*window(0.01), busy], RULES, "s").runs == 1


def test_a_significant_change_below_the_minimum_effect_is_not_reported():
    tight = [Measurement((0.0100,)) for _ in range(5)]
    small = Measurement((0.0108,) * 9)  # +8 %, z = 8 against the 1 % spread floor
    assert judge(small, tight, RULES, "s").kind == OK
    no_minimum = Rules(min_effect_pct=0, min_effect_s=0, budget_pct=0)
    assert judge(small, tight, no_minimum, "s").kind == REGRESSION


def test_a_cell_far_under_its_budget_needs_a_larger_change():
    doubled = run(0.0200)
    far_under = judge(doubled, HISTORY, RULES, "s", budget=2.0)  # 1 % of 2 s = 20 ms > +10 ms
    assert far_under.kind == OK and far_under.needed == pytest.approx(0.02)
    near = judge(doubled, HISTORY, RULES, "s", budget=0.5)  # 1 % of 0.5 s = 5 ms
    assert near.kind == REGRESSION and near.needed == pytest.approx(0.005)


def test_a_noisy_history_makes_a_large_change_insignificant():
    noisy = window(0.005, 0.015, 0.008, 0.020, 0.011)
    verdict = judge(run(0.024), noisy, RULES, "s")
    assert verdict.kind == OK and verdict.z is not None and verdict.z < RULES.z


def test_the_rank_test_stops_a_median_shift_the_samples_do_not_support():
    history = [Measurement((0.009, 0.010, 0.010, 0.011, 0.012)) for _ in range(3)]
    mixed = Measurement((0.001, 0.002, 0.013, 0.050, 0.060))  # median +26 %, but 2 of 5 samples below all
    verdict = judge(mixed, history, RULES, "s")
    assert verdict.z is not None and verdict.z >= RULES.z and verdict.p is not None and verdict.p > gate.RANK_ALPHA
    assert verdict.kind == OK


def test_the_lookback_window_is_the_last_stable_runs():
    history = window(*([0.020] * 18), 0.010, 0.010)  # a recent speed-up
    back_to_slow = run(0.020)
    assert judge(back_to_slow, history, Rules(lookback=2), "s").kind == REGRESSION
    assert judge(back_to_slow, history, Rules(lookback=20), "s").kind == OK


def test_memory_is_judged_on_one_value_per_run():
    history = [Measurement((value,)) for value in (5.3, 5.4, 5.2)]
    planted = judge(Measurement((305.3,)), history, RULES, "MB", budget=1024)
    assert planted.kind == REGRESSION and planted.effect == pytest.approx(300.0)
    assert planted.p is None  # one value per run: z-score and effect only
    assert judge(Measurement((9.0,)), history, RULES, "MB", budget=1024).kind == OK  # +3.7 MB < 10.24 MB


def test_samples_the_busy_machine_slowed_are_set_aside_and_a_mostly_busy_run_is_unstable():
    wall = [0.010] * 4 + [0.080] * 6
    waited = [0.0] * 4 + [0.070] * 6
    others = [0.0002] * 4 + [0.075] * 6
    measured = gate.undisturbed(wall, waited, others)
    assert measured.samples == (0.010,) * 4 and measured.disturbed == 6
    assert not measured.stable
    verdict = judge(measured, HISTORY, RULES, "s")
    assert (verdict.kind, verdict.kept, verdict.total) == (UNSTABLE, 4, 10)
    mostly_quiet = gate.undisturbed([0.08] * 3 + [0.010] * 6, [0.07] * 3 + [0.0] * 6, [0.075] * 3 + [0.0] * 6)
    assert mostly_quiet.stable and mostly_quiet.disturbed == 3 and mostly_quiet.value == 0.010


def test_a_sleeping_or_self_contended_sample_is_not_disturbed():
    # Others ran but this process did not wait (it slept): kept.
    assert gate.undisturbed([0.1], [0.0001], [0.09]).samples == (0.1,)
    # This process's threads waited on each other while nobody else ran: kept.
    assert gate.undisturbed([0.0013], [0.0027], [0.0002]).samples == (0.0013,)
    # Nothing known about others (no CPU accounting on this system): kept.
    assert gate.undisturbed([0.01], [0.009], [None]).samples == (0.01,)


def test_rank_test_p_values():
    assert rank_test_greater([6, 7, 8, 9, 10], [1, 2, 3, 4, 5]) == pytest.approx(0.0061, abs=0.001)
    assert rank_test_greater([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]) > 0.99
    assert rank_test_greater([3, 3, 3], [3, 3, 3]) == 1.0
    middle = rank_test_greater([1, 3, 5, 7, 9], [2, 4, 6, 8, 10])
    assert 0.4 < middle < 0.8 and math.isfinite(middle)


def test_rules_come_from_the_settings_with_the_configs_defaults():
    assert Rules.from_settings({}) == Rules()
    defaults = Settings()
    assert (RULES.lookback, RULES.z, RULES.min_effect_pct, RULES.budget_pct) == (
        defaults.regression_lookback,
        defaults.regression_z,
        defaults.regression_min_effect_pct,
        defaults.regression_budget_pct,
    )
    given = Rules.from_settings({"regression_z": 3, "regression_lookback": 5, "regression_min_effect_mb": 50})
    assert (given.z, given.lookback, given.min_effect_mb, given.min_effect_s) == (3.0, 5, 50.0, RULES.min_effect_s)
