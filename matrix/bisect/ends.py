"""A bisect's ends and what its run already knows: the good and bad releases, the run's cells
per variant, the reference cell outputs are compared with, the envs' template.

The run says a model passes in one env and fails in a newer one; these functions read that
from the run folder (or take the ends given on the command line) before anything is probed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from packaging.version import Version

from matrix.bisect.outcome import judged_outcome, outcome_of
from matrix.bisect.report import Cells, is_version
from matrix.config import Config, EnvSpec
from matrix.first_bad import PASS, Outcome
from matrix.releases import is_final
from probes.record import CellResult

Column = tuple[str, str, CellResult]  # (transformers version, env name, the model's base cell)


class _Said:
    """A run cell as the endpoints see it: passed (its judged outcome is a pass) or says nothing."""

    def __init__(self, cell: CellResult, outcome: Outcome) -> None:
        self.cell = cell
        self.passed = outcome == PASS
        self.says_nothing = outcome is None

    def __lt__(self, other: _Said) -> bool:
        return False


class BisectError(Exception):
    """A usage mistake (unknown model, no good/bad pair): one line, exit code 2."""


def pick_endpoints(
    columns: list[Column], good: str | None, bad: str | None, judged: dict[str, Outcome] | None = None
) -> tuple[tuple[str, str | None], tuple[str, str | None]]:
    """((good version, env), (bad version, env)): given ones win, the rest come from a run.

    Neither given: bad is the oldest env where the cell really fails after an env where it
    passes (a cell that says nothing is no evidence either way), good the newest passing env
    before it; so a model that works again later (a patch release undid a break) still has
    its first break searched. Only good given: the oldest newer failing env; only bad given:
    the newest older passing env. `judged` (env -> outcome): a cell whose outputs differ
    from the reference's counts as failing.
    """
    known = sorted(
        (Version(v), env, _Said(cell, (judged or {}).get(env, outcome_of(cell))))
        for v, env, cell in columns
        if is_version(v) and is_final(Version(v))  # a pre-release or local build env is no point of the line
    )
    first_break: tuple[str, str | None] | None = None
    if good is None and bad is None:
        seen_pass = False
        for v, e, c in known:
            if c.passed:
                seen_pass = True
            elif seen_pass and not c.says_nothing:
                first_break = (str(v), e)
                bad = str(v)
                break
    if good is None:
        passing = [(str(v), e) for v, e, c in known if c.passed and (bad is None or v < Version(bad))]
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
    failing = [(str(v), e) for v, e, c in known if v > floor and not c.passed and not c.says_nothing]
    if not failing:
        raise BisectError(f"no env newer than {found_good[0]} where the model fails; give --bad VERSION")
    return found_good, failing[0]


def reference_cell(columns: list[Column]) -> CellResult | None:
    """The model's base cell in the run's oldest env where it passes: what outputs are compared with."""
    passing = sorted((Version(v), cell) for v, _, cell in columns if is_version(v) and cell.status.passed)
    return passing[0][1] if passing else None


def known_outcomes(
    columns: list[Column], line: list[str], reference: CellResult | None, settings: dict[str, Any]
) -> dict[str, Outcome]:
    """What the run's own cells say about the releases of the line (a cell that says nothing: no entry)."""
    wanted = {str(Version(v)): v for v in line}
    known: dict[str, Outcome] = {}
    for version, _, cell in columns:
        outcome = judged_outcome(cell, reference, settings)
        if is_version(version) and str(Version(version)) in wanted and outcome is not None:
            known[wanted[str(Version(version))]] = outcome
    return known


def run_cells_of(results: Path, run_dir: Path | None, model: str) -> tuple[Cells, Path]:
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


def env_template(config: Config, env_name: str | None, good: str) -> EnvSpec:
    """torch, python and pins for the throw-away envs: the good env's, as the matrix built it."""
    named = [e for e in config.envs if e.name == env_name]
    # `latest`, `next`, `path:` and git envs have no version spec to hold `good`
    holding = [e for e in config.envs if e.specifier is not None and Version(good) in e.specifier]
    return (named or holding or list(config.envs))[0]
