"""Air-gapped envs: every package from a local folder of wheels, index off, network off.

The test prepares the wheelhouse the way an air-gapped site would (`pip download` on a
connected machine: transformers 4.40.2 with its dependencies, torch 2.13.0 from the local
CPU wheel folder), then builds a real env from it with uv's offline mode.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from matrix import proc
from matrix.config import ConfigError, EnvSpec, load
from matrix.envs.run import install_env, wheelhouse_env

pytestmark = pytest.mark.e2e

REQUIREMENTS = ["transformers==4.40.2", "torch==2.13.0"]


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("wheelhouse")
    done = proc.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--dest", folder, *REQUIREMENTS],
        env=dict(os.environ),
        timeout=900,
    )
    assert done.ok, done.output
    return folder


def new_venv(root: Path) -> Path:
    made = proc.run(["uv", "venv", "--quiet", "--python", sys.executable, root], env=dict(os.environ))
    assert made.ok, made.output
    return root / "bin" / "python"


@pytest.fixture(scope="module")
def empty_uv_cache(tmp_path_factory) -> Path:
    """An air-gapped host's uv cache holds nothing from an index (this machine's does)."""
    return tmp_path_factory.mktemp("uv-cache")


def offline(monkeypatch, wheelhouse: Path, uv_cache: Path) -> None:
    """This process's environment as an air-gapped host's, for the uv calls install_env makes."""
    monkeypatch.setenv("UV_CACHE_DIR", str(uv_cache))
    for name in ("UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_DEFAULT_INDEX", "UV_INDEX", "PIP_FIND_LINKS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in wheelhouse_env(wheelhouse).items():
        monkeypatch.setenv(name, value)
    # a proxy that goes nowhere: any attempt to reach an index would fail, not hang
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")


def test_an_env_builds_from_the_wheelhouse_with_the_index_off(wheelhouse, empty_uv_cache, tmp_path, monkeypatch):
    offline(monkeypatch, wheelhouse, empty_uv_cache)
    python = new_venv(tmp_path / "venv")
    built = install_env(python, EnvSpec(name="air", transformers="==4.40.2", torch="==2.13.0"))
    assert built.ok, built.output
    versions = proc.run(
        [python, "-c", "import torch, transformers; print(transformers.__version__, torch.__version__)"],
        stdout_only=True,
    )
    assert versions.ok and versions.output.split() == ["4.40.2", "2.13.0+cpu"], versions.output


def test_a_package_missing_from_the_wheelhouse_fails_the_env(wheelhouse, empty_uv_cache, tmp_path, monkeypatch):
    offline(monkeypatch, wheelhouse, empty_uv_cache)
    python = new_venv(tmp_path / "venv")
    built = install_env(python, EnvSpec(name="air", transformers="==4.50.3", torch="==2.13.0"))
    assert not built.ok
    assert "transformers" in built.output and "4.50.3" in built.output, built.output


def test_the_config_key_resolves_and_checks_the_folder(wheelhouse, write_config):
    text = f'[settings]\nwheelhouse = "{wheelhouse}"\n[envs.a]\ntransformers = "4.40.*"\n'
    text += '[models.q]\nfixture = "qwen2-tiny"\ntask = "causal-lm"\n'
    assert load(write_config(text)).settings.wheelhouse == str(wheelhouse)
    with pytest.raises(ConfigError, match=r"\[settings\] wheelhouse: folder 'no-such-folder' does not exist"):
        load(write_config(text.replace(str(wheelhouse), "no-such-folder")))
