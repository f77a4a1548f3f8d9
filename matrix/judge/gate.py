"""The regression gate: is this run's metric slower (or bigger) than this machine's history says it should be?

Pure judging over numbers (matrix/history.py reads and writes the history and picks which
earlier runs count). Learned from Conbench and asv/pyperf:

- A metric is judged only against earlier runs of the same config on the same machine
  (the caller's choice), the last `lookback` of them in which it was measured stably, and
  only when there are at least two (Conbench's lookback z-score needs two); otherwise the
  verdict is `no-history`, never a guess.
- A latency keeps its repeat samples. Samples during which other processes ran and this
  process's threads waited for a CPU are set aside (`undisturbed`); when most were set
  aside the run's value is `unstable` and is not judged (Conbench labels such results
  instead of alarming on them).
- A slowdown is a regression only when it is significant against that history, both by
  the lookback z-score of the run's median over the window's medians and, where both sides
  have samples, by a one-sided rank test (Mann-Whitney U) of the run's samples against the
  window's, and when it is large enough to matter: at least `min_effect_pct` % of the
  window's mean, `min_effect_s` (or `min_effect_mb`), and `budget_pct` % of the model's
  budget, so that a cell far under its budget needs a larger change.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from matrix.config import Settings

# A latency sample counts as disturbed when other processes used the CPU for more than this
# share of its wall time (and at least OTHERS_FLOOR_S: the background of an idle machine is
# about 0.2 ms per sample) while this process's threads waited on a run queue for more than
# WAITED_SHARE of it. Measured on 2 CPUs with one busy loop beside the cells: disturbed
# samples ran 1.5-50x slower; on a quiet machine under 2 % of samples are set aside.
OTHERS_SHARE = 0.2
OTHERS_FLOOR_S = 0.0005
WAITED_SHARE = 0.05
# A run's metric is stable when at least this many samples, and half of them, are undisturbed.
MIN_UNDISTURBED = 3
# Noise floor of the window's spread, so two identical history values do not make every
# change "infinitely significant": 1 % of the mean, or the metric's resolution.
SPREAD_FLOOR_SHARE = 0.01
RESOLUTION = {"s": 1e-6, "MB": 0.1}
RANK_ALPHA = 0.01

NO_HISTORY, UNSTABLE, OK, REGRESSION = "no-history", "unstable", "ok", "regression"
_DEFAULT = Settings()


@dataclass(frozen=True)
class Rules:
    """The gate's settings (`[settings] regression_*` in the config)."""

    lookback: int = _DEFAULT.regression_lookback
    z: float = _DEFAULT.regression_z
    min_effect_pct: float = _DEFAULT.regression_min_effect_pct
    min_effect_s: float = _DEFAULT.regression_min_effect_s
    min_effect_mb: float = _DEFAULT.regression_min_effect_mb
    budget_pct: float = _DEFAULT.regression_budget_pct

    @classmethod
    def from_settings(cls, settings: Mapping[str, object]) -> Rules:
        """The rules a run's settings give (a key the settings lack keeps its default)."""
        default = cls()

        def number(key: str, fallback: float) -> float:
            value = settings.get(f"regression_{key}")
            return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else fallback

        return cls(
            lookback=max(2, int(number("lookback", default.lookback))),
            z=number("z", default.z),
            min_effect_pct=number("min_effect_pct", default.min_effect_pct),
            min_effect_s=number("min_effect_s", default.min_effect_s),
            min_effect_mb=number("min_effect_mb", default.min_effect_mb),
            budget_pct=number("budget_pct", default.budget_pct),
        )

    def min_effect(self, unit: str) -> float:
        return self.min_effect_s if unit == "s" else self.min_effect_mb


@dataclass(frozen=True)
class Measurement:
    """One metric of one cell in one run: its undisturbed samples (one value for memory) and
    how many samples were set aside."""

    samples: tuple[float, ...]
    disturbed: int = 0

    @property
    def stable(self) -> bool:
        if not self.samples:
            return False
        total = len(self.samples) + self.disturbed
        return self.disturbed == 0 or len(self.samples) >= max(MIN_UNDISTURBED, math.ceil(total / 2))

    @property
    def value(self) -> float:
        return float(statistics.median(self.samples))


