"""What several test files need, in one place: configs, cell results, gold files, synthetic
releases, and the two ways a test starts nox.

Plain functions and constants only; fixtures live in conftest.py. A helper that builds an env
or runs a nox session is registered with `@builds_envs`: conftest's collection hook marks every
test that reaches one (directly, or through a fixture or a module function that calls it) as
`e2e` and `network`, so the marks follow the code instead of a hand-kept list.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from probes.record import CellResult
from probes.status import Status

ROOT = Path(__file__).resolve().parent.parent
# The shared cache of fixtures, release lists, wheels and release sources (what `nox -s matrix`
# uses too): built once, reused by every session and rerun.
CACHE = Path(os.environ.get("MATRIX_CACHE", ROOT / ".cache"))
TORCH = "==2.13.0"

GOOD_CONFIG = """
[envs."tf-4.40"]
transformers = "4.40.*"
torch = "==2.13.0"

[envs.latest]
transformers = "latest"

[models.qwen]
fixture = "qwen2-tiny"
task = "causal-lm"
"""

# Two pinned envs (4.40 and 4.50): what most small configs of the tests start with.
TWO_ENVS = """
[envs."tf-4.40"]
transformers = "4.40.*"
torch = "==2.13.0"

[envs."tf-4.50"]
transformers = "4.50.*"
torch = "==2.13.0"
"""

# Two envs, one model: the smallest matrix that still has shards to merge and sessions to
# run side by side (tests/envs/test_parallel.py, test_merge.py, test_workflow.py).
TWO_ENVS_ONE_MODEL = (
    TWO_ENVS
    + """
[models.qwen2-tiny]
fixture = "qwen2-tiny"
task = "causal-lm"
"""
)

F = TypeVar("F", bound=Callable[..., Any])
# Helpers that build envs or run nox sessions (see `builds_envs`); read by conftest's hook.
ENV_BUILDERS: set[Callable[..., Any]] = set()
# The test being set up or run (conftest keeps it): what `require_e2e` checks.
CURRENT_TEST: list[Any] = []


def builds_envs(helper: F) -> F:
    """Register `helper` as one that builds envs or runs nox: tests reaching it are e2e."""
    ENV_BUILDERS.add(helper)
    return helper


def require_e2e(what: str) -> None:
    """Fail the running test when it is not marked e2e: the collection hook could not see it
    reach an env builder (it got there some way code cannot be read for, e.g. getfixturevalue)."""
    import pytest

    item = CURRENT_TEST[0] if CURRENT_TEST else None
    if item is not None and item.get_closest_marker("e2e") is None:
        pytest.fail(f"{item.nodeid} {what} but is not marked e2e: mark it, or reach the builder directly")


_ENVS: dict[tuple[str, str], Path] = {}


@builds_envs
def real_env(transformers: str, torch: str = TORCH) -> Path:
    """The interpreter of a real uv env with `transformers` (a spec: `==4.40.2`, `latest`) and
    torch, built once per session (conftest's `env_factory` hands this out) and kept between
    sessions: uv installs from its cache by hard links in about 2 s, but a fresh env's first
    `import torch, transformers` compiles bytecode (about 8 s more).

    A pinned release is the bisect's own env of it (`<cache>/bisect/tf-<version>`, reused while
    its requirements match), so the tests and the bisect and release search of the `nox -s
    matrix` runs they start build each release once between them. Other specs (`latest`) live
    in `<cache>/test-envs/`, where `install_env`'s marker rebuilds one whose requirements
    changed (`latest` after a new release). A lock per env lets several sessions share them."""
    import fcntl

    require_e2e("builds an env")
    key = (transformers, torch)
    if key not in _ENVS:
        locks = CACHE / "test-envs"
        locks.mkdir(parents=True, exist_ok=True)
        name = "tf-" + transformers.lstrip("=") + "-torch-" + torch.lstrip("=")
        with open(locks / f"{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            pinned = transformers.startswith("==") and torch == TORCH
            _ENVS[key] = _release_env(transformers[2:]) if pinned else _kept_env(locks / name, transformers, torch)
    return _ENVS[key]


def _release_env(version: str) -> Path:
    from matrix.bisect.probe import Prober
    from matrix.config import EnvSpec, ModelSpec

    spec = EnvSpec(name=f"tf-{version}", transformers=f"=={version}", torch=TORCH)
    model = ModelSpec(name="tests", source_kind="path", source=".", task="causal-lm")
    prober = Prober(None, model, spec, CACHE, CACHE)  # type: ignore[arg-type]  # only its env cache is used
    python, _, problem = prober.ensure_env(spec)
    assert python is not None, problem
    return python


def _kept_env(venv: Path, transformers: str, torch: str) -> Path:
    from matrix import proc
    from matrix.config import EnvSpec
    from matrix.envs.run import install_env

    interpreter = os.path.realpath(sys.executable)
    python, stamp = venv / "bin" / "python", venv.with_name(venv.name + ".python")  # outside: uv venv --clear
    if not (python.exists() and stamp.is_file() and stamp.read_text() == interpreter):
        created = proc.run(["uv", "venv", "--clear", "--quiet", "--python", interpreter, venv])
        assert created.ok, created.output
        stamp.write_text(interpreter)
    installed = install_env(python, EnvSpec(name=venv.name, transformers=transformers, torch=torch))
    assert installed.ok, installed.output
    return python


def make_cell(env: str, model: str, status: Status | str, variant: str = "", **extra) -> CellResult:
    """A cell result as the runner would write it (reason filled in for non-passes)."""
    status = Status(status)
    if status is not Status.PASS and "reason" not in extra:
        extra["reason"] = f"{status.value} reason"
    return CellResult(env=env, model=model, variant=variant, status=status, **extra)


def check_gold(gold: Path, actual: str, actual_path: Path | None = None) -> None:
    """Compare `actual` with the gold file; on a mismatch write it beside (`<gold>.actual`
    unless told) and fail naming both. `MATRIX_UPDATE_GOLD=1` rewrites the gold file instead."""
    if os.environ.get("MATRIX_UPDATE_GOLD"):
        gold.write_text(actual, encoding="utf-8")
    expected = gold.read_text(encoding="utf-8")
    actual_path = actual_path or gold.with_name(gold.name + ".actual")
    if actual != expected:
        actual_path.write_text(actual, encoding="utf-8")
        message = f"{gold.name} differs from its gold file; actual output written to {actual_path}"
        if expected.count("\n") <= 1 and actual.count("\n") <= 1:  # one line: show both
            message += f"\nexpected: {expected.rstrip()}\nactual:   {actual.rstrip()}"
        raise AssertionError(message)
    actual_path.unlink(missing_ok=True)


def fake_release(cache: Path, version: str, files: dict[str, str]) -> None:
    """A synthetic transformers release in a source cache (what `SourceShelf(cache)` reads):
    the few files a test names, dedented, plus an empty `__init__.py`."""
    root = cache / "sources" / f"transformers-{version}" / "transformers"
    for name, text in {"__init__.py": "", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))


def nox_list(**env: str) -> subprocess.CompletedProcess[str]:
    """`nox -l` on our noxfile, with only PATH and `env` in the environment (what a user's
    shell could set): how config and run-id mistakes reach a user. Listing loads the noxfile
    (and so the config) and builds nothing: about half a second, fine in the inner loop."""
    return subprocess.run(
        [sys.executable, "-m", "nox", "-l", "-f", str(ROOT / "noxfile.py")],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def nox_env(drop: tuple[str, ...] = ("MATRIX_",), **values: str) -> dict[str, str]:
    """This machine's environment for a nox run (uv needs its certificates, find-links and
    cache settings) without our own knobs (`drop`), with the shared cache and `values`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(drop)}
    env["MATRIX_CACHE"] = str(CACHE)
    env.update(values)
    return env


