"""Differential evidence from recorded releases (tests/corpus/recorded/, real recorder output).

The records were taken from the corpus fixtures' base cells in real envs with the recorder on
(tests/test_corpus_differential.py re-takes them end to end); here the diff alone is judged:
the change it names, its words, its confidence, and how the diagnosis layers use it for a
bisect window that carries the records, a failing cell inside such a window, and a window of
outputs that changed with no exception.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from matrix.diagnosis import diagnose, differential
from matrix.results.aggregate import aggregate
from matrix.results.collect import Run
from probes.status import Status
from tests.helpers import make_cell
from tests.test_corpus import FIXTURES

RECORDED = Path(__file__).parent / "corpus" / "recorded"
CASES = [(n, v, want) for n, r in FIXTURES.items() for v, want in (r.get("differential") or {}).items()]


def recorded(name: str, release: str) -> dict:
    return json.loads((RECORDED / f"{name}-{release}.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize(("name", "first_bad", "want"), CASES, ids=[f"{n}-{v}" for n, v, _ in CASES])
def test_the_recorded_diff_names_what_changed(name, first_bad, want):
    good, bad = recorded(name, want["last_good"]), recorded(name, first_bad)
    found = differential.diagnose(good["recorder"], bad["recorder"], want["last_good"], first_bad, bad["error"])
    assert found is not None
    assert (found.id, found.cause, found.confidence) == (want["id"], want["cause"], want["confidence"])
    assert found.fixes[-1] == f"or pin transformers<{first_bad} ({want['last_good']} ran it)"


def test_a_cache_where_none_was_names_the_failing_line_and_a_fix_for_it():
    good, bad = recorded("cache-object", "4.53.3"), recorded("cache-object", "4.54.0")
    found = differential.diagnose(good["recorder"], bad["recorder"], "4.53.3", "4.54.0", bad["error"])
    assert found.symbol == "QuillForCausalLM.prepare_inputs_for_generation(past_key_values)"
    assert found.evidence[1] == (
        "failing line: modeling_quill.py:384 in QuillForCausalLM.prepare_inputs_for_generation: "
        "past_length = past_key_values[0][0].shape[2]"
    )
    assert "get_seq_length()" in found.fixes[0]


def test_a_config_value_is_read_where_the_model_read_it():
    good, bad = recorded("config-value", "4.57.6"), recorded("config-value", "5.0.0")
    found = differential.diagnose(good["recorder"], bad["recorder"], "4.57.6", "5.0.0", bad["error"])
    assert found.evidence[0].startswith("config.rope_scaling read by modeling_sable.py: 4.57.6 None, 5.0.0 {")
    assert "in SableAttention.__init__: scaling_type = config.rope_scaling" in found.evidence[1]
    # the Auto factories read the config too; they are transformers' code, never the model's
    assert not any("auto_factory" in line for line in found.evidence)


def test_changed_outputs_are_explained_by_the_loaded_state():
    good, bad = recorded("custom-load", "4.57.6"), recorded("custom-load", "5.0.0")
    found = differential.diagnose(good["recorder"], bad["recorder"], "4.57.6", "5.0.0", None)
    assert found.evidence[1].startswith("16 of 21 loaded tensors the same way: lm_head.weight, ")
    assert good["tokens"] != bad["tokens"]


def test_records_without_a_difference_say_nothing():
    good = recorded("config-value", "4.57.6")
    assert differential.diagnose(good["recorder"], good["recorder"], "4.57.6", "4.57.6", None) is None
    assert differential.from_window({"recorded": {"last_good": {"release": "1"}}}, None) is None


def window_report(name: str, last_good: str, first_bad: str, error: dict | None) -> dict:
    good, bad = recorded(name, last_good), recorded(name, first_bad)
    broken = {"from": first_bad, "to": first_bad, "outcome": "outputs differ" if error is None else "fail"}
    broken |= {"exact_from": True, "error": error, "signature": "x"}
    broken["recorded"] = {
        "last_good": {"release": last_good, "recorder": good["recorder"]},
        "first_bad": {"release": first_bad, "recorder": bad["recorder"]},
    }
    return {"windows": [{"from": "4.40.2", "to": last_good, "outcome": "pass"}, broken]}


def matrix_of(cells, versions):
    envs = {env: {"name": env, "packages": {"transformers": version}} for env, version in versions.items()}
    return aggregate(Run(Path("runs/r1"), envs, cells, list(dict.fromkeys(c.model for c in cells))))


def test_a_window_with_records_is_diagnosed_from_them_before_the_traceback():
    bad = recorded("cache-object", "4.54.0")
    error = {**bad["error"], "phase": "generate"}
    report = window_report("cache-object", "4.53.3", "4.54.0", error)
    matrix = matrix_of([make_cell("old", "cache-object", Status.PASS)], {"old": "4.41.2"})
    diagnose(matrix, [], {"cache-object": report})
    found = report["windows"][1]["diagnosis"]
    assert found["source"] == "differential" and found["introduced_in"] == "4.54.0" and found["exact"]
    assert found["id"] == "changed argument: QuillForCausalLM.prepare_inputs_for_generation(past_key_values)"


def test_a_window_of_changed_outputs_gets_its_cause():
    report = window_report("buffer-uninit", "4.57.6", "5.0.0", None)
    matrix = matrix_of([make_cell("old", "buffer-uninit", Status.PASS)], {"old": "4.41.2"})
    diagnose(matrix, [], {"buffer-uninit": report})
    assert report["windows"][1]["diagnosis"]["id"] == "non-persistent buffer not what __init__ computes: model.alibi"


def test_a_failing_cell_inside_a_recorded_window_takes_the_differential_diagnosis():
    bad = recorded("cache-object", "4.54.0")
    error = {key: bad["error"][key] for key in ("type", "message", "traceback")}
    cells = [
        make_cell("a", "cache-object", Status.PASS),
        make_cell("b", "cache-object", Status.FAIL, phase="generate", error=error),
    ]
    matrix = matrix_of(cells, {"a": "4.53.3", "b": "4.54.0"})
    diagnose(
        matrix, [], {"cache-object": window_report("cache-object", "4.53.3", "4.54.0", {**error, "phase": "generate"})}
    )
    found = matrix.cell("b", "cache-object").diagnosis
    assert found["source"] == "differential" and found["last_good"] == "4.53.3"
    assert "generate passes DynamicCache (len 0) for past_key_values" in found["cause"]


def test_a_release_that_broke_another_way_is_no_baseline():
    report = window_report("cache-object", "4.53.3", "4.54.0", None)
    report["windows"][1]["recorded"]["last_good"]["status"] = "fail"
    assert differential.from_window(report["windows"][1], None) is None
    report["windows"][1]["recorded"]["last_good"]["status"] = "pass"
    assert differential.from_window(report["windows"][1], None) is not None


def test_a_side_is_read_from_a_recorded_cell():
    record = recorded("config-value", "5.0.0")
    cell = make_cell("tf-5.0.0", "config-value", Status.FAIL, phase="load", facts={"recorder": record["recorder"]})
    side = differential.side_of(cell, "5.0.0")
    assert side == {"release": "5.0.0", "status": "fail", "recorder": record["recorder"]}


def test_an_older_baseline_compares_but_is_neither_exact_nor_sure():
    report = window_report("custom-load", "4.57.6", "5.0.0", None)
    found = differential.from_window(report["windows"][1], None, before="4.57.6")
    assert found.exact and found.confidence == "high"
    found = differential.from_window(report["windows"][1], None, before="4.99.0")
    assert not found.exact and found.confidence == "medium"
