"""The newest release that runs every model: the search over windows (pure), its confirm step
(with a fake prober), and what the report makes of it (lead lines, blockers, pins)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from matrix.config import load
from matrix.newest import blockers as upgrade
from matrix.newest import confirm
from matrix.newest import search as newest
from matrix.newest.search import PASS, OpenQuestion, PinCandidate, Track, next_step
from matrix.recommend import recommend
from matrix.report.page import page
from matrix.report.render import markdown, pins, terminal
from matrix.results.aggregate import aggregate
from matrix.results.collect import Run, collect_newest, newest_file
from probes.record import write_json_atomic
from probes.status import Status
from tests.helpers import TWO_ENVS, make_cell

LINE = [
    "4.40.0", "4.40.1", "4.41.0", "4.42.0", "4.42.1", "4.42.2", "4.43.0", "4.44.0",
    "4.45.0", "4.45.1", "4.46.0", "4.47.0", "4.48.0", "4.49.0", "4.50.0",
]  # fmt: skip
ENVS = ("4.40.0", "4.50.0")  # the run's envs: everything else is known only from windows, or not at all
BROKE = "generate ValueError: too many values to unpack (expected N)"


def window(first: str, last: str, outcome: str = PASS, **extra: Any) -> dict[str, Any]:
    entry = {"from": first, "to": last, "outcome": "pass" if outcome == PASS else "fail", "exact_from": True}
    if outcome != PASS:
        entry.update(
            signature=outcome, error={"phase": "generate", "type": outcome.split()[1].rstrip(":"), "message": "m"}
        )
    return {**entry, **extra}


def cells_at(*outcomes: str, envs: tuple[str, ...] = ENVS) -> dict[str, dict[str, Any]]:
    """Points as the run's cells give them, one per env."""
    return {env: {"outcome": o, "source": "cell", "env": f"tf-{env}"} for env, o in zip(envs, outcomes, strict=True)}


def passes_everywhere() -> Track:
    return Track(points=cells_at(PASS, PASS))


def test_two_models_whose_windows_overlap_partly_meet_on_a_release_no_env_names():
    tracks = {
        "old": {"": Track([window("4.40.0", "4.45.1"), window("4.46.0", "4.50.0", BROKE)], cells_at(PASS, BROKE))},
        "new": {"": Track([window("4.40.0", "4.42.2", BROKE), window("4.43.0", "4.50.0")], cells_at(BROKE, PASS))},
        "plain": {"": passes_everywhere()},
    }
    step = next_step(LINE, tracks, ["old", "new", "plain"], shims=False)
    assert step == PinCandidate(
        "4.45.1", {"old": "", "new": "", "plain": ""}, {"old": "window", "new": "window", "plain": "assumed"}
    )
    assert step.release not in ENVS


def test_a_patch_release_that_undoes_a_break_is_the_answer():
    recovered = [
        window("4.40.0", "4.41.0"),
        window("4.42.0", "4.42.1", BROKE),
        window("4.42.2", "4.42.2"),
        window("4.43.0", "4.50.0", "load TypeError: x"),
    ]
    tracks = {
        "patched": {"": Track(recovered, cells_at(PASS, "load TypeError: x"))},
        "plain": {"": passes_everywhere()},
    }
    step = next_step(LINE, tracks, ["patched", "plain"], shims=False)
    assert isinstance(step, PinCandidate) and step.release == "4.42.2"


def shim_tracks() -> newest.Tracks:
    return {
        "legacy": {
            "": Track([window("4.40.0", "4.41.0"), window("4.42.0", "4.50.0", BROKE)], cells_at(PASS, BROKE)),
            "fix": Track([window("4.40.0", "4.48.0"), window("4.49.0", "4.50.0", "forward AttributeError: y")]),
            "fix+more": Track([window("4.40.0", "4.50.0")]),
        },
        "modern": {"": Track([window("4.40.0", "4.42.2", BROKE), window("4.43.0", "4.50.0")], cells_at(BROKE, PASS))},
    }


