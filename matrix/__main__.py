"""`python -m matrix report RUN_DIR`: the report's steps over a run folder (matrix/pipeline.py).

`report --merge DIR [DIR ...]` first merges the shards below those folders (and RUN_DIR,
when given) into one new run folder under `<results>/runs` (see matrix/results/merge.py).

Exit codes (matrix/pipeline.py, passed through nox): 0 when the report was written (failing
cells are data, not errors), 2 when the tool could not do its job (a config error, no such
run folder, no cell files), 3 when it was written but an env could not be built, 4 with
--fail-on-regression when something regressed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from matrix.pipeline import STEPS, Report, Request, execute


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
        "--fail-on-regression", action="store_true", help="exit 4 when a cell newly fails or got slower (for CI)"
    )
    report.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("MATRIX_CACHE", ".cache")),
        help="where release sources read for diagnoses are kept (default: MATRIX_CACHE or .cache)",
    )
    args = parser.parse_args(argv)
    request = Request(args.run_dir, tuple(args.merge), args.results, args.cache, args.fail_on_regression)
    return execute(STEPS, Report(request))


if __name__ == "__main__":
    sys.exit(main())
