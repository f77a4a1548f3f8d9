"""Recommend the environments to run: one pinned env if one runs every model, else the
fewest envs that together do.

A model is served by an env when its base cell passes there, or a shim variant passes
(`pass-with-shim`); never by a cell whose generation collapsed to one repeated token, nor
by a cell whose outputs differ from the model's reference (drift; non-finite outputs fail
the cell already): such an env is named "runs, different outputs" (`different_outputs`),
never counted as running the model unchanged and never the pin, whatever
`[settings] drift_blocks` says (that setting keeps its meaning for the gate).
Preference: final releases (a pre-release or local build only where they cannot serve
every model), fewest envs, fewest shims, newer transformers, then env names. The search
is exact: it finds every smallest cover, then applies the preferences.

With a release search (`[settings] search_releases`, matrix/newest/), the newest single
release confirmed to run every model leads, and the envs' answer follows it; each model's
upgrade blocker comes with it (`blockers`, one table in every view).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from matrix import recommend_lines as words
from matrix.diagnosis.evidence import variant_windows
from matrix.newest import blockers as upgrade
from matrix.recommend_lines import describe_windows
from matrix.results.aggregate import Matrix, serves

__all__ = ["Choice", "Option", "Recommendation", "describe_windows", "recommend", "ways_to_serve"]


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
    newest: dict[str, Any] | None = None  # the release search's answers (matrix/confirm.py)
    blockers: list[dict[str, Any]] = field(default_factory=list)
    different_outputs: dict[str, list[str]] = field(default_factory=dict)  # model -> envs it runs differently

    @property
    def pinned_release(self) -> str | None:
        """The release the search recommends (as is, else with shims), if any."""
        answer = (self.newest or {}).get("as_is") or (self.newest or {}).get("with_shims")
        return str(answer["release"]) if answer else None

    def pin(self) -> dict[str, Any] | None:
        """The one answer a script reads: the transformers version to pin and its evidence.

        The release search's confirmed release when it made one (every model probed on it),
        else the version of the one env that runs every model; None when no single version
        does (then `route` says which env serves which model)."""
        release = self.pinned_release
        if release is not None:
            answer = (self.newest or {}).get("as_is") or (self.newest or {}).get("with_shims") or {}
            shims = {m: s for m, s in (answer.get("choices") or {}).items() if s}
            return {"transformers": release, "evidence": f"release search: {answer.get('env')}", "shims": shims}
        if self.kind == "single" and self.best:
            (env,) = self.best.envs
            version = next((e.get("transformers") for e in self.per_env if e.get("env") == env), None)
            shims = {c.model: c.shim for c in self.best.choices if c.shim}
            return {"transformers": version, "evidence": f"env {env}", "shims": shims}
        return None

    def route(self) -> list[dict[str, Any]]:
        """Which env serves which models, when no single version runs them all."""
        if self.kind != "split" or not self.best:
            return []
        return [{"env": env, "models": sorted(c.model for c in self.best.models_of(env))} for env in self.best.envs]

    def to_dict(self) -> dict[str, Any]:
        return {
            "pin": self.pin(),
            "route": self.route(),
            "kind": self.kind,
            "envs": list(self.best.envs) if self.best else [],
            "choices": [asdict(choice) for choice in self.best.choices] if self.best else [],
            "uncovered": self.uncovered,
            "per_env": self.per_env,
            "summary": self.lines,
            "bounds": self.bounds,
            "newest": _newest_summary(self.newest),
            "blockers": self.blockers,
            "different_outputs": self.different_outputs,
            "preference": "fewest envs, then fewest shims, then newest transformers",
        }


def ways_to_serve(matrix: Matrix, require_budgets: bool = False) -> dict[str, list[Choice]]:
    """For each model, every (env, shim) whose cell serves it (see `serves`): a cell whose
    outputs differ from the model's reference never does."""
    ways: dict[str, list[Choice]] = {model: [] for model in matrix.models}
    for row in matrix.rows:
        for env, cell in row.cells.items():
            if serves(cell, require_budgets, drift_blocks=True):
                ways.setdefault(row.model, []).append(Choice(row.model, env, row.variant))
    return ways


def different_outputs(matrix: Matrix, require_budgets: bool = False) -> dict[str, list[str]]:
    """For each model, the envs (with the shim, if any) where it runs but its outputs differ
    from its reference env's: "runs, different outputs"."""
    found: dict[str, list[str]] = {}
    for row in matrix.rows:
        for env, cell in row.cells.items():
            if serves(cell, require_budgets) and not serves(cell, require_budgets, drift_blocks=True):
                found.setdefault(row.model, []).append(f"{env} (with {row.variant})" if row.variant else env)
    return found


