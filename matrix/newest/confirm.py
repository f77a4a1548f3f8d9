"""Find the newest release that runs every model, probing only what the evidence leaves open, and confirm it.

`[settings] search_releases = true`: after the run's envs and bisects, the search
(`matrix.newest.search`, over the tracks of `matrix.newest.tracks`) walks the release line
between the run's oldest and newest env from the newest down. A release where the evidence
cannot decide a model (between a pass and a failure that no bisect mapped) is settled by a
binary search of that gap; a release the evidence says runs everyone is *confirmed* by a real
probe of every model on it (its base cell, or the shim variant chosen for it), and only a
confirmed release is recommended: a pin is never inferred. A confirm that fails (or says
nothing) is recorded and the release excluded, and the search goes on to the next candidate.
Every probe is the bisect's `Prober` (so a cached fact is never asked twice), and every model's
confirm on one release is one runner in that release's env (`matrix.bisect.batch`); on a
release one of the run's envs has, the run's own cells are the probes. A release where a model
runs with outputs other than its reference ("outputs differ", from its cell or a probe) is
never the pin. Env builds are bounded: breaks x (ceil(log2 releases) + 1) + 1, max_release_builds.

The record goes to `<run>/_newest.json` (the report reads it, see collect.collect_newest):
the answers with each model's confirming probe and the confirm env's freeze (the pin
file), every track the search ended with, what it excluded, and the builds it took.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from packaging.version import Version

from matrix.bisect.batch import answer_many
from matrix.bisect.probe import Prober
from matrix.config import Config, EnvSpec
from matrix.envs.run import freeze
from matrix.first_bad import first_bad
from matrix.judge.drift import SAME, degenerate, difference, judge_outputs, references, with_judgements
from matrix.newest import blockers as upgrade
from matrix.newest import search as newest
from matrix.newest.tracks import passes_everywhere, search_line, tracks_of
from matrix.results.aggregate import Matrix, aggregate, serves
from matrix.results.collect import collect, collect_bisects, newest_file
from probes.record import CellResult, cell_stem, write_json_atomic


class Limited(Exception):
    """The search reached its build limit."""


class ReleaseSearch:
    """The search's state: tracks, probers per (model, template), what it excluded and asked."""

    def __init__(
        self,
        config: Config,
        matrix: Matrix,
        tracks: newest.Tracks,
        line: list[str],
        results: Path,
        cache: Path,
        jobs: int = 1,
    ) -> None:
        self.config, self.matrix, self.tracks, self.line, self.jobs = config, matrix, tracks, line, jobs
        self.results, self.cache = results, cache
        self.settings = config.settings
        self.probers: dict[tuple[str, str], Prober] = {}
        self.excluded: list[dict[str, str]] = []  # {release, mode, why}
        self.mode = "as is"
        self.asked: list[dict[str, Any]] = []
        self.references = references(matrix)
        self.limited = False

    @property
    def builds(self) -> int:
        return sum(p.builds for p in self.probers.values())

    @property
    def probes(self) -> int:
        return sum(p.probes for p in self.probers.values())

    def limit(self) -> tuple[int, int]:
        """(bound, limit): the bound from the breaks found so far, and the limit the settings allow."""
        bound = newest.build_bound(newest.breaks_found(self.tracks), len(self.line))
        return bound, min(bound, self.settings.max_release_builds)

    def template(self, release: str) -> EnvSpec:
        """torch, python and pins for a release: the config env with the newest version at or below it."""
        resolved = {env.name: env.version for env in self.matrix.envs if env.built and env.version is not None}
        below = [e for e in self.config.envs if e.name in resolved and resolved[e.name] <= Version(release)]
        if below:
            return max(below, key=lambda e: resolved[e.name])
        known = [e for e in self.config.envs if e.name in resolved]
        return min(known, key=lambda e: resolved[e.name]) if known else self.config.envs[0]

    def prober(self, model: str, release: str) -> Prober:
        template = self.template(release)
        key = (model, template.name)
        if key not in self.probers:
            spec = next(m for m in self.config.models if m.name == model)
            reference = self.references.get(model)  # a probe whose outputs changed is no pass
            self.probers[key] = Prober(self.config, spec, template, self.results, self.cache, reference=reference)
        return self.probers[key]

    def ask(self, model: str, variant: str, release: str, why: str) -> dict[str, Any]:
        """Probe (or read the fact of) one variant on one release; the answer becomes a point."""
        return self.ask_many([(model, variant, release, why)])[0]

    def ask_many(self, items: list[tuple[str, str, str, str]]) -> list[dict[str, Any]]:
        """Several (model, variant, release, why) at once: one runner per release, side by side."""
        if self.builds >= self.limit()[1]:
            self.limited = True
            raise Limited
        probers = [self.prober(model, release) for model, _, release, _ in items]
        outcomes = answer_many([(p, r, v) for p, (_, v, r, _) in zip(probers, items, strict=True)], self.jobs)
        points = []
        for prober, (model, variant, release, why), outcome in zip(probers, items, outcomes, strict=True):
            said = prober.outcomes[(variant, release)]
            point = {"outcome": outcome, "error": said.get("error"), "source": "probe"}
            point.update(how=said.get("source"), cell=said.get("cell"))
            self.tracks.setdefault(model, {}).setdefault(variant, newest.Track()).points[release] = point
            self.asked.append({"model": model, "variant": variant, "release": release, "why": why, **point})
            points.append(point)
        return points

    def settle(self, question: newest.OpenQuestion) -> None:
        """A gap between a pass and a failure: binary search it (each answer a point); else probe the release."""
        model, variant = question.model, question.variant
        if question.below is None or question.above is None:
            self.ask(model, variant, question.release, "undecided")
            return
        track = self.tracks[model][variant]
        good = newest.verdict(track, question.below).state
        gap = [r for r in self.line if Version(question.below) < Version(r) < Version(question.above)]

        def same_as_below(release: str) -> bool | None:
            outcome = self.ask(model, variant, release, "gap")["outcome"]
            return None if outcome is None else newest.verdict(track, release).state == good

        first_bad([question.below, *gap, question.above], same_as_below)

    def confirm(self, candidate: newest.PinCandidate) -> dict[str, Any] | None:
        """Probe every model on the release (the run's cells where an env has it); the answer, or None."""
        release = candidate.release
        env = next((e for e in self.matrix.envs if e.built and e.version == Version(release)), None)
        confirmed: dict[str, dict[str, Any]] = {}
        # Outputs that changed never confirm the pin (drift_blocks or not): such a release
        # runs the model, with other outputs.
        rule = (self.settings.require_budgets, True)
        cells = {
            model: self.matrix.cell(env.name, model, variant) if env else None
            for model, variant in candidate.choices.items()
        }
        probe_now = [
            (model, variant, release, "confirm")
            for model, variant in candidate.choices.items()
            if not serves(cells[model], *rule)
            and (self.tracks[model][variant].points.get(release) or {}).get("source") != "probe"
        ]
        if probe_now:
            self.ask_many(probe_now)  # every model's confirm on this release in one runner
        for model, variant in candidate.choices.items():
            cell = cells[model]
            if cell is not None and serves(cell, *rule):
                status = cell.status.value
                confirmed[model] = {"variant": variant, "status": status, "source": "run cell", "env": cell.env}
                continue
            point = self.tracks[model][variant].points[release]
            rejected = self._judge(model, variant, point)
            if point["outcome"] != newest.PASS or rejected:
                error = point.get("error") or {}
                why = rejected or (
                    f"{error.get('type')} in {error.get('phase')}" if error else str(point["outcome"] or "says nothing")
                )
                if rejected:
                    point["outcome"] = f"- judged: {rejected}"
                self.exclude(release, f"{cell_stem(model, variant)}: {why}")
                return None
            source = "probe" if point["how"] == "probed" else "cached probe"
            confirmed[model] = {"variant": variant, "status": "pass", "source": source, "cell": point.get("cell")}
        packages, where = self._packages(release, env, confirmed)
        if not packages:
            self.exclude(release, "its env could not be frozen")
            return None
        return {
            "release": release,
            "choices": candidate.choices,
            "how": candidate.how,
            "confirm": confirmed,
            "env": where,
            "packages": packages,
        }

    def exclude(self, release: str, why: str) -> None:
        self.excluded.append({"release": release, "mode": self.mode, "why": why})

    def _judge(self, model: str, variant: str, point: dict[str, Any]) -> str:
        """Why a passing probe does not serve its model by the matrix's rules ('' when it does)."""
        reference = self.references.get(model)
        if point["outcome"] != newest.PASS or not point.get("cell") or reference is None:
            return ""
        try:
            cell = CellResult.from_dict(json.loads((self.results / point["cell"]).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, KeyError):
            return ""
        diff = difference(reference, cell, self.settings.to_dict())
        if variant and diff not in (None, SAME):
            return f"shim changes outputs: {diff}"
        collapsed = degenerate(reference, cell)
        if collapsed:
            return collapsed
        if self.settings.drift_blocks and diff not in (None, SAME):
            return f"outputs drift: {diff}"
        return ""

    def _packages(self, release: str, env: Any, confirmed: dict[str, dict[str, Any]]) -> tuple[dict[str, str], str]:
        """The pin: the run env's freeze when its cells confirmed every model, else the probe env's."""
        if env is not None and all(c["source"] == "run cell" for c in confirmed.values()):
            return dict(env.packages), env.name
        prober = self.prober(next(iter(confirmed)), release)
        spec = dataclasses.replace(prober.template, name=f"tf-{release}", transformers=f"=={release}")
        python, _, _ = prober.ensure_env(spec)
        return (freeze(python) if python else {}), f"{spec.name} ({prober.template.name}'s torch, python and pins)"


def find(search: ReleaseSearch, models: list[str], *, shims: bool, floor: str | None) -> dict[str, Any] | None:
    """The newest confirmed release above `floor` (None: none, or the limit was reached)."""
    search.mode = "with shims" if shims else "as is"
    if not all(newest.runs_at_all(search.tracks, model, shims) for model in models):
        return None
    seen: set[tuple[str, str, str | None, str | None]] = set()
    while True:
        excluded = {item["release"] for item in search.excluded if item["mode"] == search.mode}
        step = newest.next_step(search.line, search.tracks, models, shims=shims, excluded=excluded, floor=floor)
        if step is None:
            return None
        try:
            if isinstance(step, newest.OpenQuestion):
                key = (step.model, step.variant, step.below, step.above)
                if key in seen:  # settled once and still open (its probes said nothing)
                    search.exclude(step.release, f"{step.model} undecided")
                    continue
                seen.add(key)
                search.settle(step)
                continue
            answer = search.confirm(step)
        except Limited:
            return None
        if answer is not None:
            return answer


def search_newest(
    config: Config, run_dir: Path, *, results: Path, cache: Path, releases: list[Version], jobs: int = 1
) -> dict[str, Any]:
    """Search the run's release line, confirm the answers, write `<run>/_newest.json` and return it
    (nothing when no env of the run was built)."""
    start = time.perf_counter()
    run = collect(run_dir)
    matrix = aggregate(run)
    matrix = with_judgements(matrix, judge_outputs(matrix, run.model_specs, run.settings))
    bisects = collect_bisects(run_dir)
    configured = {m.name: m for m in config.models}
    models = [m for m in matrix.models if m in configured and not configured[m].optional]
    line = search_line(matrix, releases)
    if not line:
        print("[newest] no env of the run was built: no release line to search", flush=True)
        return {}
    tracks = tracks_of(matrix, bisects, config.settings.to_dict(), list(configured))
    search = ReleaseSearch(config, matrix, tracks, line, results, cache, jobs)
    as_is = find(search, models, shims=False, floor=None)
    with_shims = find(search, models, shims=True, floor=as_is["release"] if as_is else None)
    bound, limit = search.limit()
    data = {
        "schema": newest.NEWEST_SCHEMA,
        "run": run_dir.name,
        "package": "transformers",
        "line": line,
        "range": [line[0], line[-1]],
        "models": models,
        "optional": [m for m in matrix.models if m in configured and configured[m].optional],
        "not_bisected": [m for m in models if m not in bisects and passes_everywhere(tracks.get(m, {}).get(""))],
        "as_is": as_is,
        "with_shims": with_shims,
        "excluded": search.excluded,
        "asked": search.asked,
        "tracks": {m: {v: t.to_dict() for v, t in variants.items()} for m, variants in tracks.items()},
        "breaks": newest.breaks_found(tracks),
        "builds": search.builds,
        "probes": search.probes,
        "cached": sum(1 for item in search.asked if item.get("how") == "cached"),
        "bound": bound,
        "limit": limit,
        "limited": search.limited,
        "wall_s": round(time.perf_counter() - start, 1),
    }
    write_json_atomic(newest_file(run_dir), data)
    for line_text in upgrade.lead_lines(data):
        print(f"[newest] {line_text.removeprefix('- ')}", flush=True)
    print(f"[newest] {data['wall_s']} s; wrote {newest_file(run_dir)}", flush=True)
    return data
