"""The compatibility matrix as nox sessions: importing this module registers them.

`nox -s matrix` runs one `probe(env=...)` session per env of the config (./matrix.toml of
the folder nox was started from, or the file MATRIX_CONFIG names, relative to that folder),
then collects every cell into results/ beside the config. The sessions *are* the config's
envs: nox reads the config when it loads the noxfile. A team's own noxfile is two lines
(`transformers-matrix init` writes it): a PEP 723 block that names this package, and
`from matrix.sessions import *`.
"""

from __future__ import annotations

import atexit
import contextlib
import inspect
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nox
from nox.command import CommandFailed

from matrix import config as matrix_config
from matrix import exit_codes
from matrix.envs.gpus import gpu_for_env, visible_gpus
from matrix.envs.plan import new_run_id
from matrix.envs.run import probe_env, wheelhouse_env
from probes.record import SAFE_PART


def nox_config() -> Any:
    """The config nox is loading us with, read from the loader's frame (None without nox)."""
    frame = inspect.currentframe()
    while frame is not None:
        config = frame.f_locals.get("global_config")
        if config is not None and isinstance(getattr(config, "invoked_from", None), str):
            return config
        frame = frame.f_back
    return None


def invoked_from() -> Path:
    """The folder the user started nox in. nox changes into the noxfile's folder before it
    loads it, so the current folder is the noxfile's; nox keeps the original as
    `invoked_from` on its config (a `-j` child gets it forwarded). Without nox, the current folder."""
    config = nox_config()
    return Path(config.invoked_from) if config is not None else Path.cwd()


def exit_code_file() -> Path:
    """Where the report's exit code goes for the nox process the user started. Side by side
    (`-j`, or `jobs`), each session runs in a child nox whose failure the parent folds into
    1; the child writes its code here (named by its parent's pid), the parent reads it last."""
    config = nox_config()
    owner = os.getppid() if config is not None and getattr(config, "parallel_worker", False) else os.getpid()
    return Path(tempfile.gettempdir()) / f"transformers-matrix-exit-{owner}"


