"""Bisecting a model over transformers releases: the search, the release list, the report.

The search and the parsing are pure and tested exhaustively; the driver is tested with its
env building replaced by a table of verdicts; one end-to-end test bisects the real
chatglm-legacy fixture over real releases (4.42.0 is its first failing release: 4.41.2
generates, 4.42.0 raises ValueError inside generate).
"""

from __future__ import annotations

import http.server
import json
import math
import threading
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from matrix.bisect import BisectError, Prober, bisect, first_bad, main, pick_endpoints, suggested_bound
from matrix.config import EnvSpec, load
from matrix.envs import run as run_module
from matrix.envs.run import install_env
from matrix.proc import Completed
from matrix.releases import (
    ReleasesError,
    between,
    cached_releases,
    fetch_releases,
    index_url,
    parse_releases,
    simple_url,
)
from probes.status import Status
from tests.helpers import GOOD_CONFIG, ROOT, make_cell

# The final, non-yanked transformers releases from 4.40.2 to 4.50.3 (4.46.0 is yanked).
MICROS = {40: [2], 41: [0, 1, 2], 42: range(5), 43: range(5), 44: range(3), 45: range(3), 46: [1, 2, 3]}
MICROS |= {47: range(2), 48: range(4), 49: [0], 50: range(4)}
TF_RELEASES = [f"4.{minor}.{micro}" for minor, micros in MICROS.items() for micro in micros]


def search(candidates: list[str], bad_from: int, unknown: frozenset[str] = frozenset()):
    asked: list[str] = []

    def is_good(version: str) -> bool | None:
        asked.append(version)
        return None if version in unknown else candidates.index(version) < bad_from

    return first_bad(candidates, is_good), asked


@pytest.mark.parametrize("n", [*range(2, 40), 64, 65, 100])
def test_first_bad_at_every_position(n):
    candidates = [f"1.{i}.0" for i in range(n)]
    for bad_from in range(1, n):
        result, asked = search(candidates, bad_from)
        assert (result.last_good, result.first_bad) == (candidates[bad_from - 1], candidates[bad_from])
        assert candidates[0] not in asked and candidates[-1] not in asked, "the known ends are never re-tested"
        assert len(asked) == len(set(asked)) == len(result.probed)
        assert len(asked) <= math.ceil(math.log2(n - 1)) if n > 2 else not asked
        assert len(asked) <= math.ceil(math.log2(n)) + 1
        assert result.unresolved == []


def test_first_bad_on_the_real_release_list():
    result, asked = search(TF_RELEASES, TF_RELEASES.index("4.42.0"))
    assert (result.last_good, result.first_bad) == ("4.41.2", "4.42.0")
    assert len(asked) <= math.ceil(math.log2(len(TF_RELEASES) - 2)) + 1


def test_a_version_that_says_nothing_is_skipped_not_judged():
    candidates = [f"1.{i}.0" for i in range(20)]
    result, asked = search(candidates, 7, frozenset({"1.9.0", "1.10.0", "1.3.0"}))
    assert (result.last_good, result.first_bad, result.unresolved) == ("1.6.0", "1.7.0", [])
    assert ("1.9.0", None) in result.probed or ("1.10.0", None) in result.probed
    # The first bad release itself cannot be judged: the answer says it may hide there.
    result, _ = search(candidates, 7, frozenset({"1.7.0"}))
    assert (result.last_good, result.first_bad, result.unresolved) == ("1.6.0", "1.8.0", ["1.7.0"])
    result, asked = search(candidates, 7, frozenset(candidates))
    assert (result.last_good, result.first_bad) == ("1.0.0", "1.19.0")
    assert result.unresolved == candidates[1:-1] and sorted(asked) == sorted(candidates[1:-1])


def test_first_bad_needs_both_ends():
    with pytest.raises(ValueError):
        first_bad(["1.0"], lambda v: True)


def _file(name: str, yanked: object = False) -> dict:
    return {"filename": name, "url": f"https://files.example/{name}", "hashes": {}, "yanked": yanked}


