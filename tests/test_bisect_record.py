"""The bisect's diagnosis probes: both edges of an exact window, asked again with the recorder on.

A fake runner stands in for the envs; what it hands back for a recorded cell is real recorder
output (tests/corpus/recorded/, the cache-object fixture in 4.53.3 and 4.54.0), so the window's
`recorded` is what a real bisect writes and the differential diagnosis reads it as it would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from matrix.bisect import Prober, bisect
from matrix.diagnosis import differential
from probes.status import Status
from tests.bisect.test_windows import TF, _run_with, local_model  # noqa: F401  (local_model: a fixture)
from tests.helpers import make_cell
from tests.test_corpus import corpus_models  # noqa: F401  (a fixture)

RECORDED = Path(__file__).parent / "corpus" / "recorded"


def _record(release: str) -> dict[str, Any]:
    return json.loads((RECORDED / f"cache-object-{release}.json").read_text(encoding="utf-8"))


@pytest.fixture
def recording_runner(monkeypatch):
    """Base cells fail from 4.44.0 on (the shim's from 4.49.0, its 4.48.x env cannot build):
    every cell run, with its record flag, and what the plan asked."""
    ran: list[tuple[str, str, bool]] = []
    good, bad = _record("4.53.3"), _record("4.54.0")

    def ensure_env(self, spec):
        version = spec.transformers.removeprefix("==")
        if version.startswith("4.48."):
            return None, True, "env could not be built: no wheel"
        return Path("/nonexistent/python"), True, ""

    def run_cells(spec, python, pairs, gpu=None, record=()):
        version = spec.transformers.removeprefix("==")
        flags = list(record) or [False] * len(pairs)
        found = []
        for (prober, variant), on in zip(pairs, flags, strict=True):
            ran.append((version, variant, on))
            broken = Version(version) >= Version("4.49.0" if variant else "4.44.0")
            extra: dict[str, Any] = {"phase": "generate", "error": bad["error"]} if broken else {}
            if on:  # what probes/cell.py keeps when the plan cell says `record`
                extra["facts"] = {"recorder": (bad if broken else good)["recorder"]}
            status = Status.FAIL if broken else Status.PASS
            found.append((status, make_cell(spec.name, prober.model.name, status, variant=variant, **extra), ""))
        return found

    monkeypatch.setattr(Prober, "ensure_env", ensure_env)
    monkeypatch.setattr("matrix.bisect.batch.run_cells", run_cells)
    return ran


def test_the_edges_of_exact_windows_are_recorded_once_and_cached(tmp_path, local_model, recording_runner):  # noqa: F811
    config, _ = local_model
    ran = recording_runner
    cells = [
        ("tf-4.40", "4.40.2", "", Status.PASS),
        ("tf-4.40", "4.40.2", "extract-past", Status.PASS),
        ("tf-4.50", "4.50.3", "", Status.FAIL),
        ("tf-4.50", "4.50.3", "extract-past", Status.FAIL),
    ]
    results, cache, releases = tmp_path / "results", tmp_path / "cache", [Version(v) for v in TF]
    report = bisect(
        config, "local", results=results, cache=cache, releases=releases, run_dir=_run_with(tmp_path, cells)
    )
    # Every exact window that fails is recorded with its baseline, the newest release before
    # it that ran, once each, recorder on: the base's 4.44.0 (after 4.43.4) and 4.50.3 (it
    # follows a failure: against the same 4.43.4); the shim's 4.50.3 against its 4.47.1. The
    # shim's window at 4.49.0 is not exact (4.48.x said nothing): nothing recorded for it.
    recorded = [(v, variant) for v, variant, on in ran if on]
    assert sorted(recorded) == [
        ("4.43.4", ""),
        ("4.44.0", ""),
        ("4.47.1", "extract-past"),
        ("4.50.3", ""),
        ("4.50.3", "extract-past"),
    ]
    assert all(not on for _, _, on in ran[: -len(recorded)]), "the search's own cells never record"
    assert report["record_probes"] == 5
    windows = report["windows"]
    assert [(w["from"], "recorded" in w) for w in windows] == [("4.40.2", False), ("4.44.0", True), ("4.50.3", True)]
    assert windows[2]["recorded"]["last_good"]["release"] == "4.43.4"
    shim = report["variants"]["extract-past"]
    assert [(w["from"], "recorded" in w) for w in shim] == [("4.40.2", False), ("4.49.0", False), ("4.50.3", True)]
    sides = windows[1]["recorded"]
    assert (sides["last_good"]["release"], sides["last_good"]["status"]) == ("4.43.4", "pass")
    assert (sides["first_bad"]["release"], sides["first_bad"]["status"]) == ("4.44.0", "fail")
    found = differential.from_window(windows[1], windows[1]["error"], "4.43.4")
    assert found is not None and found.source == "differential"
    assert "past_key_values" in found.id and found.confidence == "high"
    ran.clear()
    warm = bisect(
        config, "local", results=results, cache=cache, releases=releases,
        run_dir=_run_with(tmp_path, cells, "20260102T000000Z-0002"),
    )  # fmt: skip
    assert ran == [] and (warm["probes"], warm["record_probes"]) == (0, 0), "a warm rerun asks nothing"
    assert warm["windows"][1]["recorded"] == sides


@pytest.mark.e2e
def test_a_real_bisect_records_the_edges_and_the_diagnosis_names_the_changed_argument(
    tmp_path,
    corpus_models,  # noqa: F811
    fixture_cache,
):
    """cache-object over 4.53.3..4.54.0 (EXPECTED.toml's exact window) in real envs: the window
    carries both records, and the diagnosis of it comes from their diff, naming the argument.
    The envs are the shared cache's (linked in); the facts start empty, so this is a cold bisect."""
    from matrix.config import load
    from matrix.diagnosis import diagnose
    from tests.test_corpus import config_text
    from tests.test_differential import matrix_of

    cache = tmp_path / "cache"
    (cache / "bisect").mkdir(parents=True)
    (cache / "sources").symlink_to(fixture_cache / "sources", target_is_directory=True)
    for version in ("4.53.3", "4.54.0"):
        shared = fixture_cache / "bisect" / f"tf-{version}"
        if shared.is_dir():
            (cache / "bisect" / f"tf-{version}").symlink_to(shared, target_is_directory=True)
    path = tmp_path / "matrix.toml"
    path.write_text(config_text("4.53.3", {"cache-object": corpus_models["cache-object"]}), encoding="utf-8")
    config, releases = load(path), [Version("4.53.3"), Version("4.54.0")]
    ends = {"good": "4.53.3", "bad": "4.54.0", "releases": releases}
    report = bisect(config, "cache-object", results=tmp_path / "results", cache=cache, **ends)
    print(
        f"cold: {report['probes']} probes, of them {report['record_probes']} recorded in {report['record_seconds']} s"
    )
    windows = report["windows"]
    assert [(w["from"], w["outcome"]) for w in windows] == [("4.53.3", "pass"), ("4.54.0", "fail")]
    assert report["record_probes"] == 2
    sides = windows[1]["recorded"]
    assert (sides["last_good"]["release"], sides["last_good"]["status"]) == ("4.53.3", "pass")
    assert (sides["first_bad"]["release"], sides["first_bad"]["status"]) == ("4.54.0", "fail")
    assert sides["last_good"]["recorder"] and sides["first_bad"]["recorder"]
    recorded_cell = tmp_path / "results" / "bisect" / "cache-object" / "tf-4.54.0" / "recorded" / "cache-object.json"
    assert "recorder" in json.loads(recorded_cell.read_text(encoding="utf-8"))["facts"]

    matrix = matrix_of([make_cell("old", "cache-object", Status.PASS)], {"old": "4.41.2"})
    diagnose(matrix, [], {"cache-object": report})
    found = windows[1]["diagnosis"]
    assert found["source"] == "differential" and found["introduced_in"] == "4.54.0" and found["exact"]
    assert found["id"] == "changed argument: QuillForCausalLM.prepare_inputs_for_generation(past_key_values)"
    assert "DynamicCache" in found["cause"] and "None" in found["cause"]

    again = bisect(config, "cache-object", results=tmp_path / "results", cache=cache, **ends)
    assert (again["probes"], again["record_probes"]) == (0, 0), "a warm rerun asks nothing"
    assert again["windows"][1]["recorded"] == sides
