"""Merge shards into one run folder: `python -m matrix report --merge DIR [DIR ...]`.

A shard is whatever one `probe(env=...)` session left behind on some machine: env folders
(`_env.json`, `_plan.json`, one `<model>[+shim].json` per cell, `.log` files) inside a run
folder. CI runs each env on its own runner and downloads the artifacts side by side
(`shards/<artifact>/runs/<run-id>/<env>/...`); a person may copy run folders from two hosts.
The merge writes ONE new run folder under `results/runs/<new id>`, so the merged run is an
ordinary run folder: `report newest` re-renders it and every cell keeps its own machine
fingerprint. What the merge decided (which shard each cell came from, every duplicate and
conflict) is kept in `_merge.json` at the top of that folder; `collect` reads its warnings back.
"""

from __future__ import annotations

import datetime
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matrix.envs.plan import ENV_FACTS_FILE, PLAN_FILE, new_run_id
from matrix.results.collect import MERGE_FILE, read_json
from probes.record import CellResult, write_json_atomic

_OLDEST = datetime.datetime.min.replace(tzinfo=datetime.UTC)


class MergeError(Exception):
    """A folder given to --merge does not exist or holds no cell to merge."""


@dataclass
class EnvShard:
    """One env folder found below a --merge folder."""

    path: Path
    order: int  # position of its --merge folder on the command line: a later one wins a tie
    facts: dict[str, Any] | None
    plan: dict[str, Any] | None
    cells: list[tuple[CellResult, Path]] = field(default_factory=list)

    @property
    def env(self) -> str:
        return self.path.name


@dataclass
class Candidate:
    """One cell file of one shard."""

    cell: CellResult
    shard: EnvShard
    path: Path

    @property
    def rank(self) -> tuple[datetime.datetime, int]:
        return started(self.cell), self.shard.order


def started(cell: CellResult) -> datetime.datetime:
    """When the cell began; a cell written without a time (env-failed) counts as oldest."""
    try:
        when = datetime.datetime.fromisoformat(cell.started_at)
    except (TypeError, ValueError):
        return _OLDEST
    return when if when.tzinfo else when.replace(tzinfo=datetime.UTC)


def is_env_folder(folder: Path) -> bool:
    """An env folder holds env facts, a runner plan or cell files."""
    if (folder / ENV_FACTS_FILE).is_file() or (folder / PLAN_FILE).is_file():
        return True
    return any(not path.name.startswith(("_", ".")) for path in folder.glob("*.json"))


def find_env_folders(root: Path) -> list[Path]:
    """Every env folder at or below `root`, in path order.

    A folder that has a `runs/` folder (results/, one downloaded artifact) is searched only
    there, so results/bisect's probe cells are never taken for a shard; hidden folders are
    skipped, and nothing below an env folder is searched.
    """
    if is_env_folder(root):
        return [root]
    runs = root / "runs"
    children = [runs] if runs.is_dir() else sorted(p for p in root.iterdir() if p.is_dir())
    found: list[Path] = []
    for child in children:
        if not child.name.startswith("."):
            found += find_env_folders(child)
    return found


def load_shards(dirs: Sequence[Path], warnings: list[str]) -> list[EnvShard]:
    """Every env folder below each of `dirs`, with its cells; MergeError for an empty or missing dir."""
    shards: list[EnvShard] = []
    for order, root in enumerate(dirs):
        if not root.is_dir():
            raise MergeError(f"--merge {root}: no such folder")
        found = []
        for folder in find_env_folders(root):
            facts, plan = read_json(folder / ENV_FACTS_FILE, warnings), read_json(folder / PLAN_FILE, warnings)
            shard = EnvShard(
                folder, order, facts if isinstance(facts, dict) else None, plan if isinstance(plan, dict) else None
            )
            for path in sorted(folder.glob("*.json")):
                data = None if path.name.startswith(("_", ".")) else read_json(path, warnings)
                if data is None:
                    continue
                try:
                    cell = CellResult.from_dict(data)
                except (TypeError, ValueError, KeyError, AttributeError) as exc:
                    warnings.append(f"skipped damaged cell file {path}: {exc}")
                    continue
                if (cell.env, cell.stem) != (folder.name, path.stem):
                    warnings.append(f"skipped cell file {path}: it says it is {cell.env}/{cell.stem}")
                    continue
                shard.cells.append((cell, path))
            found.append(shard)
        if not any(shard.cells for shard in found):
            raise MergeError(f"--merge {root}: no cell files below it (expected <run-id>/<env>/<model>.json)")
        shards += found
    return shards