def test_only_shims_make_one_release_possible_and_the_fewest_shims_win():
    tracks = shim_tracks()
    assert next_step(LINE, tracks, ["legacy", "modern"], shims=False) is None
    step = next_step(LINE, tracks, ["legacy", "modern"], shims=True)
    # fix+more runs legacy on every release, but 4.50.0 with two shims beats nothing only where one is not enough
    assert step == PinCandidate(
        "4.50.0", {"legacy": "fix+more", "modern": ""}, {"legacy": "window", "modern": "observed"}
    )
    del tracks["legacy"]["fix+more"]
    step = next_step(LINE, tracks, ["legacy", "modern"], shims=True)
    assert (
        isinstance(step, PinCandidate) and step.release == "4.48.0" and step.choices == {"legacy": "fix", "modern": ""}
    )
    assert upgrade.shim_words(step.choices) == "shim fix for legacy"


def test_no_single_release_serves_everyone():
    tracks = {
        "old": {"": Track([window("4.40.0", "4.41.0"), window("4.42.0", "4.50.0", BROKE)], cells_at(PASS, BROKE))},
        "new": {"": Track([window("4.40.0", "4.44.0", BROKE), window("4.45.0", "4.50.0")], cells_at(BROKE, PASS))},
        "never": {"": Track(points=cells_at(BROKE, "load OSError: z"))},
    }
    for shims in (False, True):
        assert next_step(LINE, tracks, ["old", "new"], shims=shims) is None
    assert not newest.runs_at_all(tracks, "never", shims=True), "a model failing everywhere is never served"
    data = {"models": ["old", "new"], "range": [LINE[0], LINE[-1]], "line": LINE, "tracks": _dicts(tracks)}
    assert upgrade.lead_lines(data)[0] == "No single release from 4.40.0 to 4.50.0 runs all 2 models."
    rows = {row["model"]: row for row in upgrade.blockers(data, {}, ["old", "new", "never"])}
    assert rows["old"]["as_is"] == "4.41.0" and rows["old"]["blocked_by"].startswith("4.42.0: ValueError in generate")
    assert rows["new"]["as_is"] == "4.50.0" and rows["new"]["blocked_by"] == "nothing up to 4.50.0"
    assert rows["never"]["as_is"] == "none" and rows["never"]["blocked_by"].startswith("runs as is on no release")


def test_what_no_window_decides_is_a_question_and_agreeing_neighbours_are_assumed():
    tracks = {"unbisected": {"": Track(points=cells_at(PASS, BROKE))}, "plain": {"": passes_everywhere()}}
    step = next_step(LINE, tracks, ["unbisected", "plain"], shims=False)
    assert step == OpenQuestion("unbisected", "", "4.49.0", "4.40.0", "4.50.0")
    assert newest.verdict(tracks["plain"][""], "4.45.0").how == "assumed"
    assert next_step(LINE, tracks, ["plain"], shims=False, excluded={"4.50.0"}, floor="4.45.0") == PinCandidate(
        "4.49.0", {"plain": ""}, {"plain": "assumed"}
    )


def test_the_build_bound_counts_every_break_found():
    tracks = shim_tracks()
    assert newest.breaks_found(tracks) == 2  # legacy at 4.42.0, legacy+fix at 4.49.0; modern only recovers
    assert newest.build_bound(2, len(LINE)) == 2 * (4 + 1) + 1
    assert newest.build_bound(0, 106) == 1


def _dicts(tracks: newest.Tracks) -> dict[str, Any]:
    return {m: {v: t.to_dict() for v, t in variants.items()} for m, variants in tracks.items()}


