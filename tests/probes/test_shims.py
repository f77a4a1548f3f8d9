"""Shims: their metadata on the host, their behaviour on stand-ins, and in real envs.

The env tests load the `chatglm-tokenizer-legacy` fixture, whose remote tokenizer overrides
`_pad` with the pre-4.45 signature, in transformers 4.40.2 (where it works), 4.50.3 and the
newest release (where it raises the TypeError THUDM's ChatGLM2/3 raised, until the
`pad-padding-side` shim is applied), and check `num-hidden-layers` against the cache
`generate` builds in the newest release. The scripts run with each env's own Python, as
the probes do; the host never imports torch or transformers.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from matrix import proc
from matrix.envs.run import ensure_fixtures
from probes import fixtures
from probes.shims import SHIM_NAMES, SHIMS
from tests.helpers import ROOT

TYPE_ERROR = "TypeError: ChatGLMTokenizer._pad() got an unexpected keyword argument 'padding_side'"
ENV_VARS = {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


# --- host only: metadata ---------------------------------------------------------------


def test_the_three_shims_are_known_by_name():
    assert SHIM_NAMES[0] == "extract-past"  # the existing one keeps its place
    assert {"extract-past", "pad-padding-side", "num-hidden-layers"} <= set(SHIM_NAMES)
    assert all(SHIMS[name].name == name for name in SHIM_NAMES)


@pytest.mark.parametrize(
    ("name", "release", "patched"),
    [
        ("extract-past", "4.42", "_extract_past_from_model_output"),
        ("pad-padding-side", "4.45", "tokenizer._pad"),
        ("num-hidden-layers", "4.56", "num_hidden_layers"),
    ],
)
def test_each_shim_says_what_it_patches_and_which_releases_it_is_for(name, release, patched):
    shim = SHIMS[name]
    assert patched in shim.patches
    assert re.search(r">= ?" + re.escape(release), shim.meant_for), shim.meant_for
    assert callable(shim.apply)


def test_shims_module_imports_nothing_heavy():
    """The host validates configs against SHIM_NAMES without torch or transformers."""
    code = "import sys, probes.shims; print([m for m in ('torch', 'transformers', 'numpy') if m in sys.modules])"
    done = proc.run([sys.executable, "-c", code], env={"PYTHONPATH": str(ROOT)})
    assert done.ok, done.output
    assert done.output.strip() == "[]"


# --- host only: behaviour on stand-ins ------------------------------------------------


class OldPadTokenizer:
    """A tokenizer whose `_pad` has the pre-4.45 signature and reads `self.padding_side`."""

    padding_side = "left"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def _pad(
        self,
        encoded_inputs,
        max_length=None,
        padding_strategy=None,
        pad_to_multiple_of=None,
        return_attention_mask=None,
    ):
        self.seen.append(self.padding_side)
        if encoded_inputs.get("boom"):
            raise RuntimeError("boom")
        return encoded_inputs


class NewPadTokenizer(OldPadTokenizer):
    def _pad(
        self,
        encoded_inputs,
        max_length=None,
        padding_strategy=None,
        pad_to_multiple_of=None,
        padding_side=None,
        return_attention_mask=None,
    ):
        return encoded_inputs


def test_pad_padding_side_accepts_and_honours_the_keyword_for_one_call():
    tokenizer = OldPadTokenizer()
    SHIMS["pad-padding-side"].apply(None, tokenizer)
    tokenizer._pad({"input_ids": [1]}, max_length=4, padding_side="right", return_attention_mask=True)
    tokenizer._pad({"input_ids": [1]}, None, None, None, None, padding_side=None)
    tokenizer._pad({"input_ids": [1]})
    assert tokenizer.seen == ["right", "left", "left"]
    assert tokenizer.padding_side == "left"
    with pytest.raises(RuntimeError):
        tokenizer._pad({"input_ids": [1], "boom": True}, padding_side="right")
    assert tokenizer.padding_side == "left"  # restored even when the original raises


def test_pad_padding_side_patches_only_the_instance_and_only_once():
    tokenizer, other = OldPadTokenizer(), OldPadTokenizer()
    SHIMS["pad-padding-side"].apply(None, tokenizer)
    wrapped = tokenizer._pad
    SHIMS["pad-padding-side"].apply(None, tokenizer)
    assert tokenizer._pad is wrapped  # the wrapper names padding_side: a second apply is a no-op
    assert "_pad" not in vars(other)
    with pytest.raises(TypeError):
        other._pad({"input_ids": [1]}, padding_side="right")


def test_pad_padding_side_leaves_a_pad_that_already_accepts_it():
    tokenizer = NewPadTokenizer()
    SHIMS["pad-padding-side"].apply(None, tokenizer)
    assert "_pad" not in vars(tokenizer)


@pytest.mark.parametrize("field", ["num_layers", "n_layer", "n_layers"])
def test_num_hidden_layers_copies_the_configs_own_count(field):
    model = SimpleNamespace(config=SimpleNamespace(**{field: 3}))
    SHIMS["num-hidden-layers"].apply(model, None)
    assert model.config.num_hidden_layers == 3


def test_num_hidden_layers_keeps_an_existing_value_and_reaches_the_text_config():
    text = SimpleNamespace(num_layers=5)
    config = SimpleNamespace(num_hidden_layers=7, num_layers=2, text_config=text)
    config.get_text_config = lambda decoder=False: text
    SHIMS["num-hidden-layers"].apply(SimpleNamespace(config=config), None)
    assert config.num_hidden_layers == 7
    assert text.num_hidden_layers == 5


def test_num_hidden_layers_sets_nothing_without_a_count():
    config = SimpleNamespace(hidden_size=8, num_layers=None)
    SHIMS["num-hidden-layers"].apply(SimpleNamespace(config=config), None)
    assert not hasattr(config, "num_hidden_layers")


# --- host only: the fixture's definition ----------------------------------------------


def test_tokenizer_fixture_is_chatglm_legacy_plus_its_hashed_tokenizer_code():
    assert "chatglm-tokenizer-legacy" in fixtures.FIXTURE_NAMES
    legacy = fixtures.definition("chatglm-legacy")
    tokenized = fixtures.definition("chatglm-tokenizer-legacy")
    for key in ("seed", "architecture", "tokenizer"):
        assert tokenized[key] == legacy[key]  # same weights and vocabulary
    code = ROOT / "probes" / "fixtures" / "chatglm_legacy"
    for name in ("configuration_chatglm.py", "modeling_chatglm.py", "tokenization_chatglm.py"):
        expected = hashlib.sha256((code / name).read_bytes()).hexdigest()
        assert tokenized["remote_code_sha256"][name] == expected
    assert "tokenization_chatglm.py" not in legacy["remote_code_sha256"]
    assert fixtures.fingerprint("chatglm-tokenizer-legacy") != fixtures.fingerprint("chatglm-legacy")


# --- real envs (tf440_python, tf450_python, latest_python: conftest's env factory) ------------


TOKENIZER_SCRIPT = """
import json, sys
import transformers
from probes import texts
from probes.shims import SHIMS

