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
from tests.helpers import make_cell
from tests.test_windows import TF, _run_with, local_model  # noqa: F401  (local_model: a fixture)

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
    # The base's window at 4.44.0 is exact after a pass: its two edges, once each, recorder on.
    # The shim's window at 4.49.0 is not exact (4.48.x said nothing), nor is the base's 4.50.3
    # window (it follows a failure, no baseline that ran): nothing recorded for them.
    recorded = [(v, variant) for v, variant, on in ran if on]
    assert recorded == [("4.43.4", ""), ("4.44.0", "")]
    assert all(not on for _, _, on in ran[: -len(recorded)]), "the search's own cells never record"
    assert report["record_probes"] == 2
    windows = report["windows"]
    assert [(w["from"], "recorded" in w) for w in windows] == [("4.40.2", False), ("4.44.0", True), ("4.50.3", False)]
    assert not any("recorded" in w for w in report["variants"]["extract-past"])
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
