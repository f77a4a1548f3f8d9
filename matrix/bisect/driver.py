"""Bisect one model: endpoints from a run (or given), one window search per variant, the report.

The run says a model passes in one env and fails in a newer one; the releases between are
the suspects, plus the newer patch releases of the failing end's line. The base variant is
searched first, then every shim variant of the model over the same releases (their own run
cells are what is known of them), each probe an answer of `Prober` (a fact, cached).

A report whose ends came from a run belongs to that run: it is written into the run folder
(`<run>/_bisect-<model>.json`, beside the run's other host files, never inside an env
folder), so the run's report shows only its own bisects. One with ends given on the
command line belongs to no run and goes to `results/bisect/<model>.json`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from matrix.bisect import report as out
from matrix.bisect.cache import probe_code_version
from matrix.bisect.probe import Prober, error_of, outcome_of
from matrix.config import LATEST, Config, EnvSpec
from matrix.envs.plan import variants
from matrix.first_bad import PASS, Outcome, Search, search_windows
from matrix.releases import between, cached_releases, index_url
from matrix.results.collect import bisect_file
from probes.record import CellResult, cell_stem, write_json_atomic

BISECT_SCHEMA = 2
Column = tuple[str, str, CellResult]  # (transformers version, env name, the model's base cell)
Cells = dict[str, list[Column]]  # variant -> its cells in the run


class BisectError(Exception):
    """A usage mistake (unknown model, no good/bad pair): one line, exit code 2."""


def pick_endpoints(
    columns: list[Column], good: str | None, bad: str | None
) -> tuple[tuple[str, str | None], tuple[str, str | None]]:
    """((good version, env), (bad version, env)): given ones win, the rest come from a run.

    Neither given: bad is the oldest env where the cell really fails after an env where it
    passes (a cell that says nothing is no evidence either way), good the newest passing env
    before it; so a model that works again later (a patch release undid a break) still has
    its first break searched. Only good given: the oldest newer failing env; only bad given:
    the newest older passing env.
    """
    known = sorted((Version(v), env, cell) for v, env, cell in columns if is_version(v))
    first_break: tuple[str, str | None] | None = None
    if good is None and bad is None:
        seen_pass = False
        for v, e, c in known:
            if c.status.passed:
                seen_pass = True
            elif seen_pass and not c.status.says_nothing:
                first_break = (str(v), e)
                bad = str(v)
                break
    if good is None:
        passing = [(str(v), e) for v, e, c in known if c.status.passed and (bad is None or v < Version(bad))]
        if not passing:
            raise BisectError("no env of the newest run where the model passes; give --good VERSION")
        found_good: tuple[str, str | None] = passing[-1]
    else:
        found_good = (good, None)
    if first_break is not None:
        return found_good, first_break
    if bad is not None:
        return found_good, (bad, None)
    floor = Version(found_good[0])
    failing = [(str(v), e) for v, e, c in known if v > floor and not c.status.passed and not c.status.says_nothing]
    if not failing:
        raise BisectError(f"no env newer than {found_good[0]} where the model fails; give --bad VERSION")
    return found_good, failing[0]


def bisect(
    config: Config,
    model_name: str,
    *,
    results: Path,
    cache: Path,
    good: str | None = None,
    bad: str | None = None,
    releases: list[Version] | None = None,
    run_dir: Path | None = None,
    max_probes: int | None = None,
) -> dict[str, Any]:
    """Find the model's windows between a good and a bad release; write and return the report.

    Ends not given come from `run_dir` (default: the newest run under `results`).
    `max_probes` caps each variant's probes (default: four breaks' worth, see `probe_limit`).
    """
    start = time.perf_counter()
    model = next((m for m in config.models if m.name == model_name), None)
    if model is None:
        raise BisectError(f"unknown model {model_name!r} (known: {', '.join(m.name for m in config.models)})")
    for flag, value in (("--good", good), ("--bad", bad)):
        if value is not None and not is_version(value):
            raise BisectError(f"{flag} {value!r} is not a version such as 4.40.2")
    cells, run = ({}, None) if good and bad else _run_cells(results, run_dir, model_name)
    source = f"run {run.name}" if run else "command line"
    try:
        (good, good_env), (bad, bad_env) = pick_endpoints(cells.get("", []), good, bad)
    except BisectError as exc:
        raise BisectError(f"{model_name} ({source}): {exc}") from None
    if Version(good) >= Version(bad):
        raise BisectError(f"good version {good} is not older than bad version {bad}")
    from_run = run if good_env is not None and bad_env is not None else None
    template = _template(config, good_env, good)
    listed = cached_releases("transformers", cache) if releases is None else releases
    # From a run, the search spans every env the run has from the good end up, so each
    # later break (or recovery) between its envs gets its own window too.
    top = max([Version(bad), *(Version(v) for v, _, _ in cells.get("", []) if is_version(v))])
    suspects = [str(v) for v in between(listed, Version(good), top) if str(v) != bad]
    line_of_top = top.release[:2]
    newer_patches = [str(v) for v in listed if v > top and v.release[:2] == line_of_top]
    line = sorted({good, *suspects, bad, str(top), *newer_patches}, key=Version)
    print(f"[bisect {model_name}] good {good}, bad {bad} ({source}): {len(suspects)} releases between", flush=True)
    prober = Prober(config, model, template, results, cache)
    limit = probe_limit(len(suspects)) if max_probes is None else max_probes
    searches: dict[str, Search] = {}
    for variant in variants(model):
        known = _known(cells.get(variant, []), line)
        if not variant and good_env is None:
            known[good] = PASS  # given on the command line: taken as good, never re-tested

        def answer(version: str, variant: str = variant) -> Outcome:
            return prober.answer(version, variant)

        searches[variant] = search_windows(line, known, answer, ends=(good, str(top)), limit=limit)
    report = _report(model_name, searches, prober, cells, (good, bad, source), len(suspects), limit)
    report.update(
        run=from_run.name if from_run else None,
        inputs=_run_inputs(prober, template, searches),
        env_template={"torch": template.torch, "python": template.python, "pins": list(template.pins)},
        index=index_url() if releases is None else "given",
        wall_s=round(time.perf_counter() - start, 1),
    )
    path = bisect_file(from_run, model_name) if from_run else results / "bisect" / f"{model_name}.json"
    write_json_atomic(path, report)
    _print_summary(model_name, report, path)
    return report


def probe_limit(candidates: int) -> int:
    """The most probes one variant's search may make: four breaks' worth, and four more."""
    return 4 * (math.ceil(math.log2(max(candidates, 1))) + 1) + 4


def _report(
    model: str,
    searches: dict[str, Search],
    prober: Prober,
    cells: Cells,
    ends: tuple[str, str, str],
    candidates: int,
    limit: int,
) -> dict[str, Any]:
    good, bad, source = ends

    def details(variant: str) -> out.Details:
        ran = {str(Version(v)): cell for v, _, cell in cells.get(variant, []) if is_version(v)}

        def said(version: str) -> dict[str, Any]:
            if (variant, version) in prober.outcomes:
                return prober.outcomes[(variant, version)]
            cell = ran.get(version)
            return {"status": cell.status.value, "error": error_of(cell)} if cell else {}

        return said

    base = searches[""]
    breaks = out.breaks_json(base, details(""))
    first = out.first_break(breaks)
    bound = None
    if first:
        bound = out.suggested_bound(
            good, first["last_good"], min([first["first_bad"], *first["unresolved"]], key=Version)
        )
    asked = [(variant, version, why) for variant, s in searches.items() for version, _, why in s.probed]
    return {
        "schema": BISECT_SCHEMA,
        "model": model,
        "package": "transformers",
        "good": good,
        "bad": bad,
        "endpoints_from": source,
        # The first break after the good end, as the single-break report had it:
        "last_good": first["last_good"] if first else None,
        "first_bad": first["first_bad"] if first else None,
        "exact": first["exact"] if first else False,
        "unresolved": first["unresolved"] if first else [],
        "first_bad_error": first["error"] if first else None,
        "bound": bound,
        "bad_error": details("")(bad).get("error"),
        "windows": out.windows_json(base, details("")),
        "breaks": breaks,
        "variants": {variant: out.windows_json(s, details(variant)) for variant, s in searches.items() if variant},
        "candidates": candidates,
        "range": [base.line[0], base.line[-1]],
        "max_probes": sum(s.max_probes for s in searches.values()),
        "probes": prober.probes,
        "answers": len(asked),
        "cached": sum(1 for v, r, _ in asked if prober.outcomes[(v, r)]["source"] == "cached"),
        "env_builds": prober.builds,
        "probe_limit": limit,
        "limited": any(s.limited for s in searches.values()),
        "budget": {
            cell_stem(model, variant): {
                "asked": len(s.probed),
                "max": s.max_probes,
                "transitions": len(s.transitions()),
                "per_transition": s.per_transition,
            }
            for variant, s in searches.items()
        },
        "outcomes": [
            {"version": version, "variant": variant, "why": why, **_verdict(prober.outcomes[(variant, version)])}
            for variant, version, why in asked
        ],
    }


def _verdict(said: dict[str, Any]) -> dict[str, Any]:
    outcome = said.get("outcome")
    verdict = "skipped" if outcome is None else ("good" if outcome == PASS else "bad")
    return {"verdict": verdict, **said}


def _known(columns: list[Column], line: list[str]) -> dict[str, Outcome]:
    """What the run's own cells say about the releases of the line (a cell that says nothing: no entry)."""
    wanted = {str(Version(v)): v for v in line}
    known: dict[str, Outcome] = {}
    for version, _, cell in columns:
        outcome = outcome_of(cell)
        if is_version(version) and str(Version(version)) in wanted and outcome is not None:
            known[wanted[str(Version(version))]] = outcome
    return known