location, shim = sys.argv[1], sys.argv[2] == "shim"
tok = transformers.AutoTokenizer.from_pretrained(location, trust_remote_code=True)
out = {"version": transformers.__version__, "class": type(tok).__name__}
if shim:
    SHIMS["pad-padding-side"].apply(None, tok)

def attempt(name, call):
    try:
        out[name] = {"ok": call()}
    except Exception as exc:
        out[name] = {"error": type(exc).__name__ + ": " + str(exc)}

def round_trip():
    rows = []
    for text in texts.ROUND_TRIP:
        ids = tok(text)["input_ids"]
        rows.append(tok.decode(ids, skip_special_tokens=True) == text)
    return rows

attempt("round_trip", round_trip)
attempt("single", lambda: dict(tok("a")))
attempt("batch", lambda: dict(tok(["a", "longer text"], padding=True)))
if shim:
    attempt("batch_right", lambda: dict(tok(["a", "longer text"], padding=True, padding_side="right")))
out["padding_side_after"] = tok.padding_side
print("RESULT " + json.dumps(out))
"""


def _run_script(python: Path, script: str, *args: str | Path) -> dict[str, Any]:
    done = proc.run([python, "-c", script, *args], env=ENV_VARS, timeout=300)
    assert done.ok, done.output
    lines = [line for line in done.output.splitlines() if line.startswith("RESULT ")]
    assert lines, done.output
    return json.loads(lines[-1][len("RESULT ") :])


@pytest.fixture(scope="module")
def tokenizer_fixture(tf440_python, fixture_cache) -> str:
    return ensure_fixtures(tf440_python, ["chatglm-tokenizer-legacy"], fixture_cache)["chatglm-tokenizer-legacy"]


@pytest.fixture(scope="module")
def on_440(tf440_python, tokenizer_fixture) -> dict[str, Any]:
    return _run_script(tf440_python, TOKENIZER_SCRIPT, tokenizer_fixture, "none")


@pytest.fixture(scope="module")
def on_450(tf450_python, tokenizer_fixture) -> dict[str, dict[str, Any]]:
    return {mode: _run_script(tf450_python, TOKENIZER_SCRIPT, tokenizer_fixture, mode) for mode in ("none", "shim")}


@pytest.fixture(scope="module")
def on_latest(latest_python, tokenizer_fixture) -> dict[str, dict[str, Any]]:
    return {mode: _run_script(latest_python, TOKENIZER_SCRIPT, tokenizer_fixture, mode) for mode in ("none", "shim")}


LEFT_PADDED = {
    "input_ids": [[294] * 10 + [97], [108, 111, 110, 103, 101, 114, 32, 116, 101, 120, 116]],
    "attention_mask": [[0] * 10 + [1], [1] * 11],
    "position_ids": [[0] * 11, list(range(11))],
}


@pytest.mark.e2e
def test_on_4_40_the_legacy_tokenizer_loads_round_trips_and_pads_left(on_440):
    assert on_440["version"] == "4.40.2" and on_440["class"] == "ChatGLMTokenizer"
    assert on_440["round_trip"] == {"ok": [True, True]}
    assert on_440["single"] == {"ok": {"input_ids": [97], "attention_mask": [1], "position_ids": [0]}}
    assert on_440["batch"] == {"ok": LEFT_PADDED}


@pytest.mark.e2e
@pytest.mark.parametrize("where", ["on_450", "on_latest"])
def test_from_4_45_it_loads_but_even_one_text_raises_the_chatglm_type_error(where, request):
    bare = request.getfixturevalue(where)["none"]
    assert bare["class"] == "ChatGLMTokenizer"
    for call in ("round_trip", "single", "batch"):
        assert bare[call]["error"] == TYPE_ERROR


@pytest.mark.e2e
@pytest.mark.parametrize("where", ["on_450", "on_latest"])
def test_with_pad_padding_side_it_works_and_matches_4_40(where, request, on_440):
    shimmed = request.getfixturevalue(where)["shim"]
    for call in ("round_trip", "single", "batch"):
        assert shimmed[call] == on_440[call], call


@pytest.mark.e2e
@pytest.mark.parametrize("where", ["on_450", "on_latest"])
def test_with_pad_padding_side_a_per_call_padding_side_is_honoured(where, request):
    shimmed = request.getfixturevalue(where)["shim"]
    right = shimmed["batch_right"]["ok"]
    assert right["input_ids"][0] == [97] + [294] * 10
    assert right["attention_mask"][0] == [1] + [0] * 10
    assert right["input_ids"][1] == LEFT_PADDED["input_ids"][1]
    assert shimmed["padding_side_after"] == "left"  # the tokenizer's own default is restored


NOOP_SCRIPT = """
import json, sys
import transformers
from probes.shims import SHIMS

