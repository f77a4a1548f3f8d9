"""The report as a list of steps: collect -> aggregate -> judge -> diagnose -> recommend ->
history -> publish, handed to one runner (as nox's `_cli` hands its tasks to
`workflow.execute`).

Each step takes the report so far and returns a new one with what it decided; none writes
into the cells of an earlier step behind its back, so a step can be read, tested or
reordered on its own. A step that cannot do its job raises `StepError` with the exit code
it means; the runner prints the one line and stops there.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from matrix import exit_codes, history
from matrix.diagnosis import KnownBreak, Sources, diagnose, load_known_breaks
from matrix.judge.drift import judge_outputs, with_judgements
from matrix.recommend import Recommendation, recommend
from matrix.releases import ReleasesError, cached_releases
from matrix.report.badge import badge_files
from matrix.report.log_links import LOGS_FOLDER, logs_url, publish_logs
from matrix.report.page import page
from matrix.report.render import now_utc, terminal, write_outputs
from matrix.results.aggregate import Matrix, aggregate
from matrix.results.collect import CollectError, Run, collect, collect_bisects, collect_newest, newest_run, read_json
from matrix.results.merge import MergeError, merge
from matrix.results.public import publication_of
from matrix.signature import UnknownGroup
from probes.public import publish_files
from probes.record import write_json_atomic, write_text_atomic
from probes.status import Status


class StepError(Exception):
    """A step could not do its job; `code` is the exit code that says which kind."""

    def __init__(self, message: str, code: int = exit_codes.USAGE) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Request:
    """What the user asked for (the parsed command line)."""

    run_dir: str | None
    merge: tuple[Path, ...]
    results: Path
    cache: Path
    fail_on_regression: bool = False


@dataclass(frozen=True)
class Report:
    """The report so far: each step fills in what it decided."""

    request: Request
    run: Run | None = None
    matrix: Matrix | None = None
    bisects: dict[str, dict[str, Any]] = field(default_factory=dict)
    unknown: tuple[UnknownGroup, ...] = ()
    recommendation: Recommendation | None = None
    generated_at: str = ""
    comparison: history.Comparison | None = None
    written: tuple[Path, ...] = ()

    @property
    def settings(self) -> dict[str, Any]:
        return self.run.settings if self.run is not None else {}


Step = Callable[[Report], Report]


def collect_step(report: Report) -> Report:
    """Read the run's cell files (merging shards first when asked)."""
    request = report.request
    try:
        run = collect(run_to_render(request.run_dir, request.merge, request.results))
    except (CollectError, MergeError) as error:
        raise StepError(str(error)) from error
    for warning in run.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return replace(report, run=run, bisects=collect_bisects(run.run_dir))


def aggregate_step(report: Report) -> Report:
    """One row per model (and shim variant), one column per env."""
    assert report.run is not None
    return replace(report, matrix=aggregate(report.run))


def judge_step(report: Report) -> Report:
    """Shims verified against the unshimmed outputs, drift flagged, budgets checked."""
    assert report.run is not None and report.matrix is not None
    judgements = judge_outputs(report.matrix, report.run.model_specs, report.settings)
    return replace(report, matrix=with_judgements(report.matrix, judgements))


def diagnose_step(report: Report) -> Report:
    """Why each failing cell failed, from the table, the releases' sources and the matrix."""
    assert report.matrix is not None
    try:
        table = known_breaks(report.settings)
    except (ValueError, OSError) as error:
        raise StepError(str(error)) from error
    cache = report.request.cache
    unknown = diagnose(report.matrix, table, report.bisects, Sources(cache, release_line(cache)))
    return replace(report, unknown=tuple(unknown))


def recommend_step(report: Report) -> Report:
    """The one pin (or the fewest envs) that runs every required model."""
    assert report.run is not None and report.matrix is not None
    settings = report.settings
    optional = frozenset(name for name, spec in report.run.model_specs.items() if spec.get("optional"))
    newest = collect_newest(report.run.run_dir)  # this run's release search, when it made one
    rec = recommend(
        report.matrix, optional, bool(settings.get("require_budgets")), report.bisects,
        bool(settings.get("drift_blocks")), newest,
    )  # fmt: skip
    return replace(report, recommendation=rec)


def history_step(report: Report) -> Report:
    """Append the run to the history and judge it against the runs before it."""
    assert report.run is not None and report.matrix is not None and report.recommendation is not None
    generated_at = now_utc()
    report.request.results.mkdir(parents=True, exist_ok=True)
    warnings: list[str] = []
    current = history.summary(report.matrix, report.recommendation, generated_at, report.run.model_specs)
    comparison = history.record(report.request.results, current, report.settings, warnings)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return replace(report, generated_at=generated_at, comparison=comparison)


