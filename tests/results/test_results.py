"""Cell files: round trip, atomic writes, and a loader that survives damaged files."""

from __future__ import annotations

import json

import pytest

from matrix.envs.plan import ENV_FACTS_FILE
from matrix.results.collect import CollectError, collect, newest_run
from probes.record import CellResult, write_json_atomic
from probes.status import Status
from tests.helpers import make_cell


def test_cell_round_trips_through_its_file(tmp_path):
    cell = make_cell(
        "tf-4.50",
        "glm",
        Status.FAIL,
        variant="extract-past",
        phase="generate",
        error={"type": "AttributeError", "message": "no attribute", "traceback": "tb"},
        metrics={"generate_median_s": 0.1},
        fingerprint={"tokens": [1, 2]},
    )
    path = cell.write(tmp_path)
    assert path == tmp_path / "tf-4.50" / "glm+extract-past.json"
    assert CellResult.from_dict(json.loads(path.read_text())) == cell


def test_anything_but_pass_needs_a_reason():
    with pytest.raises(ValueError, match="status fail needs a reason"):
        CellResult(env="e", model="m", variant="", status=Status.FAIL)


def test_atomic_write_leaves_no_temp_file_and_keeps_old_content_on_error(tmp_path):
    target = tmp_path / "x.json"
    write_json_atomic(target, {"a": 1})
    with pytest.raises(TypeError):
        write_json_atomic(target, {"a": object.__new__(type("Bad", (), {"__str__": None}))})
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_collect_warns_about_and_skips_damaged_files(tmp_path):
    run = tmp_path / "runs" / "r1"
    make_cell("e", "good", Status.PASS).write(run)
    (run / "e" / "torn.json").write_text('{"schema": 1, "env": "e"', encoding="utf-8")
    (run / "e" / "alien.json").write_text('{"schema": 99}', encoding="utf-8")
    (run / "e" / ENV_FACTS_FILE).write_text("{not json", encoding="utf-8")
    collected = collect(run)
    assert [c.model for c in collected.cells] == ["good"]
    assert len(collected.warnings) == 3
    assert any("torn.json" in w for w in collected.warnings)
    assert any("schema 99" in w for w in collected.warnings)


def test_collect_and_newest_run_say_what_is_missing(tmp_path):
    with pytest.raises(CollectError, match="no runs under"):
        newest_run(tmp_path)
    (tmp_path / "runs" / "20260101T000000Z-aaaa").mkdir(parents=True)
    (tmp_path / "runs" / "20260102T000000Z-bbbb").mkdir(parents=True)
    assert newest_run(tmp_path).name == "20260102T000000Z-bbbb"
    with pytest.raises(CollectError, match="holds no cell files"):
        collect(newest_run(tmp_path))