@builds_envs
def nox_command(envdir: Path, *args: str) -> list[str]:
    """`python -m nox -f noxfile.py --envdir ENVDIR ARGS`: nox's venvs in a folder of the test's."""
    require_e2e("runs nox sessions")
    return [sys.executable, "-m", "nox", "-f", str(ROOT / "noxfile.py"), "--envdir", str(envdir), *args]


@builds_envs
def run_nox(envdir: Path, *args: str, env: dict[str, str], timeout: float = 1500) -> subprocess.CompletedProcess[str]:
    """Run nox sessions (`nox_command`) to the end, output captured."""
    return subprocess.run(nox_command(envdir, *args), env=env, capture_output=True, text=True, timeout=timeout)


def run_matrix(
    tmp_path: Path, config: Path, envdir: Path | None = None
) -> tuple[subprocess.CompletedProcess[str], dict]:
    """`nox -s matrix` on `config`, results under tmp_path, nox's venvs in `envdir` (conftest's
    session-wide `nox_envdir`, else tmp_path/nox); returns (output, matrix.json)."""
    results = tmp_path / "results"
    env = nox_env(MATRIX_CONFIG=str(config), MATRIX_RESULTS=str(results))
    done = run_nox(envdir or tmp_path / "nox", "-s", "matrix", env=env)
    matrix_file = results / "matrix.json"
    assert matrix_file.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    return done, json.loads(matrix_file.read_text())


def cells_of(data: dict) -> dict[tuple[str, str], dict]:
    """matrix.json's cells by (env, model[+variant])."""
    return {(c["env"], c["model"] + (f"+{c['variant']}" if c["variant"] else "")): c for c in data["cells"]}
