"""Fixes come from the matrix's own cells: shims that passed there, never ones that failed.

The shape of real ChatGLM3 code over the release line: one shim rescues it in one env, only a
combination of two in a later one, nothing in the newest; and a model that breaks twice
gets each failure its own start.
"""

from __future__ import annotations

from pathlib import Path

from matrix.diagnosis import diagnose, load_known_breaks
from matrix.judge.drift import judge_outputs, with_judgements
from matrix.recommend import describe_windows, recommend
from matrix.results.aggregate import aggregate
from matrix.results.collect import Run
from probes.status import Status
from tests.helpers import make_cell

VERSIONS = {"tf-4.40": "4.40.2", "tf-4.44": "4.44.2", "tf-4.50": "4.50.3", "latest": "5.2.0"}
PAIR = {"type": "TypeError", "message": "GenerationMixin._extract_past_from_model_output() got an unexpected "
        "keyword argument 'standardize_cache_format'", "traceback": ""}  # fmt: skip
PAD = {"type": "TypeError", "message": "ChatGLMTokenizer._pad() got an unexpected keyword argument 'padding_side'",
       "traceback": ""}  # fmt: skip
LAYERS = {"type": "AttributeError", "message": "'ChatGLMConfig' object has no attribute 'num_hidden_layers'",
          "traceback": ""}  # fmt: skip
SHIMMED = "extract-past"
BOTH = "extract-past+pad-padding-side"


def chatglm_run():
    """Base fails from 4.44 (two different ways); one shim rescues 4.44, only both 4.50, none 5.x."""
    plan = {
        ("tf-4.40", ""): ("pass", None, None),
        ("tf-4.44", ""): ("fail", "generate", PAIR),
        ("tf-4.50", ""): ("fail", "tokenizer", PAD),
        ("latest", ""): ("fail", "generate", LAYERS),
        ("tf-4.40", SHIMMED): ("pass-with-shim", None, None),
        ("tf-4.44", SHIMMED): ("pass-with-shim", None, None),
        ("tf-4.50", SHIMMED): ("fail", "tokenizer", PAD),
        ("latest", SHIMMED): ("fail", "generate", LAYERS),
        ("tf-4.40", BOTH): ("pass-with-shim", None, None),
        ("tf-4.44", BOTH): ("pass-with-shim", None, None),
        ("tf-4.50", BOTH): ("pass-with-shim", None, None),
        ("latest", BOTH): ("fail", "generate", LAYERS),
    }
    cells = []
    for (env, variant), (status, phase, error) in plan.items():
        extra = {"phase": phase, "error": error} if error else {}
        cells.append(make_cell(env, "glm", Status(status), variant=variant, **extra))
    envs = {env: {"name": env, "packages": {"transformers": version}} for env, version in VERSIONS.items()}
    matrix = aggregate(Run(Path("runs/r1"), envs, cells, ["glm"]))
    matrix = with_judgements(matrix, judge_outputs(matrix, {}, {}))
    diagnose(matrix, load_known_breaks())
    return matrix


def test_fixes_name_only_shims_whose_cells_pass_in_that_env():
    matrix = chatglm_run()
    on_444 = matrix.cell("tf-4.44", "glm").diagnosis["fixes"]
    on_450 = matrix.cell("tf-4.50", "glm").diagnosis["fixes"]
    on_latest = matrix.cell("latest", "glm").diagnosis["fixes"]
    assert on_444[0] == "shim extract-past (its cell passes on 4.44.2)"
    assert on_450[0] == "shims extract-past + pad-padding-side together (its cell passes on 4.50.3)"
    assert not any("shim extract-past" in fix or "shim pad-padding-side" in fix for fix in on_450)
    assert on_latest[0] == f"no shim rescues it on 5.2.0 (tried: {SHIMMED}, {BOTH})"
    assert not any(fix.startswith("shim") for fix in on_latest)


def test_each_failure_gets_its_own_start_and_the_last_release_that_ran_the_model():
    matrix = chatglm_run()
    pad = matrix.cell("tf-4.50", "glm").diagnosis
    assert pad["id"] == "pad-padding-side" and pad["last_good"] == "4.40.2"
    assert "pin transformers==4.40.2 (the newest release seen running it)" in pad["fixes"]
    layers = matrix.cell("latest", "glm").diagnosis
    assert layers["introduced_in"] == "4.56.0"  # the table's release: the envs alone cannot pin it


def test_each_env_alone_names_the_shims_it_needs():
    rec = recommend(chatglm_run())
    lines = [line for line in rec.lines if line.startswith("- tf-4.")]
    assert "- tf-4.44 (4.44.2) covers all models with shim extract-past for glm" in lines
    assert "- tf-4.50 (4.50.3) covers all models with shims extract-past + pad-padding-side for glm" in lines


def test_a_break_only_the_bisect_saw_is_diagnosed_from_its_window():
    """The run's envs skip 4.42 (the pair change): its window is explained by the same
    layers, from the error and traceback end the bisect kept, with the window's bounds."""
    matrix = chatglm_run()
    unpack = {
        "type": "ValueError",
        "phase": "generate",
        "message": "too many values to unpack (expected 2)",
        "traceback": '  File "/hf/modules/transformers_modules/glm/modeling_chatglm.py", line 301, in '
        "_update_model_kwargs_for_generation\n    cache_name, cache = self._extract_past_from_model_output(\n",
    }
    windows = [
        {"from": "4.40.2", "to": "4.41.2", "outcome": "pass", "exact_from": False},
        {"from": "4.42.0", "to": "4.43.4", "outcome": "fail", "error": unpack, "exact_from": True,
         "signature": "generate ValueError: too many values to unpack (expected N)"},
        {"from": "4.44.0", "to": "4.48.3", "outcome": "fail", "error": {"type": "Weird", "phase": "generate",
         "message": "nothing any layer knows"}, "exact_from": True, "signature": "generate Weird: nothing"},
    ]  # fmt: skip
    bisects = {"glm": {"windows": windows, "variants": {}}}
    diagnose(matrix, load_known_breaks(), bisects)
    found = windows[1]["diagnosis"]
    assert (found["id"], found["source"], found["introduced_in"], found["exact"]) == (
        "extract-past-returns-pair",
        "table",
        "4.42.0",
        True,
    )
    assert found["last_good"] == "4.41.2"
    assert "diagnosis" not in windows[2], "what no layer explains stays the window's own error"
    assert "4.42.0 breaks (extract-past-returns-pair: ValueError in generate, exact)" in describe_windows(windows)