CANNED = {
    "meta": {"api-version": "1.1"},
    "name": "transformers",
    "versions": ["4.40.2", "4.41.0", "4.41.1", "4.42.0rc1", "4.43.0.dev0", "4.41.2.post1", "4.46.0", "4.99.0"],
    "files": [
        _file("transformers-4.41.0-py3-none-any.whl"),
        _file("transformers-4.41.0.tar.gz"),
        _file("transformers-4.40.2-py3-none-any.whl", yanked=False),
        _file("transformers-4.40.2.tar.gz"),
        # every file yanked (with a reason, or just True): the version is yanked
        _file("transformers-4.46.0-py3-none-any.whl", yanked="does not work with 3.8"),
        _file("transformers-4.46.0.tar.gz", yanked=True),
        # one file yanked, the other not: the version can still be installed
        _file("transformers-4.41.1-py3-none-any.whl", yanked="bad wheel"),
        _file("transformers-4.41.1.tar.gz", yanked=""),
        _file("transformers-4.42.0rc1-py3-none-any.whl"),
        _file("transformers-4.43.0.dev0.tar.gz"),
        _file("transformers-4.41.2.post1-py3-none-any.whl"),
        _file("transformers-4.44.0+cpu-py3-none-any.whl"),
        _file("transformers-4.45.0.win32.exe"),
        _file("transformers-4.47.0-1-py3-none-any.whl"),  # a build tag is not part of the version
        _file("transformers-4.48.0-py3-none-any.whl.metadata"),
        _file("transformers_utils-4.49.0.tar.gz"),  # another project's sdist on a mirror
    ],
}


def test_parse_releases_keeps_final_unyanked_versions_in_order():
    assert [str(v) for v in parse_releases(CANNED)] == ["4.40.2", "4.41.0", "4.41.1", "4.47.0"]
    assert parse_releases({"name": "x", "files": []}) == []
    with pytest.raises(ValueError, match="files"):
        parse_releases({"name": "x", "versions": ["1.0"]})


def test_between_is_strict():
    releases = parse_releases(CANNED)
    assert [str(v) for v in between(releases, Version("4.40.2"), Version("4.47.0"))] == ["4.41.0", "4.41.1"]


def test_index_url_from_environment(monkeypatch):
    for key in ("UV_INDEX_URL", "PIP_INDEX_URL"):
        monkeypatch.delenv(key, raising=False)
    assert index_url() == "https://pypi.org"
    monkeypatch.setenv("PIP_INDEX_URL", "https://mirror.example/pypi/simple/")
    assert index_url() == "https://mirror.example/pypi"
    monkeypatch.setenv("UV_INDEX_URL", "file:///opt/pypi/simple")  # no JSON API there: skipped
    assert index_url() == "https://mirror.example/pypi"
    assert simple_url("Transformers_X", "https://i.example/") == "https://i.example/simple/transformers-x/"


class _Index(http.server.BaseHTTPRequestHandler):
    seen: list[tuple[str, str]] = []

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        _Index.seen.append((self.path, self.headers.get("Accept", "")))
        body = json.dumps(CANNED).encode() if self.path == "/simple/transformers/" else b"nope"
        self.send_response(200 if self.path == "/simple/transformers/" else 404)
        self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_fetch_releases_asks_for_json_and_names_the_url_on_failure():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Index)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    index = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert [str(v) for v in fetch_releases("transformers", index)][-1] == "4.47.0"
        assert _Index.seen[-1] == ("/simple/transformers/", "application/vnd.pypi.simple.v1+json")
        with pytest.raises(ReleasesError, match=f"{index}/simple/no-such/"):
            fetch_releases("no_such", index)
    finally:
        server.shutdown()
    with pytest.raises(ReleasesError, match=r"http://127\.0\.0\.1:9/simple/transformers/"):
        fetch_releases("transformers", "http://127.0.0.1:9", timeout=5)


