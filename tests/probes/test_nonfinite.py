"""A model whose outputs are NaN or inf fails, in the phase of the call, with `NonFiniteOutputs`.

Real parts: the tiny Qwen2 and RoBERTa fixtures, copied with some weights overwritten (in the
transformers 4.40.2 env, with torch and safetensors), loaded by `from_pretrained` and probed
by the real forked runner. Each broken copy breaks in one phase only: NaN weights everywhere
(forward), a NaN embedding row for the first token the model generates (generate: greedy
decoding of NaN logits then repeats token 0, so the ids alone look fine), a LayerNorm bias
that overflows float32 at run time (forward), NaN rows for tokens that only the labelled
similarity pairs use (embed).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from matrix import proc
from matrix.envs.run import ensure_fixtures
from probes.record import CellResult
from probes.status import Status
from tests.helpers import ROOT

pytestmark = pytest.mark.e2e

# Runs inside the env: writes the broken copies, prints what the test needs to know.
BREAK_WEIGHTS = r"""
import json, shutil, sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from probes import texts
from probes.observe import NonFiniteOutputs, Observations

qwen, codebert, out = map(Path, sys.argv[1:4])
NAN = float("nan")


def broken(source, name, change):
    dest = out / name
    shutil.copytree(source, dest)
    weights = load_file(str(source / "model.safetensors"))
    change(weights)
    save_file(weights, str(dest / "model.safetensors"), metadata={"format": "pt"})


broken(qwen, "qwen-nan", lambda w: w["model.norm.weight"].fill_(NAN))

tokenizer = AutoTokenizer.from_pretrained(qwen)
model = AutoModelForCausalLM.from_pretrained(qwen).eval()
prompt = tokenizer(texts.PROMPT, return_tensors="pt")
with torch.inference_mode():
    first = int(model.generate(**prompt, max_new_tokens=1, do_sample=False, pad_token_id=0)[0, -1])
assert first not in prompt["input_ids"][0].tolist(), first
broken(qwen, "qwen-nan-after-prompt", lambda w: w["model.embed_tokens.weight"][first].fill_(NAN))

broken(codebert, "codebert-overflow", lambda w: w["embeddings.LayerNorm.bias"].fill_(3e38))

tokenizer = AutoTokenizer.from_pretrained(codebert)
ids = lambda sentences: {i for text in sentences for i in tokenizer(text)["input_ids"]}
only_pairs = sorted(ids([text for a, b, _ in texts.LABELLED_PAIRS for text in (a, b)]) - ids(texts.EMBED_SENTENCES))
assert only_pairs
rows = torch.tensor(only_pairs)
broken(codebert, "codebert-nan-pairs", lambda w: w["embeddings.word_embeddings.weight"].index_fill_(0, rows, NAN))

cell = Observations({})
cell.phase = "forward"
try:
    cell.check_finite(torch.tensor([1.0, NAN, float("inf"), -float("inf")]), "logits")
except NonFiniteOutputs as exc:
    message = str(exc)
