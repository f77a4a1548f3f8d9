"""Run one env: install it with uv, record what got installed, probe every cell.

Called by the noxfile's `probe(env=...)` session with the venv nox's uv backend made.
An env that cannot be built is data, not an error: each of its cells becomes `env-failed`
carrying the installer's own output, and the caller skips the session (a skipped
prerequisite does not abort `matrix`; a failed one would).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import probes
from matrix import proc
from matrix.config import LATEST, NEXT, Config, EnvSpec
from matrix.envs.builds import BUILD_KINDS, keep_build
from matrix.envs.locations import ensure_fixtures, ensure_pypi_model, model_locations
from matrix.envs.outcomes import (
    HUB_FILE,
    hub_preflight,
    write_env_failed,
    write_missing_as_crashed,
    write_preflight_cells,
    write_skipped,
)
from matrix.envs.plan import ENV_FACTS_FILE, PLAN_FILE, runner_plan
from matrix.releases import ReleasesError, cached_releases, newest_release, upcoming
from probes.record import machine_fingerprint, write_json_atomic
from probes.status import Status

# Moved out by responsibility; still importable from here, as callers always have.
__all__ = [
    "HUB_FILE",
    "ensure_fixtures",
    "ensure_pypi_model",
    "freeze",
    "hub_preflight",
    "install_env",
    "model_locations",
    "probe_env",
    "probe_env_vars",
    "wheelhouse_env",
    "write_env_failed",
    "write_missing_as_crashed",
    "write_preflight_cells",
]

INSTALL_TIMEOUT_S = 1800
LATEST_LOOKUP_TIMEOUT_S = 10.0
ENV_MARKER = "transformers-matrix-env.json"


def wheelhouse_env(wheelhouse: Path) -> dict[str, str]:
    """uv settings for an air-gapped host: every package from a local folder of wheels, no
    index, no network (uv reads these variables in every call: nox's venvs and installs as
    well as ours)."""
    return {"UV_FIND_LINKS": str(wheelhouse), "UV_NO_INDEX": "1", "UV_OFFLINE": "1"}


def probe_env(
    config: Config, env_name: str, python: Path, run_dir: Path, cache_root: Path, resume: bool = False
) -> str | None:
    """Build, freeze and probe one env. Returns None on success, else why it could not be built.

    With `resume`, cells whose file already exists in `run_dir` are not run again. A `next`
    env is pinned to the upcoming pre-release first (its cells are `skipped` when there is
    none); a `path:` or git build is labelled and its sources kept (`matrix/envs/builds.py`).
    """
    env = config.env(env_name)
    facts: dict[str, Any] = {"name": env.name, "machine": machine_fingerprint()}
    if env.kind == NEXT:
        resolved, why_not = _upcoming_env(config, env, run_dir, facts)
        if resolved is None:
            return why_not
        env = resolved
    install = install_env(python, env)
    facts.update(
        requested=env.requested(config.path.resolve().parent),
        install_s=round(install.seconds, 2),
        install_log=install.output[-20000:],
    )
    if not install.ok:
        facts["status"] = Status.ENV_FAILED.value
        write_json_atomic(run_dir / env.name / ENV_FACTS_FILE, facts)
        write_env_failed(config, env.name, run_dir, install.output)
        return f"env {env.name} could not be built (uv exit code {install.returncode})"
    packages = freeze(python)
    if env.kind in BUILD_KINDS:
        facts["build"] = keep_build(env, python, packages.get("transformers", "?"), cache_root)
        packages["transformers"] = facts["build"]["label"]
    facts.update(status="built", packages=packages, transformers=packages.get("transformers", "?"))
    write_json_atomic(run_dir / env.name / ENV_FACTS_FILE, facts)
    torch = packages.get("torch", "?")
    print(f"[{env.name}] built in {install.seconds:.1f} s: transformers {facts['transformers']}, torch {torch}")
    locations = model_locations(config, python, cache_root)
    preflight = hub_preflight(config, run_dir, python)
    decided = write_preflight_cells(config, env.name, run_dir, preflight)
    plan = runner_plan(config, env.name, run_dir, locations, resume, leave_out=decided)
    plan_file = run_dir / env.name / PLAN_FILE
    write_json_atomic(plan_file, plan)
    if plan["cells"]:
        offline = preflight is not None and not preflight.reachable
        proc.run([python, "-m", "probes.runner", plan_file], env=probe_env_vars(config, offline), capture=False)
    write_missing_as_crashed(config, env.name, run_dir)
    return None


def _upcoming_env(
    config: Config, env: EnvSpec, run_dir: Path, facts: dict[str, Any]
) -> tuple[EnvSpec | None, str | None]:
    """A `next` env pinned to the upcoming pre-release; else (None, why not), with its cells
    written: `skipped` when the index lists none (nothing to build, not a failure, so why not
    is None), `env-failed` when the index cannot say."""
    found, why = upcoming_transformers()
    if found is not None:
        facts["upcoming"] = found
        return dataclasses.replace(env, transformers=f"=={found}"), None
    skipped = why.startswith(NO_UPCOMING)
    status = Status.SKIPPED if skipped else Status.ENV_FAILED
    facts.update(status=status.value, reason=why, install_log=why, requested=["transformers (next)"])
    write_json_atomic(run_dir / env.name / ENV_FACTS_FILE, facts)
    if skipped:
        write_skipped(config, env.name, run_dir, why)
        print(f"[{env.name}] skipped: {why}")
        return None, None
    write_env_failed(config, env.name, run_dir, why)
    return None, f"env {env.name} could not be built ({why})"


def install_env(python: Path, env: EnvSpec) -> proc.Completed:
    """`uv pip install` the env's requirements into the venv (output captured for env-failed).

    A venv is kept between runs while its requirements stay the same (a marker file in the
    venv says so): a fresh venv costs nothing to install from uv's cache, but its first
    `import torch, transformers` compiles bytecode (about 8 s more per env, measured).
    When the requirements change, the venv is cleared first, so no stale package lingers.
    `latest` is pinned to the newest release the index lists (the list is cached for an
    hour), so an unchanged newest release installs nothing and keeps its bytecode. When the
    index cannot be read, or that release does not install here (its Python or dependency
    bounds), uv re-resolves it (`--upgrade-package`), as before.
    """
    pinned = _newest_transformers() if env.transformers == LATEST else None
    done = _install(python, dataclasses.replace(env, transformers=f"=={pinned}") if pinned else env)
    if pinned and not done.ok:  # the newest release does not fit this env: let uv pick, as before
        done = _install(python, env)
    return done


def _install(python: Path, env: EnvSpec) -> proc.Completed:
    venv = python.parent.parent
    marker = venv / ENV_MARKER
    wanted = json.dumps(
        {"requirements": env.install_args(), "files": install_file_digests(env), "installer": proc.installer_env()},
        sort_keys=True,
    )
    if not (marker.is_file() and marker.read_text(encoding="utf-8") == wanted):
        marker.unlink(missing_ok=True)
        cleared = proc.run(["uv", "venv", "--clear", "--quiet", "--python", python, venv])
        if not cleared.ok:
            return cleared
    args: list[str | Path] = ["uv", "pip", "install", "--python", python]
    if env.transformers == LATEST:
        args += ["--upgrade-package", "transformers", "--refresh-package", "transformers"]
    if env.kind in BUILD_KINDS:  # a source folder or a branch changes under the same name: build it afresh
        args += ["--reinstall-package", "transformers", "--refresh-package", "transformers"]
    done = proc.run([*args, *env.install_args()], env=proc.installer_env(), timeout=INSTALL_TIMEOUT_S)
    if done.ok:
        marker.write_text(wanted, encoding="utf-8")
    return done


def _newest_transformers() -> str | None:
    """The newest transformers release on the index, or None offline (a wheelhouse, no index)."""
    if any(os.environ.get(key, "").strip() not in ("", "0", "false") for key in ("UV_OFFLINE", "UV_NO_INDEX")):
        return None
    newest = newest_release("transformers", _cache(), timeout=LATEST_LOOKUP_TIMEOUT_S)
    return str(newest) if newest is not None else None


NO_UPCOMING = "no upcoming release"


def upcoming_transformers() -> tuple[str | None, str]:
    """The newest transformers pre-release newer than the newest final, and '' ; or None and
    why: NO_UPCOMING when the index has none, else why the index could not say."""
    if any(os.environ.get(key, "").strip() not in ("", "0", "false") for key in ("UV_OFFLINE", "UV_NO_INDEX")):
        return None, "the package index is off (UV_OFFLINE / UV_NO_INDEX): it cannot say which release is upcoming"
    try:
        versions = cached_releases("transformers", _cache(), timeout=LATEST_LOOKUP_TIMEOUT_S, pre=True)
    except ReleasesError as error:
        return None, f"cannot tell the upcoming release: {error}"
    found = upcoming(versions)
    if found is None:
        finals = [v for v in versions if not (v.is_prerelease or v.is_devrelease or v.is_postrelease or v.local)]
        newest = f" newer than {max(finals)} (the newest release)" if finals else ""
        return None, f"{NO_UPCOMING}: the index lists no pre-release of transformers{newest}"
    return str(found), ""


def _cache() -> Path:
    return Path(os.environ.get("MATRIX_CACHE", Path.home() / ".cache" / "transformers-matrix"))


def install_file_digests(env: EnvSpec) -> dict[str, str]:
    """sha256 of the files the install reads (requirement and constraint files, a wheel), so
    a changed file rebuilds the venv; a missing one is recorded as such (uv will say why)."""
    files = [*env.requirement_files, *env.constraint_files]
    if env.transformers_path and Path(env.transformers_path).is_file():
        files.append(env.transformers_path)
    digests = {}
    for file in files:
        try:
            digests[file] = hashlib.sha256(Path(file).read_bytes()).hexdigest()
        except OSError as error:
            digests[file] = f"unreadable: {error.strerror or error}"
    return digests


def freeze(python: Path) -> dict[str, str]:
    """Exact version of every distribution installed in the env."""
    listed = proc.run(["uv", "pip", "list", "--python", python, "--format", "json"], stdout_only=True)
    if not listed.ok:
        return {}
    return {item["name"].lower(): item["version"] for item in json.loads(listed.output)}


def probe_env_vars(config: Config, hub_offline: bool = False) -> dict[str, str]:
    """Variables for the in-env runner: our code on the path; offline when no model needs the
    hub, or when the hub preflight found it unreachable (`hub_offline`)."""
    extra = _pythonpath()
    if hub_offline or not any(m.source_kind == "hub" for m in config.models):
        extra["HF_HUB_OFFLINE"] = "1"
    extra.setdefault("TOKENIZERS_PARALLELISM", "false")
    return extra


def _pythonpath() -> dict[str, str]:
    return {"PYTHONPATH": probes.import_root()}
