"""The known-break table (the curated layer of the diagnosis) and grouping of unrecognised failures."""

from __future__ import annotations

import json

import pytest

from matrix.diagnosis.table import from_table
from matrix.known_breaks import load_known_breaks
from matrix.signature import group_unknown, normalise
from probes.status import Status
from tests.helpers import make_cell

TABLE = load_known_breaks()

# (entry id, exception type, phase, message, traceback excerpt): messages as transformers
# and our remote-code fixtures really raise them (4.42.4 ... 5.24.0, CPU, torch 2.13).
REAL_MESSAGES = [
    ("extract-past-returns-pair", "ValueError", "generate", "too many values to unpack (expected 2)",
     'File ".../modeling_chatglm.py", line 180, in forward\n    cache_k, cache_v = kv_cache'),
    ("standardize-cache-format-removed", "TypeError", "generate",
     "GenerationMixin._extract_past_from_model_output() got an unexpected keyword argument 'standardize_cache_format'",
     ""),
    ("pad-padding-side", "TypeError", "tokenizer",
     "ChatGLMTokenizer._pad() got an unexpected keyword argument 'padding_side'", ""),
    ("extract-past-removed", "AttributeError", "generate",
     "'ChatGLMForConditionalGeneration' object has no attribute '_extract_past_from_model_output'", ""),
    ("cache-get-max-length-removed", "AttributeError", "generate",
     "'DynamicCache' object has no attribute 'get_max_length'", ""),
    ("generate-not-inherited", "AttributeError", "generate",
     "'ChatGLMForConditionalGeneration' object has no attribute 'generate'", ""),
    ("torch-load-needs-2.6", "ValueError", "load",
     "Due to a serious vulnerability issue in `torch.load`, even with `weights_only=True`, we now require users "
     "to upgrade torch to at least v2.6 in order to use the function.", ""),
    ("config-num-hidden-layers", "AttributeError", "generate",
     "'ChatGLMConfig' object has no attribute 'num_hidden_layers'", ""),
    ("generation-params-left-config", "AttributeError", "forward",
     "'ChatGLMConfig' object has no attribute 'use_cache'", ""),
    ("generation-params-left-config", "AttributeError", "load",
     "'ChatGLMConfig' object has no attribute 'max_length'", ""),
    ("tuple-cache-rejected", "ValueError", "generate",
     "Passing a tuple for `cache` is not supported anymore. Please use a `Cache` instance.", ""),
    ("tuple-cache-rejected", "ValueError", "generate",
     "Passing a tuple of `past_key_values` is not supported anymore. Please use a `Cache` instance.", ""),
    ("batch-encode-plus-removed", "AttributeError", "tokenizer",
     "'ChatGLMTokenizer' object has no attribute 'batch_encode_plus'", ""),
    ("use-auth-token-removed", "TypeError", "load",
     "ChatGLMModel.__init__() got an unexpected keyword argument 'use_auth_token'", ""),
    ("tied-weights-keys-dict", "AttributeError", "load",
     "'ChatGLMForConditionalGeneration' object has no attribute 'all_tied_weights_keys'", ""),
]  # fmt: skip


def failing(exc_type: str, phase: str, message: str, traceback: str = "", env: str = "e", model: str = "m"):
    error = {"type": exc_type, "message": message, "traceback": traceback}
    return make_cell(env, model, Status.FAIL, phase=phase, error=error)


@pytest.mark.parametrize(("entry", "exc_type", "phase", "message", "traceback"), REAL_MESSAGES)
def test_each_entry_matches_its_real_message(entry, exc_type, phase, message, traceback):
    found = from_table(failing(exc_type, phase, message, traceback), TABLE)
    assert found is not None and found.id == entry and found.source == "table"


def test_every_entry_has_a_real_message_a_cause_and_fixes():
    assert {entry.id for entry in TABLE} == {row[0] for row in REAL_MESSAGES}
    for entry in TABLE:
        assert entry.cause and entry.fixes and entry.introduced_in[0] in "45"


def test_unexplained_cells_get_no_table_entry():
    assert from_table(failing("KeyError", "load", "'rope_scaling'"), TABLE) is None


def test_normalise_removes_what_varies():
    message = "Tensor at 0x7f3a2b1c in /tmp/run-123/model.py line 42 has shape [3, 14] (hash 3fa9c2d1e0)"
    assert normalise(message) == "Tensor at <addr> in <path> line N has shape [N, N] (hash <hash>)"


def test_one_new_kind_of_break_shows_once_with_every_place_it_hits():
    cells = [
        failing("KeyError", "load", "'rope_scaling' missing in /tmp/a/config.json at step 3", env="x"),
        failing("KeyError", "load", "'rope_scaling' missing in /home/b/config.json at step 7", env="y", model="n"),
        failing("RuntimeError", "forward", "shape mismatch"),
        failing("AttributeError", "generate", "'X' object has no attribute '_extract_past_from_model_output'"),
    ]
    cells[3].diagnosis = from_table(cells[3], TABLE).to_dict()
    assert cells[3].diagnosis["id"] == "extract-past-removed"
    groups = group_unknown(cells)
    assert len(groups) == 2
    rope = next(group for group in groups if group.exception == "KeyError")
    assert rope.cells == [("x", "m"), ("y", "n")]
    assert group_unknown(cells[3:]) == []


def test_a_broken_table_names_the_entry(tmp_path):
    path = tmp_path / "breaks.toml"
    path.write_text('[[break]]\nid = "x"\nintroduced_in = "4.x"\ncause = "c"\nmessage = "m"\n')
    with pytest.raises(ValueError, match=r"breaks.toml: break #1 \(x\): `introduced_in` '4.x' is not a version"):
        load_known_breaks(path)
    path.write_text('[[break]]\nid = "x"\nintroduced_in = "4.1"\ncause = "c"\nmessage = "m"\ncolour = 1\n')
    with pytest.raises(ValueError, match=r"break #1 \(x\): unknown keys \['colour'\]"):
        load_known_breaks(path)


def test_a_teams_own_table_is_consulted_before_the_built_in_one(tmp_path):
    from matrix.pipeline import known_breaks

    path = tmp_path / "breaks.toml"
    entry = {
        "id": "our-rope",
        "introduced_in": "4.45.0",
        "cause": "our cause",
        "fixes": ["our fix"],
        "message": "has no attribute '_extract_past_from_model_output'",
    }
    path.write_text("[[break]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in entry.items()))
    table = known_breaks({"known_breaks": str(path)})
    cell = failing("AttributeError", "generate", "'X' object has no attribute '_extract_past_from_model_output'")
    assert from_table(cell, table).id == "our-rope"
    assert from_table(cell, known_breaks({})).id == "extract-past-removed"