def test_blockers_use_the_run_diagnosis_of_the_same_signature_else_a_shim_the_evidence_shows():
    tracks = shim_tracks()
    tracks["legacy"][""].points["4.50.0"]["outcome"] = BROKE  # the run's own cell failed just like the window
    answer = {"release": "4.41.0", "choices": {"legacy": "", "modern": ""}}
    data = {"models": ["legacy"], "line": LINE, "range": [LINE[0], LINE[-1]], "tracks": _dicts(tracks), "as_is": answer}
    diagnosis = {"id": "extract-past-api", "introduced_in": "4.42.0", "fixes": ["shim fix (its cell passes)", "b"]}
    rows = upgrade.blockers(data, {("tf-4.50.0", "legacy", ""): diagnosis}, ["legacy"])
    assert rows[0]["blocked_by"] == "4.42.0: extract-past-api (since 4.42.0); fix: shim fix (its cell passes)"
    assert rows[0]["with_shims"] == "4.50.0 (fix+more)"
    rows = upgrade.blockers(data, {}, ["legacy"])
    assert rows[0]["blocked_by"] == "4.42.0: ValueError in generate: m; fix: shim fix (runs it through 4.48.0)"
    # A break no cell saw, explained from its bisect window: named, the evidence's shim first.
    window = {"id": "pair-change", "introduced_in": "4.42.0", "fixes": ["pin transformers<4.42"]}
    rows = upgrade.blockers(data, {}, ["legacy"], {("legacy", "", BROKE): window})
    assert rows[0]["blocked_by"] == "4.42.0: pair-change (since 4.42.0); fix: shim fix (runs it through 4.48.0)"


# The confirm step, with a fake prober: the truth differs from what the evidence assumes.


class FakeProber:
    """Answers from `TRUTH` (model, variant) -> release -> outcome; an env is built once per release."""

    truth: dict[tuple[str, str], dict[str, str]] = {}
    built: set[str] = set()
    asked: list[tuple[str, str, str]] = []

    def __init__(self, config, model, template, results, cache, reference=None) -> None:
        self.model, self.template = model, template
        self.outcomes: dict[tuple[str, str], dict[str, Any]] = {}
        self.builds = self.probes = 0

    def answer(self, version: str, variant: str = "") -> str | None:
        self.asked.append((self.model.name, variant, version))
        if version not in self.built:
            self.built.add(version)
            self.builds += 1
        self.probes += 1
        outcome = self.truth.get((self.model.name, variant), {}).get(version, PASS)
        passed = outcome == PASS or outcome.startswith("outputs differ")  # runs, other outputs: no error
        error = None if passed else {"phase": "load", "type": "ValueError", "message": "no"}
        self.outcomes[(variant, version)] = {"outcome": outcome, "error": error, "source": "probed", "cell": None}
        return outcome

    def ensure_env(self, spec):
        return Path("/no/python"), False, ""


CONFIG = (
    """
[settings]
search_releases = true
max_release_builds = {limit}
"""
    + TWO_ENVS
    + """
[models.plain]
fixture = "qwen2-tiny"
task = "causal-lm"

[models.legacy]
fixture = "qwen2-tiny"
task = "causal-lm"
"""
)


@pytest.fixture
def fake(monkeypatch, write_config):
    FakeProber.truth, FakeProber.built, FakeProber.asked = {}, set(), []
    monkeypatch.setattr(confirm, "Prober", FakeProber)
    monkeypatch.setattr(confirm, "answer_many", lambda asks, jobs: [p.answer(r, v) for p, r, v in asks])
    monkeypatch.setattr(confirm, "freeze", lambda python: {"transformers": "frozen", "torch": "2.13.0+cpu"})

    def make(limit: int = 20, legacy_at_50: str = "fail") -> confirm.ReleaseSearch:
        config = load(write_config(CONFIG.format(limit=limit)))
        envs = {
            "tf-4.40": {"packages": {"transformers": "4.40.0", "torch": "2.13.0"}},
            "tf-4.50": {"packages": {"transformers": "4.50.0", "torch": "2.13.0"}},
        }
        failed = {
            "phase": "generate",
            "error": {"type": "ValueError", "message": "too many values to unpack (expected 2)"},
        }
        cells = [
            make_cell("tf-4.40", "plain", "pass"),
            make_cell("tf-4.50", "plain", "pass"),
            make_cell("tf-4.40", "legacy", "pass"),
            make_cell("tf-4.50", "legacy", legacy_at_50, **(failed if legacy_at_50 == "fail" else {})),
        ]
        matrix = aggregate(Run(Path("runs/r1"), envs, cells, ["plain", "legacy"]))
        bisects = {"legacy": {"windows": [window("4.40.0", "4.45.1"), window("4.46.0", "4.50.0", BROKE)]}}
        tracks = confirm.tracks_of(matrix, bisects, config.settings.to_dict(), ["plain", "legacy"])
        return confirm.ReleaseSearch(config, matrix, tracks, LINE, Path("results"), Path(".cache"))

    return make


