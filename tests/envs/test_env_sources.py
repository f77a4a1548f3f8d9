"""Envs pointed anywhere: `next`, exact pre-releases, `path:` wheels and source folders, git
URLs, requirements and constraints files; each bad input has its own located message.

No env is built here (uv is replaced where an install is asked for); the real builds are in
tests/envs/test_env_sources_e2e.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from packaging.version import Version

from matrix import proc
from matrix.config import ConfigError, EnvSpec, load
from matrix.diagnosis.symbols import sources
from matrix.envs import builds
from matrix.envs import run as run_module
from matrix.envs.run import install_env, probe_env
from matrix.proc import Completed
from matrix.releases import parse_releases, parse_versions, upcoming

MODEL = '\n[models.m]\nfixture = "qwen2-tiny"\ntask = "causal-lm"\n'


def config_with(tmp_path: Path, env_body: str, model_extra: str = "") -> Path:
    path = tmp_path / "matrix.toml"
    path.write_text(f"[envs.e]\n{env_body}\n{MODEL}{model_extra}", encoding="utf-8")
    return path


def fake_wheel(folder: Path, name: str = "transformers-4.41.2-py3-none-any.whl") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(b"PK not really a zip; the loader only reads the name")
    return folder / name


# --- config ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored", "requirement"),
    [
        ("next", "next", "transformers"),
        ("5.0.0rc1", "==5.0.0rc1", "transformers==5.0.0rc1"),
        ("==5.0.0rc0", "==5.0.0rc0", "transformers==5.0.0rc0"),
        (">=5.0.0rc0,<5.1", "<5.1,>=5.0.0rc0", "transformers<5.1,>=5.0.0rc0"),
        (
            "git+https://github.com/huggingface/transformers@v4.41.2",
            "git+https://github.com/huggingface/transformers@v4.41.2",
            "transformers @ git+https://github.com/huggingface/transformers@v4.41.2",
        ),
    ],
)
def test_transformers_forms(tmp_path, given, stored, requirement):
    env = load(config_with(tmp_path, f'transformers = "{given}"')).envs[0]
    assert env.transformers == stored and env.requirements()[0] == requirement


def test_a_wheel_file_relative_to_the_config(tmp_path):
    wheel = fake_wheel(tmp_path / "wheels")
    env = load(config_with(tmp_path, 'transformers = "path:wheels/transformers-4.41.2-py3-none-any.whl"')).envs[0]
    assert env.kind == "path" and env.transformers_path == str(wheel)
    assert env.requirements()[0] == f"transformers @ {wheel.as_uri()}"
    assert env.requested(tmp_path)[0] == "transformers (path:wheels/transformers-4.41.2-py3-none-any.whl)"
    assert env.specifier is None


def test_a_source_folder(tmp_path):
    checkout = tmp_path / "transformers-fix"
    (checkout / "src" / "transformers").mkdir(parents=True)
    (checkout / "src" / "transformers" / "__init__.py").write_text("")
    (checkout / "pyproject.toml").write_text("[project]\nname = 'transformers'\n")
    env = load(config_with(tmp_path, 'transformers = "path:transformers-fix"')).envs[0]
    assert env.transformers_path == str(checkout) and env.requirements()[0] == f"transformers @ {checkout.as_uri()}"


@pytest.mark.parametrize(
    ("body", "setup", "message"),
    [
        (
            'transformers = "path:missing.whl"',
            None,
            "matrix.toml: [envs.e] transformers: path 'missing.whl' does not exist (relative paths start at {dir})",
        ),
        ('transformers = "path:"', None, "matrix.toml: [envs.e] transformers: 'path:' names nothing"),
        (
            'transformers = "path:wheels/tokenizers-0.19.1-py3-none-any.whl"',
            "tokenizers-0.19.1-py3-none-any.whl",
            "matrix.toml: [envs.e] transformers: path 'wheels/tokenizers-0.19.1-py3-none-any.whl' is a wheel of "
            "tokenizers, not of transformers",
        ),
        (
            'transformers = "path:wheels/transformers.zip"',
            "transformers.zip",
            "matrix.toml: [envs.e] transformers: path 'wheels/transformers.zip' is a file but not a wheel (.whl)",
        ),
        (
            'transformers = "path:wheels"',
            "x.txt",
            "matrix.toml: [envs.e] transformers: folder 'wheels' has no pyproject.toml or setup.py to build from",
        ),
        (
            'transformers = "hg+https://example.org/transformers"',
            None,
            "matrix.toml: [envs.e] transformers: 'hg+https://example.org/transformers': only git URLs",
        ),
        (
            'transformers = "git+"',
            None,
            "matrix.toml: [envs.e] transformers: 'git+' is not a VCS URL such as 'git+https://host/repo@ref'",
        ),
        ('transformers = "next!"', None, "matrix.toml: [envs.e] transformers: 'next!' is not a version spec"),
        (
            'transformers = "latest"\nrequirements = "service/requirements.txt"',
            None,
            "matrix.toml: [envs.e] requirements: file 'service/requirements.txt' does not exist "
            "(relative paths start at {dir})",
        ),
        (
            'transformers = "latest"\nconstraints = "wheels"',
            "x.txt",
            "matrix.toml: [envs.e] constraints: file 'wheels' is a folder, not a file (relative paths start at {dir})",
        ),
        ('transformers = "latest"\nrequirements = ""', None, "matrix.toml: [envs.e] requirements: must not be empty"),
        (
            'transformers = "latest"\npins = ["-r requirements.txt"]',
            None,
            "matrix.toml: [envs.e] pins: value #1 '-r requirements.txt': name a requirements file with the table's "
            "`requirements` key",
        ),
    ],
)
def test_each_bad_env_source_has_its_own_located_message(tmp_path, body, setup, message):
    if setup:
        fake_wheel(tmp_path / "wheels", setup)
    with pytest.raises(ConfigError) as caught:
        load(config_with(tmp_path, body))
    assert str(caught.value).startswith(message.replace("{dir}", str(tmp_path))), str(caught.value)


def test_a_models_requirement_files_go_to_every_env(tmp_path):
    (tmp_path / "svc.txt").write_text("tabulate==0.9.0\n")
    (tmp_path / "model-req.txt").write_text("einops\n")
    (tmp_path / "model-con.txt").write_text("numpy<3\n")
    path = tmp_path / "matrix.toml"
    path.write_text(
        '[envs.a]\ntransformers = "latest"\nrequirements = "svc.txt"\n[envs.b]\ntransformers = "4.40.*"\n'
        + MODEL
        + 'requirements = "model-req.txt"\nconstraints = "model-con.txt"\n'
    )
    a, b = load(path).envs
    assert a.requirement_files == (str(tmp_path / "svc.txt"), str(tmp_path / "model-req.txt"))
    assert b.requirement_files == (str(tmp_path / "model-req.txt"),)
    assert a.constraint_files == b.constraint_files == (str(tmp_path / "model-con.txt"),)
    assert a.install_args()[-6:] == ["-r", str(tmp_path / "svc.txt"), "-r", str(tmp_path / "model-req.txt")] + [
        "-c",
        str(tmp_path / "model-con.txt"),
    ]
    assert a.requested(tmp_path)[-3:] == ["-r svc.txt", "-r model-req.txt", "-c model-con.txt"]


# --- the upcoming release on the index ---------------------------------------------------


def document(*names: str, yanked: tuple[str, ...] = ()) -> dict:
    return {"name": "transformers", "files": [{"filename": n, "yanked": n in yanked} for n in names]}


def test_upcoming_is_the_newest_pre_release_newer_than_the_newest_final():
    listed = document(
        "transformers-5.0.0rc0-py3-none-any.whl",
        "transformers-5.0.0-py3-none-any.whl",
        "transformers-5.1.0-py3-none-any.whl",
        "transformers-5.2.0rc1-py3-none-any.whl",
        "transformers-5.2.0rc2-py3-none-any.whl",
        "transformers-5.2.0rc3-py3-none-any.whl",
        "transformers-5.3.0.dev0-py3-none-any.whl",
        yanked=("transformers-5.2.0rc3-py3-none-any.whl",),
    )
    assert parse_releases(listed) == [Version("5.0.0"), Version("5.1.0")]  # the release line stays finals
    assert upcoming(parse_versions(listed)) == Version("5.2.0rc2")


def test_no_upcoming_release_when_every_pre_release_is_older():
    listed = document("transformers-5.0.0rc0-py3-none-any.whl", "transformers-5.0.0-py3-none-any.whl")
    assert upcoming(parse_versions(listed)) is None
    assert upcoming(parse_versions(document("transformers-5.0.0rc0-py3-none-any.whl"))) == Version("5.0.0rc0")


@pytest.fixture
def uv_calls(monkeypatch, tmp_path):
    """uv replaced: every command recorded and answered ok; no index switched off."""
    calls: list[list[str]] = []

    def run(args, **_):
        calls.append([str(a) for a in args])
        return Completed(tuple(map(str, args)), 0, "[]" if "list" in args else "ok", 0.1)

    monkeypatch.setattr(proc, "run", run)
    for key in ("UV_OFFLINE", "UV_NO_INDEX"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MATRIX_CACHE", str(tmp_path / "cache"))
    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    return calls, python


def test_next_with_no_upcoming_release_skips_every_cell_with_the_reason(tmp_path, uv_calls, monkeypatch):
    calls, python = uv_calls
    listed = parse_versions(document("transformers-5.0.0rc0-py3-none-any.whl", "transformers-5.24.0-py3-none-any.whl"))
    monkeypatch.setattr(run_module, "cached_releases", lambda *a, **k: listed)
    config = load(config_with(tmp_path, 'transformers = "next"\ntorch = "==2.13.0"'))
    assert probe_env(config, "e", python, tmp_path / "run", tmp_path / "cache") is None
    assert calls == []  # nothing built
    cell = json.loads((tmp_path / "run" / "e" / "m.json").read_text())
    assert cell["status"] == "skipped"
    assert cell["reason"] == (
        "no upcoming release: the index lists no pre-release of transformers newer than 5.24.0 (the newest release)"
    )
    assert json.loads((tmp_path / "run" / "e" / "_env.json").read_text())["status"] == "skipped"


def test_next_installs_the_upcoming_pre_release(tmp_path, uv_calls, monkeypatch):
    calls, python = uv_calls
    listed = parse_versions(document("transformers-5.24.0-py3-none-any.whl", "transformers-5.25.0rc1-py3-none-any.whl"))
    monkeypatch.setattr(run_module, "cached_releases", lambda *a, **k: listed)
    monkeypatch.setattr(run_module, "model_locations", lambda *a: {"m": str(tmp_path)})
    config = load(config_with(tmp_path, 'transformers = "next"\ntorch = "==2.13.0"'))
    assert probe_env(config, "e", python, tmp_path / "run", tmp_path / "cache") is None
    install = next(c for c in calls if c[:3] == ["uv", "pip", "install"])
    assert "transformers==5.25.0rc1" in install
    assert json.loads((tmp_path / "run" / "e" / "_env.json").read_text())["upcoming"] == "5.25.0rc1"


def test_next_offline_is_an_env_failure_that_says_why(tmp_path, uv_calls, monkeypatch):
    _, python = uv_calls
    monkeypatch.setenv("UV_OFFLINE", "1")
    config = load(config_with(tmp_path, 'transformers = "next"'))
    why = probe_env(config, "e", python, tmp_path / "run", tmp_path / "cache")
    assert why is not None and "UV_OFFLINE" in why
    assert json.loads((tmp_path / "run" / "e" / "m.json").read_text())["status"] == "env-failed"


def test_a_path_build_is_reinstalled_and_its_files_reach_uv(tmp_path, uv_calls):
    calls, python = uv_calls
    wheel = fake_wheel(tmp_path / "w")
    (tmp_path / "req.txt").write_text("tabulate==0.9.0\n")
    env = EnvSpec("e", f"path:{wheel}", transformers_path=str(wheel), requirement_files=(str(tmp_path / "req.txt"),))
    assert install_env(python, env).ok
    install = calls[-1]
    assert f"transformers @ {wheel.as_uri()}" in install and ["-r", str(tmp_path / "req.txt")] == install[-2:]
    assert "--reinstall-package" in install and "--refresh-package" in install
    calls.clear()
    assert install_env(python, env).ok
    assert calls[0][:2] == ["uv", "pip"]  # unchanged files: the venv is kept
    (tmp_path / "req.txt").write_text("tabulate==0.8.10\n")
    calls.clear()
    assert install_env(python, env).ok
    assert calls[0][:3] == ["uv", "venv", "--clear"]  # a changed requirements file rebuilds the venv


# --- a build's own sources -----------------------------------------------------------------


def test_a_build_is_labelled_and_its_sources_are_what_symbol_history_reads(tmp_path, monkeypatch):
    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages" / "transformers"
    site.mkdir(parents=True)
    (site / "__init__.py").write_text('__version__ = "4.41.2"\n')
    (site / "cache_utils.py").write_text("class Cache:\n    def fixed(self): ...\n")
    env = EnvSpec("fix", "path:fix.whl", transformers_path=str(tmp_path / "fix.whl"))
    facts = builds.keep_build(env, tmp_path / "venv" / "bin" / "python", "4.41.2", tmp_path / "cache")
    digest = builds.package_digest(site)
    assert facts["label"] == f"4.41.2+path.{digest[:8]}" and facts["sources"] == "kept"
    monkeypatch.setattr(proc, "run", lambda *a, **k: pytest.fail("asked uv for a local build"))
    found = sources.release_source(facts["label"], tmp_path / "cache")
    assert found is not None and (found / "cache_utils.py").read_text() == (site / "cache_utils.py").read_text()
    problems: dict[str, str] = {}
    assert sources.release_source("4.41.2+path.00000000", tmp_path / "cache", problems) is None
    assert "local build" in problems["4.41.2+path.00000000"]
    (site / "cache_utils.py").write_text("class Cache:\n    def other(self): ...\n")
    assert builds.package_digest(site) != digest  # another build of the same number gets another label
    assert builds.labelled("4.57.0.dev0+g1a2b", "vcs", digest) == f"4.57.0.dev0+g1a2b.vcs.{digest[:8]}"


# --- pre-releases and local builds stay off the release line ------------------------------


def test_the_bisect_takes_no_pre_release_or_local_build_env_for_an_end():
    from matrix.bisect.driver import BisectError, pick_endpoints
    from tests.helpers import make_cell

    columns = [
        ("4.50.3", "tf-4.50", make_cell("tf-4.50", "m", "pass")),
        ("4.57.0+path.1a2b3c4d", "fix", make_cell("fix", "m", "fail", reason="x", error={"type": "E"})),
        ("5.0.0rc0", "rc", make_cell("rc", "m", "fail", reason="x", error={"type": "E"})),
        ("5.24.0", "latest", make_cell("latest", "m", "pass")),
    ]
    with pytest.raises(BisectError, match="no env newer than 5.24.0 where the model fails"):
        pick_endpoints(columns, None, None)
    columns.append(("5.25.0", "newer", make_cell("newer", "m", "fail", reason="x", error={"type": "E"})))
    assert pick_endpoints(columns, None, None) == (("5.24.0", "latest"), ("5.25.0", "newer"))


def test_the_release_search_line_leaves_out_pre_release_and_build_envs():
    from matrix.newest.tracks import search_line
    from matrix.results.aggregate import EnvColumn, Matrix

    envs = [
        EnvColumn(name, version, "2.13.0", True, {})
        for name, version in (("old", "4.40.2"), ("fix", "4.41.2+path.1a2b3c4d"), ("rc", "5.0.0rc0"), ("new", "4.42.0"))
    ]
    matrix = Matrix("r", envs, [], [], {}, [])
    releases = [Version(v) for v in ("4.40.2", "4.41.2", "4.42.0", "5.0.0")]
    assert search_line(matrix, releases) == ["4.40.2", "4.41.2", "4.42.0"]


def test_symbol_history_of_a_break_in_a_build_reads_the_builds_own_sources(tmp_path):
    from matrix.diagnosis.failure import read_failure
    from matrix.diagnosis.symbols.history import symbol_history
    from matrix.diagnosis.symbols.sources import SourceShelf
    from tests.helpers import fake_release

    cache = tmp_path / "cache"
    fake_release(cache, "4.41.2", {"cache_utils.py": "class Cache:\n    def get_max_length(self):\n        return 1\n"})
    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages" / "transformers"
    site.mkdir(parents=True)
    (site / "__init__.py").write_text("")
    (site / "cache_utils.py").write_text("class Cache:\n    def get_max_cache_shape(self):\n        return 1\n")
    env = EnvSpec("fix", "path:fix.whl", transformers_path=str(tmp_path / "fix.whl"))
    label = builds.keep_build(env, tmp_path / "venv" / "bin" / "python", "4.41.2", cache)["label"]
    failure = read_failure({"type": "AttributeError", "message": "'Cache' object has no attribute 'get_max_length'"})
    found = symbol_history(failure, "4.41.2", label, SourceShelf(cache), ["4.41.2", label])
    assert found is not None and found.id == "removed: Cache.get_max_length"
    assert (found.last_good, found.introduced_in) == ("4.41.2", label)
