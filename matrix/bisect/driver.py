"""Bisect one model: endpoints from a run (or given), one window search per variant, the report.

The run says a model passes in one env and fails in a newer one; the releases between are
the suspects, plus the newer patch releases of the failing end's line. Every variant of the
model (the base and each shim) is a lane of its own, and the lanes of every model bisected
together advance in rounds (`rounds`): a round's questions for one release are answered by
one runner in that release's env, releases side by side up to `jobs`. The model's own code,
read against the releases' sources (`pointers`), names the candidate edges probed first.
A passing cell whose outputs differ from the model's reference cell (the run's oldest
passing env) is an outcome of its own, "outputs differ", bisected like a failure.

The ends and what the run knows come from `ends`. A report whose ends came from a run
belongs to that run: it is written into the run folder (`<run>/_bisect-<model>.json`,
beside the run's other host files, never inside an env folder), so the run's report shows
only its own bisects. One with ends given on the command line belongs to no run and goes
to `results/bisect/<model>.json`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.version import Version

from matrix.bisect.ends import (
    BisectError,
    env_template,
    known_outcomes,
    pick_endpoints,
    reference_cell,
    run_cells_of,
)
from matrix.bisect.pointers import candidate_edges
from matrix.bisect.probe import Prober, judged_outcome
from matrix.bisect.report import Cells, is_version, print_summary, report_json, run_inputs
from matrix.bisect.rounds import Lane, run_rounds
from matrix.config import Config, EnvSpec, ModelSpec
from matrix.envs.plan import variants
from matrix.first_bad import PASS, WindowSearch, start_search
from matrix.releases import between, cached_releases, index_url
from matrix.results.collect import bisect_file
from probes.public import publication, publish_files
from probes.record import write_json_atomic


@dataclass
class Setup:
    """One model's bisect before its rounds: ends, line, lanes, and what the report needs."""

    name: str
    prober: Prober
    lanes: list[Lane]
    cells: Cells
    ends: tuple[str, str, str]
    suspects: list[str]
    limit: int
    from_run: Path | None
    template: EnvSpec
    releases: list[Version] | None
    start: float
    pointers: dict[str, Any]


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
    jobs: int = 1,
) -> dict[str, Any]:
    """Find the model's windows between a good and a bad release; write and return the report.

    Ends not given come from `run_dir` (default: the newest run under `results`).
    `max_probes` caps each variant's probes (default: four breaks' worth, see `probe_limit`).
    """
    setup = prepare(config, model_name, results, cache, good, bad, releases, run_dir, max_probes)
    run_rounds(setup.lanes, jobs)
    return finish(setup)


def bisect_models(
    config: Config,
    names: list[str],
    *,
    results: Path,
    cache: Path,
    run_dir: Path | None = None,
    releases: list[Version] | None = None,
    jobs: int = 1,
) -> dict[str, dict[str, Any] | BisectError]:
    """Bisect several models of one run together: their lanes share rounds, so one runner per
    release answers every model's question about it. A model with nothing to bisect gets its
    BisectError (the one line that says why) instead of a report."""
    setups: dict[str, Setup] = {}
    done: dict[str, dict[str, Any] | BisectError] = {}
    for name in names:
        try:
            setups[name] = prepare(config, name, results, cache, None, None, releases, run_dir, None)
        except BisectError as why:
            done[name] = why
    run_rounds([lane for setup in setups.values() for lane in setup.lanes], jobs)
    for name, setup in setups.items():
        done[name] = finish(setup)
    return {name: done[name] for name in names}


