"""What changed since the previous published run: statuses with the previous run; timings
and memory only with earlier runs of the same env on the same machine fingerprint, by the
gate (matrix/judge/gate.py). Each regression line names the history it was judged against
and the effect size."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from matrix.history.summary import BUDGET_OF_UNIT, describe, is_number
from matrix.judge import gate
from probes.status import Status

LISTED = 8  # keys named on one grouped line before "and N more"


@dataclass
class Comparison:
    """What changed since the previous published run, and what the gate found."""

    previous_run: str | None
    rules: gate.Rules = field(default_factory=gate.Rules)
    new_failures: list[str] = field(default_factory=list)
    no_verdict: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)
    slower: list[str] = field(default_factory=list)
    unstable: list[str] = field(default_factory=list)
    # Number of earlier runs on this machine -> the cells that had that few (fewer than 2).
    thin_history: dict[int, list[str]] = field(default_factory=dict)
    new_versions: list[str] = field(default_factory=list)
    judged: list[str] = field(default_factory=list)  # the passing cells the gate looked at

    @property
    def regressed(self) -> bool:
        """New failures or regressions the gate reported: what --fail-on-regression fails on."""
        return bool(self.new_failures or self.slower)

    def lines(self) -> list[str]:
        if self.previous_run is None:
            return ["First published run: nothing to compare with."]
        rules = self.rules
        lines = [
            f"Compared with run {self.previous_run}; timings and memory with earlier runs on the same machine "
            f"(slower when z >= {rules.z:g} over the last {rules.lookback} runs and a rank test p <= "
            f"{gate.RANK_ALPHA:g}, and the change reaches {rules.min_effect_pct:g} %, {rules.min_effect_s * 1000:g} ms "
            f"({rules.min_effect_mb:g} MB for memory) and {rules.budget_pct:g} % of the budget):"
        ]
        lines += [f"- new failure: {item}" for item in self.new_failures]
        lines += [f"- no verdict now: {item}" for item in self.no_verdict]
        lines += [f"- fixed: {item}" for item in self.fixes]
        lines += [f"- slower: {item}" for item in self.slower]
        if self.unstable:
            lines.append(
                "- unstable, not judged (the CPU was busy: most samples waited while other processes ran): "
                + _listed(self.unstable)
            )
        for runs, keys in sorted(self.thin_history.items()):
            plural = "run" if runs == 1 else "runs"
            which = f"every cell ({len(keys)})" if len(keys) > 1 and len(keys) == len(self.judged) else _listed(keys)
            lines.append(f"- not enough history on this machine ({runs} {plural}): {which}")
        lines += [f"- new version: {item}" for item in self.new_versions]
        if not self.regressed:
            lines.append("- no regressions")
        return lines


def compare(earlier: list[dict[str, Any]], current: dict[str, Any], settings: Mapping[str, Any]) -> Comparison:
    """Status changes since the last of `earlier` (oldest first), and the gate's verdict on
    every timing and memory metric of the current run's passing cells."""
    if not earlier:
        return Comparison(previous_run=None)
    previous = earlier[-1]
    result = Comparison(previous_run=str(previous["run_id"]), rules=gate.Rules.from_settings(settings))
    for key, now in sorted(current["cells"].items()):
        before = previous["cells"].get(key)
        if not isinstance(before, dict) or not isinstance(now, dict):
            continue
        passed_now, passed_before = _passed(now), _passed(before)
        change = f"{key} ({before.get('status')} -> {now.get('status')})"
        if passed_before and not passed_now:
            (result.no_verdict if _says_nothing(now) else result.new_failures).append(change)
        elif passed_now and not passed_before:
            result.fixes.append(change)
    _judge_metrics(earlier, current, result)
    for env, version in current["envs"].items():
        old = previous.get("envs", {}).get(env)
        if old and old != version:
            result.new_versions.append(f"{env}: transformers {old} -> {version}")
    return result