def test_a_failed_confirm_excludes_the_release_and_the_search_settles_the_gap_it_opens(fake):
    search = fake()
    FakeProber.truth[("plain", "")] = {r: "load ValueError: no" for r in ("4.45.0", "4.45.1", "4.46.0", "4.47.0")}
    answer = confirm.find(search, ["plain", "legacy"], shims=False, floor=None)
    assert answer is not None and answer["release"] == "4.44.0"
    assert search.excluded[0] == {"release": "4.45.1", "mode": "as is", "why": "plain: ValueError in load"}
    assert answer["confirm"]["legacy"] == {"variant": "", "status": "pass", "source": "probe", "cell": None}
    assert answer["packages"]["transformers"] == "frozen"
    assert answer["env"].startswith("tf-4.44.0 (tf-4.40's torch")
    gap = [release for model, _, release in FakeProber.asked if model == "plain"][1:]
    assert len(gap) <= 4, f"binary search of the gap 4.40.0-4.45.1, not a walk: {gap}"
    bound, limit = search.limit()
    assert search.builds <= limit <= bound


def test_a_release_the_run_has_is_confirmed_by_its_own_cells(fake):
    search = fake(legacy_at_50="pass")
    search.tracks["legacy"][""].windows = []
    answer = confirm.find(search, ["plain", "legacy"], shims=False, floor=None)
    assert answer is not None and answer["release"] == "4.50.0" and not FakeProber.asked
    assert {c["source"] for c in answer["confirm"].values()} == {"run cell"} and answer["env"] == "tf-4.50"
    assert answer["packages"] == {"torch": "2.13.0", "transformers": "4.50.0"}


def test_a_release_where_a_model_runs_with_other_outputs_is_never_the_pin(fake):
    # The confirm probe of "plain" on 4.45.1 passes, but its outputs are not the reference's
    # (the prober judges it: "outputs differ"): it runs there, and is still no pin.
    search = fake()
    FakeProber.truth[("plain", "")] = {"4.45.1": "outputs differ: generated tokens"}
    answer = confirm.find(search, ["plain", "legacy"], shims=False, floor=None)
    assert answer is not None and answer["release"] == "4.45.0"
    why = "plain: outputs differ: generated tokens"
    assert search.excluded[0] == {"release": "4.45.1", "mode": "as is", "why": why}
    # A run cell that passes with drifting outputs is no passing point of the track either.
    search = fake(legacy_at_50="pass")
    search.tracks["legacy"][""].windows = []
    drifting = search.matrix.cell("tf-4.50", "plain", "")
    assert drifting is not None
    drifting.drift = {"differs": True, "detail": "generated tokens differ from tf-4.40 (3/8 equal)"}
    tracks = confirm.tracks_of(search.matrix, {}, {}, ["plain", "legacy"])
    assert tracks["plain"][""].points["4.50.0"]["outcome"] == "outputs differ: generated tokens"


def test_the_search_stops_at_its_build_limit(fake):
    search = fake(limit=1)
    FakeProber.truth[("plain", "")] = {"4.45.1": "load ValueError: no"}
    assert confirm.find(search, ["plain", "legacy"], shims=False, floor=None) is None
    assert search.limited and search.builds == 1


# What the report makes of it.


