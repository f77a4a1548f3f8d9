"""The load phase calls `from_pretrained` the way a user does (issue 20, part 3).

A remote-code class that overrides `from_pretrained` and returns only the model (dropping
`output_loading_info`) must load and pass; the probe used to add `output_loading_info=True`
and unpack a tuple, so such a model failed in every env with the probe's own TypeError.
The missing/unexpected keys the probe records come from the checkpoint's names instead.
"""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from matrix import proc
from matrix.envs.run import ensure_fixtures
from tests.helpers import ROOT

pytestmark = pytest.mark.e2e

MODELING = '''
from transformers import Qwen2ForCausalLM


class OwnLoadQwen2(Qwen2ForCausalLM):
    """Loads itself: what `from_pretrained` receives is recorded, only the model is returned."""

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        seen = sorted(kwargs)
        kwargs.pop("output_loading_info", None)
        model = super().from_pretrained(*args, **kwargs)
        model.seen_kwargs = seen
        return model
'''

PROBE = """
def probe(model, tokenizer, ctx):
    return {"kwargs": model.seen_kwargs}
"""


def spec(name: str, location: str, probes: list) -> dict:
    return {
        "model": name,
        "variant": "",
        "source_kind": "path",
        "location": location,
        "task": "causal-lm",
        "revision": None,
        "trust_remote_code": True,
        "timeout": 120.0,
        "device": "cpu",
        "dtype": "auto",
        "max_new_tokens": 4,
        "chat": "",
        "similarity_check": False,
        "memory_limit_mb": None,
        "warm": [],
        "probes": probes,
    }


@pytest.fixture(scope="module")
def own_load_cells(tf440_python, fixture_cache, tmp_path_factory):
    found = ensure_fixtures(tf440_python, ["qwen2-tiny"], fixture_cache)
    base = tmp_path_factory.mktemp("own-load")
    folder = base / "own-load"
    shutil.copytree(found["qwen2-tiny"], folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config["architectures"] = ["OwnLoadQwen2"]
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_own_load.OwnLoadQwen2"}
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    (folder / "modeling_own_load.py").write_text(MODELING, encoding="utf-8")

    # The same model with one saved tensor renamed: one missing and one unexpected key.
    renamed = base / "renamed"
    shutil.copytree(folder, renamed)
    script = (
        "import sys; from safetensors.torch import load_file, save_file; p = sys.argv[1]; "
        "t = load_file(p); t['extra.weight'] = t.pop('model.norm.weight'); save_file(t, p, metadata={'format': 'pt'})"
    )
    done = proc.run([tf440_python, "-c", script, renamed / "model.safetensors"])
    assert done.ok, done.output

    probe_path = base / "probe_kwargs.py"
    probe_path.write_text(PROBE, encoding="utf-8")
    digest = hashlib.sha256(PROBE.encode("utf-8")).hexdigest()
    probe = {"name": "kwargs", "path": str(probe_path), "function": "probe", "sha256": digest}
    cells = [spec("own-load", str(folder), [probe]), spec("renamed", str(renamed), [])]
    plan = base / "plan.json"
    plan.write_text(json.dumps({"env": "tf-4.40", "run_dir": str(base / "run"), "cells": cells}))
    done = proc.run([tf440_python, "-m", "probes.runner", plan], env={"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"})
    assert done.ok, done.output
    return {c["model"]: json.loads((base / "run" / "tf-4.40" / f"{c['model']}.json").read_text()) for c in cells}


def test_a_class_with_its_own_from_pretrained_loads_and_passes(own_load_cells):
    cell = own_load_cells["own-load"]
    assert cell["status"] == "pass", (cell["reason"], cell.get("error"))
    assert cell["facts"]["model_class"] == "OwnLoadQwen2"
    assert "loading_info" not in cell["facts"]  # every saved tensor loaded, none left over


def test_from_pretrained_gets_only_the_configs_keywords(own_load_cells):
    cell = own_load_cells["own-load"]
    # What the auto class passes on from the probe's call (the dtype of the model's `dtype`
    # key, under 4.40's name) and its own (`config`); never `output_loading_info`.
    seen = cell["fingerprint"]["probes"]["kwargs"]["kwargs"]
    assert "output_loading_info" not in seen and "torch_dtype" in seen, seen


def test_missing_and_unexpected_keys_come_from_the_checkpoint(own_load_cells):
    cell = own_load_cells["renamed"]
    assert cell["status"] == "pass", (cell["reason"], cell.get("error"))
    assert cell["facts"]["loading_info"] == {"missing_keys": ["model.norm.weight"], "unexpected_keys": ["extra.weight"]}