def _judge_metrics(earlier: list[dict[str, Any]], current: dict[str, Any], result: Comparison) -> None:
    rules = result.rules
    prints = current.get("fingerprints") or {}
    budgets = current.get("budgets") or {}
    for key, now in sorted(current["cells"].items()):
        if not isinstance(now, dict) or not _passed(now):
            continue
        env, _, stem = key.partition("/")
        here = prints.get(env)
        same_machine = [entry for entry in earlier if here and (entry.get("fingerprints") or {}).get(env) == here]
        history = [entry["cells"].get(key) for entry in same_machine]
        history = [cell for cell in history if isinstance(cell, dict) and _passed(cell)]
        budget_of = budgets.get(stem.split("+", 1)[0]) or {}
        fewest: int | None = None
        result.judged.append(key)
        for name, unit, measured, past in _metrics(now, history):
            verdict = gate.judge(measured, past, rules, unit, budget_of.get(BUDGET_OF_UNIT[unit]))
            if verdict.kind == gate.UNSTABLE:
                result.unstable.append(f"{key} {name} ({verdict.total - verdict.kept} of {verdict.total} set aside)")
            elif verdict.kind == gate.NO_HISTORY:
                fewest = verdict.runs if fewest is None else min(fewest, verdict.runs)
            elif verdict.kind == gate.REGRESSION:
                result.slower.append(_regression_line(key, name, verdict, here or {}))
        if fewest is not None:
            result.thin_history.setdefault(fewest, []).append(key)


def _metrics(
    now: dict[str, Any], history: list[dict[str, Any]]
) -> list[tuple[str, str, gate.Measurement, list[gate.Measurement]]]:
    """(name, unit, this run's measurement, the history's) for each metric of a cell."""
    found: list[tuple[str, str, gate.Measurement | None, list[gate.Measurement]]] = []
    for name, data in sorted((now.get("timings") or {}).items()):
        past = [_timing(cell.get("timings", {}).get(name)) for cell in history]
        found.append((f"{name} latency", "s", _timing(data), [m for m in past if m is not None]))

    for name, value in sorted((now.get("memory") or {}).items()):
        if is_number(value):
            past_values = [(cell.get("memory") or {}).get(name) for cell in history]
            memory = [gate.Measurement((float(v),)) for v in past_values if isinstance(v, int | float) and is_number(v)]
            found.append((f"memory {name}", "MB", gate.Measurement((float(value),)), memory))
    return [(name, unit, measured, past) for name, unit, measured, past in found if measured is not None]


def _timing(data: Any) -> gate.Measurement | None:
    if not isinstance(data, dict) or not isinstance(data.get("samples"), list):
        return None
    samples = tuple(float(value) for value in data["samples"] if is_number(value))
    disturbed = data.get("disturbed")
    return gate.Measurement(samples, int(disturbed) if isinstance(disturbed, int) else 0)


def _regression_line(key: str, name: str, verdict: gate.MetricVerdict, print_: Mapping[str, Any]) -> str:
    unit = verdict.unit
    value, mean, spread, effect = verdict.value or 0.0, verdict.mean or 0.0, verdict.spread or 0.0, verdict.effect
    rank = f", rank test p {verdict.p:.1g}" if verdict.p is not None else ""
    return (
        f"{key} {name} {_amount(value, unit)} against {_amount(mean, unit)} (sd {_amount(spread, unit)}) "
        f"over {verdict.runs} earlier runs on {describe(print_)}: +{_amount(effect or 0.0, unit)} "
        f"(+{verdict.effect_pct or 0.0:.0f} %, needed {_amount(verdict.needed or 0.0, unit)}), z {verdict.z:.1f}{rank}"
    )


def _amount(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.3g} ms" if abs(value) < 1 else f"{value:.3g} s"
    return f"{value:.1f} MB"


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:LISTED])
    return shown + (f" and {len(keys) - LISTED} more" if len(keys) > LISTED else "")


def _passed(cell: Mapping[str, Any]) -> bool:
    return str(cell.get("status", "")).startswith("pass")


def _says_nothing(cell: Mapping[str, Any]) -> bool:
    try:
        return Status(cell.get("status")).says_nothing
    except ValueError:
        return False
