"""Fixtures and the marks that say what a test costs.

- `env_factory` (`tests.helpers.real_env`) builds real uv envs, one per (transformers, torch)
  for the whole session, so `latest` and 4.40.2 are each built once however many files need them.
- The collection hook marks `e2e` every test that reaches the env factory or a helper
  registered with `tests.helpers.builds_envs` (through its fixtures or the functions it calls),
  and `network` every e2e test and every user of the release-source `shelf`: the inner loop
  `pytest -m "not e2e"` builds no env and runs no nox session.
- `network` tests skip, saying why, when the package index does not answer (asked once per
  session, with a short timeout) instead of failing after long installer retries; with `CI`
  set they fail instead, so a CI box that lost the index cannot pass without its e2e tests.
- `bench` tests run only when `-m` names them: `-m "not e2e"` alone must not pull them in.
"""

from __future__ import annotations

import functools
import os
import textwrap
import types
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import helpers
from tests.helpers import CACHE

TESTS = str(Path(__file__).resolve().parent)
INDEX_TIMEOUT_S = 5.0
# Fixtures whose use means a test needs the package index (it downloads release wheels).
NEEDS_INDEX = frozenset({"shelf"})


# --- marks -----------------------------------------------------------------------------------


def _is_builder(value: object) -> bool:
    return isinstance(value, types.FunctionType) and value in helpers.ENV_BUILDERS


def _reaches_builder(function: object, roots: tuple[str, ...], seen: set[types.CodeType]) -> bool:
    """Whether `function`'s code names a registered env builder, itself or through a function
    it calls that is defined under `roots` (the test tree: helpers, fixtures, a module's own
    functions), nested functions and lambdas included."""
    code = getattr(function, "__code__", None)
    namespace = getattr(function, "__globals__", {})
    return code is not None and _code_reaches(code, namespace, roots, seen)


def _code_reaches(code: types.CodeType, namespace: dict, roots: tuple[str, ...], seen: set[types.CodeType]) -> bool:
    if code in seen:
        return False
    seen.add(code)
    for name in code.co_names:
        found = namespace.get(name)
        if found is helpers and any(_is_builder(getattr(helpers, n, None)) for n in code.co_names):
            return True  # `helpers.run_nox(...)`
        if _is_builder(found):
            return True
        ours = isinstance(found, types.FunctionType) and found.__code__.co_filename.startswith(roots)
        if ours and _reaches_builder(found, roots, seen):
            return True
    consts = (const for const in code.co_consts if isinstance(const, types.CodeType))
    return any(_code_reaches(const, namespace, roots, seen) for const in consts)


def builds_envs(item: pytest.Item) -> bool:
    """The test uses the env factory, or it or one of its fixtures reaches an env builder."""
    names = getattr(item, "fixturenames", ())
    if "env_factory" in names:
        return True
    roots, seen = (TESTS, str(item.path.parent)), set()
    if _reaches_builder(getattr(item, "function", None), roots, seen):
        return True
    definitions = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    return any(_reaches_builder(d.func, roots, seen) for name in names for d in definitions.get(name, ()))


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects: the marks added here count
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if builds_envs(item):
            item.add_marker(pytest.mark.e2e)
        # Every env is installed from the index (a wheelhouse test downloads its wheels first).
        if item.get_closest_marker("e2e") or NEEDS_INDEX & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.network)
    if "bench" not in (config.option.markexpr or ""):
        kept = [item for item in items if item.get_closest_marker("bench") is None]
        if len(kept) < len(items):
            config.hook.pytest_deselected(items=[item for item in items if item.get_closest_marker("bench")])
            items[:] = kept


@functools.cache
def index_unreachable() -> str | None:
    """Why the package index does not answer (None when it does): one request per session."""
    from matrix.releases import index_url, simple_url

    url = simple_url("pip", index_url())
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=INDEX_TIMEOUT_S):
            return None
    except urllib.error.HTTPError:
        return None  # it answered
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"the package index does not answer ({url}: {getattr(exc, 'reason', None) or exc})"


@pytest.hookimpl(tryfirst=True)  # before fixtures are set up: the env factory checks the test's marks
def pytest_runtest_setup(item: pytest.Item) -> None:
    helpers.CURRENT_TEST[:] = [item]
    if item.get_closest_marker("network") is not None:
        why = index_unreachable()
        if why and os.environ.get("CI", "").lower() in ("", "0", "false"):
            pytest.skip(f"{why}; this test installs or downloads releases from it")
        if why:  # on CI a skip would pass a run that tested nothing real
            pytest.fail(f"{why}, and CI is set: CI must reach the package index")


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def write_config(tmp_path: Path):
    """Write TOML text (dedented) to tmp_path/matrix.toml and return the path."""

    def write(text: str, name: str = "matrix.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def fixture_cache() -> Path:
    """Generated fixture models are shared with `nox -s matrix` (same bytes, built once)."""
    return CACHE


@pytest.fixture(scope="session")
def env_factory() -> Callable[..., Path]:
    """`env_factory(transformers, torch=TORCH) -> python`: a real uv env, built once per
    (transformers, torch) for the session and kept under the shared cache between sessions
    (`tests.helpers.real_env`, which plain functions of a test file may call too)."""
    return helpers.real_env


@pytest.fixture(scope="session")
def nox_envdir(tmp_path_factory) -> Path:
    """One `--envdir` for the session's `nox -s matrix` runs: nox reuses a probe venv
    (`reuse_venv`) and `install_env` keeps it while its requirements match (else clears and
    reinstalls it), so an env two configs spell alike is built, and its bytecode compiled,
    once per session instead of once per test. Tests run one at a time, so no two nox runs
    share it at once; a test that kills nox (test_resume) keeps a folder of its own."""
    return tmp_path_factory.mktemp("nox-envs")


@pytest.fixture(scope="session")
def tf440_python(env_factory) -> Path:
    """A real env with transformers 4.40.2 and torch 2.13 (huggingface_hub 0.x)."""
    return env_factory("==4.40.2")


@pytest.fixture(scope="session")
def tf450_python(env_factory) -> Path:
    """A real env with transformers 4.50.3 and torch 2.13."""
    return env_factory("==4.50.3")


@pytest.fixture(scope="session")
def latest_python(env_factory) -> Path:
    """A real env with the newest transformers (5.x: huggingface_hub 1.x or newer)."""
    return env_factory("latest")


@pytest.fixture(scope="session")
def shelf():
    """Release sources of real transformers wheels, fetched once into the shared cache."""
    from matrix.diagnosis.symbols.sources import SourceShelf

    found = SourceShelf(CACHE)
    for version in ("4.41.2", "4.42.4", "4.48.3", "4.49.0"):
        if found.package(version) is None:
            pytest.fail(f"no transformers {version} sources (the package index must be reachable): {found.unavailable}")
    return found


@pytest.fixture(autouse=True)
def published_matrix_json_follows_the_schema(request):
    """After a test, every matrix.json it published into its tmp_path follows the schema the
    package ships (tests/schema_check.py): a report change that breaks it fails the test."""
    yield
    tmp_path = request.node.funcargs.get("tmp_path") if hasattr(request.node, "funcargs") else None
    if isinstance(tmp_path, Path) and tmp_path.is_dir():
        from tests.schema_check import problems_below

        found = problems_below(tmp_path)
        assert not found, "published matrix.json breaks matrix/schema/matrix.schema.json:\n" + "\n".join(found)
