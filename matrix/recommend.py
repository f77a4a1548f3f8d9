"""Recommend the environments to run: one pinned env if one runs every model, else the
fewest envs that together do.

A model is served by an env when its base cell passes there, or a shim variant passes
(`pass-with-shim`). Preference, in order: fewest envs, then fewest shims, then newer
transformers; remaining ties go to env names, so the answer is deterministic. The search is
exact: it finds every smallest cover, then applies the preferences.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from matrix.aggregate import Matrix


@dataclass(frozen=True)
class Choice:
    """Which env (and shim, if any) serves one model."""

    model: str
    env: str
    shim: str = ""


@dataclass(frozen=True)
class Option:
    """A set of envs that together serve the coverable models."""

    envs: tuple[str, ...]
    choices: tuple[Choice, ...]

    @property
    def shims(self) -> int:
        return sum(1 for choice in self.choices if choice.shim)

    def models_of(self, env: str) -> list[Choice]:
        return [choice for choice in self.choices if choice.env == env]


@dataclass
class Recommendation:
    """The recommendation, with the evidence-based summary lines the renderers print."""

    kind: str  # "single", "split" or "none"
    best: Option | None
    uncovered: list[str]
    per_env: list[dict[str, Any]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    bounds: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "envs": list(self.best.envs) if self.best else [],
            "choices": [asdict(choice) for choice in self.best.choices] if self.best else [],
            "uncovered": self.uncovered,
            "per_env": self.per_env,
            "summary": self.lines,
            "bounds": self.bounds,
            "preference": "fewest envs, then fewest shims, then newest transformers",
        }


def ways_to_serve(matrix: Matrix, require_budgets: bool = False) -> dict[str, list[Choice]]:
    """For each model, every (env, shim) whose cell passed (and met its budgets, if required)."""
    ways: dict[str, list[Choice]] = {model: [] for model in matrix.models}
    for row in matrix.rows:
        for env, cell in row.cells.items():
            if cell is not None and cell.status.passed and not (require_budgets and cell.over_budget):
                ways.setdefault(row.model, []).append(Choice(row.model, env, row.variant))
    return ways


def recommend(
    matrix: Matrix,
    optional: frozenset[str] = frozenset(),
    require_budgets: bool = False,
    bisects: dict[str, dict[str, Any]] | None = None,
) -> Recommendation:
    """Compute the best option from the matrix's cells.

    Optional models are served when the chosen envs happen to run them, but never force
    an extra env. With `require_budgets`, a cell over any budget does not count as serving.
    `bisects` (results/bisect/<model>.json) turn a pass/fail pair of envs into exact bounds.
    """
    rank = {env.name: index for index, env in enumerate(matrix.envs)}  # oldest first
    ways = ways_to_serve(matrix, require_budgets)
    uncovered = [model for model, found in ways.items() if not found and model not in optional]
    coverable = {model: found for model, found in ways.items() if found and model not in optional}
    best = _search(coverable, rank) if coverable else None
    if best is not None:
        extra = [_best_choice(found, best.envs, rank) for m, found in ways.items() if m in optional]
        best = Option(best.envs, best.choices + tuple(c for c in extra if c is not None))
    kind = "none" if best is None else ("single" if len(best.envs) == 1 else "split")
    recommendation = Recommendation(kind, best, uncovered, per_env=_per_env(matrix, ways))
    recommendation.bounds = {
        model: {
            key: found[key] for key in ("last_good", "first_bad", "bound", "first_bad_error", "exact") if key in found
        }
        for model, found in (bisects or {}).items()
        if model in matrix.models
    }
    recommendation.lines = _describe(matrix, recommendation, optional) + _bound_lines(recommendation.bounds)
    return recommendation


def _bound_lines(bounds: dict[str, dict[str, Any]]) -> list[str]:
    """Exact bounds from bisect: the range a model runs in, and the newest good release."""
    lines = []
    for model, found in sorted(bounds.items()):
        error = found.get("first_bad_error") or {}
        why = f" ({error.get('type')} in {error.get('phase')})" if error.get("type") else ""
        exact = "" if found.get("exact", True) else " (approximate: some releases could not be tested)"
        lines.append(
            f"Bisect: {model} works up to {found['last_good']} and breaks in {found['first_bad']}{why}{exact}: "
            f"{found['bound']['range']}, newest good pinned: {found['bound']['pin']}."
        )
    return lines


def _best_choice(found: list[Choice], envs: tuple[str, ...], rank: dict[str, int]) -> Choice | None:
    usable = [choice for choice in found if choice.env in envs]
    return min(usable, key=lambda c: (bool(c.shim), -rank[c.env], c.shim)) if usable else None


def _search(coverable: dict[str, list[Choice]], rank: dict[str, int]) -> Option | None:
    """Every smallest set of envs that covers all models, then the preferred one.

    Exact cover by depth-first search over bitmasks: at each step branch only on the envs
    that serve the first model not yet covered (any cover must contain one of them), with
    the depth limited to the size being tried. Fast for many envs and thousands of models.
    """
    models = list(coverable)
    masks: dict[str, int] = {}
    for index, model in enumerate(models):
        for choice in coverable[model]:
            masks[choice.env] = masks.get(choice.env, 0) | (1 << index)
    full = (1 << len(models)) - 1
    serving = [sorted({c.env for c in coverable[m]}, key=lambda e: -rank[e]) for m in models]
    covers: set[tuple[str, ...]] = set()

    def extend(chosen: tuple[str, ...], covered: int, limit: int) -> None:
        if covered == full:
            covers.add(tuple(sorted(chosen)))
            return
        if len(chosen) == limit:
            return
        first = (~covered & full & -(~covered & full)).bit_length() - 1
        for env in serving[first]:
            if env not in chosen:
                extend((*chosen, env), covered | masks[env], limit)

    for limit in range(1, len(masks) + 1):
        extend((), 0, limit)
        if covers:
            break
    options = [option for combo in covers if (option := _assign(combo, coverable, rank)) is not None]
    return min(options, key=lambda o: (o.shims, sorted(-rank[e] for e in o.envs), sorted(o.envs))) if options else None


def _assign(combo: tuple[str, ...], coverable: dict[str, list[Choice]], rank: dict[str, int]) -> Option | None:
    """Serve each model from the combo: no shim first, then the newest env."""
    choices = []
    for found in coverable.values():
        choice = _best_choice(found, combo, rank)
        if choice is None:
            return None
        choices.append(choice)
    used = tuple(sorted({choice.env for choice in choices}, key=lambda e: rank[e]))
    if len(used) < len(combo):
        return None  # a smaller set (already tried) does the same
    return Option(used, tuple(choices))


def _per_env(matrix: Matrix, ways: dict[str, list[Choice]]) -> list[dict[str, Any]]:
    """What each env alone covers: the runner-up view."""
    plain: dict[str, set[str]] = {env.name: set() for env in matrix.envs}
    shimmed: dict[str, set[str]] = {env.name: set() for env in matrix.envs}
    for model, found in ways.items():
        for choice in found:
            (shimmed if choice.shim else plain)[choice.env].add(model)
    return [
        {
            "env": env.name,
            "transformers": env.transformers,
            "plain": sorted(plain[env.name]),
            "with_shim": sorted(shimmed[env.name] - plain[env.name]),
        }
        for env in matrix.envs
    ]


def _describe(matrix: Matrix, rec: Recommendation, optional: frozenset[str]) -> list[str]:
    versions = {env.name: env.transformers for env in matrix.envs}
    headers = {env.name: env.header for env in matrix.envs}
    total = len(matrix.models)
    lines = []
    if rec.best is not None:
        if rec.kind == "single":
            env = rec.best.envs[0]
            lines.append(f"Pin {env} (transformers {versions[env]}): it runs {_served(rec.best, env, total)}.")
        else:
            lines.append(f"No single env runs every model; use {len(rec.best.envs)} envs:")
            lines += [
                f"- {env} (transformers {versions[env]}) for {_served(rec.best, env, total)}" for env in rec.best.envs
            ]
    if rec.uncovered:
        lines.append(f"No env runs: {', '.join(rec.uncovered)}.")
        lines += [f"- {model}: {_why_not(matrix, model)}" for model in rec.uncovered]
    if optional:
        lines.append(f"Optional (never force an extra env): {', '.join(sorted(optional))}.")
    lines += _drift_lines(matrix)
    lines.append("Each env alone:")
    for item in rec.per_env:
        covered = len(item["plain"]) + len(item["with_shim"])
        amount = "all" if covered == total else f"{covered}/{total}"
        if item["with_shim"]:
            count = len(item["with_shim"])
            how = f"with {count} shim{'s' if count > 1 else ''} ({', '.join(item['with_shim'])})"
        else:
            how = "without shims"
        lines.append(
            f"- {headers[item['env']]} covers {amount} models {how}"
            if covered
            else f"- {headers[item['env']]} covers none"
        )
    return lines


def _why_not(matrix: Matrix, model: str) -> str:
    """Each env's verdict on a model no env runs: its diagnosis, else its exception or status."""
    parts = []
    for env in matrix.envs:
        cell = matrix.cell(env.name, model)
        if cell is None:
            continue
        if cell.diagnosis:
            why = f"{cell.diagnosis['id']} (since {cell.diagnosis['introduced_in']})"
        elif cell.error and cell.error.get("type"):
            why = f"{cell.status.value}, {cell.error['type']} in {cell.phase}"
        else:
            why = cell.status.value
        parts.append(f"{env.name} {why}")
    return "; ".join(parts)


def _drift_lines(matrix: Matrix) -> list[str]:
    """One line per model whose outputs change between its reference env and a later one."""
    lines = []
    versions = {env.name: env.transformers for env in matrix.envs}
    for row in matrix.rows:
        if row.variant:
            continue
        drifts = [(cell.env, cell.drift) for cell in row.cells.values() if cell is not None and cell.drift]
        changed = [env for env, drift in drifts if drift["differs"]]
        if changed:
            reference = versions[drifts[0][1]["reference"]]
            where = ", ".join(versions[env] for env in changed)
            lines.append(f"Outputs of {row.model} change between {reference} and {where}.")
    return lines


def _served(option: Option, env: str, total: int) -> str:
    parts = [c.model + (f" (with shim {c.shim})" if c.shim else "") for c in option.models_of(env)]
    return f"{len(parts)}/{total} models: {', '.join(parts)}"
