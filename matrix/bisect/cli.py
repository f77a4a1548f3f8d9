"""`nox -s bisect -- <model> [--good X] [--bad Y] [--max-probes N] [--jobs N]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from matrix.bisect.batch import default_jobs
from matrix.bisect.driver import BisectError, bisect
from matrix.config import Config
from matrix.envs.gpus import visible_gpus
from matrix.releases import ReleasesError


def main(argv: list[str], *, config: Config, results: Path, cache: Path) -> int:
    """2 and one line for a usage mistake, 1 when the index cannot be read."""
    parser = argparse.ArgumentParser(
        prog="nox -s bisect --", description="Find where transformers releases break a model, and where they stop."
    )
    parser.add_argument("model", help="a model name of the config")
    parser.add_argument("--good", help="a release where the model passes (default: from the newest run)")
    parser.add_argument("--bad", help="a newer release where it fails (default: from the newest run)")
    parser.add_argument("--max-probes", type=int, help="the most probes per variant (default: four breaks' worth)")
    parser.add_argument("--jobs", type=int, help="releases probed side by side (default: [settings] jobs, or per CPU)")
    args = parser.parse_args(argv)
    jobs = args.jobs or config.settings.jobs or default_jobs(len(visible_gpus()))
    try:
        bisect(
            config,
            args.model,
            good=args.good,
            bad=args.bad,
            results=results,
            cache=cache,
            max_probes=args.max_probes,
            jobs=jobs,
        )
    except (BisectError, ReleasesError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, BisectError) else 1
    return 0
