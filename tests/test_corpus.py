"""The remote-code corpus (tests/corpus/): each fixture breaks over the release line as EXPECTED.toml says.

EXPECTED.toml records what every fixture did in real envs, release by release; diagnosis tests
rely on it. The quick tests check that the record is whole and consistent with the corpus. The
end-to-end test builds every fixture and runs all of them in four real releases (conftest's env
factory: the shared `.cache/bisect/tf-<version>/` envs the bisect uses), chosen so that every fixture passes in one
and fails in another, and compares each cell with its recorded row: status, failing phase,
exception type, the first line of the message, and the reference outputs of passing cells.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from tests.corpus import build as corpus
from tests.helpers import CACHE, ROOT, real_env

EXPECTED_PATH = ROOT / "tests" / "corpus" / "EXPECTED.toml"
EXPECTED: dict[str, Any] = tomllib.loads(EXPECTED_PATH.read_text(encoding="utf-8"))
FIXTURES: dict[str, Any] = EXPECTED["fixtures"]

# Five releases for the whole corpus: every fixture runs unchanged in at least one and fails
# (or changes its outputs) in another. 4.41.2: before the 4.42 generation changes; 4.45.1: the
# DynamicCache(num_hidden_layers) regression and both missing-package demands' middle window;
# 4.57.6: the last 4.x (4.54-4.56 breaks); 5.0.0: the 5.x loading path (weights written through
# `.data` re-initialised, non-persistent buffers left uninitialised, rope_scaling standardised);
# 5.24.0: the newest release probed.
RELEASES = ("4.41.2", "4.45.1", "4.57.6", "5.0.0", "5.24.0")
TORCH = "==2.13.0"
KINDS = {
    "removed-method",
    "removed-module",
    "moved-import",
    "changed-signature",
    "cache-none",
    "missing-package",
    "silent-nan",
    "patch-fixed",
    "breaks-twice",
    "cache-object",
    "config-value",
    "buffer-uninit",
    "custom-load",
}
_PATH_IN_PARENS = re.compile(r" \(/[^)]*\)")


def first_line(message: str) -> str:
    """How EXPECTED.toml records a message: its first line, an absolute path in parentheses cut."""
    lines = message.strip().splitlines()
    return _PATH_IN_PARENS.sub("", lines[0]) if lines else ""


def test_build_module_imports_with_the_standard_library_only():
    code = "import sys; import tests.corpus.build as b; assert b.NAMES; print('numpy' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_every_fixture_has_a_folder_of_remote_code_and_a_record():
    assert set(corpus.NAMES) == set(FIXTURES) == KINDS
    for name, fixture in corpus.FIXTURES.items():
        files = fixture.remote_code()
        config_file, model_file = (ref.split(".")[0] + ".py" for ref in (fixture.config_class, fixture.model_class))
        assert {config_file, model_file} <= set(files), name
        assert FIXTURES[name]["task"] == fixture.task


def test_fingerprints_are_distinct_and_follow_the_remote_code():
    prints = {name: corpus.fingerprint(name) for name in corpus.NAMES}
    assert len(set(prints.values())) == len(prints)
    assert prints == {name: corpus.fingerprint(name) for name in corpus.NAMES}


def outcome(row: dict[str, Any]) -> str:
    """A recorded release's outcome: its status, or "outputs differ" for a pass whose tokens changed."""
    return "outputs differ" if row.get("outputs") == "differ" else row["status"]


def test_each_break_is_recorded_where_it_was_measured():
    for name, record in FIXTURES.items():
        releases = record["releases"]
        if "last_good" in record:
            assert outcome(releases[record["last_good"]]) == "pass", name
            assert Version(record["last_good"]) < Version(record["first_bad"]), name
        top = releases[record["first_bad"]]
        if record.get("outputs") == "differ":
            assert outcome(top) == "outputs differ" and top["tokens"] != record["tokens"], name
        else:
            assert (top["phase"], top["exception"], top["message"]) == (
                record["phase"],
                record["exception"],
                record["message"],
            )
        for brk in record["breaks"]:
            first = brk.get("first_bad") or brk["first_probed"]
            row = releases[first]
            if brk.get("outputs") == "differ":
                assert (outcome(row), row["tokens"]) == ("outputs differ", brk["tokens"]), f"{name} {first}"
            else:
                assert (row["status"], row["phase"], row["exception"], row["message"]) == (
                    "fail",
                    brk["phase"],
                    brk["exception"],
                    brk["message"],
                ), f"{name} {first}"
            if "last_good" in brk:
                assert outcome(releases[brk["last_good"]]) == "pass", f"{name} {brk['last_good']}"
            if "last_before" in brk:  # a second break: the release before broke in another way
                before = releases[brk["last_before"]]
                assert outcome(before) != "pass" and before.get("message") != brk["message"], name
            if "fixed_in" in brk:
                assert outcome(releases[brk["fixed_in"]]) == "pass", f"{name} {brk['fixed_in']}"
                assert releases[brk["last_bad"]] == row, f"{name} {brk['last_bad']}"
            assert brk["symbol"] and brk["change"] and brk["fix"], name


