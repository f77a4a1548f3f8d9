"""The device and precision policy, GPU facts, and `skipped (needs a GPU)` on CPU hosts.

The policy is checked against stand-ins for `torch.cuda` that say "a GPU with/without
bf16" (this machine has none); the skips and CPU choices are checked on real cells in a
real transformers 4.40.2 env.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from matrix import proc
from matrix.envs.run import ensure_fixtures
from probes import device
from tests.helpers import ROOT


def fake_torch(cuda: bool, bf16: bool = True) -> SimpleNamespace:
    cuda_api = SimpleNamespace(is_available=lambda: cuda, is_bf16_supported=lambda: bf16)
    return SimpleNamespace(cuda=cuda_api, float32="float32", bfloat16="bfloat16", float16="float16")


@pytest.mark.parametrize(
    ("wanted", "dtype", "cuda", "bf16", "expected"),
    [
        ("auto", "auto", True, True, ("cuda", "bfloat16")),
        ("auto", "auto", True, False, ("cuda", "float16")),
        ("auto", "auto", False, False, ("cpu", "float32")),
        ("cuda", "auto", True, True, ("cuda", "bfloat16")),
        ("cpu", "auto", True, True, ("cpu", "float32")),
        ("cuda", "float32", True, True, ("cuda", "float32")),
        ("cpu", "bfloat16", False, False, ("cpu", "bfloat16")),
    ],
)
def test_policy(wanted, dtype, cuda, bf16, expected):
    assert device.choose(wanted, dtype, fake_torch(cuda, bf16)) == expected


def test_cuda_without_a_gpu_is_a_skip_not_a_failure():
    with pytest.raises(device.NoGPU, match="needs a GPU"):
        device.choose("cuda", "auto", fake_torch(cuda=False))


def test_driver_version_is_read_from_the_driver_file(tmp_path):
    version_file = tmp_path / "version"
    version_file.write_text(
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\n"
        "GCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n"
    )
    assert device.driver_version(str(version_file)) == "550.54.15"
    assert device.driver_version(str(tmp_path / "missing")) == ""


def cell_spec(name: str, location: str, source_kind: str, wanted: str, dtype: str) -> dict:
    return {
        "model": name,
        "variant": "",
        "source_kind": source_kind,
        "location": location,
        "task": "causal-lm",
        "revision": None,
        "trust_remote_code": False,
        "timeout": 120.0,
        "device": wanted,
        "dtype": dtype,
        "max_new_tokens": 4,
        "similarity_check": False,
        "memory_limit_mb": None,
        "warm": ["qwen2"],
    }


@pytest.mark.e2e
def test_real_cells_on_a_cpu_host(tf440_python, fixture_cache, tmp_path):
    qwen = ensure_fixtures(tf440_python, ["qwen2-tiny"], fixture_cache)["qwen2-tiny"]
    cells = [
        # a 7B hub model that needs a GPU: skipped before any download (the hub is offline
        # here: had it been resolved, it would be `unavailable`)
        cell_spec("qwen-7b", "Qwen/Qwen2-7B-Instruct", "hub", "cuda", "auto"),
        cell_spec("auto", qwen, "path", "auto", "auto"),
        cell_spec("bf16", qwen, "path", "cpu", "bfloat16"),
    ]
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"env": "cpu-host", "run_dir": str(tmp_path / "run"), "cells": cells}))
    done = proc.run([tf440_python, "-m", "probes.runner", plan], env={"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"})
    assert done.ok, done.output

    def load(name: str) -> dict:
        return json.loads((tmp_path / "run" / "cpu-host" / f"{name}.json").read_text())

    skipped = load("qwen-7b")
    assert skipped["status"] == "skipped" and skipped["reason"].startswith("needs a GPU")
    assert "resolve_s" not in skipped["timings"]
    auto = load("auto")
    assert auto["status"] == "pass" and auto["device"] == "cpu" and auto["facts"]["dtype"] == "float32"
    assert "peak_cuda_mb" not in auto["metrics"] and "gpu" not in auto["facts"]
    bf16 = load("bf16")
    assert bf16["status"] == "pass" and bf16["facts"]["dtype"] == "bfloat16"
    assert Path(qwen).is_dir()