def _exit_with_reported_code(path: Path) -> None:
    """At the parent's exit: leave with the code a session's report wrote, when one did."""
    try:
        code = int(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    path.unlink(missing_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


nox.needs_version = ">=2025.2.9"
if nox_config() is not None and not getattr(nox_config(), "parallel_worker", False):
    exit_code_file().unlink(missing_ok=True)
    atexit.register(_exit_with_reported_code, exit_code_file())
nox.options.default_venv_backend = "uv"
nox.options.sessions = ["matrix"]

HERE = invoked_from()
CONFIG_PATH = HERE / os.environ.get("MATRIX_CONFIG", "matrix.toml")  # an absolute MATRIX_CONFIG stays as it is
if not CONFIG_PATH.is_file():
    print(
        f"error: {CONFIG_PATH}: no matrix config here; write one with `transformers-matrix init`"
        " or name one with MATRIX_CONFIG=path/to/matrix.toml",
        file=sys.stderr,
    )
    sys.exit(exit_codes.USAGE)
try:
    CONFIG = matrix_config.load(CONFIG_PATH)
except matrix_config.ConfigError as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(exit_codes.USAGE)
for warning in CONFIG.warnings():
    print(f"warning: {warning}", file=sys.stderr)
if CONFIG.settings.wheelhouse:  # air-gapped: nox's own venvs and installs come from it too
    os.environ.update(wheelhouse_env(Path(CONFIG.settings.wheelhouse)))

# One run id for every session of this nox invocation; MATRIX_RUN_ID names a run folder
# to write into (or to resume). `nox -j N` runs each session in a child nox that loads this
# file again and inherits our environment: the id we generate is exported, marked as ours,
# so the children write to the same folder and still know the user gave no id.
_GENERATED = "MATRIX_RUN_ID_GENERATED"
RUN_ID_GIVEN = "MATRIX_RUN_ID" in os.environ and os.environ["MATRIX_RUN_ID"] != os.environ.get(_GENERATED)
if "MATRIX_RUN_ID" not in os.environ:
    os.environ["MATRIX_RUN_ID"] = os.environ[_GENERATED] = new_run_id()
RUN_ID = os.environ["MATRIX_RUN_ID"]
if not SAFE_PART.match(RUN_ID):  # it names a folder under results/runs: no separators, no leading dot
    print(f"error: MATRIX_RUN_ID {RUN_ID!r} is not a folder name (letters, digits, '.', '_', '-')", file=sys.stderr)
    sys.exit(exit_codes.USAGE)
# Each config publishes beside itself (its own results/ and history), so running another
# config never touches the default's published results.
RESULTS = HERE / os.environ.get("MATRIX_RESULTS", CONFIG_PATH.resolve().parent / "results")
# Caches live with the config's repository (uv envs of the bisect, release sources, facts).
CACHE = HERE / os.environ.get("MATRIX_CACHE", CONFIG_PATH.resolve().parent / ".cache")
os.environ["MATRIX_CACHE"] = str(CACHE)
RESUME = "--resume"
# The report runs in a small venv of its own (tabulate, packaging) that imports this package
# from where it is: the checkout, or the site-packages it was installed into.
PACKAGE_HOME = str(Path(__file__).resolve().parent.parent)
_run_dirs: list[Path] = []


def run_dir(session: nox.Session) -> Path:
    """This invocation's run folder: MATRIX_RUN_ID's when given, else a new one, or with
    `-- --resume` the newest existing one; finished cells are kept when resuming. Every
    session of one nox run gets the same folder, with `-j` too (each child decides alike:
    the same exported id, and resuming never creates a folder that could become newest)."""
    if not _run_dirs:
        runs = sorted(p for p in (RESULTS / "runs").glob("*") if p.is_dir())
        resume_newest = RESUME in session.posargs and runs and not RUN_ID_GIVEN
        _run_dirs.append(runs[-1] if resume_newest else RESULTS / "runs" / RUN_ID)
    return _run_dirs[0]


@nox.session(venv_backend="uv", reuse_venv=True, allow_parallel=True)
@nox.parametrize(
    ("python", "env"),
    [nox.param(env.python, env.name, id=f"env={env.name!r}") for env in CONFIG.envs],
)
def probe(session: nox.Session, env: str) -> None:
    """Build one env with uv (pinned transformers/torch) and probe every model in it.

    Safe side by side (`nox -j N`): each env has its own venv and env folder, the shared
    fixture and pypi caches are built aside and renamed into place, and on a host with
    several GPUs each env gets its own."""
    python = Path(session.virtualenv.location) / "bin" / "python"
    gpu = gpu_for_env([e.name for e in CONFIG.envs].index(env), visible_gpus())
    if gpu is not None:
        session.log(f"env {env}: CUDA_VISIBLE_DEVICES={gpu}")
    with visible_devices(gpu):
        why_not = probe_env(CONFIG, env, python, run_dir(session), CACHE, resume=RESUME in session.posargs)
    if why_not:
        session.skip(f"{why_not}; its cells are recorded as env-failed")


@contextlib.contextmanager
def visible_devices(gpu: str | None) -> Iterator[None]:
    """CUDA_VISIBLE_DEVICES for the env's runner while it probes (the runner inherits our
    environment); restored after, since sequential sessions share this process."""
    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = before


@nox.session(venv_backend="uv", reuse_venv=True, requires=["probe"])
def matrix(session: nox.Session) -> None:
    """Probe every env, then render results/ (`-- --resume`: finish an interrupted run; `-- --merge DIR...`: add shards)

    With --merge, this run and the shards (run folders from other machines) become one new run."""
    bisect_search_and_report(session, run_dir(session), [arg for arg in session.posargs if arg != RESUME])


def bisect_breaks(session: nox.Session) -> None:
    """`[settings] auto_bisect = true`: bisect every model that passes in one env and fails in a newer one.

    Each report goes into this run's folder (`_bisect-<model>.json`), so the run's report
    carries only its own bisects; every probe is a cached fact, so a warm rerun probes nothing."""
    from matrix.bisect import BisectError, bisect_models
    from matrix.releases import ReleasesError

    names = [model.name for model in CONFIG.models]
    try:
        reports = bisect_models(CONFIG, names, results=RESULTS, cache=CACHE, run_dir=run_dir(session), jobs=jobs())
    except ReleasesError as why:
        session.warn(f"bisect: the release list could not be read ({why})")
        return
    for name, report in reports.items():
        if isinstance(report, BisectError):
            session.log(f"bisect {name}: nothing to bisect ({report})")


def jobs() -> int:
    """Probes side by side in the bisect and the release search: MATRIX_JOBS, else `[settings] jobs`,
    else one per CPU (one per GPU on a GPU box)."""
    from matrix.bisect.batch import default_jobs

    given = os.environ.get("MATRIX_JOBS") or CONFIG.settings.jobs
    if not given:
        return default_jobs(len(visible_gpus()))
    if not str(given).isdigit() or int(given) < 1:
        print(f"error: MATRIX_JOBS={given!r}: give a whole number of jobs, 1 or more", file=sys.stderr)
        sys.exit(exit_codes.USAGE)
    return int(given)


# The probe sessions side by side too: a plain `nox -s matrix` builds and probes envs up to
# `jobs()` at once (each session has its own venv, env folder and GPU; `-j N` still decides).
nox.options.parallel = jobs()


def search_releases(session: nox.Session) -> None:
    """`[settings] search_releases = true`: the newest release that runs every model, confirmed by a probe of each.

    Writes `_newest.json` into this run's folder (the report leads with it); the probes are
    the bisect's cached facts, so a warm rerun probes nothing."""
    from matrix.newest.confirm import search_newest
    from matrix.releases import ReleasesError, cached_releases
    from matrix.results.collect import CollectError

    try:
        releases = cached_releases("transformers", CACHE)
        search_newest(CONFIG, run_dir(session), results=RESULTS, cache=CACHE, releases=releases, jobs=jobs())
    except ReleasesError as why:
        session.warn(f"release search: the release list could not be read ({why})")
    except CollectError as why:
        session.warn(f"release search: {why}")


@nox.session(venv_backend="uv")
def report(session: nox.Session) -> None:
    """Re-render results/ from the newest run (or `-- RUN_DIR`, or `-- --merge DIR...` of shards), without probing.

    --merge first merges the shards (run folders from other machines) into one new run folder."""
    run_report(session, session.posargs)


@nox.session(venv_backend="uv")
def publish(session: nox.Session) -> None:
    """Merge shards (`-- SHARD_DIR... [--fail-on-regression]`), bisect and search the release line, then render.

    What `matrix` does after its probe sessions, for scheduled CI's merge job: the shards of
    the probe jobs become one run, the bisect and the release search run on it (every probe a
    cached fact, so with the facts cache restored a week without news probes nothing), and
    the page leads with the same pin, windows and blockers as a local `nox -s matrix`."""
    from matrix.results.merge import MergeError, merge

    shards = [Path(arg) for arg in session.posargs if not arg.startswith("--")]
    flags = [arg for arg in session.posargs if arg.startswith("--")]
    if not shards:
        session.error("give the shard folders: nox -s publish -- shards/")
    try:
        merged = merge(shards, RESULTS)
    except MergeError as error:
        session.error(str(error))
    session.log(f"merged {len(shards)} shard folder(s) into {merged.name}")
    _run_dirs[:] = [merged]
    bisect_search_and_report(session, merged, flags)


def bisect_search_and_report(session: nox.Session, run: Path, report_args: list[str]) -> None:
    """What follows the probes of a run (local or merged): bisect, search the release line, render."""
    if CONFIG.settings.auto_bisect:
        bisect_breaks(session)
    if CONFIG.settings.search_releases:
        search_releases(session)
    run_report(session, [str(run), *report_args])


def run_report(session: nox.Session, args: list[str]) -> None:
    """`python -m matrix report ARGS` in a small venv of its own. Its exit codes that mean
    something (a config error, a probe failure, a regression) leave nox as they are, so a
    script tells them apart from one another and from a failed session (1)."""
    session.install("tabulate", "packaging")
    try:
        session.run(
            "python", "-m", "matrix", "report", *args, "--results", str(RESULTS), "--cache", str(CACHE),
            env={"PYTHONPATH": PACKAGE_HOME},
        )  # fmt: skip
    except CommandFailed as failed:
        if failed.return_code in exit_codes.MEANING:
            session.log(f"report: exit {failed.return_code} ({exit_codes.MEANING[failed.return_code]})")
            exit_code_file().write_text(str(failed.return_code), encoding="utf-8")
            raise SystemExit(failed.return_code) from None
        raise


@nox.session(venv_backend="none")
def bisect(session: nox.Session) -> None:
    """Find where transformers releases break a model (windows): `nox -s bisect -- <model> [--good X] [--bad Y]`.

    Ends from the newest run: the report goes into that run's folder (`nox -s report` then
    publishes it); ends given: into results/bisect/<model>.json."""
    # No venv of its own: the driver needs only this Python and packaging (which nox brings);
    # the throw-away envs it probes are built with uv under MATRIX_CACHE/bisect.
    from matrix.bisect import main as bisect_main

    code = bisect_main(session.posargs, config=CONFIG, results=RESULTS, cache=CACHE)
    if code:
        raise SystemExit(code)  # nox itself then exits 2 (usage) or 1, after the one-line error
