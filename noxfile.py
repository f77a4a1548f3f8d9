"""This checkout's nox sessions: the matrix's own (`matrix`, `probe`, `report`, `bisect`, from
matrix/sessions.py, exactly as a team's noxfile gets them) plus the project's `tests` and `bench`.

`nox -s matrix` here runs the embedded default (./matrix.toml).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nox

sys.path.insert(0, str(Path(__file__).resolve().parent))

from matrix.sessions import *  # noqa: E402,F403  (registers matrix, probe, report, bisect)
from matrix.sessions import CONFIG_PATH  # noqa: E402


@nox.session(venv_backend="uv")
def bench(session: nox.Session) -> None:
    """Benchmark a newcomer's cold first run and the warm rerun against their floors, the bisect's
    probes per edge and the growth with 8 and 16 models (into results/BENCHMARKS.md); with
    `-- --classic`, the older table instead (forked cells against fresh interpreters, uv against pip)."""
    session.install("nox", "uv", "tabulate", "packaging", "pytest", "pytest-benchmark")
    if "--classic" in session.posargs:
        args = [a for a in session.posargs if a != "--classic"]
        session.run("python", "benchmarks/bench_matrix.py", "--config", str(CONFIG_PATH), *args)
        return
    out = ["--out", "results/BENCHMARKS.md"] if "--out" not in session.posargs else []
    session.run("python", "benchmarks/bench_first_run.py", "--config", str(CONFIG_PATH), *out, *session.posargs)


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