tok = transformers.AutoTokenizer.from_pretrained(sys.argv[1], trust_remote_code=True)
SHIMS["pad-padding-side"].apply(None, tok)
ids = tok(["a", "longer text"], padding=True, padding_side="left")["input_ids"]
print("RESULT " + json.dumps({"patched": "_pad" in vars(tok), "left": ids[0][0] == tok.pad_token_id}))
"""


@pytest.mark.e2e
def test_pad_padding_side_is_a_no_op_on_a_stock_4_50_tokenizer(tf450_python, fixture_cache):
    location = ensure_fixtures(tf450_python, ["chatglm-legacy"], fixture_cache)["chatglm-legacy"]
    assert _run_script(tf450_python, NOOP_SCRIPT, location) == {"patched": False, "left": True}


CACHE_SCRIPT = """
import json, sys, types
import transformers
from probes.shims import SHIMS

config = transformers.AutoConfig.from_pretrained(sys.argv[1], trust_remote_code=True)
text = config.get_text_config(decoder=True)
out = {"version": transformers.__version__, "before": hasattr(text, "num_hidden_layers")}
try:
    transformers.DynamicCache(config=text)  # what generate builds first from 4.56
    out["cache_before"] = "built"
except AttributeError as exc:
    out["cache_before"] = str(exc)
SHIMS["num-hidden-layers"].apply(types.SimpleNamespace(config=config), None)
out["after"] = config.num_hidden_layers
out["cache_layers_after"] = len(transformers.DynamicCache(config=config.get_text_config(decoder=True)).layers)
print("RESULT " + json.dumps(out))
"""


@pytest.mark.e2e
def test_num_hidden_layers_lets_the_newest_generate_build_a_cache_for_chatglm(latest_python, fixture_cache):
    location = ensure_fixtures(latest_python, ["chatglm-legacy"], fixture_cache)["chatglm-legacy"]
    out = _run_script(latest_python, CACHE_SCRIPT, location)
    assert out["before"] is False
    assert "no attribute 'num_hidden_layers'" in out["cache_before"]
    assert out["after"] == 2 and out["cache_layers_after"] == 2