def test_windows_cover_every_probed_release_once():
    for name, record in FIXTURES.items():
        probed = sorted(record["releases"], key=Version)
        covered = []
        for window in record["windows"]:
            inside = [v for v in probed if Version(window["from"]) <= Version(v) <= Version(window["to"])]
            for version in inside:
                row = record["releases"][version]
                assert row["status"] == window["status"] and row.get("message") == window.get("message"), name
                assert row.get("outputs") == window.get("outputs"), f"{name} {version}"
            covered += inside
        assert covered == probed, name


def test_the_probed_releases_show_every_fixture_run_and_break():
    for name, record in FIXTURES.items():
        outcomes = {outcome(record["releases"][v]) for v in RELEASES if v in record["releases"]}
        assert "pass" in outcomes and outcomes & {"fail", "outputs differ"}, f"{name}: {outcomes} in {RELEASES}"


@pytest.fixture(scope="module")
def corpus_models(fixture_cache) -> dict[str, str]:
    """Every fixture built once (with an env's interpreter: it needs numpy and safetensors)."""
    python = release_env(RELEASES[0], fixture_cache)
    done = subprocess.run(
        [python, ROOT / "tests" / "corpus" / "build.py", fixture_cache / "corpus"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return dict(line.split("\t", 1) for line in done.stdout.splitlines())


def release_env(version: str, cache: Path) -> Path:
    """The env of `version`, from conftest's env factory (built once per session, kept in the
    shared cache between sessions; `cache` is that cache)."""
    assert cache == CACHE, f"the env factory builds under {CACHE}, not {cache}"
    return real_env(f"=={version}", TORCH)


def config_text(version: str, models: dict[str, str]) -> str:
    lines = [f'[envs."tf-{version}"]', f'transformers = "=={version}"', f'torch = "{TORCH}"', ""]
    for name, path in models.items():
        lines += [f"[models.{name}]", f"path = {json.dumps(path)}", "trust_remote_code = true"]
        lines.append(f'task = "{corpus.FIXTURES[name].task}"')
        for key, value in corpus.FIXTURES[name].probe.items():
            lines.append(f"{key} = {json.dumps(value)}")
        lines.append("")
    return "\n".join(lines)


def run_release(version: str, models: dict[str, str], cache: Path, tmp_path: Path) -> dict[str, dict[str, Any]]:
    """Every corpus model's base cell in `version`, through the matrix's own runner."""
    from matrix import proc
    from matrix.config import load
    from matrix.envs.plan import PLAN_FILE, runner_plan
    from matrix.envs.run import probe_env_vars
    from probes.record import cell_stem, write_json_atomic

    python = release_env(version, cache)
    config_path = tmp_path / "matrix.toml"
    config_path.write_text(config_text(version, models), encoding="utf-8")
    config = load(config_path)
    env = f"tf-{version}"
    run_dir = tmp_path / "run"
    plan = runner_plan(config, env, run_dir, dict(models))
    plan["cells"] = [cell for cell in plan["cells"] if not cell["variant"]]
    write_json_atomic(run_dir / env / PLAN_FILE, plan)
    done = proc.run([python, "-m", "probes.runner", run_dir / env / PLAN_FILE], env=probe_env_vars(config), timeout=900)
    cells = {}
    for name in models:
        path = run_dir / env / f"{cell_stem(name, '')}.json"
        assert path.is_file(), f"no cell file for {name} in {version}:\n{done.output[-3000:]}"
        cells[name] = json.loads(path.read_text(encoding="utf-8"))
    return cells


@pytest.mark.e2e
@pytest.mark.parametrize("version", RELEASES)
def test_corpus_behaves_as_recorded(version, corpus_models, fixture_cache, tmp_path):
    start = time.perf_counter()
    cells = run_release(version, corpus_models, fixture_cache, tmp_path)
    mismatches = []
    for name, cell in cells.items():
        record = FIXTURES[name]
        row = record["releases"][version]
        want = {key: value for key, value in row.items() if key not in ("outputs", "tokens")}
        error = cell.get("error") or {}
        got = {"status": cell["status"]}
        if cell["status"] != "pass":
            got |= {
                "phase": cell.get("phase"),
                "exception": error.get("type"),
                "message": first_line(error.get("message", "")),
            }
        if got != want:
            mismatches.append(f"{name}: expected {want}, got {got}")
            continue
        if cell["status"] == "pass":
            fingerprint = cell.get("fingerprint") or {}
            tokens = row.get("tokens", record.get("tokens"))  # a release whose outputs differ has its own
            if tokens is not None and fingerprint.get("tokens") != tokens:
                mismatches.append(f"{name}: tokens {fingerprint.get('tokens')} != {tokens}")
            if "chat_text" in record and (fingerprint.get("chat") or {}).get("text") != record["chat_text"]:
                mismatches.append(f"{name}: chat {fingerprint.get('chat')} != {record['chat_text']!r}")
            if "embedding_cosine" in record:
                cosine = (fingerprint.get("embedding") or {}).get("cosine")
                close = cosine is not None and all(
                    abs(a - b) <= 1e-3
                    for row, want_row in zip(cosine, record["embedding_cosine"], strict=True)
                    for a, b in zip(row, want_row, strict=True)
                )
                if not close:
                    mismatches.append(f"{name}: embedding cosines {cosine} != {record['embedding_cosine']}")
    assert not mismatches, f"transformers {version}:\n" + "\n".join(mismatches)
    print(f"corpus in transformers {version}: {len(cells)} cells in {time.perf_counter() - start:.1f} s")
