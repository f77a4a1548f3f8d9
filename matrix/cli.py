"""`transformers-matrix`: the console script a team installs (uvx, uv tool install, pip).

It runs the same nox sessions a checkout runs (matrix/sessions.py), from the folder the user
stands in: `run` is `nox -s matrix`, `bisect` is `nox -s bisect`, `report` re-renders
without probing, `init` writes a team's starting files. The nox venvs go to `./.nox` and the
caches beside the config, never inside the installed package.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from matrix import __version__, proc
from matrix.init import write_starter

# The noxfile `run` hands nox: one import of the packaged sessions, written into ./.nox (nox
# changes into the noxfile's folder, and inside the package `bisect` would shadow the stdlib's).
NOXFILE = '"""Written by transformers-matrix run."""\n\nfrom matrix.sessions import *  # noqa: F403\n'


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="transformers-matrix",
        description="Which transformers version runs all of your models? One uv env per candidate, "
        "every model probed in each, a compatibility matrix with evidence.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("run", "probe every env of the config and publish the matrix beside it (nox -s matrix)"),
        ("bisect", "find where releases break a model: bisect MODEL [--good X] [--bad Y] (nox -s bisect)"),
    ):
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument("--config", help="the matrix config (default: ./matrix.toml; relative to here)")
        command.add_argument("-j", "--jobs", type=int, help="probe this many envs side by side (nox -j)")
        command.add_argument("args", nargs=argparse.REMAINDER, help="passed to the session (after --)")
    report = commands.add_parser(
        "report", help="re-render the published files from the newest run, without probing", add_help=False
    )
    report.add_argument("args", nargs=argparse.REMAINDER)
    init = commands.add_parser("init", help="write a commented matrix.toml, a noxfile.py and a CI workflow here")
    init.add_argument("--force", action="store_true", help="overwrite files that exist")
    args = parser.parse_args(argv)
    if args.command == "init":
        return write_starter(Path.cwd(), force=args.force)
    if args.command == "report":
        from matrix.__main__ import main as report_main

        return report_main(["report", *args.args])
    return run_nox(args.command if args.command == "bisect" else "matrix", args.config, args.jobs, args.args)


def run_nox(session: str, config: str | None, jobs: int | None, posargs: list[str]) -> int:
    """nox on the packaged sessions, from the current folder: its venvs in ./.nox."""
    envdir = Path.cwd() / ".nox"
    noxfile = envdir / "transformers_matrix_noxfile.py"
    envdir.mkdir(exist_ok=True)
    if not noxfile.is_file() or noxfile.read_text(encoding="utf-8") != NOXFILE:
        noxfile.write_text(NOXFILE, encoding="utf-8")
    # nox finds uv on PATH: the tool's own bin (uvx's and uv tool's venvs are not on PATH) first.
    env = {"PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    if config:
        env["MATRIX_CONFIG"] = str(Path(config).resolve())
    posargs = posargs[1:] if posargs[:1] == ["--"] else posargs
    command = [sys.executable, "-m", "nox", "-f", str(noxfile), "--envdir", str(envdir), "-s", session]
    if jobs:
        command += ["-j", str(jobs)]
    if posargs:
        command += ["--", *posargs]
    return proc.run(command, env=env, capture=False).returncode


if __name__ == "__main__":
    sys.exit(main())