def _run_inputs(prober: Prober, template: EnvSpec, searches: dict[str, Search]) -> dict[str, Any]:
    """What this report answers: the model's files, the probe code, the env, and the run's known outcomes."""
    return {
        "model": prober.model_fingerprint(),
        "probes": probe_code_version(),
        "requirements": template.requirements()[1:],
        "python": template.python,
        "known": {
            cell_stem(prober.model.name, variant): {
                v: o for v, o in s.observed.items() if v not in {p for p, _, _ in s.probed}
            }
            for variant, s in searches.items()
        },
    }


def _print_summary(model: str, report: dict[str, Any], path: Path) -> None:
    for line in out.summary_lines(model, report["windows"]):
        print(line)
    for variant, windows in report["variants"].items():
        for line in out.summary_lines(cell_stem(model, variant), windows):
            print(line)
    counts = f"{report['probes']} probes ({report['cached']} answers cached), {report['env_builds']} env builds"
    print(f"[bisect {model}] {counts}, {report['wall_s']} s")
    if report["bound"]:
        bound = report["bound"]
        hedge = "" if report["exact"] else f" (or one of the untested {', '.join(report['unresolved'])})"
        print(f"[bisect {model}] first break: last good {report['last_good']}, first bad {report['first_bad']}{hedge}")
        print(f"[bisect {model}] use {bound['range']} (newest good: {bound['pin']}); wrote {path}", flush=True)
    else:
        print(f"[bisect {model}] no break after {report['good']}; wrote {path}", flush=True)


