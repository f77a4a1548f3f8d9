"""A team adopts the tool from its own repository: a wheel of this checkout, no clone.

The team folder lives outside the checkout and holds only what `transformers-matrix init`
writes. It runs the matrix twice, the two ways a team would: the console script through
`uvx --from <wheel>` and its own PEP 723 noxfile through nox's script mode, each with the
config named by a path relative to the folder, and both publish beside that config.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")
    skip = {".git", ".nox", ".cache", ".venv", "results", "build"}  # top-level only: matrix/results is a package
    shutil.copytree(ROOT, build / "src", ignore=lambda folder, names: skip & set(names) if folder == str(ROOT) else ())
    subprocess.run(["uv", "build", "--wheel", "--quiet", "-o", str(out)], cwd=build / "src", check=True)
    (found,) = out.glob("transformers_matrix-*.whl")
    return found


def team_env(wheel: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MATRIX_CONFIG", None)
    env.pop("MATRIX_RESULTS", None)
    env["MATRIX_CACHE"] = str(ROOT / ".cache")  # warm fixtures and release lists; the envs are the team's own
    links = [str(wheel.parent), *filter(None, [env.get("UV_FIND_LINKS", ""), env.get("PIP_FIND_LINKS", "")])]
    env["UV_FIND_LINKS"] = ",".join(links)
    return env


def test_a_team_installs_inits_and_runs_from_its_own_folder(wheel: Path, tmp_path: Path) -> None:
    team = tmp_path / "team-repo"
    (team / "config").mkdir(parents=True)
    env = team_env(wheel)
    uvx = ["uvx", "--quiet", "--from", str(wheel), "transformers-matrix"]
    version = subprocess.run([*uvx, "--version"], env=env, cwd=team, capture_output=True, text=True, check=True)
    assert version.stdout.startswith("transformers-matrix ")

    init = subprocess.run([*uvx, "init"], env=env, cwd=team / "config", capture_output=True, text=True)
    assert init.returncode == 0, init.stderr
    assert {"matrix.toml", "noxfile.py"} <= {p.name for p in (team / "config").iterdir()}
    assert (team / "config" / ".github" / "workflows" / "transformers-matrix.yml").is_file()
    again = subprocess.run([*uvx, "init"], env=env, cwd=team / "config", capture_output=True, text=True)
    assert again.returncode == 2 and "left alone" in again.stderr

    missing = subprocess.run([*uvx, "run"], env=env, cwd=team, capture_output=True, text=True)
    assert missing.returncode != 0 and "transformers-matrix init" in missing.stdout + missing.stderr

    done = subprocess.run([*uvx, "run", "--config", "config/matrix.toml"], env=env, cwd=team, text=True,
                          capture_output=True)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    published = json.loads((team / "config" / "results" / "matrix.json").read_text())
    assert published["recommendation"]["pin"]["transformers"]
    assert (team / ".nox").is_dir()


def test_a_team_noxfile_written_by_init_runs_the_team_config(wheel: Path, tmp_path: Path) -> None:
    team = tmp_path / "team-repo"
    team.mkdir()
    env = team_env(wheel)
    subprocess.run(["uvx", "--quiet", "--from", str(wheel), "transformers-matrix", "init"], env=env, cwd=team,
                   check=True, capture_output=True)  # fmt: skip
    nox = [sys.executable, "-m", "nox", "--script-venv-backend", "uv"]
    listed = subprocess.run([*nox, "-l"], env=env, cwd=team, capture_output=True, text=True)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "probe(env='tf-4.50')" in listed.stdout and "probe(env='latest')" in listed.stdout
    assert "tf-4.40" not in listed.stdout  # the team's config, not the checkout's default
    done = subprocess.run([*nox, "-s", "matrix"], env=env, cwd=team, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (team / "results" / "matrix.json").is_file()