def undisturbed(wall: Sequence[float], waited: Sequence[float | None], others: Sequence[float | None]) -> Measurement:
    """The samples the rest of the machine did not slow down (see OTHERS_SHARE)."""
    kept: list[float] = []
    for index, seconds in enumerate(wall):
        wait = waited[index] if index < len(waited) else None
        other = others[index] if index < len(others) else None
        busy = other is not None and other > max(OTHERS_FLOOR_S, OTHERS_SHARE * seconds)
        if not (busy and wait is not None and wait > WAITED_SHARE * seconds):
            kept.append(seconds)
    return Measurement(tuple(kept), len(wall) - len(kept))


@dataclass(frozen=True)
class MetricVerdict:
    """What the gate said about one metric, with the figures a report line needs."""

    kind: str
    unit: str
    value: float | None = None
    runs: int = 0
    mean: float | None = None
    spread: float | None = None
    z: float | None = None
    p: float | None = None
    needed: float | None = None
    kept: int = 0
    total: int = 0

    @property
    def effect(self) -> float | None:
        return None if self.value is None or self.mean is None else self.value - self.mean

    @property
    def effect_pct(self) -> float | None:
        effect = self.effect
        return None if effect is None or not self.mean else effect / self.mean * 100


def judge(
    current: Measurement,
    history: Sequence[Measurement],
    rules: Rules,
    unit: str,
    budget: float | None = None,
) -> MetricVerdict:
    """The verdict on `current` against `history` (earlier runs on this machine, oldest first)."""
    total = len(current.samples) + current.disturbed
    if not current.stable:
        return MetricVerdict(UNSTABLE, unit, kept=len(current.samples), total=total)
    window = [run for run in history if run.stable][-rules.lookback :]
    value = current.value
    if len(window) < 2:
        return MetricVerdict(NO_HISTORY, unit, value, runs=len(window), kept=len(current.samples), total=total)
    medians = [run.value for run in window]
    mean = statistics.fmean(medians)
    spread = max(statistics.stdev(medians), SPREAD_FLOOR_SHARE * abs(mean), RESOLUTION.get(unit, 0.0))
    z = (value - mean) / spread
    pooled = [sample for run in window for sample in run.samples]
    p = rank_test_greater(current.samples, pooled) if len(current.samples) >= 3 and len(pooled) >= 3 else None
    needed = max(
        rules.min_effect(unit),
        rules.min_effect_pct / 100 * abs(mean),
        rules.budget_pct / 100 * budget if budget else 0.0,
    )
    significant = z >= rules.z and (p is None or p <= RANK_ALPHA)
    kind = REGRESSION if significant and value - mean >= needed else OK
    return MetricVerdict(kind, unit, value, len(window), mean, spread, z, p, needed, len(current.samples), total)


def rank_test_greater(sample: Sequence[float], reference: Sequence[float]) -> float:
    """One-sided Mann-Whitney U test: the p-value of `sample` being no larger than
    `reference` (normal approximation with tie and continuity corrections)."""
    n1, n2 = len(sample), len(reference)
    combined = sorted([(value, 0) for value in sample] + [(value, 1) for value in reference])
    ranks = [0.0] * len(combined)
    ties = 0.0
    start = 0
    while start < len(combined):
        end = start
        while end + 1 < len(combined) and combined[end + 1][0] == combined[start][0]:
            end += 1
        for index in range(start, end + 1):
            ranks[index] = (start + end) / 2 + 1
        count = end - start + 1
        ties += count**3 - count
        start = end + 1
    rank_sum = sum(rank for rank, (_, side) in zip(ranks, combined, strict=True) if side == 0)
    u = rank_sum - n1 * (n1 + 1) / 2
    n = n1 + n2
    variance = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    if variance <= 0:
        return 1.0
    z = (u - n1 * n2 / 2 - 0.5) / math.sqrt(variance)
    return 0.5 * math.erfc(z / math.sqrt(2))