def search_record(run: str = "r1") -> dict[str, Any]:
    tracks = shim_tracks()
    del tracks["legacy"]["fix+more"]
    packages = {"transformers": "4.41.0", "torch": "2.13.0+cpu"}
    return {
        "schema": 1,
        "run": run,
        "line": LINE,
        "range": [LINE[0], LINE[-1]],
        "models": ["legacy", "modern"],
        "not_bisected": [],
        "tracks": _dicts(tracks),
        "as_is": None,
        "with_shims": {
            "release": "4.48.0",
            "choices": {"legacy": "fix", "modern": ""},
            "confirm": {},
            "env": "tf-4.48.0",
            "packages": {**packages, "transformers": "4.48.0"},
        },
        "excluded": [],
        "builds": 1,
        "probes": 2,
        "bound": 16,
        "limit": 16,
    }


def shim_run():
    envs = {
        "tf-4.40": {"packages": {"transformers": "4.40.0", "torch": "2.13.0+cpu"}},
        "tf-4.50": {"packages": {"transformers": "4.50.0", "torch": "2.13.0+cpu"}},
    }
    cells = [
        make_cell("tf-4.40", "legacy", "pass"),
        make_cell("tf-4.50", "legacy", "fail", phase="generate", error={"type": "ValueError", "message": "m"}),
        make_cell("tf-4.40", "legacy", "pass-with-shim", variant="fix"),
        make_cell("tf-4.50", "legacy", Status.FAIL, variant="fix", phase="forward", error={"type": "AttributeError"}),
        make_cell("tf-4.40", "modern", "fail", phase="load", error={"type": "ValueError", "message": "n"}),
        make_cell("tf-4.50", "modern", "pass"),
    ]
    return aggregate(Run(Path("runs/r1"), envs, cells, ["legacy", "modern"]))


def test_the_recommendation_leads_with_the_release_and_every_view_shows_the_blockers(tmp_path):
    matrix = shim_run()
    rec = recommend(matrix, newest=search_record())
    assert rec.lines[0] == (
        "Pin transformers==4.48.0: the newest release that runs all 2 models with shim fix for legacy"
        " (confirmed by a probe of each on 4.48.0)."
    )
    assert rec.lines[1].startswith("- release search over 15 releases (4.40.0 to 4.50.0): 1 env build (bound 16")
    assert "Of the run's envs, none runs every model alone; these 2 together do:" in rec.lines
    text = terminal(matrix, rec)
    assert "What blocks the upgrade past transformers==4.48.0:" in text
    legacy = next(line for line in text.partition("What blocks")[2].splitlines() if line.startswith("legacy "))
    assert (
        "4.41.0" in legacy and "4.48.0 (fix)" in legacy and "4.49.0: AttributeError in generate: m; fix: none" in legacy
    )
    body = markdown(matrix, rec, "now")
    assert "## What blocks the upgrade past transformers==4.48.0\n\n| model " in body
    html = page(matrix, rec, "now")
    assert html.index('<h1 id="headline">Pin transformers==4.48.0</h1>') < html.index('<table id="matrix">')
    assert html.index('<table id="matrix">') < html.index('<table id="blockers">')  # the answer, then the evidence
    assert "<th>newest with shims</th>" in html
    files = pins(matrix, rec)
    assert list(files)[0] == "transformers-4.48.0"
    assert "runs all 2 models with shim fix for legacy" in files["transformers-4.48.0"]
    assert "transformers==4.48.0" in files["transformers-4.48.0"].splitlines()
    assert json.loads(json.dumps(rec.to_dict()))["newest"]["with_shims"]["release"] == "4.48.0"


def test_the_report_reads_only_its_own_runs_search(tmp_path):
    run = tmp_path / "20261201T000000Z-abcd"
    run.mkdir()
    assert collect_newest(run) is None
    write_json_atomic(newest_file(run), search_record("another-run"))
    assert collect_newest(run) is None
    write_json_atomic(newest_file(run), search_record(run.name))
    assert collect_newest(run)["with_shims"]["release"] == "4.48.0"


def test_without_a_search_the_recommendation_is_as_before():
    matrix = shim_run()
    assert recommend(matrix).lines == recommend(matrix, newest=None).lines
    assert not recommend(matrix).blockers and "What blocks" not in terminal(matrix, recommend(matrix))
