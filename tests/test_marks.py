"""The marks say what a test costs: conftest's hook marks e2e (and network) every test that
reaches an env builder, however indirectly; `-m "not e2e"` then runs none of them, and bench
tests run only when `-m` names them.

Checked on a throw-away test tree (pytester) whose conftest is ours, so the hook, the fixtures
and the runtime guard are the real ones; nothing is built (collection only, or tests that stop
before an env would be).
"""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

INI = """
[pytest]
markers =
    e2e: e2e
    network: network
    bench: bench
    slow: slow
"""

TESTS = """
import pytest
from tests import helpers
from tests.helpers import run_matrix, run_nox


def start_nox(tmp_path):
    return run_nox(tmp_path, "-s", "matrix", env={})


def through_a_helper(tmp_path):
    return start_nox(tmp_path)


def test_plain():
    assert True


def test_calls_a_builder_directly(tmp_path):
    run_matrix(tmp_path, tmp_path / "matrix.toml")


def test_calls_it_through_module_functions(tmp_path):
    through_a_helper(tmp_path)


def test_calls_it_in_a_lambda(tmp_path):
    (lambda: helpers.nox_command(tmp_path, "-l"))()


@pytest.fixture
def built(tf440_python):
    return tf440_python


def test_uses_an_env_fixture_through_another(built):
    pass


def test_names_a_function_called_like_a_builder():
    def run_nox():
        return None

    run_nox()


@pytest.mark.bench
def test_a_benchmark():
    pass
"""


@pytest.fixture
def tree(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(INI)
    pytester.makeconftest("from tests.conftest import *  # noqa: F403  (the hooks and fixtures under test)\n")
    pytester.makepyfile(test_tree=TESTS)
    return pytester


def collected(tree: pytest.Pytester, *args: str) -> set[str]:
    result = tree.runpytest_inprocess("--collect-only", "-q", *args)
    return {line.split("::")[1] for line in result.outlines if "::" in line}


def test_the_inner_loop_leaves_out_every_test_that_reaches_an_env_builder(tree):
    assert collected(tree, "-m", "not e2e") == {"test_plain", "test_names_a_function_called_like_a_builder"}


def test_what_reaches_a_builder_is_e2e_and_needs_the_index(tree):
    builders = {
        "test_calls_a_builder_directly",
        "test_calls_it_through_module_functions",
        "test_calls_it_in_a_lambda",
        "test_uses_an_env_fixture_through_another",
    }
    assert collected(tree, "-m", "e2e") == builders
    assert collected(tree, "-m", "network") == builders


def test_bench_runs_only_when_named(tree):
    assert "test_a_benchmark" not in collected(tree)
    assert "test_a_benchmark" not in collected(tree, "-m", "not e2e")
    assert collected(tree, "-m", "bench") == {"test_a_benchmark"}


def test_a_test_that_reaches_a_builder_unseen_fails_instead_of_building(tree):
    tree.makepyfile(
        test_hidden="""
def test_hidden(request):
    request.getfixturevalue("tf440_python")
"""
    )
    result = tree.runpytest_inprocess("-m", "not e2e", "test_hidden.py")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*test_hidden builds an env but is not marked e2e*"])


def test_network_tests_skip_saying_why_when_the_index_does_not_answer_and_fail_on_ci(tree, monkeypatch):
    import socket

    import tests.conftest as ours

    with socket.socket() as probe:  # a port nothing listens on: refused at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("UV_INDEX_URL", f"http://127.0.0.1:{port}/simple")
    tree.makepyfile(
        test_net="""
import pytest

@pytest.mark.network
def test_needs_the_index():
    pass

def test_offline():
    pass
"""
    )
    monkeypatch.delenv("CI", raising=False)
    ours.index_unreachable.cache_clear()  # asked once per session: this session asks again
    try:
        result = tree.runpytest_inprocess("-rs", "test_net.py")
        monkeypatch.setenv("CI", "true")
        on_ci = tree.runpytest_inprocess("test_net.py")
    finally:
        ours.index_unreachable.cache_clear()
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines([f"*the package index does not answer (http://127.0.0.1:{port}/simple/pip/*"])
    on_ci.assert_outcomes(passed=1, errors=1)
    on_ci.stdout.fnmatch_lines(["*CI must reach the package index*"])
