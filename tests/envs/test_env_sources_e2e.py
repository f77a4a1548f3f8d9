"""Real envs pointed past the release line: one on the pre-release 5.0.0rc0 from the index,
one on a local wheel file of transformers (downloaded once with `pip download`) plus a
service's requirements file, one on a source folder and one on a git URL (a local repository:
this machine reaches no git host); a real tiny model loaded with from_pretrained in each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from matrix import proc
from matrix.config import load
from matrix.diagnosis.symbols.sources import release_source
from matrix.envs.run import probe_env
from matrix.results.aggregate import aggregate
from matrix.results.collect import collect
from tests.helpers import CACHE, TORCH, require_e2e

pytestmark = [pytest.mark.e2e, pytest.mark.network]

WHEEL = "transformers-4.41.2-py3-none-any.whl"


def wheel_file() -> Path:
    """transformers 4.41.2 as a wheel file, downloaded once into the shared cache (about 1 s)."""
    folder = CACHE / "test-wheels"
    if not (folder / WHEEL).is_file():
        args = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(folder)]
        subprocess.run([*args, "transformers==4.41.2"], check=True, capture_output=True, timeout=300)
    return folder / WHEEL


def venv(folder: Path) -> Path:
    created = proc.run(["uv", "venv", "--quiet", "--python", os.path.realpath(sys.executable), folder])
    assert created.ok, created.output
    return folder / "bin" / "python"


def test_a_pre_release_env_and_a_wheel_file_env_probe_a_real_model(tmp_path):
    require_e2e("builds two envs")
    (tmp_path / "wheels").mkdir()
    os.link(wheel_file(), tmp_path / "wheels" / WHEEL)
    (tmp_path / "service-requirements.txt").write_text("tabulate==0.9.0\n")
    config_path = tmp_path / "matrix.toml"
    config_path.write_text(
        f"""
[envs.upcoming]
transformers = "==5.0.0rc0"
torch = "{TORCH}"

[envs.wheel]
transformers = "path:wheels/{WHEEL}"
torch = "{TORCH}"
requirements = "service-requirements.txt"

[models.qwen2-tiny]
fixture = "qwen2-tiny"
task = "causal-lm"

[models.codebert-tiny]
fixture = "codebert-tiny"
task = "embedding"
""",
        encoding="utf-8",
    )
    config = load(config_path)
    run_dir, cache = tmp_path / "results" / "runs" / "r1", tmp_path / "cache"
    for env in ("upcoming", "wheel"):
        assert probe_env(config, env, venv(tmp_path / "venvs" / env), run_dir, cache) is None

    upcoming = json.loads((run_dir / "upcoming" / "_env.json").read_text())
    assert upcoming["packages"]["transformers"] == "5.0.0rc0"
    cell = json.loads((run_dir / "upcoming" / "codebert-tiny.json").read_text())
    assert cell["status"] == "pass", cell["reason"]
    assert cell["versions"]["transformers"] == "5.0.0rc0"
    # The pre-release's own break (measured): its Qwen2 tokenizer wants protobuf, which the env lacks.
    cell = json.loads((run_dir / "upcoming" / "qwen2-tiny.json").read_text())
    assert (cell["status"], cell["phase"], cell["error"]["type"]) == ("fail", "tokenizer", "ImportError"), cell
    assert "protobuf" in cell["error"]["message"]

    wheel = json.loads((run_dir / "wheel" / "_env.json").read_text())
    label = wheel["packages"]["transformers"]
    assert label.startswith("4.41.2+path.") and wheel["build"]["sources"] == "kept"
    assert wheel["packages"]["tabulate"] == "0.9.0"  # what the requirements file pinned is in the freeze
    assert wheel["requested"][0] == f"transformers (path:wheels/{WHEEL})"
    assert wheel["requested"][-1] == "-r service-requirements.txt"
    assert str(tmp_path) not in json.dumps(wheel["requested"])
    for model in ("qwen2-tiny", "codebert-tiny"):
        cell = json.loads((run_dir / "wheel" / f"{model}.json").read_text())
        assert cell["status"] == "pass", cell["reason"]
        assert cell["versions"]["transformers"] == "4.41.2"  # what the wheel itself says inside the env

    kept = release_source(label, cache)  # the build's own sources, as symbol history reads them
    assert kept is not None and kept.is_relative_to(cache / "sources")
    installed = next((tmp_path / "venvs" / "wheel" / "lib").glob("python*/site-packages/transformers"))
    assert (kept / "generation" / "utils.py").read_bytes() == (installed / "generation" / "utils.py").read_bytes()

    columns = {env.name: env for env in aggregate(collect(run_dir)).envs}
    assert columns["wheel"].header == f"wheel ({label})"
    assert [env.name for env in aggregate(collect(run_dir)).envs] == ["wheel", "upcoming"]  # 4.41.2+... < 5.0.0rc0


SDIST = "transformers-4.41.2.tar.gz"


def source_checkout(into: Path) -> Path:
    """transformers 4.41.2's sources as a folder and a git repository (tag `fix`), from its
    sdist (downloaded once into the shared cache)."""
    folder = CACHE / "test-wheels"
    if not (folder / SDIST).is_file():
        args = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary=:all:", "-d", str(folder)]
        subprocess.run([*args, "transformers==4.41.2"], check=True, capture_output=True, timeout=300)
    with tarfile.open(folder / SDIST) as archive:
        archive.extractall(into, filter="data")  # "data": files owned by us, so git trusts the folder
    checkout = into / SDIST.removesuffix(".tar.gz")
    git = ["git", "-c", "user.email=matrix@example.org", "-c", "user.name=matrix", "-C", str(checkout)]
    for step in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "a fix branch"], ["tag", "fix"]):
        subprocess.run(git + step, check=True, capture_output=True, timeout=120)
    return checkout


def test_a_source_folder_env_and_a_git_env_build_and_keep_their_own_sources(tmp_path):
    require_e2e("builds two envs from sources")
    checkout = source_checkout(tmp_path / "src")
    config_path = tmp_path / "matrix.toml"
    config_path.write_text(
        f"""
[envs.folder]
transformers = "path:src/{checkout.name}"
torch = "{TORCH}"

[envs.branch]
transformers = "git+{checkout.as_uri()}@fix"
torch = "{TORCH}"

[models.codebert-tiny]
fixture = "codebert-tiny"
task = "embedding"
""",
        encoding="utf-8",
    )
    config = load(config_path)
    run_dir, cache = tmp_path / "results" / "runs" / "r1", tmp_path / "cache"
    labels = {}
    for env, kind in (("folder", "path"), ("branch", "vcs")):
        assert probe_env(config, env, venv(tmp_path / "venvs" / env), run_dir, cache) is None
        facts = json.loads((run_dir / env / "_env.json").read_text())
        labels[env] = facts["packages"]["transformers"]
        assert labels[env].startswith(f"4.41.2+{kind}.") and facts["build"]["sources"] == "kept", facts["build"]
        cell = json.loads((run_dir / env / "codebert-tiny.json").read_text())
        assert cell["status"] == "pass", cell["reason"]
        kept = release_source(labels[env], cache)
        assert kept is not None
        assert (kept / "modeling_utils.py").read_bytes() == (
            checkout / "src" / "transformers" / "modeling_utils.py"
        ).read_bytes()
    assert labels["folder"].split(".")[-1] == labels["branch"].split(".")[-1]  # the same files: the same digest