def prepare(
    config: Config,
    model_name: str,
    results: Path,
    cache: Path,
    good: str | None,
    bad: str | None,
    releases: list[Version] | None,
    run_dir: Path | None,
    max_probes: int | None,
) -> Setup:
    """The ends, the line, the candidate edges and one lane per variant (nothing probed yet)."""
    start = time.perf_counter()
    model = next((m for m in config.models if m.name == model_name), None)
    if model is None:
        raise BisectError(f"unknown model {model_name!r} (known: {', '.join(m.name for m in config.models)})")
    for flag, value in (("--good", good), ("--bad", bad)):
        if value is not None and not is_version(value):
            raise BisectError(f"{flag} {value!r} is not a version such as 4.40.2")
    cells, run = ({}, None) if good and bad else run_cells_of(results, run_dir, model_name)
    source = f"run {run.name}" if run else "command line"
    reference = reference_cell(cells.get("", []))
    judged = {env: judged_outcome(cell, reference, config.settings.to_dict()) for _, env, cell in cells.get("", [])}
    try:
        (good, good_env), (bad, bad_env) = pick_endpoints(cells.get("", []), good, bad, judged)
    except BisectError as exc:
        raise BisectError(f"{model_name} ({source}): {exc}") from None
    if Version(good) >= Version(bad):
        raise BisectError(f"good version {good} is not older than bad version {bad}")
    from_run = run if good_env is not None and bad_env is not None else None
    template = env_template(config, good_env, good)
    listed = cached_releases("transformers", cache) if releases is None else releases
    # From a run, the search spans every env the run has from the good end up, so each
    # later break (or recovery) between its envs gets its own window too.
    top = max([Version(bad), *(Version(v) for v, _, _ in cells.get("", []) if is_version(v))])
    suspects = [str(v) for v in between(listed, Version(good), top) if str(v) != bad]
    line_of_top = top.release[:2]
    newer_patches = [str(v) for v in listed if v > top and v.release[:2] == line_of_top]
    line = sorted({good, *suspects, bad, str(top), *newer_patches}, key=Version)
    print(f"[bisect {model_name}] good {good}, bad {bad} ({source}): {len(suspects)} releases between", flush=True)
    prober = Prober(config, model, template, results, cache, reference=reference)
    pointed = _pointers(prober, model, line, cache)
    hints = [(a, b) for a, b in pointed["edges"]]
    limit = probe_limit(len(suspects)) if max_probes is None else max_probes
    lanes = []
    for variant in variants(model):
        known = known_outcomes(cells.get(variant, []), line, reference, config.settings.to_dict())
        if not variant and good_env is None:
            known[good] = PASS  # given on the command line: taken as good, never re-tested
        search = start_search(line, known, ends=(good, str(top)), limit=limit, hints=hints)
        lanes.append(Lane(prober, variant, search))
    return Setup(
        name=model_name, prober=prober, lanes=lanes, cells=cells, ends=(good, bad, source), suspects=suspects,
        limit=limit, from_run=from_run, template=template, releases=releases, start=start, pointers=pointed,
    )  # fmt: skip


def finish(setup: Setup) -> dict[str, Any]:
    """The report of a bisect whose rounds are done: written, summarised, returned."""
    searches: dict[str, WindowSearch] = {lane.variant: lane.search for lane in setup.lanes}
    prober, from_run, template = setup.prober, setup.from_run, setup.template
    report = report_json(setup.name, searches, prober, setup.cells, setup.ends, len(setup.suspects), setup.limit)
    report.update(
        run=from_run.name if from_run else None,
        inputs=run_inputs(prober, template, searches),
        env_template={"torch": template.torch, "python": template.python, "pins": list(template.pins)},
        index=index_url() if setup.releases is None else "given",
        pointers={k: setup.pointers.get(k) for k in ("edges", "uses", "read", "seconds")},
        wall_s=round(time.perf_counter() - setup.start, 1),
    )
    results = prober.cells.parent.parent
    path = bisect_file(from_run, setup.name) if from_run else results / "bisect" / f"{setup.name}.json"
    write_json_atomic(path, report)
    if not from_run:  # a standalone bisect publishes into results/bisect/ itself: no local path or host there
        publish_files([path], publication(folders=[results.parent, Path.cwd()]))
    print_summary(setup.name, report, path)
    return report


def _pointers(prober: Prober, model: ModelSpec, line: list[str], cache: Path) -> dict[str, Any]:
    """Candidate edges from the model's own code against the line's sources (none for a model without code)."""
    folder = prober.model_folder()
    files = sorted(folder.rglob("*.py")) if folder is not None and folder.is_dir() else []
    if not files and model.source_kind == "fixture":  # not built yet (a cold cache): its code is shipped
        from probes.fixtures import code_files

        files = code_files(model.source)
    found = candidate_edges(files, line, cache, generates=model.task == "causal-lm")
    if found["edges"]:
        edges = ", ".join(f"{a}..{b}" for a, b in found["edges"])
        print(f"[bisect {model.name}] the sources point at {edges} ({found['read']} releases read)", flush=True)
    return found


def probe_limit(candidates: int) -> int:
    """The most probes one variant's search may make: four breaks' worth, and four more."""
    return 4 * (math.ceil(math.log2(max(candidates, 1))) + 1) + 4