def _run_cells(results: Path, run_dir: Path | None, model: str) -> tuple[Cells, Path]:
    """The model's cells in each env of the run (default: the newest), by variant."""
    from matrix.results.aggregate import aggregate
    from matrix.results.collect import CollectError, collect, newest_run

    try:
        folder = run_dir if run_dir is not None else newest_run(results)
        matrix = aggregate(collect(folder))
    except CollectError as exc:
        raise BisectError(f"{exc}; or give --good VERSION --bad VERSION") from None
    cells: Cells = {}
    for row in matrix.rows:
        if row.model == model:
            found = [(env.transformers, env.name, matrix.cell(env.name, model, row.variant)) for env in matrix.envs]
            cells[row.variant] = [(v, e, c) for v, e, c in found if c is not None]
    return cells, folder


def _template(config: Config, env_name: str | None, good: str) -> EnvSpec:
    """torch, python and pins for the throw-away envs: the good env's, as the matrix built it."""
    named = [e for e in config.envs if e.name == env_name]
    holding = [e for e in config.envs if e.transformers != LATEST and Version(good) in SpecifierSet(e.transformers)]
    return (named or holding or list(config.envs))[0]


def is_version(text: str) -> bool:
    try:
        Version(text)
    except InvalidVersion:
        return False
    return True