def test_the_release_list_is_asked_once_an_hour(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Index)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    index = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        before = len(_Index.seen)
        first = cached_releases("transformers", tmp_path, index=index)
        assert cached_releases("Transformers", tmp_path, index=index) == first and len(_Index.seen) == before + 1
        assert cached_releases("transformers", tmp_path, max_age=0, index=index) == first
        assert len(_Index.seen) == before + 2, "an old list is asked again"
    finally:
        server.shutdown()
    with pytest.raises(ReleasesError):  # another index: its own list
        cached_releases("transformers", tmp_path, index="http://127.0.0.1:9", timeout=5)


@pytest.fixture
def installs(monkeypatch, tmp_path):
    """`uv` replaced: every command recorded, `uv pip install` failing for the specs in `fail`."""
    calls: list[list[str]] = []
    fail: set[str] = set()

    def run(args, **_):
        calls.append([str(a) for a in args])
        bad = args[:3] == ["uv", "pip", "install"] and fail & {str(a) for a in args}
        return Completed(tuple(map(str, args)), 1 if bad else 0, "no solution" if bad else "ok", 0.1)

    monkeypatch.setattr(run_module.proc, "run", run)
    for key in ("UV_OFFLINE", "UV_NO_INDEX"):
        monkeypatch.delenv(key, raising=False)
    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    return calls, fail, python


def test_latest_is_pinned_to_the_newest_release_so_a_warm_rerun_installs_nothing(monkeypatch, installs):
    calls, fail, python = installs
    newest: list[Version | None] = [Version("5.24.0")]
    monkeypatch.setattr(run_module, "newest_release", lambda *a, **k: newest[0])
    latest = EnvSpec(name="latest", transformers="latest", torch="==2.13.0")
    assert install_env(python, latest).ok
    assert calls[-1][:3] == ["uv", "pip", "install"] and "transformers==5.24.0" in calls[-1]
    assert "--upgrade-package" not in calls[-1] and "--refresh-package" not in calls[-1]
    calls.clear()
    assert install_env(python, latest).ok  # unchanged newest release: the venv is kept, nothing re-resolved
    assert [c[:3] for c in calls] == [["uv", "pip", "install"]] and "transformers==5.24.0" in calls[0]
    newest[0] = Version("5.25.0")
    calls.clear()
    assert install_env(python, latest).ok
    assert calls[0][:3] == ["uv", "venv", "--clear"] and "transformers==5.25.0" in calls[1]
    fail.add("transformers==5.25.0")  # the newest does not fit this env: uv picks, as before
    calls.clear()
    assert install_env(python, latest).ok and "--upgrade-package" in calls[-1] and "transformers" in calls[-1]
    newest[0] = None  # the index cannot be read
    calls.clear()
    assert install_env(python, latest).ok and "--upgrade-package" in calls[-1]


def test_latest_asks_no_index_in_a_wheelhouse(monkeypatch, installs):
    calls, _, python = installs
    monkeypatch.setenv("UV_OFFLINE", "1")
    monkeypatch.setattr(run_module, "newest_release", lambda *a, **k: pytest.fail("asked the index"))
    assert install_env(python, EnvSpec(name="latest", transformers="latest")).ok
    assert "--upgrade-package" in calls[-1]


def test_suggested_bound():
    assert suggested_bound("4.40.2", "4.41.2", "4.42.0") == {
        "range": "transformers>=4.40,<4.42",
        "pin": "transformers==4.41.2",
    }
    assert suggested_bound("4.40.2", "4.42.2", "4.42.3")["range"] == "transformers>=4.40,<4.42.3"
    assert suggested_bound("4.57.1", "4.57.3", "5.0.0")["range"] == "transformers>=4.57,<5.0"
    for good, last, bad in [("4.40.2", "4.41.2", "4.42.0"), ("4.40.2", "4.42.2", "4.42.3")]:
        spec = SpecifierSet(suggested_bound(good, last, bad)["range"].removeprefix("transformers"))
        assert good in spec and last in spec and bad not in spec


