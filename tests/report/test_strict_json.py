"""Strict JSON: no file the project writes holds NaN or Infinity (browsers' `JSON.parse`
rejects them). Non-finite floats are written as null, with a top-level `non_finite` map of
JSON pointers saying what each was, and a reader can put them back."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from matrix import history
from matrix.recommend import recommend
from matrix.report.page import page
from matrix.report.render import matrix_json
from matrix.results.aggregate import Run, aggregate
from probes.record import (
    CellResult,
    decode_non_finite,
    dumps_strict,
    encode_non_finite,
    write_json_atomic,
)
from tests.helpers import ROOT, make_cell
from tests.report.test_render import WHEN

NAN, INF = float("nan"), float("inf")
BLOB = re.compile(r'<script type="application/json" id="cells">(.*?)</script>', re.S)


def strict_loads(text: str, where: str = "") -> object:
    """`json.loads` that refuses NaN, Infinity and -Infinity (as `JSON.parse` does)."""

    def refuse(constant: str) -> object:
        raise ValueError(f"{where or 'text'} holds {constant}: not strict JSON")

    return json.loads(text, parse_constant=refuse)


def nan_cell(**extra) -> CellResult:
    return make_cell(
        "tf-4.50",
        "qwen2-tiny",
        "fail",
        phase="forward",
        error={
            "type": "NonFiniteOutputs",
            "message": "non-finite outputs in forward: 2 of 2 logits are NaN, 0 are inf",
        },
        metrics={"forward_median_s": 0.002, "tokens_per_s": INF, "odd": -INF},
        fingerprint={"forward": {"shape": [1, 2], "mean": NAN, "abs_mean": NAN}, "finite": {"forward": False}},
        **extra,
    )


def test_the_strict_parser_refuses_what_python_writes_by_default():
    with pytest.raises(ValueError, match="NaN"):
        strict_loads(json.dumps({"a": NAN}))


def test_a_cell_with_nan_metrics_and_fingerprint_is_written_strictly_and_read_back(tmp_path):
    path = nan_cell().write(tmp_path)
    text = path.read_text(encoding="utf-8")
    data = strict_loads(text, str(path))
    assert isinstance(data, dict)
    assert data["fingerprint"]["forward"]["mean"] is None and data["metrics"]["tokens_per_s"] is None
    assert data["non_finite"] == {
        "/fingerprint/forward/abs_mean": "NaN",
        "/fingerprint/forward/mean": "NaN",
        "/metrics/odd": "-Infinity",
        "/metrics/tokens_per_s": "Infinity",
    }
    back = CellResult.from_dict(data)
    assert math.isnan(back.fingerprint["forward"]["mean"])
    assert back.metrics["tokens_per_s"] == INF and back.metrics["odd"] == -INF
    assert back.metrics["forward_median_s"] == 0.002 and back.non_finite == {}
    assert back.write(tmp_path / "again").read_text(encoding="utf-8") == text


def test_a_childs_raw_result_with_the_flag_builds_a_cell(tmp_path):
    """The runner builds a cell from the child's file as read (`CellResult(**partial)`)."""
    write_json_atomic(tmp_path / "child.json", {"status": "fail", "reason": "r", "metrics": {"x": NAN}})
    partial = strict_loads((tmp_path / "child.json").read_text())
    assert isinstance(partial, dict)
    cell = CellResult(env="e", model="m", variant="", **partial)
    assert math.isnan(cell.metrics["x"]) and cell.non_finite == {}


def test_pointers_escape_slashes_and_tildes_and_reading_leaves_its_input_alone():
    data = {"a/b": {"c~d": [1.0, NAN, (2.0, -INF)]}, "ok": 1.5, "n": None}
    encoded = encode_non_finite(data)
    assert encoded["non_finite"] == {"/a~1b/c~0d/1": "NaN", "/a~1b/c~0d/2/1": "-Infinity"}
    assert encoded["a/b"]["c~d"] == [1.0, None, [2.0, None]] and encoded["n"] is None
    strict_loads(dumps_strict(encoded))
    decoded = decode_non_finite(encoded)
    assert math.isnan(decoded["a/b"]["c~d"][1]) and decoded["a/b"]["c~d"][2][1] == -INF
    assert "non_finite" not in decoded and decoded["n"] is None
    assert encoded["a/b"]["c~d"][1] is None  # the encoded copy is untouched