def pick_cells(shards: Sequence[EnvShard], warnings: list[str]) -> dict[tuple[str, str, str], Candidate]:
    """One cell per (env, model, variant): the newest `started_at` wins (a tie goes to the later
    --merge folder); each duplicate is a warning naming both files."""
    winners: dict[tuple[str, str, str], Candidate] = {}
    for shard in shards:
        for cell, path in shard.cells:
            key = (cell.env, cell.model, cell.variant)
            new = Candidate(cell, shard, path)
            old = winners.get(key)
            if old is None:
                winners[key] = new
                continue
            kept, dropped = (new, old) if new.rank >= old.rank else (old, new)
            winners[key] = kept
            warnings.append(
                f"duplicate cell {cell.env}/{cell.stem}: kept {_where(kept)}, dropped {_where(dropped)}"
                + (" (same start time: the later --merge folder wins)" if new.rank[0] == old.rank[0] else "")
            )
    return winners


def pick_env_facts(
    shards: Sequence[EnvShard], winners: dict[tuple[str, str, str], Candidate], warnings: list[str]
) -> dict[str, EnvShard]:
    """For each env, the shard whose facts and plan are kept: the one that won most of the env's
    cells (a tie goes to the newer cells). Facts of the same env that disagree (another machine,
    other packages) are a warning."""
    won = Counter(id(candidate.shard) for candidate in winners.values())
    newest: dict[int, datetime.datetime] = {}
    for candidate in winners.values():
        key = id(candidate.shard)
        newest[key] = max(newest.get(key, _OLDEST), started(candidate.cell))
    chosen: dict[str, EnvShard] = {}
    for env in dict.fromkeys(shard.env for shard in shards):
        same = [shard for shard in shards if shard.env == env]
        best = max(same, key=lambda s: (won[id(s)], newest.get(id(s), _OLDEST), s.order))
        chosen[env] = best
        for other in same:
            if other is not best and other.facts and best.facts and _conflict(best.facts, other.facts):
                warnings.append(
                    f"env {env}: facts differ between {best.path} ({_host(best.facts)}) and"
                    f" {other.path} ({_host(other.facts)}); kept those of {best.path}"
                )
    return chosen


def merge(dirs: Sequence[Path], results: Path) -> Path:
    """Merge the shards below `dirs` into a new run folder under `results/runs` and return it."""
    warnings: list[str] = []
    shards = load_shards(dirs, warnings)
    winners = pick_cells(shards, warnings)
    kept = pick_env_facts(shards, winners, warnings)
    run_dir = results / "runs" / new_run_id()
    staging = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.", suffix=".tmp", dir=_made(results / "runs")))
    try:
        for env, chosen in kept.items():
            for name in (ENV_FACTS_FILE, PLAN_FILE):  # the chosen shard's, else any that has one
                having = [s.path / name for s in (chosen, *shards) if s.env == env and (s.path / name).is_file()]
                if having:
                    _copy(having[0], staging / env / name)
        for candidate in winners.values():  # names are those of real files, so nothing lands outside
            target = staging / candidate.shard.env
            _copy(candidate.path, target / candidate.path.name)
            log = candidate.path.with_suffix(".log")
            if log.is_file():
                _copy(log, target / log.name)
        write_json_atomic(
            staging / MERGE_FILE,
            {
                "schema": 1,
                "sources": [str(path) for path in dirs],
                "cells": {f"{env}/{c.cell.stem}": str(c.shard.path) for (env, _, _), c in sorted(winners.items())},
                "warnings": warnings,
            },
        )
        staging.chmod(0o755)
        os.rename(staging, run_dir)  # a report never sees half a merge
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return run_dir


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _where(candidate: Candidate) -> str:
    return f"{candidate.path} (started {candidate.cell.started_at or 'unknown'})"


def _host(facts: dict[str, Any]) -> str:
    return str((facts.get("machine") or {}).get("hostname", "unknown host"))


def _conflict(one: dict[str, Any], other: dict[str, Any]) -> bool:
    return any(one.get(key) != other.get(key) for key in ("machine", "packages", "status"))