def test_pick_endpoints_from_a_run():
    columns = [
        ("5.24.0", "latest", make_cell("latest", "m", Status.FAIL)),
        ("4.40.2", "tf-4.40", make_cell("tf-4.40", "m", Status.PASS)),
        ("4.45.0", "tf-4.45", make_cell("tf-4.45", "m", Status.UNAVAILABLE)),  # no evidence either way
        ("4.50.3", "tf-4.50", make_cell("tf-4.50", "m", Status.FAIL)),
        ("?", "broken", make_cell("broken", "m", Status.ENV_FAILED)),
    ]
    assert pick_endpoints(columns, None, None) == (("4.40.2", "tf-4.40"), ("4.50.3", "tf-4.50"))
    assert pick_endpoints(columns, "4.41.0", None) == (("4.41.0", None), ("4.50.3", "tf-4.50"))
    assert pick_endpoints(columns, None, "4.44.0") == (("4.40.2", "tf-4.40"), ("4.44.0", None))
    with pytest.raises(BisectError, match="passes"):
        pick_endpoints(columns[2:], None, None)
    with pytest.raises(BisectError, match="fails"):
        pick_endpoints(columns[1:3], None, None)


def test_a_model_that_works_again_later_still_has_its_first_break_searched():
    """pass, fail, pass, fail, pass over five envs (a break a patch release undid, then another)."""
    outcomes = [("4.41.2", "P"), ("4.45.1", "F"), ("4.50.3", "P"), ("4.57.6", "F"), ("5.24.0", "P")]
    columns = [
        (version, f"e{version}", make_cell(f"e{version}", "m", Status.PASS if o == "P" else Status.FAIL))
        for version, o in outcomes
    ]
    assert pick_endpoints(columns, None, None) == (("4.41.2", "e4.41.2"), ("4.45.1", "e4.45.1"))


@pytest.fixture
def fake_envs(monkeypatch):
    """Replace env building and the runner by a table: version -> status (default: pass)."""
    table: dict[str, Status] = {}
    asked: list[str] = []

    def ensure_env(self, spec):
        version = spec.transformers.removeprefix("==")
        asked.append(version)
        if table.get(version) is Status.ENV_FAILED:
            return None, True, "env could not be built: no wheel"
        return Path("/nonexistent/python"), True, ""

    def run_cell(self, spec, variant, python):
        version = spec.transformers.removeprefix("==")
        status = table.get(version, Status.PASS)
        error = {"type": "ValueError", "message": "too many values to unpack", "traceback": ""}
        extra = {} if status is Status.PASS else {"phase": "generate", "error": error}
        return status, make_cell(spec.name, self.model.name, status, variant=variant, **extra), ""

    monkeypatch.setattr(Prober, "ensure_env", ensure_env)
    monkeypatch.setattr(
        "matrix.bisect.batch.run_cells",
        lambda spec, python, pairs, gpu=None, record=(): [
            run_cell(prober, spec, variant, python) for prober, variant in pairs
        ],
    )
    return table, asked


