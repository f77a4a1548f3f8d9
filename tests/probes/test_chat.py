"""The chat probe: Qwen2-style chat template and ChatGLM-style chat() method, in a real env."""

from __future__ import annotations

import json

import pytest

from matrix import proc
from matrix.envs.run import ensure_fixtures
from tests.helpers import ROOT

pytestmark = pytest.mark.e2e


def spec(name: str, location: str, chat: str, trust: bool) -> dict:
    return {
        "model": name,
        "variant": "",
        "source_kind": "fixture",
        "location": location,
        "task": "causal-lm",
        "revision": None,
        "trust_remote_code": trust,
        "timeout": 120.0,
        "device": "cpu",
        "dtype": "auto",
        "max_new_tokens": 4,
        "chat": chat,
        "similarity_check": False,
        "memory_limit_mb": None,
        "warm": [],
    }


@pytest.fixture(scope="module")
def chat_cells(tf440_python, fixture_cache, tmp_path_factory):
    found = ensure_fixtures(tf440_python, ["qwen2-tiny", "chatglm-legacy", "codebert-tiny"], fixture_cache)
    cells = [
        spec("qwen-template", found["qwen2-tiny"], "template", trust=False),
        spec("glm-method", found["chatglm-legacy"], "method", trust=True),
        spec("glm-template", found["chatglm-legacy"], "template", trust=True),  # it has no template
    ]
    base = tmp_path_factory.mktemp("chat")
    plan = base / "plan.json"
    plan.write_text(json.dumps({"env": "tf-4.40", "run_dir": str(base / "run"), "cells": cells}))
    done = proc.run([tf440_python, "-m", "probes.runner", plan], env={"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"})
    assert done.ok, done.output
    return {c["model"]: json.loads((base / "run" / "tf-4.40" / f"{c['model']}.json").read_text()) for c in cells}


def test_template_renders_the_turn_then_generates(chat_cells):
    cell = chat_cells["qwen-template"]
    assert cell["status"] == "pass", cell["reason"]
    assert cell["facts"]["chat_prompt"].startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")
    assert cell["facts"]["chat_prompt"].endswith("<|im_start|>assistant\n")
    assert len(cell["fingerprint"]["chat"]["tokens"]) == 4 and "chat_median_s" in cell["metrics"]


def test_the_models_own_chat_method_is_called(chat_cells):
    cell = chat_cells["glm-method"]
    assert cell["status"] == "pass", cell["reason"]
    assert isinstance(cell["fingerprint"]["chat"]["text"], str) and "chat_s" in cell["timings"]


def test_a_missing_template_fails_in_the_chat_phase_with_words(chat_cells):
    cell = chat_cells["glm-template"]
    assert cell["status"] == "fail" and cell["phase"] == "chat"
    assert "has no chat template" in cell["reason"]
