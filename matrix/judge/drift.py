"""Judge passing cells by their outputs and metrics: shims, drift, budgets.

- A shim variant counts as `pass-with-shim` only if its outputs match the model's unshimmed
  reference (the base cell in the oldest env where it passes): same generated tokens,
  embeddings within tolerance. Otherwise it becomes `fail` with "shim changes outputs".
- Drift: every other passing cell of a model is compared with that same reference; a
  difference is a flag on the cell (`drift`), not a failure. The outputs of the team's
  probe scripts are compared the same way, for drift and for shims.
- Degenerate generation: greedy tokens that collapse to one repeated token where the
  reference's do not (what NaN logits decode to) are flagged `degenerate`; the
  recommendation does not count such a cell as running its model.
- Budgets: a passing cell over a model's budget keeps `pass` and carries `over_budget`;
  a `metric_budgets` entry bounds a number a probe script reported.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from matrix.results.aggregate import Matrix
from probes.record import CellResult
from probes.status import Status

LATENCY_METRICS = ("generate_median_s", "embed_median_s")


def references(matrix: Matrix) -> dict[str, CellResult]:
    """Per model, its base cell in the oldest env where that cell passes."""
    found = {}
    for row in matrix.rows:
        if row.variant:
            continue
        for env in matrix.envs:
            cell = row.cells.get(env.name)
            if cell is not None and cell.status is Status.PASS:
                found[row.model] = cell
                break
    return found


SAME = "same outputs"


def difference(reference: CellResult, cell: CellResult, settings: dict[str, Any]) -> str | None:
    """How `cell`'s outputs differ from `reference`'s: `SAME`, a description, or None when
    the two fingerprints hold nothing comparable. The built-in outputs first, then the
    outputs of the team's probe scripts."""
    built_in = _built_in_difference(reference, cell, settings)
    if built_in not in (None, SAME):
        return built_in
    scripts = _probe_difference(reference, cell, settings)
    return scripts if scripts is not None else built_in


def _built_in_difference(reference: CellResult, cell: CellResult, settings: dict[str, Any]) -> str | None:
    if "tokens" in reference.fingerprint or "tokens" in cell.fingerprint:
        ref, got = reference.fingerprint.get("tokens"), cell.fingerprint.get("tokens")
        if ref != got:
            same = sum(1 for a, b in zip(ref or [], got or [], strict=False) if a == b)
            return f"generated tokens differ from {reference.env} ({same}/{len(ref or [])} equal)"
        ref_chat, chat = reference.fingerprint.get("chat"), cell.fingerprint.get("chat")
        if ref_chat and chat and ref_chat != chat:
            return f"chat reply differs from {reference.env}"
        return SAME
    ref_vectors = (reference.fingerprint.get("embedding") or {}).get("vectors")
    vectors = (cell.fingerprint.get("embedding") or {}).get("vectors")
    if not ref_vectors or not vectors:
        return None
    if len(ref_vectors) != len(vectors) or any(len(a) != len(b) for a, b in zip(ref_vectors, vectors, strict=False)):
        return f"embedding shape differs from {reference.env}"
    min_cosine = min(_cosine(a, b) for a, b in zip(ref_vectors, vectors, strict=True))
    max_abs = max(abs(x - y) for a, b in zip(ref_vectors, vectors, strict=True) for x, y in zip(a, b, strict=True))
    if min_cosine < settings.get("drift_min_cosine", 0.9999) or max_abs > settings.get("drift_max_abs", 1e-4):
        return f"embeddings differ from {reference.env} (min cosine {min_cosine:.6f}, max abs diff {max_abs:.2g})"
    return SAME