def test_driver_writes_the_report(tmp_path, write_config, fake_envs):
    table, asked = fake_envs
    releases = [Version(v) for v in TF_RELEASES]
    table.update({v: Status.FAIL for v in TF_RELEASES[TF_RELEASES.index("4.42.0") :]})
    table["4.44.2"] = Status.ENV_FAILED
    config = load(write_config(GOOD_CONFIG))
    report = bisect(config, "qwen", results=tmp_path, cache=tmp_path, good="4.40.2", bad="4.50.3", releases=releases)
    assert (report["last_good"], report["first_bad"], report["exact"]) == ("4.41.2", "4.42.0", True)
    assert report["first_bad_error"] == {
        "phase": "generate",
        "type": "ValueError",
        "message": "too many values to unpack",
        "traceback": "",  # the fake env records none; a real one keeps its last 4000 characters
    }
    assert report["bound"] == {"range": "transformers>=4.40,<4.42", "pin": "transformers==4.41.2"}
    # The bad end is probed for its signature (given on the command line, it has no cell); the
    # good end is taken as given. One transition: ceil(log2(33)) + 1, plus that end and the skip.
    # Then the exact window's two edges once more, with the recorder on (diagnosis probes).
    assert report["candidates"] == 32 and report["probes"] - 2 == len(asked) - 2 == 7 <= report["max_probes"] == 9
    assert report["record_probes"] == 2 and asked[-2:] == ["4.41.2", "4.42.0"]
    assert asked[0] == "4.50.3" and "4.40.2" not in asked[:-2]
    assert [(w["from"], w["to"], w["outcome"]) for w in report["windows"]] == [
        ("4.40.2", "4.41.2", "pass"),
        ("4.42.0", "4.50.3", "fail"),
    ]
    assert report["breaks"] == [
        {
            "last_good": "4.41.2",
            "first_bad": "4.42.0",
            "before": "pass",
            "signature": "generate ValueError: too many values to unpack",
            "error": report["first_bad_error"],
            "exact": True,
            "unresolved": [],
        }
    ]
    assert report["run"] is None and report["variants"] == {}
    assert report["env_template"]["torch"] == "==2.13.0"  # the good env's torch pin
    skipped = [o for o in report["outcomes"] if o["verdict"] == "skipped"]
    assert [o["version"] for o in skipped] == ["4.44.2"] and skipped[0]["status"] == "env-failed"
    assert json.loads((tmp_path / "bisect" / "qwen.json").read_text()) == report


def test_driver_reads_the_newest_run(tmp_path, write_config, fake_envs):
    table, _ = fake_envs
    table.update({"4.41.2": Status.FAIL, "4.41.1": Status.CRASHED})
    run = tmp_path / "runs" / "20260101T000000Z-0001"
    for env, version, status in [("tf-4.40", "4.40.2", Status.PASS), ("tf-4.42", "4.42.0", Status.FAIL)]:
        make_cell(env, "qwen", status, versions={"transformers": version}).write(run)
    config = load(write_config(GOOD_CONFIG))
    releases = [Version(v) for v in TF_RELEASES]
    report = bisect(config, "qwen", results=tmp_path, cache=tmp_path, releases=releases)
    assert (report["good"], report["bad"], report["endpoints_from"]) == ("4.40.2", "4.42.0", f"run {run.name}")
    assert (report["last_good"], report["first_bad"]) == ("4.41.0", "4.41.1")
    # A crash, the probes' failure and the run's own cell's failure are three outcomes: three
    # breaks; the failing end's line is probed to its newest patch, which (in this table) passes.
    assert [(w["from"], w["to"], w["outcome"], w.get("signature", "").split(":")[0]) for w in report["windows"]] == [
        ("4.40.2", "4.41.0", "pass", ""),
        ("4.41.1", "4.41.1", "crashed", "generate crashed ValueError"),
        ("4.41.2", "4.41.2", "fail", "generate ValueError"),
        ("4.42.0", "4.42.0", "fail", "- -"),
        ("4.42.1", "4.42.4", "pass", ""),
    ]
    assert [b["first_bad"] for b in report["breaks"]] == ["4.41.1", "4.41.2", "4.42.0"]
    assert report["run"] == run.name and (run / "_bisect-qwen.json").is_file()
    assert not (tmp_path / "bisect" / "qwen.json").exists(), "a run's bisect is that run's, not the published one"


def test_usage_mistakes_are_one_line_and_exit_2(tmp_path, write_config, capsys):
    config = load(write_config(GOOD_CONFIG))
    for argv, message in [
        (["nosuch"], "unknown model 'nosuch' (known: qwen)"),
        (["qwen"], "no runs under"),
        (["qwen", "--good", "4.42.0", "--bad", "4.40.2"], "not older than"),
        (["qwen", "--good", "four", "--bad", "4.40.2"], "not a version"),
    ]:
        assert main(argv, config=config, results=tmp_path, cache=tmp_path) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1