print("RESULT " + json.dumps({"first": first, "message": message, "finite": cell.fingerprint}))
"""

MESSAGE = re.compile(r"^non-finite outputs in (\w+): (\d+) of (\d+) (.+) are NaN, (\d+) are inf$")


def spec(model: str, folder: Path, task: str, **extra) -> dict:
    return {
        "model": model,
        "variant": "",
        "source_kind": "path",
        "location": str(folder),
        "task": task,
        "revision": None,
        "trust_remote_code": False,
        "timeout": 120.0,
        "device": "cpu",
        "dtype": "float32",
        "max_new_tokens": 8,
        "similarity_check": False,
        "memory_limit_mb": None,
        "warm": ["qwen2" if task == "causal-lm" else "roberta"],
        **extra,
    }


@pytest.fixture(scope="module")
def nonfinite_run(tf440_python, fixture_cache, tmp_path_factory):
    found = ensure_fixtures(tf440_python, ["qwen2-tiny", "codebert-tiny"], fixture_cache)
    qwen, codebert = Path(found["qwen2-tiny"]), Path(found["codebert-tiny"])
    base = tmp_path_factory.mktemp("nonfinite")
    models = base / "models"
    models.mkdir()
    env = {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    made = proc.run([tf440_python, "-c", BREAK_WEIGHTS, qwen, codebert, models], env=env)
    assert made.ok, made.output
    facts = json.loads(made.output.split("RESULT ", 1)[1].splitlines()[0])
    chat = {"chat": "template"}
    # A budget on the similarity accuracy makes the cell embed the labelled pairs too (a tiny
    # random model cannot pass `similarity_check`, which also demands they separate).
    pairs = {"budgets": {"min_similarity_accuracy": 0.0}}
    cells = [
        spec("qwen-clean", qwen, "causal-lm", **chat),
        spec("qwen-nan", models / "qwen-nan", "causal-lm", **chat),
        spec("qwen-nan-after-prompt", models / "qwen-nan-after-prompt", "causal-lm", **chat),
        spec("codebert-clean", codebert, "embedding", **pairs),
        spec("codebert-overflow", models / "codebert-overflow", "embedding", **pairs),
        spec("codebert-nan-pairs", models / "codebert-nan-pairs", "embedding", **pairs),
    ]
    run_dir = base / "run"
    plan = base / "plan.json"
    plan.write_text(json.dumps({"env": "nonfinite", "run_dir": str(run_dir), "cells": cells}))
    done = proc.run([tf440_python, "-m", "probes.runner", plan], env=env)
    assert done.ok, done.output
    return run_dir / "nonfinite", facts


def strict_load(path: Path) -> dict:
    def refuse(constant: str):
        raise ValueError(f"{path.name} holds {constant}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def failure(cell: dict, phase: str) -> re.Match:
    assert cell["status"] == Status.FAIL.value, cell["reason"]
    assert cell["phase"] == phase
    assert cell["error"]["type"] == "NonFiniteOutputs"
    assert cell["reason"] == cell["error"]["message"]
    found = MESSAGE.match(cell["error"]["message"])
    assert found, cell["error"]["message"]
    assert found.group(1) == phase
    return found


def test_clean_models_pass_and_say_their_outputs_were_finite(nonfinite_run):
    cell_dir, _ = nonfinite_run
    qwen = strict_load(cell_dir / "qwen-clean.json")
    assert qwen["status"] == "pass", qwen["reason"]
    assert qwen["fingerprint"]["finite"] == {"forward": True, "generate": True, "chat": True}
    assert qwen["metrics"]["generate_finite_check_s"] > 0 and qwen["metrics"]["chat_finite_check_s"] > 0
    codebert = strict_load(cell_dir / "codebert-clean.json")
    assert codebert["status"] == "pass", codebert["reason"]
    assert codebert["fingerprint"]["finite"] == {"forward": True, "embed": True}


def test_nan_weights_fail_the_forward_pass(nonfinite_run):
    cell_dir, _ = nonfinite_run
    cell = strict_load(cell_dir / "qwen-nan.json")
    found = failure(cell, "forward")
    nan, total, what, inf = int(found.group(2)), int(found.group(3)), found.group(4), int(found.group(5))
    assert what == "logits" and nan == total > 0 and inf == 0
    assert cell["fingerprint"]["finite"] == {"forward": False}
    # The NaN mean of the logits is written as null, and the file says so.
    assert cell["fingerprint"]["forward"]["mean"] is None
    assert cell["non_finite"]["/fingerprint/forward/mean"] == "NaN"


def test_nan_after_the_prompt_fails_generate_though_the_ids_look_fine(nonfinite_run):
    cell_dir, facts = nonfinite_run
    cell = strict_load(cell_dir / "qwen-nan-after-prompt.json")
    found = failure(cell, "generate")
    assert found.group(4) == "logits of prompt + generated tokens" and int(found.group(2)) > 0
    assert cell["fingerprint"]["finite"] == {"forward": True, "generate": False}
    tokens = cell["fingerprint"]["tokens"]
    assert tokens[0] == facts["first"] and tokens[1:] == [0] * 7  # greedy over NaN logits: token 0


def test_an_embedding_model_whose_activations_overflow_fails_forward(nonfinite_run):
    cell_dir, _ = nonfinite_run
    cell = strict_load(cell_dir / "codebert-overflow.json")
    found = failure(cell, "forward")
    assert found.group(4) == "hidden-state values"
    assert int(found.group(2)) + int(found.group(5)) > 0
    assert cell["fingerprint"]["finite"] == {"forward": False}


def test_nan_embeddings_of_the_labelled_pairs_fail_embed(nonfinite_run):
    cell_dir, _ = nonfinite_run
    cell = strict_load(cell_dir / "codebert-nan-pairs.json")
    found = failure(cell, "embed")
    assert found.group(4) == "embedding values of the labelled pairs"
    assert cell["fingerprint"]["finite"] == {"forward": True, "embed": False}
    assert cell["fingerprint"]["embedding"]["dim"] == 32  # the vectors of the plain sentences were fine


def test_the_message_counts_nan_and_inf_apart(nonfinite_run):
    _, facts = nonfinite_run
    assert facts["message"] == "non-finite outputs in forward: 1 of 4 logits are NaN, 2 are inf"
    assert facts["finite"] == {"finite": {"forward": False}}


def test_every_cell_file_is_strict_json_and_reads_back(nonfinite_run):
    cell_dir, _ = nonfinite_run
    for path in sorted(cell_dir.glob("*.json")):
        data = strict_load(path)
        cell = CellResult.from_dict(data)
        assert cell.non_finite == {}
        if path.stem == "qwen-nan":
            mean = cell.fingerprint["forward"]["mean"]
            assert mean != mean  # NaN again in memory