def test_a_damaged_flag_is_ignored_rather_than_losing_the_file():
    data = {"a": 1.0, "b": None, "non_finite": {"/a": "NaN", "/missing/x": "NaN", "/b": "bogus", "bad": "NaN"}}
    assert decode_non_finite(data) == {"a": 1.0, "b": None}


def test_non_dict_data_is_still_strict(tmp_path):
    write_json_atomic(tmp_path / "list.json", [NAN, 1.0, {"x": INF}])
    assert strict_loads((tmp_path / "list.json").read_text()) == [None, 1.0, {"x": None}]
    assert strict_loads(dumps_strict([INF])) == [None]


def test_matrix_json_history_and_page_of_a_run_with_nan_outputs_are_strict(tmp_path):
    envs = {"tf-4.40": {"packages": {"transformers": "4.40.2"}}, "tf-4.50": {"packages": {"transformers": "4.50.3"}}}
    good = make_cell("tf-4.40", "qwen2-tiny", "pass", metrics={"generate_median_s": NAN, "peak_rss_increase_mb": INF})
    matrix = aggregate(Run(Path("runs/r1"), envs, [good, nan_cell()], ["qwen2-tiny"]))
    rec = recommend(matrix)

    write_json_atomic(tmp_path / "matrix.json", matrix_json(matrix, rec, WHEN))
    data = strict_loads((tmp_path / "matrix.json").read_text(), "matrix.json")
    assert isinstance(data, dict) and data["non_finite"]

    warnings: list[str] = []
    for _ in range(2):  # the second record rewrites the first line too
        history.record(tmp_path, history.summary(matrix, rec, WHEN), {}, warnings)
    lines = (tmp_path / history.HISTORY_FILE).read_text().splitlines()
    entries = [strict_loads(line, "history.jsonl") for line in lines]
    assert len(entries) == 1 and entries[0]["non_finite"] == {
        "/cells/tf-4.40~1qwen2-tiny/latency_s": "NaN",
        "/cells/tf-4.40~1qwen2-tiny/memory_mb": "Infinity",
    }
    assert warnings == []

    blob = BLOB.search(page(matrix, rec, WHEN))
    assert blob is not None
    strict_loads(blob.group(1), "index.html")


def published_json() -> list[tuple[str, str]]:
    """(name, text) of every JSON document published under results/ (raw run folders and
    bisect probe folders are not published)."""
    results = ROOT / "results"
    found = [(str(p.relative_to(ROOT)), p.read_text(encoding="utf-8")) for p in sorted(results.glob("*.json"))]
    found += [(str(p.relative_to(ROOT)), p.read_text(encoding="utf-8")) for p in sorted(results.glob("bisect/*.json"))]
    if (results / history.HISTORY_FILE).exists():
        lines = (results / history.HISTORY_FILE).read_text(encoding="utf-8").splitlines()
        found += [(f"results/{history.HISTORY_FILE}:{n}", line) for n, line in enumerate(lines, 1) if line.strip()]
    if (results / "index.html").exists():
        blob = BLOB.search((results / "index.html").read_text(encoding="utf-8"))
        assert blob is not None, "results/index.html has no embedded cell JSON"
        found.append(("results/index.html (embedded JSON)", blob.group(1)))
    return found


def test_every_published_json_parses_strictly():
    documents = published_json()
    assert any(name == "results/matrix.json" for name, _ in documents)
    bad = []
    for name, text in documents:
        try:
            strict_loads(text, name)
        except ValueError as exc:
            bad.append(f"{name}: {exc}")
    assert bad == []