def publish_step(report: Report) -> Report:
    """Write every published file (matrix.json, COMPATIBILITY.md, pins, bisect reports, the
    badge, the page) and print the table."""
    assert report.run is not None and report.matrix is not None
    assert report.recommendation is not None and report.comparison is not None
    results, matrix, rec, unknown = report.request.results, report.matrix, report.recommendation, list(report.unknown)
    since = report.comparison.lines()
    written = write_outputs(results, matrix, rec, report.generated_at, unknown, since, report.run.model_specs)
    written += publish_bisects(results, report.run.run_id, report.bisects)
    for name, text in badge_files(matrix, rec).items():
        write_text_atomic(results / name, text)
        written.append(results / name)
    index = results / "index.html"
    runs = history.load(results, [])  # with this run; a damaged line was warned about above
    write_text_atomic(index, page(matrix, rec, report.generated_at, unknown, since, runs, report.run.model_specs))
    written.append(index)
    # Last: every published file (and the history) names no path, host or user of this machine.
    public = publication_of(report.run, results, report.request.cache)
    publish_files([*written, results / history.HISTORY_FILE], public)
    if logs_url():  # scheduled CI uploads them as the cell-logs artifact the page links
        publish_logs(report.run.run_dir, results / LOGS_FOLDER, public)
    # The terminal's table too: a CI job's log is as public as the page.
    print(public.text(terminal(matrix, rec, unknown, since)))
    print(public.text("\nWrote " + ", ".join(str(path) for path in written)))
    return replace(report, written=tuple(written))


STEPS: tuple[Step, ...] = (
    collect_step, aggregate_step, judge_step, diagnose_step, recommend_step, history_step, publish_step,
)  # fmt: skip


def execute(steps: Sequence[Step], report: Report) -> int:
    """Run the steps in order; the exit code says what the published report found."""
    try:
        for step in steps:
            report = step(report)
    except StepError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.code
    return exit_code(report)


def exit_code(report: Report) -> int:
    """REGRESSION when asked to fail on one and one is there, else PROBE_FAILURE when an env
    could not be built, else OK (failing cells are data, not errors)."""
    if report.request.fail_on_regression and report.comparison is not None and report.comparison.regressed:
        print("error: regressions since the last published run (--fail-on-regression)", file=sys.stderr)
        return exit_codes.REGRESSION
    cells = report.matrix.all_cells() if report.matrix is not None else []
    broken = sorted({cell.env for cell in cells if cell.status is Status.ENV_FAILED})
    if broken:
        print(f"error: published, but env(s) {', '.join(broken)} could not be built (see their cells)", file=sys.stderr)
        return exit_codes.PROBE_FAILURE
    return exit_codes.OK


def known_breaks(settings: dict[str, Any]) -> list[KnownBreak]:
    """The team's own table (`[settings] known_breaks`) first, then the built-in one."""
    own = settings.get("known_breaks")
    return [*(load_known_breaks(Path(own)) if own else []), *load_known_breaks()]


def publish_bisects(results: Path, run_id: str, bisects: dict[str, dict[str, Any]]) -> list[Path]:
    """Copy this run's bisect reports to `results/bisect/`, removing reports an earlier
    published run left there (a standalone `nox -s bisect` report, which names no run, stays)."""
    folder = results / "bisect"
    for path in folder.glob("*.json"):
        data = read_json(path, [])
        if isinstance(data, dict) and data.get("run") not in (None, run_id):
            path.unlink()
    written = []
    for model, report in sorted(bisects.items()):
        path = folder / f"{model}.json"
        write_json_atomic(path, report)
        written.append(path)
    return written


def release_line(cache: Path) -> tuple[str, ...]:
    """transformers' final releases, oldest first, for the symbol history (the list the bisect
    keeps for an hour; empty offline: the diagnosis then compares only the run's releases)."""
    try:
        return tuple(str(version) for version in cached_releases("transformers", cache))
    except ReleasesError as error:
        print(f"warning: the release list could not be read ({error}); diagnoses use the run's releases only")
        return ()


def run_to_render(run_dir: str | None, merge_dirs: Sequence[Path], results: Path) -> Path:
    """RUN_DIR, the newest run (`newest`, or nothing given), or a new run merged from the
    --merge folders and RUN_DIR when both are given (the matrix session adds its fresh run)."""
    if not merge_dirs:
        return newest_run(results) if run_dir is None or run_dir == "newest" else Path(run_dir)
    sources = list(merge_dirs)
    if run_dir is not None:
        sources.insert(0, newest_run(results) if run_dir == "newest" else Path(run_dir))
    merged = merge(sources, results)
    print(f"Merged the shards of {len(sources)} folder{'s' if len(sources) > 1 else ''} into {merged}")
    return merged
