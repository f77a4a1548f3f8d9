"""The window search over fake release lines, and bisect answers as cached facts.

The search is pure (a table stands in for `probe(version) -> outcome`), so every case
asserts both the windows and what they cost. The facts are tested through `Prober` with
its env building and runner replaced: the same question is answered from the cache, and a
changed model file, release, variant or probe code asks again.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
from pathlib import Path

import pytest
from packaging.version import Version

from matrix.bisect import PASS, Prober, bisect, outcome_of, search_windows
from matrix.bisect.cache import Facts, folder_fingerprint
from matrix.config import EnvSpec, load
from matrix.results.collect import bisect_file, collect_bisects
from probes.status import Status
from tests.helpers import TWO_ENVS, make_cell

# The final, non-yanked transformers releases from 4.40.2 to 4.50.3 (4.46.0 is yanked).
MICROS = {40: [2], 41: [0, 1, 2], 42: range(5), 43: range(5), 44: range(3), 45: range(3), 46: [1, 2, 3]}
MICROS |= {47: range(2), 48: range(4), 49: [0], 50: range(4)}
TF = [f"4.{minor}.{micro}" for minor, micros in MICROS.items() for micro in micros]


def line_of(*starts: tuple[str, str | None]):
    """A fake release line: each (release, outcome) holds from that release on."""

    def truth(version: str) -> str | None:
        found = None
        for start, outcome in starts:
            if Version(version) >= Version(start):
                found = outcome
        return found

    return truth


def run(truth, known, line=TF, **options):
    asked: list[str] = []

    def probe(version: str) -> str | None:
        asked.append(version)
        return truth(version)

    return search_windows(line, known, probe, **options), asked


def spans(search) -> list[tuple[str, str, str, bool, bool]]:
    return [(w.first, w.last, w.outcome, w.exact_from, w.exact_to) for w in search.windows()]


def test_one_break():
    search, asked = run(line_of(("4.40.2", PASS), ("4.42.0", "A")), {"4.40.2": PASS, "4.50.3": "A"})
    assert spans(search) == [("4.40.2", "4.41.2", PASS, False, True), ("4.42.0", "4.50.3", "A", True, False)]
    assert [(b.last, b.first, b.exact) for b in search.breaks()] == [("4.41.2", "4.42.0", True)]
    assert "4.42.4" in asked, "the newest patch of the first bad line is probed"
    assert len(asked) == len(set(asked)) == 5 <= search.max_probes == math.ceil(math.log2(32)) + 1
    assert "4.40.2" not in asked and "4.50.3" not in asked, "known outcomes are never probed"


def test_two_different_breaks_after_one_pass():
    # The chatglm-legacy fixture's line (DESIGN.md): three failures, each its own window.
    truth = line_of(("4.40.2", PASS), ("4.42.0", "A"), ("4.44.0", "B"), ("4.49.0", "C"))
    search, asked = run(truth, {"4.40.2": PASS, "4.50.3": "C"})
    assert spans(search) == [
        ("4.40.2", "4.41.2", PASS, False, True),
        ("4.42.0", "4.43.4", "A", True, True),
        ("4.44.0", "4.48.3", "B", True, True),
        ("4.49.0", "4.50.3", "C", True, False),
    ]
    assert [(b.before, b.after) for b in search.breaks()] == [(PASS, "A"), ("A", "B"), ("B", "C")]
    assert len(asked) == 12 <= search.max_probes == 3 * 6  # the newest 4.42 and 4.44 fell in gaps anyway


def test_a_break_undone_by_a_later_patch_release_at_the_failing_end():
    # The run failed on 4.48.0; 4.48.1 fixed it: the failing end's line is probed to its newest patch.
    truth = line_of(("4.40.2", PASS), ("4.48.0", "B"), ("4.48.1", PASS))
    line = TF[: TF.index("4.48.3") + 1]
    search, asked = run(truth, {"4.40.2": PASS, "4.48.0": "B"}, line, ends=("4.40.2", "4.48.0"))
    assert spans(search) == [
        ("4.40.2", "4.47.1", PASS, False, True),
        ("4.48.0", "4.48.0", "B", True, True),
        ("4.48.1", "4.48.3", PASS, True, False),
    ]
    assert asked[-2:] == ["4.48.3", "4.48.1"] and len(asked) == 7 <= search.max_probes


def test_a_break_undone_by_a_patch_release_then_another_break():
    # 4.45.0 breaks (B), 4.45.2 fixes it, 4.49.0 breaks again (C); the run had 4.45.0.
    truth = line_of(("4.40.2", PASS), ("4.45.0", "B"), ("4.45.2", PASS), ("4.49.0", "C"))
    search, asked = run(truth, {"4.40.2": PASS, "4.45.0": "B", "4.50.3": "C"})
    assert spans(search) == [
        ("4.40.2", "4.44.2", PASS, False, True),
        ("4.45.0", "4.45.1", "B", True, True),
        ("4.45.2", "4.48.3", PASS, True, True),
        ("4.49.0", "4.50.3", "C", True, False),
    ]
    assert [(b.last, b.first, b.after) for b in search.breaks()] == [
        ("4.44.2", "4.45.0", "B"),
        ("4.48.3", "4.49.0", "C"),
    ]
    assert len(asked) == 12 <= search.max_probes


def test_a_window_no_probe_lands_in_stays_invisible():
    # The bisection assumption, stated: 4.44.0-4.44.1 fail, but every probe around passes.
    truth = line_of(("4.40.2", PASS), ("4.44.0", "B"), ("4.44.2", PASS), ("4.49.0", "C"))
    search, _ = run(truth, {"4.40.2": PASS, "4.50.3": "C"})
    assert spans(search) == [("4.40.2", "4.48.3", PASS, False, True), ("4.49.0", "4.50.3", "C", True, False)]


def test_releases_that_say_nothing_are_skipped_and_make_edges_inexact():
    truth = line_of(("4.40.2", PASS), ("4.42.0", "A"))
    search, asked = run(lambda v: None if v in ("4.42.0", "4.43.0") else truth(v), {"4.40.2": PASS, "4.50.3": "A"})
    assert spans(search) == [("4.40.2", "4.41.2", PASS, False, False), ("4.42.1", "4.50.3", "A", False, False)]
    (found,) = search.breaks()
    assert (found.last, found.first, found.exact, found.unresolved) == ("4.41.2", "4.42.1", False, ("4.42.0",))
    assert len(asked) == 5 <= search.max_probes
    # Nothing in between says anything: the edge is anywhere between the ends.
    search, asked = run(lambda v: None, {"4.40.2": PASS, "4.50.3": "A"})
    assert search.breaks()[0].unresolved == tuple(TF[1:-1]) and sorted(asked, key=Version) == TF[1:-1]


def test_unknown_ends_are_probed_first_and_the_limit_stops_the_search():
    truth = line_of(("4.40.2", PASS), ("4.42.0", "A"), ("4.44.0", "B"))
    search, asked = run(truth, {}, ends=("4.40.2", "4.50.3"))
    assert asked[:2] == ["4.40.2", "4.50.3"] and [w.outcome for w in search.windows()] == [PASS, "A", "B"]
    search, asked = run(truth, {}, ends=("4.40.2", "4.50.3"), limit=3)
    assert search.limited and len(asked) == 3
    assert not all(b.exact for b in search.breaks())


def test_candidate_edges_from_the_sources_are_probed_on_both_sides_first():
    # The chatglm-legacy line again, with the edges the releases' sources point at (one of
    # them, 4.45.0, a change the model does not trip over): the same windows, fewer probes.
    truth = line_of(("4.40.2", PASS), ("4.42.0", "A"), ("4.44.0", "B"), ("4.49.0", "C"))
    known = {"4.40.2": PASS, "4.50.3": "C"}
    blind, blind_asked = run(truth, known)
    hints = [("4.41.2", "4.42.0"), ("4.43.4", "4.44.0"), ("4.44.2", "4.45.0"), ("4.48.3", "4.49.0")]
    pointed, asked = run(truth, known, hints=hints)
    assert spans(pointed) == spans(blind)
    assert asked[:8] == [v for edge in hints for v in edge], "both sides of every candidate first"
    assert len(asked) == 9 < len(blind_asked) == 12  # eight pointed, and the newest 4.42
    assert [(e["last"], e["first"], e["pointed"]) for e in pointed.edge_costs()] == [
        ("4.41.2", "4.42.0", True),
        ("4.43.4", "4.44.0", True),
        ("4.48.3", "4.49.0", True),
    ]
    assert sum(e["probes"] for e in pointed.edge_costs()) == len(asked), "every probe is charged to one edge"
    # A wrong hint costs probes (its two, and halving from an off-centre split), never a window.
    wrong, wrong_asked = run(truth, known, hints=[("4.46.1", "4.46.2")])
    assert spans(wrong) == spans(blind) and len(wrong_asked) <= wrong.max_probes


def test_a_round_asks_every_differing_gap_at_once():
    from matrix.first_bad import start_search

    search = start_search(TF, {"4.40.2": PASS, "4.45.0": "B", "4.50.3": "C"})
    steps = search.next_probes()
    assert [why for _, why in steps] == ["gap", "gap"], "one middle per differing gap, side by side"
    assert Version(steps[0][0]) < Version("4.45.0") < Version(steps[1][0])


def test_the_sources_name_the_releases_where_what_the_model_uses_changed(tmp_path):
    from matrix.bisect.pointers import Use, changes, uses_in

    code = tmp_path / "modeling_x.py"
    code.write_text(
        "from transformers.modeling_utils import PreTrainedModel\n"
        "class M(PreTrainedModel):\n"
        "    def _update_model_kwargs_for_generation(self, outputs, kwargs):\n"
        "        return self._extract_past_from_model_output(outputs, standardize_cache_format=True)\n"
        "    def _own(self):\n        return self._own_helper()\n"
        "    def _own_helper(self):\n        return self.config.use_cache and self.config.hidden\n"
        "class XConfig:\n    def __init__(self):\n        self.hidden = 4\n"
    )
    assert uses_in([code]) == [
        Use("call", "", "_extract_past_from_model_output"),
        Use("config", "", "use_cache"),  # read, and no config class of the model sets it (`hidden` is set)
        Use("import", "transformers.modeling_utils", "PreTrainedModel"),
        Use("override", "", "_own"),
        Use("override", "", "_own_helper"),
        Use("override", "", "_update_model_kwargs_for_generation"),
    ]
    state = {v: (0 if Version(v) < Version("4.42.0") else 1 if Version(v) < Version("4.49.0") else 2) for v in TF}
    read: list[str] = []

    def state_of(version: str):
        read.append(version)
        return None if version == "4.45.1" else state[version]  # sources that cannot be had are left out

    assert changes(TF, state_of) == [("4.41.2", "4.42.0"), ("4.48.3", "4.49.0")]
    assert len(set(read)) <= 2 * (math.ceil(math.log2(len(TF))) + 1), "a binary search per change"
    assert changes(TF, lambda v: 7) == [], "a state that never changes points nowhere"


def test_what_generate_reads_from_the_models_config_without_a_fallback_is_a_use(tmp_path):
    from matrix.bisect.pointers import GENERATE_READS, Use, config_reads_without_fallback, uses_in

    # 4.55.4 asked with a fallback, 4.56.0 reads it bare (through an alias of the text config)
    assert (
        config_reads_without_fallback(
            "def __init__(self, config=None):\n"
            "    self.n = getattr(config, 'num_hidden_layers', 1)\n"
            "    self.cls = config.to_dict()\n"
        )
        == set()
    ), "a getattr with a default and a method call are no bare reads"
    assert config_reads_without_fallback(
        "    def _prepare(self, config):\n"
        "        decoder_config = config.get_text_config(decoder=True)\n"
        "        layers = [0 for _ in range(decoder_config.num_hidden_layers)]\n"
        "        return self.config.is_encoder_decoder, other.num_heads\n"
    ) == {"num_hidden_layers", "is_encoder_decoder"}
    code = tmp_path / "configuration_x.py"
    code.write_text(
        "class XConfig:\n    attribute_map = {'hidden_size': 'width'}\n    vocab_size: int = 8\n"
        "    def __init__(self):\n        self.num_layers = 2\n"
    )
    assert uses_in([code]) == [], "nothing generate reads counts for a model that does not generate"
    assert uses_in([code], generates=True) == [
        Use(GENERATE_READS, "", "attribute_map,hidden_size,num_layers,vocab_size")
    ]


@pytest.mark.parametrize("n", [3, 4, 5, 8, 13, 21])
def test_every_window_of_distinct_outcomes_is_found_exactly_within_the_bound(n):
    releases = [f"1.{i}.0" for i in range(n)]  # one release per minor line: no patch probes
    for a, b in itertools.combinations(range(1, n), 2):
        outcomes = ["p"] * a + ["x"] * (b - a) + ["y"] * (n - b)
        search, asked = run(lambda v, o=outcomes: o[releases.index(v)], {releases[0]: "p", releases[-1]: "y"}, releases)
        assert spans(search) == [
            (releases[0], releases[a - 1], "p", False, True),
            (releases[a], releases[b - 1], "x", True, True),
            (releases[b], releases[-1], "y", True, False),
        ]
        assert len(asked) <= search.max_probes
        single, asked = run(
            lambda v, a=a: "p" if releases.index(v) < a else "y", {releases[0]: "p", releases[-1]: "y"}, releases
        )
        assert len(asked) <= max(math.ceil(math.log2(n - 1)), 0) and single.breaks()[0].first == releases[a]


def test_the_bound_holds_with_skips():
    releases = [f"1.{i}.0" for i in range(24)]
    for a, b, hole in itertools.product(range(1, 24, 3), range(2, 24, 3), range(1, 23, 2)):
        if a >= b:
            continue

        def truth(v, a=a, b=b, hole=hole):
            i = releases.index(v)
            return None if i in (hole, hole + 1) else ("p" if i < a else "x" if i < b else "y")

        search, asked = run(truth, {releases[0]: "p", releases[-1]: "y"}, releases)
        assert len(asked) <= search.max_probes
        for window in search.windows():  # what a window claims at its ends is what was observed
            assert truth(window.first) == truth(window.last) == window.outcome


def test_outcome_signature_ignores_what_varies():
    def failing(message: str, **extra):
        error = {"type": "TypeError", "message": message, "traceback": ""}
        return make_cell("tf", "m", Status.FAIL, phase="generate", error=error, **extra)

    one = outcome_of(failing("f() got an unexpected keyword argument 'k' at 0x7f00aa in /a/b/c.py:12"))
    assert one == outcome_of(failing("f() got an unexpected keyword argument 'k' at 0x1234 in /x/y/z.py:99"))
    assert one != outcome_of(failing("f() got an unexpected keyword argument 'j'"))
    assert outcome_of(make_cell("tf", "m", Status.PASS)) == PASS
    assert outcome_of(make_cell("tf", "m", Status.PASS_WITH_SHIM, variant="s")) == PASS
    assert outcome_of(make_cell("tf", "m", Status.UNAVAILABLE)) is None
    assert outcome_of(make_cell("tf", "m", Status.TIMEOUT)).startswith("- timeout")  # type: ignore[union-attr]


# --- facts -----------------------------------------------------------------------------

PATH_CONFIG = (
    TWO_ENVS
    + """