def _probe_difference(reference: CellResult, cell: CellResult, settings: dict[str, Any]) -> str | None:
    """The first output of a probe script that differs from the reference's, in words;
    SAME when all match; None when neither cell has probe outputs."""
    ref_probes, probes = reference.fingerprint.get("probes") or {}, cell.fingerprint.get("probes") or {}
    if not ref_probes and not probes:
        return None
    for probe in sorted(set(ref_probes) | set(probes)):
        ref_outputs, outputs = ref_probes.get(probe) or {}, probes.get(probe) or {}
        for name in sorted(set(ref_outputs) | set(outputs)):
            if name not in ref_outputs or name not in outputs:
                lacking = reference.env if name not in ref_outputs else cell.env
                return f"probe {probe}: output {name!r} is missing in {lacking}"
            how = _value_difference(ref_outputs[name], outputs[name], settings)
            if how:
                return f"probe {probe}: output {name!r} differs from {reference.env} ({how})"
    return SAME


def _value_difference(ref: Any, got: Any, settings: dict[str, Any]) -> str | None:
    """How two outputs differ: text, booleans, whole numbers and structure exactly; numbers
    with a fraction within the drift tolerances (largest absolute difference; cosine when
    there are several)."""
    if _shape(ref) != _shape(got):
        return "different values"
    ref_numbers, numbers = list(_numbers(ref)), list(_numbers(got))
    if not any(isinstance(x, float) for x in ref_numbers + numbers):
        return None if ref_numbers == numbers else "different values"
    max_abs = max((abs(x - y) for x, y in zip(ref_numbers, numbers, strict=True)), default=0.0)
    cosine = _cosine(ref_numbers, numbers) if len(numbers) > 1 else 1.0
    if max_abs > settings.get("drift_max_abs", 1e-4) or cosine < settings.get("drift_min_cosine", 0.9999):
        return f"max abs diff {max_abs:.2g}" + (f", cosine {cosine:.6f}" if len(numbers) > 1 else "")
    return None