def recommend(
    matrix: Matrix,
    optional: frozenset[str] = frozenset(),
    require_budgets: bool = False,
    bisects: dict[str, dict[str, Any]] | None = None,
    drift_blocks: bool = False,
    newest: dict[str, Any] | None = None,
) -> Recommendation:
    """Compute the best option from the matrix's cells.

    Optional models are served when the chosen envs happen to run them, but never force
    an extra env. With `require_budgets`, a cell over any budget does not count as serving.
    `bisects` (this run's bisect reports) give each model's windows over the release line.
    `newest` (this run's release search, `_newest.json`) leads when given. `drift_blocks`
    is accepted for the callers that pass the settings through: outputs that differ never
    serve here.
    """
    del drift_blocks
    rank = {env.name: index for index, env in enumerate(matrix.envs)}  # oldest first
    ways = ways_to_serve(matrix, require_budgets)
    uncovered = [model for model, found in ways.items() if not found and model not in optional]
    coverable = {model: found for model, found in ways.items() if found and model not in optional}
    best = _search_finals_first(coverable, rank, _not_pinnable(matrix)) if coverable else None
    if best is not None:
        extra = [_best_choice(found, best.envs, rank) for m, found in ways.items() if m in optional]
        best = Option(best.envs, best.choices + tuple(c for c in extra if c is not None))
    kind = "none" if best is None else ("single" if len(best.envs) == 1 else "split")
    recommendation = Recommendation(kind, best, uncovered, per_env=_per_env(matrix, ways))
    recommendation.different_outputs = different_outputs(matrix, require_budgets)
    for item in recommendation.per_env:  # what each env runs, but not unchanged
        item["different_outputs"] = sorted(
            model for model, envs in recommendation.different_outputs.items() if item["env"] in envs
        )
    recommendation.bounds = {
        model: {
            key: found[key]
            for key in ("last_good", "first_bad", "bound", "first_bad_error", "exact", "windows", "variants")
            if key in found
        }
        for model, found in (bisects or {}).items()
        if model in matrix.models
    }
    lead: list[str] = []
    if newest is not None:
        recommendation.newest = newest
        lead = upgrade.lead_lines(newest)
        diagnoses = {(c.env, c.model, c.variant): c.diagnosis for c in matrix.all_cells() if c.diagnosis}
        in_windows = {
            (model, variant, str(window.get("signature"))): window["diagnosis"]
            for model, found in (bisects or {}).items()
            for variant, windows in variant_windows(found).items()
            for window in windows
            if window.get("diagnosis")
        }
        recommendation.blockers = upgrade.blockers(newest, diagnoses, matrix.models, in_windows)
    described = words.describe(matrix, recommendation, optional)
    recommendation.lines = lead + described + words.window_lines(recommendation.bounds)
    return recommendation


def _newest_summary(data: dict[str, Any] | None) -> dict[str, Any] | None:
    """The search's answers and costs for matrix.json (its tracks stay in the run's `_newest.json`)."""
    if data is None:
        return None
    keys = ("as_is", "with_shims", "range", "models", "not_bisected", "excluded", "builds", "probes", "cached", "bound")
    return {key: data.get(key) for key in (*keys, "limit", "limited", "wall_s")}


def _not_pinnable(matrix: Matrix) -> frozenset[str]:
    """Envs on a pre-release or a local build (`+path.`/`+vcs.`): they say what the upcoming
    release or a fix branch breaks, but no team pins them."""
    versions = {env.name: env.version for env in matrix.envs if env.version is not None}
    return frozenset(name for name, v in versions.items() if v.is_prerelease or v.local is not None)


def _search_finals_first(
    coverable: dict[str, list[Choice]], rank: dict[str, int], others: frozenset[str]
) -> Option | None:
    """The best cover by final-release envs when they serve every coverable model, else by all."""
    finals = {model: [c for c in found if c.env not in others] for model, found in coverable.items()}
    return _search(finals if others and all(finals.values()) else coverable, rank)


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
    shimmed: dict[str, dict[str, str]] = {env.name: {} for env in matrix.envs}
    for model, found in ways.items():
        for choice in sorted(found, key=lambda c: (c.shim.count("+"), c.shim)):  # fewest shims first
            if choice.shim:
                shimmed[choice.env].setdefault(model, choice.shim)
            else:
                plain[choice.env].add(model)
    per_env = []
    for env in matrix.envs:
        shims = {model: shim for model, shim in sorted(shimmed[env.name].items()) if model not in plain[env.name]}
        per_env.append(
            {
                "env": env.name,
                "transformers": env.transformers,
                "plain": sorted(plain[env.name]),
                "with_shim": sorted(shims),
                "shims": shims,
            }
        )
    return per_env