[models.local]
path = "model"
task = "causal-lm"
trust_remote_code = true
shims = ["extract-past"]
"""
)


@pytest.fixture
def local_model(tmp_path, write_config):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "chatglm"}')
    (folder / "modeling_x.py").write_text("X = 1\n")
    return load(write_config(PATH_CONFIG)), folder


@pytest.fixture
def fake_runner(monkeypatch):
    """Env building and the runner replaced by a table: (version, variant) -> status (default pass)."""
    table: dict[tuple[str, str], Status] = {}
    ran: list[tuple[str, str]] = []

    def ensure_env(self, spec):
        return Path("/nonexistent/python"), True, ""

    def run_cell(self, spec, variant, python):
        version = spec.transformers.removeprefix("==")
        ran.append((version, variant))
        status = table.get((version, variant), Status.PASS)
        error = {"type": "ValueError", "message": f"broken since {version[:4]}", "traceback": ""}
        extra = {} if status.passed else {"phase": "generate", "error": error}
        return status, make_cell(spec.name, self.model.name, status, variant=variant, **extra), ""

    monkeypatch.setattr(Prober, "ensure_env", ensure_env)
    monkeypatch.setattr(
        "matrix.bisect.batch.run_cells",
        lambda spec, python, pairs, gpu=None, record=(): [
            run_cell(prober, spec, variant, python) for prober, variant in pairs
        ],
    )
    return table, ran


def test_same_inputs_hit_and_a_changed_model_file_asks_again(tmp_path, local_model, fake_runner, monkeypatch):
    config, folder = local_model
    table, ran = fake_runner
    table[("4.45.0", "")] = Status.FAIL
    model, env = config.models[0], config.envs[0]

    def prober() -> Prober:
        return Prober(config, model, env, tmp_path / "results", tmp_path / "cache")

    first = prober()
    assert first.answer("4.45.0") == "generate ValueError: broken since N"
    assert first.answer("4.44.0") == PASS and first.probes == 2 and len(ran) == 2
    again = prober()  # a new process, same inputs: the facts answer
    assert again.answer("4.45.0") == "generate ValueError: broken since N" and again.answer("4.44.0") == PASS
    assert (again.probes, again.builds, len(ran)) == (0, 0, 2)
    assert again.outcomes[("", "4.45.0")]["source"] == "cached"
    assert prober().answer("4.45.0", "extract-past") == PASS and len(ran) == 3, "another variant is another question"
    (folder / "modeling_x.py").write_text("X = 22\n")
    changed = prober()
    assert changed.answer("4.45.0") is not None and changed.probes == 1 and len(ran) == 4
    monkeypatch.setattr("matrix.bisect.probe.probe_code_version", lambda: "other")
    assert prober().answer("4.45.0") is not None and len(ran) == 5, "changed probe code asks again"


def test_the_key_covers_every_input(tmp_path, local_model):
    config, _ = local_model
    model, env = config.models[0], config.envs[0]
    prober = Prober(config, model, env, tmp_path / "results", tmp_path / "cache")
    spec = EnvSpec(name="tf-4.45.0", transformers="==4.45.0", torch="==2.13.0")
    base = prober.inputs(spec, "")
    assert base is not None and Facts.key(base) == Facts.key(prober.inputs(spec, ""))  # type: ignore[arg-type]
    others = [
        prober.inputs(spec, "extract-past"),
        prober.inputs(EnvSpec(name="tf-4.45.1", transformers="==4.45.1", torch="==2.13.0"), ""),
        prober.inputs(EnvSpec(name="tf-4.45.0", transformers="==4.45.0", torch="==2.6.0"), ""),
        prober.inputs(EnvSpec(name="tf-4.45.0", transformers="==4.45.0", torch="==2.13.0", python="3.12"), ""),
        {**base, "asked": {**base["asked"], "max_new_tokens": 99}},  # the model asked to do something else
    ]
    assert len({Facts.key(base), *(Facts.key(o) for o in others if o)}) == 6


def test_folder_fingerprint_hashes_contents_not_times(tmp_path):
    one = tmp_path / "one"
    one.mkdir()
    (one / "weights.bin").write_bytes(b"\0" * 1000)
    (one / "sub").mkdir()
    (one / "sub" / "code.py").write_text("a = 1\n")
    (one / ".lock").write_text("ignored")
    cache = tmp_path / "cache"
    fingerprint = folder_fingerprint(one, cache)
    other = tmp_path / "other"
    shutil.copytree(one, other)  # new mtimes, same bytes: another machine's copy
    os.utime(other / "weights.bin", (1, 1))
    assert folder_fingerprint(other, cache) == fingerprint == folder_fingerprint(one, cache)
    (other / "weights.bin").write_bytes(b"\1" * 1000)  # same size, new bytes
    assert folder_fingerprint(other, cache) != fingerprint
    stored = next((cache / "bisect" / "hashes").glob("*.json"))
    assert json.loads(stored.read_text())["files"]


def _run_with(tmp_path: Path, cells: list[tuple[str, str, str, Status]], name: str = "20260101T000000Z-0001") -> Path:
    run = tmp_path / "results" / "runs" / name
    for env, version, variant, status in cells:
        extra = {} if status.passed else {"phase": "generate", "error": {"type": "ValueError", "message": "m"}}
        cell = make_cell(env, "local", status, variant=variant, versions={"transformers": version}, **extra)
        cell.write(run)
    return run


def test_a_warm_rerun_makes_no_probe_and_the_report_belongs_to_its_run(tmp_path, local_model, fake_runner):
    config, _ = local_model
    table, ran = fake_runner
    table.update({(v, ""): Status.FAIL for v in TF if Version(v) >= Version("4.44.0")})
    table.update({(v, "extract-past"): Status.FAIL for v in TF if Version(v) >= Version("4.49.0")})
    cells = [
        ("tf-4.40", "4.40.2", "", Status.PASS),
        ("tf-4.40", "4.40.2", "extract-past", Status.PASS),
        ("tf-4.50", "4.50.3", "", Status.FAIL),
        ("tf-4.50", "4.50.3", "extract-past", Status.FAIL),
    ]
    run = _run_with(tmp_path, cells)
    results, cache, releases = tmp_path / "results", tmp_path / "cache", [Version(v) for v in TF]
    report = bisect(config, "local", results=results, cache=cache, releases=releases, run_dir=run)
    # The run's 4.50.3 cell failed with another message than the probes: two failures, two breaks.
    assert [(w["from"], w["to"], w["outcome"]) for w in report["windows"]] == [
        ("4.40.2", "4.43.4", "pass"),
        ("4.44.0", "4.50.2", "fail"),
        ("4.50.3", "4.50.3", "fail"),
    ]
    assert (report["last_good"], report["first_bad"], report["exact"]) == ("4.43.4", "4.44.0", True)
    assert report["bound"] == {"range": "transformers>=4.40,<4.44", "pin": "transformers==4.43.4"}
    assert [w["from"] for w in report["variants"]["extract-past"]] == ["4.40.2", "4.49.0", "4.50.3"]
    assert report["first_bad_error"]["message"] == "broken since 4.44" and report["bad_error"]["message"] == "m"
    # The first release of each exact window that fails and the newest release before it
    # that ran (base 4.43.4/4.44.0, then 4.50.3 against the same 4.43.4; the shim's
    # 4.48.3/4.49.0 and 4.50.3), once more with the recorder on; the passing window gets none.
    assert report["probes"] == len(ran) == report["answers"] + report["record_probes"]
    assert report["answers"] <= report["max_probes"] and report["record_probes"] == 6
    assert sorted(ran[-6:]) == [
        ("4.43.4", ""),
        ("4.44.0", ""),
        ("4.48.3", "extract-past"),
        ("4.49.0", "extract-past"),
        ("4.50.3", ""),
        ("4.50.3", "extract-past"),
    ]
    assert report["windows"][1]["recorded"]["last_good"]["release"] == "4.43.4"
    assert report["windows"][2]["recorded"]["last_good"]["release"] == "4.43.4"
    assert "recorded" not in report["windows"][0]
    assert report["run"] == run.name and json.loads(bisect_file(run, "local").read_text()) == report
    assert not (results / "bisect" / "local.json").exists()
    assert collect_bisects(run) == {"local": report}

    warm = _run_with(tmp_path, cells, "20260102T000000Z-0002")
    again = bisect(config, "local", results=results, cache=cache, releases=releases, run_dir=warm)
    assert (again["probes"], again["env_builds"], again["cached"]) == (0, 0, report["answers"])
    assert again["record_probes"] == 0 and again["windows"][1]["recorded"] == report["windows"][1]["recorded"]
    assert again["windows"] == report["windows"] and again["variants"] == report["variants"]
    assert collect_bisects(warm)["local"]["run"] == warm.name
    # A report of another run copied in is not this run's: never shown.
    bisect_file(warm, "other").write_text(json.dumps({**report, "model": "other"}))
    assert list(collect_bisects(warm)) == ["local"]
    assert collect_bisects(tmp_path / "results" / "runs" / "nosuch") == {}


def test_outputs_that_change_are_a_window_of_their_own(tmp_path, local_model, monkeypatch):
    """Every release passes, but the greedy tokens change from 4.45.0 on: the bisect finds that
    edge like a failure's ('outputs differ'), from the run's cells and probes alike, warm too."""
    config, _ = local_model
    ran: list[str] = []

    noisy: list[int] = []  # set: every probe from 4.45.0 on draws new tokens

    def tokens(version: str) -> list[int]:
        if Version(version) < Version("4.45.0"):
            return [1, 2, 3, 4]
        return [1, 2, 9, 9 + len(ran)] if noisy else [1, 2, 9, 9]

    def run_cells(spec, python, pairs, gpu=None, record=()):
        version = spec.transformers.removeprefix("==")
        ran.append(version)
        assert len({(p.model.name, v) for p, v in pairs}) == len(pairs), "one file per cell in a runner"
        assert not record or len(record) == len(pairs)
        found = []
        for prober, variant in pairs:
            cell = make_cell(spec.name, prober.model.name, Status.PASS, variant=variant)
            cell.fingerprint = {"tokens": tokens(version)}
            found.append((Status.PASS, cell, ""))
        return found

    monkeypatch.setattr(Prober, "ensure_env", lambda self, spec: (Path("/nonexistent/python"), True, ""))
    monkeypatch.setattr("matrix.bisect.batch.run_cells", run_cells)
    run = tmp_path / "results" / "runs" / "20260101T000000Z-0001"
    for env, version in (("tf-4.40", "4.40.2"), ("tf-4.50", "4.50.3")):
        for variant in ("", "extract-past"):
            cell = make_cell(env, "local", Status.PASS, variant=variant, versions={"transformers": version})
            cell.fingerprint = {"tokens": tokens(version)}
            cell.write(run)
    results, cache, releases = tmp_path / "results", tmp_path / "cache", [Version(v) for v in TF]
    report = bisect(config, "local", results=results, cache=cache, releases=releases, run_dir=run)
    assert [(w["from"], w["to"], w["outcome"]) for w in report["windows"]] == [
        ("4.40.2", "4.44.2", "pass"),
        ("4.45.0", "4.50.3", "outputs differ"),
    ]
    assert report["windows"][1]["signature"] == "outputs differ: generated tokens" and report["exact"]
    assert report["bound"] == {"range": "transformers>=4.40,<4.45", "pin": "transformers==4.44.2"}
    assert [w["outcome"] for w in report["variants"]["extract-past"]] == ["pass", "outputs differ"]
    # The last round reruns 4.45.0 and records 4.44.2 and 4.45.0 (both lanes): the rerun and the
    # recorded run of the same cell go to two runners of 4.45.0, side by side in that round.
    assert report["record_probes"] == 4 and report["windows"][1]["recorded"]["first_bad"]["release"] == "4.45.0"
    assert sorted(ran[-3:]) == ["4.44.2", "4.45.0", "4.45.0"]
    probed = len(ran)
    warm = bisect(config, "local", results=results, cache=cache, releases=releases, run_dir=run)
    assert len(ran) == probed and warm["probes"] == 0, "the fact keeps the outputs: judged again, not probed"
    assert warm["windows"] == report["windows"]
    assert report["windows"][1]["deterministic"] is True, "its first release, run again, gave the same tokens"
    noisy.append(1)
    again = bisect(config, "local", results=results, cache=tmp_path / "cache-2", releases=releases, run_dir=run)
    assert again["windows"][1]["outcome"] == "outputs differ" and again["windows"][1]["deterministic"] is False


def test_a_fact_in_the_format_before_the_rounds_is_still_an_answer(tmp_path, local_model, fake_runner):
    """Facts written before the batch runner (no `fingerprint` key) answer as before: no probe."""
    config, _ = local_model
    _, ran = fake_runner
    model, env = config.models[0], config.envs[0]
    prober = Prober(config, model, env, tmp_path / "results", tmp_path / "cache")
    inputs = prober.inputs(EnvSpec(name="tf-4.45.0", transformers="==4.45.0", torch="==2.13.0"), "")
    assert inputs is not None
    old = {"outcome": "generate ValueError: old", "status": "fail", "error": None, "reason": "r", "cell": None}
    Facts(tmp_path / "cache").put(Facts.key(inputs), inputs, {**old, "env": "built"})
    assert prober.answer("4.45.0") == "generate ValueError: old"
    assert (prober.probes, ran) == (0, []) and prober.outcomes[("", "4.45.0")]["source"] == "cached"
