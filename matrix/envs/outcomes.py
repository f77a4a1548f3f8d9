"""Cells decided without probing them: by the hub preflight, by an env that could not be
built or that there is nothing to build for, by a runner that died. Each still gets a
result file with its status and the reason, so the table has no hole.

The hub preflight is asked once per run and shared by every env session (see
`hub_preflight`).
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from matrix.config import Config
from matrix.envs import hub
from matrix.envs.plan import cells
from probes.record import CellResult, machine_fingerprint, write_json_atomic
from probes.status import Status

HUB_FILE = "_hub.json"


def hub_preflight(config: Config, run_dir: Path, python: Path) -> hub.Preflight | None:
    """Ask the hub about the config's hub models once per run (None when it has none), through
    the huggingface_hub of the env whose interpreter is `python`.

    The first env session of a run asks and stores the answers in `<run_dir>/_hub.json`;
    later ones, and ones running side by side (they wait on a lock on the run folder), read
    them: a run of three envs asks once, and every env sees the same answers. Answers that
    do not cover the config's hub models (the config changed before a resume) are asked again.
    """
    if not any(m.source_kind == "hub" for m in config.models):
        return None
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / HUB_FILE
    folder = os.open(run_dir, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        found = _stored_preflight(path, config)
        if found is None:
            found = hub.preflight(config.models, python)
            write_json_atomic(path, found.to_dict())
        else:
            print(f"[hub] this run's preflight, from {path}")
    finally:
        os.close(folder)  # closing releases the lock
    for line in found.lines():
        print(line)
    return found


def _stored_preflight(path: Path, config: Config) -> hub.Preflight | None:
    try:
        found = hub.Preflight.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):  # missing or damaged: ask again
        return None
    return found if found.covers(config.models) else None


def write_preflight_cells(config: Config, env: str, run_dir: Path, preflight: hub.Preflight | None) -> frozenset[str]:
    """Write the cells the hub preflight decided (no such id or revision, gated, offline and not
    cached) for every variant, and return those models: the runner leaves them out."""
    if preflight is None:
        return frozenset()
    blocked = preflight.blocked()
    for cell in cells(config, env):
        verdict = blocked.get(cell.model)
        if verdict is None or verdict.status is None:
            continue
        CellResult(
            env=env,
            model=cell.model,
            variant=cell.variant,
            status=verdict.status,
            reason=verdict.reason,
            phase="preflight",
            facts={
                "hub": {
                    "endpoint": preflight.endpoint,
                    "repo": verdict.repo,
                    "revision": verdict.revision,
                    "verdict": verdict.kind,
                    "suggestions": list(verdict.suggestions),
                }
            },
            machine=machine_fingerprint(),
        ).write(run_dir)
    return frozenset(blocked)


def write_env_failed(config: Config, env: str, run_dir: Path, installer_output: str) -> None:
    """Every cell of an env that could not be built records the installer's message."""
    message = installer_output.strip() or "the installer printed nothing"
    lines = message.splitlines()
    start = next((i for i, line in enumerate(lines) if "error" in line.lower()), 0)
    summary = " ".join(" ".join(lines[start:]).split())
    for cell in cells(config, env):
        CellResult(
            env=env,
            model=cell.model,
            variant=cell.variant,
            status=Status.ENV_FAILED,
            reason=f"env could not be built: {summary[:400]}",
            phase="install",
            error={"type": "InstallError", "message": message[-4000:], "traceback": ""},
            machine=machine_fingerprint(),
        ).write(run_dir)


def write_missing_as_crashed(config: Config, env: str, run_dir: Path) -> None:
    """Cells the runner never wrote (it died) still get a result: `crashed`."""
    for cell in cells(config, env):
        if not (run_dir / env / f"{cell.stem}.json").exists():
            CellResult(
                env=env,
                model=cell.model,
                variant=cell.variant,
                status=Status.CRASHED,
                reason="the env's runner stopped before this cell finished",
                machine=machine_fingerprint(),
            ).write(run_dir)


def write_skipped(config: Config, env: str, run_dir: Path, reason: str) -> None:
    """Every cell of an env with nothing to build (`next` when no pre-release is upcoming)."""
    for cell in cells(config, env):
        CellResult(
            env=env,
            model=cell.model,
            variant=cell.variant,
            status=Status.SKIPPED,
            reason=reason,
            phase="install",
            machine=machine_fingerprint(),
        ).write(run_dir)