def _numbers(value: Any) -> Iterator[float]:
    """Every number in a (nested) output, in order (dicts by key)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _numbers(item)
    elif isinstance(value, dict):
        for key in sorted(value):
            yield from _numbers(value[key])


def _shape(value: Any) -> Any:
    """A value with its numbers blanked out: its structure, text and booleans."""
    if isinstance(value, list):
        return [_shape(item) for item in value]
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return 0
    return value


@dataclass(frozen=True)
class Judgement:
    """What judging decided about one passing cell: its status and reason (a shim that
    changes outputs becomes a failure), its drift flag and the budgets it misses."""

    env: str
    model: str
    variant: str
    status: Status
    reason: str
    drift: dict[str, Any] | None
    over_budget: tuple[dict[str, Any], ...]


def judge_outputs(matrix: Matrix, model_specs: dict[str, dict[str, Any]], settings: dict[str, Any]) -> list[Judgement]:
    """Judge every passing cell by shim verification, drift and budgets; the matrix is not
    touched (`with_judgements` makes the judged copy)."""
    refs = references(matrix)
    decided = []
    for row in matrix.rows:
        ref = refs.get(row.model)
        for cell in row.cells.values():
            if cell is None or not cell.status.passed:
                continue
            decided.append(_judge_cell(cell, ref, model_specs.get(row.model, {}), settings))
    return decided


def _judge_cell(cell: CellResult, ref: CellResult | None, spec: dict[str, Any], settings: dict[str, Any]) -> Judgement:
    status, reason, drift = cell.status, cell.reason, None
    diff = difference(ref, cell, settings) if ref is not None and cell is not ref else None
    if cell.status is Status.PASS_WITH_SHIM:
        if diff is None and cell is not ref:
            reason = f"passes with shim {cell.variant}; outputs unverified (no unshimmed pass to compare)"
        elif diff not in (None, SAME):
            failed = f"shim changes outputs: {diff}"
            return Judgement(cell.env, cell.model, cell.variant, Status.FAIL, failed, None, ())
    if diff is not None and ref is not None:
        drift = {"reference": ref.env, "differs": diff != SAME, "detail": diff}
        collapsed = degenerate(ref, cell)
        if collapsed:
            drift.update(degenerate=True, detail=collapsed)
    budgets = tuple(over_budget(cell, spec, settings))
    return Judgement(cell.env, cell.model, cell.variant, status, reason, drift, budgets)


def with_judgements(matrix: Matrix, judgements: list[Judgement]) -> Matrix:
    """A copy of `matrix` whose judged cells carry what `judge_outputs` decided (the cells
    themselves are copied, so the collected run stays as it was read)."""
    by_cell = {(j.env, j.model, j.variant): j for j in judgements}

    def judged(cell: CellResult | None) -> CellResult | None:
        found = by_cell.get((cell.env, cell.model, cell.variant)) if cell is not None else None
        if cell is None or found is None:
            return cell
        budgets = list(found.over_budget)
        return replace(cell, status=found.status, reason=found.reason, drift=found.drift, over_budget=budgets)

    rows = [replace(row, cells={env: judged(cell) for env, cell in row.cells.items()}) for row in matrix.rows]
    return replace(matrix, rows=rows)


def degenerate(reference: CellResult, cell: CellResult) -> str | None:
    """How `cell`'s generation collapsed to one repeated token where `reference`'s did not."""
    for key in ("tokens", "chat"):
        ref, got = reference.fingerprint.get(key), cell.fingerprint.get(key)
        ref_tokens = ref.get("tokens") if isinstance(ref, dict) else ref
        tokens = got.get("tokens") if isinstance(got, dict) else got
        if not tokens or not ref_tokens or len(tokens) < 2:
            continue
        if len(set(tokens)) == 1 and len(set(ref_tokens)) > 1:
            where = "generation" if key == "tokens" else "chat reply"
            repeated = f"one token repeated (id {tokens[0]} x{len(tokens)})"
            return f"degenerate {where}: {repeated} where {reference.env} varies"
    return None


def over_budget(cell: CellResult, spec: dict[str, Any], settings: dict[str, Any]) -> list[dict[str, Any]]:
    """Each budget of the model this cell misses, with the measured value."""
    budgets = spec.get("budgets") or {}
    missed = []
    latency = next((cell.metrics[k] for k in LATENCY_METRICS if k in cell.metrics), None)
    if "max_latency_s" in budgets and latency is not None and latency > budgets["max_latency_s"]:
        missed.append({"budget": "max_latency_s", "limit": budgets["max_latency_s"], "value": latency})
    memory = cell.metrics.get("peak_rss_increase_mb", cell.metrics.get("peak_cuda_mb"))
    if "max_memory_mb" in budgets and memory is not None and memory > budgets["max_memory_mb"]:
        missed.append({"budget": "max_memory_mb", "limit": budgets["max_memory_mb"], "value": memory})
    for key, (bound, limit) in (spec.get("metric_budgets") or {}).items():
        value = cell.metrics.get(key)
        if value is None or (value < limit if bound == ">=" else value > limit):
            missed.append({"budget": key, "bound": bound, "limit": limit, "value": value})
    if "min_similarity_accuracy" in budgets:
        accuracy = similarity_accuracy(cell, settings.get("similarity_threshold", 0.5))
        if accuracy is None or accuracy < budgets["min_similarity_accuracy"]:
            missed.append(
                {"budget": "min_similarity_accuracy", "limit": budgets["min_similarity_accuracy"], "value": accuracy}
            )
    return missed


def similarity_accuracy(cell: CellResult, threshold: float) -> float | None:
    """Share of labelled pairs classified right (related when cosine > threshold)."""
    facts = cell.facts.get("similarity") or {}
    scores, labels = facts.get("scores"), facts.get("labels")
    if not scores or not labels or len(scores) != len(labels):
        return None
    right = sum(1 for score, label in zip(scores, labels, strict=True) if (score > threshold) == bool(label))
    return round(right / len(scores), 4)


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 1.0
