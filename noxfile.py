"""The compatibility matrix as nox sessions.

`nox -s matrix` runs one `probe(env=...)` session per env of the config (matrix.toml, or
the file MATRIX_CONFIG names), then collects every cell into results/. The sessions *are*
the config's envs: nox reads the config when it loads this file.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from matrix import config as matrix_config  # noqa: E402
from matrix.plan import new_run_id  # noqa: E402
from matrix.run import probe_env  # noqa: E402

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv"
nox.options.sessions = ["matrix"]

CONFIG_PATH = Path(os.environ.get("MATRIX_CONFIG", ROOT / "matrix.toml"))
try:
    CONFIG = matrix_config.load(CONFIG_PATH)
except matrix_config.ConfigError as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)

# One run id for every session of this nox invocation (and for sessions started on other
# machines with the same MATRIX_RUN_ID, which then write shards of one run).
RUN_ID = os.environ.setdefault("MATRIX_RUN_ID", new_run_id())
RESULTS = Path(os.environ.get("MATRIX_RESULTS", ROOT / "results"))
RUN_DIR = RESULTS / "runs" / RUN_ID
CACHE = Path(os.environ.get("MATRIX_CACHE", ROOT / ".cache"))


@nox.session(venv_backend="uv", reuse_venv=True)
@nox.parametrize(
    ("python", "env"),
    [nox.param(env.python, env.name, id=f"env={env.name!r}") for env in CONFIG.envs],
)
def probe(session: nox.Session, env: str) -> None:
    """Build one env with uv (pinned transformers/torch) and probe every model in it."""
    python = Path(session.virtualenv.location) / "bin" / "python"
    why_not = probe_env(CONFIG, env, python, RUN_DIR, CACHE)
    if why_not:
        session.skip(f"{why_not}; its cells are recorded as env-failed")


@nox.session(venv_backend="uv", reuse_venv=True, requires=["probe"])
def matrix(session: nox.Session) -> None:
    """Probe every env, then collect, aggregate, recommend and render results/ (table, JSON, pins)."""
    session.install("tabulate", "packaging")
    session.run(
        "python",
        "-m",
        "matrix",
        "report",
        str(RUN_DIR),
        "--results",
        str(RESULTS),
        *session.posargs,
        env={"PYTHONPATH": str(ROOT)},
    )


@nox.session(venv_backend="uv")
def report(session: nox.Session) -> None:
    """Re-render results/ from the newest run's cell files (or `-- RUN_DIR`), without probing."""
    session.install("tabulate", "packaging")
    run_dir = session.posargs[0] if session.posargs else "newest"
    session.run(
        "python",
        "-m",
        "matrix",
        "report",
        run_dir,
        "--results",
        str(RESULTS),
        env={"PYTHONPATH": str(ROOT)},
    )


@nox.session(venv_backend="uv")
def bench(session: nox.Session) -> None:
    """Benchmark a warm rerun of the matrix against its floor, and forked cells against fresh interpreters."""
    session.install("nox", "uv", "tabulate", "packaging")
    session.run("python", "benchmarks/bench_matrix.py", "--config", str(CONFIG_PATH), *session.posargs)
