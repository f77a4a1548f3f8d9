"""`python -m matrix report RUN_DIR`: collect, aggregate, recommend, render.

`report --merge DIR [DIR ...]` first merges the shards below those folders (and RUN_DIR,
when given) into one new run folder under `<results>/runs` (see matrix/merge.py).

Exit codes: 0 when the report was written (failing cells are data, not errors), 2 when
the tool could not do its job (no such run folder, no cell files), 1 with
--fail-on-regression when something regressed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from matrix import history
from matrix.diagnosis import KnownBreak, Sources, diagnose, load_known_breaks
from matrix.judge.drift import judge
from matrix.recommend import recommend
from matrix.releases import ReleasesError, cached_releases
from matrix.report.badge import badge_files
from matrix.report.page import page
from matrix.report.render import now_utc, terminal, write_outputs
from matrix.results.aggregate import aggregate
from matrix.results.collect import CollectError, collect, collect_bisects, collect_newest, newest_run, read_json
from matrix.results.merge import MergeError, merge
from probes.record import write_json_atomic


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m matrix", description="Render the compatibility matrix.")
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser("report", help="render results/ from a run folder's cell files")
    report.add_argument(
        "run_dir", nargs="?", help="a folder under results/runs, or 'newest' (the default without --merge)"
    )
    report.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        default=[],
        metavar="DIR",
        help="merge the shards below these folders (run folders or folders above them) into a new run first",
    )
    report.add_argument("--results", type=Path, default=Path("results"), help="where to publish (default: results)")
    report.add_argument(
        "--fail-on-regression", action="store_true", help="exit 1 when a cell newly fails or got slower (for CI)"
    )
    report.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("MATRIX_CACHE", ".cache")),
        help="where release sources read for diagnoses are kept (default: MATRIX_CACHE or .cache)",
    )
    args = parser.parse_args(argv)
    try:
        run = collect(run_to_render(args.run_dir, args.merge, args.results))
    except (CollectError, MergeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for warning in run.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    matrix = aggregate(run)
    judge(matrix, run.model_specs, run.settings)
    bisects = collect_bisects(run.run_dir)
    try:
        table = known_breaks(run.settings)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    unknown = diagnose(matrix, table, bisects, Sources(args.cache, release_line(args.cache)))
    optional = frozenset(name for name, spec in run.model_specs.items() if spec.get("optional"))
    settings = run.settings
    newest = collect_newest(run.run_dir)  # this run's release search, when it made one
    rec = recommend(
        matrix, optional, bool(settings.get("require_budgets")), bisects, bool(settings.get("drift_blocks")), newest
    )
    generated_at = now_utc()
    args.results.mkdir(parents=True, exist_ok=True)
    history_warnings: list[str] = []
    current = history.summary(matrix, rec, generated_at, run.model_specs)
    comparison = history.record(args.results, current, run.settings, history_warnings)
    for warning in history_warnings:
        print(f"warning: {warning}", file=sys.stderr)
    since = comparison.lines()
    written = write_outputs(args.results, matrix, rec, generated_at, unknown, since)
    written += publish_bisects(args.results, run.run_id, bisects)
    for name, text in badge_files(matrix, rec).items():
        (args.results / name).write_text(text, encoding="utf-8")
        written.append(args.results / name)
    index = args.results / "index.html"
    runs = history.load(args.results, [])  # with this run; a damaged line was warned about above
    index.write_text(page(matrix, rec, generated_at, unknown, since, runs, run.model_specs), encoding="utf-8")
    written.append(index)
    print(terminal(matrix, rec, unknown, since))
    print("\nWrote " + ", ".join(str(path) for path in written))
    if args.fail_on_regression and comparison.regressed:
        print("error: regressions since the last published run (--fail-on-regression)", file=sys.stderr)
        return 1
    return 0


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


def run_to_render(run_dir: str | None, merge_dirs: list[Path], results: Path) -> Path:
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


if __name__ == "__main__":
    sys.exit(main())
