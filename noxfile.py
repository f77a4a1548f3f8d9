"""The compatibility matrix as nox sessions.

`nox -s matrix` runs one `probe(env=...)` session per env of the config (matrix.toml, or
the file MATRIX_CONFIG names), then collects every cell into results/. The sessions *are*
the config's envs: nox reads the config when it loads this file.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from matrix import config as matrix_config  # noqa: E402
from matrix.envs.gpus import gpu_for_env, visible_gpus  # noqa: E402
from matrix.envs.plan import new_run_id  # noqa: E402
from matrix.envs.run import probe_env, wheelhouse_env  # noqa: E402
from probes.record import SAFE_PART  # noqa: E402

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv"
nox.options.sessions = ["matrix"]

CONFIG_PATH = Path(os.environ.get("MATRIX_CONFIG", ROOT / "matrix.toml"))
try:
    CONFIG = matrix_config.load(CONFIG_PATH)
except matrix_config.ConfigError as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)
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
    sys.exit(2)
# Each config publishes beside itself (its own results/ and history), so running another
# config never touches the default's published results.
RESULTS = Path(os.environ.get("MATRIX_RESULTS", CONFIG_PATH.resolve().parent / "results"))
CACHE = Path(os.environ.get("MATRIX_CACHE", ROOT / ".cache"))
RESUME = "--resume"
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
    if CONFIG.settings.auto_bisect:
        bisect_breaks(session)
    if CONFIG.settings.search_releases:
        search_releases(session)
    session.install("tabulate", "packaging")
    session.run(
        "python", "-m", "matrix", "report", str(run_dir(session)), "--results", str(RESULTS), "--cache", str(CACHE),
        *(arg for arg in session.posargs if arg != RESUME),
        env={"PYTHONPATH": str(ROOT)},
    )  # fmt: skip


def bisect_breaks(session: nox.Session) -> None:
    """`[settings] auto_bisect = true`: bisect every model that passes in one env and fails in a newer one.

    Each report goes into this run's folder (`_bisect-<model>.json`), so the run's report
    carries only its own bisects; every probe is a cached fact, so a warm rerun probes nothing."""
    from matrix.bisect import BisectError, bisect
    from matrix.releases import ReleasesError

    for model in CONFIG.models:
        try:
            bisect(CONFIG, model.name, results=RESULTS, cache=CACHE, run_dir=run_dir(session))
        except BisectError as why:
            session.log(f"bisect {model.name}: nothing to bisect ({why})")
        except ReleasesError as why:
            session.warn(f"bisect {model.name}: the release list could not be read ({why})")


def search_releases(session: nox.Session) -> None:
    """`[settings] search_releases = true`: the newest release that runs every model, confirmed by a probe of each.

    Writes `_newest.json` into this run's folder (the report leads with it); the probes are
    the bisect's cached facts, so a warm rerun probes nothing."""
    from matrix.newest.confirm import search_newest
    from matrix.releases import ReleasesError, cached_releases
    from matrix.results.collect import CollectError

    try:
        releases = cached_releases("transformers", CACHE)
        search_newest(CONFIG, run_dir(session), results=RESULTS, cache=CACHE, releases=releases)
    except ReleasesError as why:
        session.warn(f"release search: the release list could not be read ({why})")
    except CollectError as why:
        session.warn(f"release search: {why}")


@nox.session(venv_backend="uv")
def report(session: nox.Session) -> None:
    """Re-render results/ from the newest run (or `-- RUN_DIR`, or `-- --merge DIR...` of shards), without probing.

    --merge first merges the shards (run folders from other machines) into one new run folder."""
    session.install("tabulate", "packaging")
    session.run(
        "python", "-m", "matrix", "report", *session.posargs, "--results", str(RESULTS), "--cache", str(CACHE),
        env={"PYTHONPATH": str(ROOT)},
    )  # fmt: skip


@nox.session(venv_backend="uv")
def bench(session: nox.Session) -> None:
    """Benchmark a warm rerun of the matrix against its floor, and forked cells against fresh interpreters."""
    session.install("nox", "uv", "tabulate", "packaging", "pytest", "pytest-benchmark")
    session.run("python", "benchmarks/bench_matrix.py", "--config", str(CONFIG_PATH), *session.posargs)


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


@nox.session(venv_backend="uv", reuse_venv=True)
def tests(session: nox.Session) -> None:
    """Run the test suite, then ruff and mypy, with everything they need installed (`-- ARGS` go to pytest).

    The page's browser test drives Debian's `chromium` (playwright's own browser download is
    not reachable from every CI box): installed with apt-get when missing and this user may,
    else the session stops with the one line that says what to install."""
    ensure_chromium(session)
    # pip too: uv's venvs have none, and the wheelhouse and workflow tests run `python -m pip`
    # with this interpreter as a user's would.
    session.install("pip", "-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)
    if not session.posargs:
        session.run("python", "-m", "ruff", "check", ".")
        session.run("python", "-m", "mypy")


def ensure_chromium(session: nox.Session) -> None:
    """Debian's chromium on PATH, installed with apt-get when it is missing and we are root."""
    import shutil

    if shutil.which("chromium"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        session.error("the browser test needs Debian's chromium: run `sudo apt-get install chromium`, then again")
    session.run("apt-get", "update", "-qq", external=True)
    session.run(
        "apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium",
        external=True, env={"DEBIAN_FRONTEND": "noninteractive"},
    )  # fmt: skip