@pytest.mark.e2e
def test_real_bisect_finds_every_window_of_chatglm_legacy(tmp_path, fixture_cache):
    # DESIGN.md's table: generate works to 4.41.2, then fails three different ways; the shim rescues all.
    config = load(ROOT / "matrix.toml")
    report = bisect(config, "chatglm-legacy", results=tmp_path, cache=fixture_cache, good="4.40.2", bad="4.50.3")
    windows = [(w["from"], w["to"], w["outcome"], (w.get("error") or {}).get("type")) for w in report["windows"]]
    assert windows == [
        ("4.40.2", "4.41.2", "pass", None),
        ("4.42.0", "4.43.4", "fail", "ValueError"),
        ("4.44.0", "4.48.3", "fail", "TypeError"),
        ("4.49.0", "4.50.3", "fail", "AttributeError"),
    ]
    assert all(w["exact_from"] for w in report["windows"][1:])
    assert "standardize_cache_format" in report["windows"][2]["error"]["message"]
    assert (report["last_good"], report["first_bad"], report["exact"]) == ("4.41.2", "4.42.0", True)
    assert report["first_bad_error"]["phase"] == "generate"
    assert report["bound"] == {"range": "transformers>=4.40,<4.42", "pin": "transformers==4.41.2"}
    assert [(w["from"], w["to"], w["outcome"]) for w in report["variants"]["extract-past"]] == [
        ("4.40.2", "4.50.3", "pass")
    ]
    assert report["candidates"] == 32
    searched = report["probes"] - report["record_probes"]  # the recorded edges come on top
    assert report["env_builds"] <= report["probes"] and searched <= report["answers"] <= report["max_probes"]
    # Every break is recorded against the newest release that ran, 4.41.2 (in a cold cache
    # four more probes: 4.41.2, 4.42.0, 4.44.0, 4.49.0).
    assert [bool(w.get("recorded")) for w in report["windows"]] == [False, True, True, True]
    assert {w["recorded"]["last_good"]["release"] for w in report["windows"][1:]} == {"4.41.2"}
    assert report["record_probes"] in (0, 4)
    assert (
        report["windows"][1]["recorded"]["last_good"]["release"],
        report["windows"][1]["recorded"]["first_bad"]["release"],
    ) == ("4.41.2", "4.42.0")
    # The sources point at every edge (the model's code calls `_extract_past_from_model_output`,
    # whose body, signature and presence change at 4.42.0, 4.44.0 and 4.49.0), and at two that
    # do not break it (4.41.0, 4.45.0): both sides of each in one round, then the patch lines.
    assert {("4.41.2", "4.42.0"), ("4.43.4", "4.44.0"), ("4.48.3", "4.49.0")} <= {
        tuple(edge) for edge in report["pointers"]["edges"]
    }
    assert [e["pointed"] for e in report["edges"]["chatglm-legacy"]] == [True, True, True]
    assert sum(e["probes"] for e in report["edges"]["chatglm-legacy"]) <= 11
    assert searched <= 13
    by_version = {o["version"]: o for o in report["outcomes"] if o["variant"] == ""}
    assert by_version["4.42.0"]["status"] == "fail" and by_version["4.41.2"]["status"] == "pass"
    if by_version["4.42.0"]["source"] == "probed":
        cell = json.loads((tmp_path / by_version["4.42.0"]["cell"]).read_text())
        assert cell["versions"]["transformers"] == "4.42.0" and cell["variant"] == ""
    assert (tmp_path / "bisect" / "chatglm-legacy.json").is_file()
    again = bisect(config, "chatglm-legacy", results=tmp_path, cache=fixture_cache, good="4.40.2", bad="4.50.3")
    assert (again["probes"], again["env_builds"]) == (0, 0) and again["windows"] == report["windows"]
    assert again["record_probes"] == 0
