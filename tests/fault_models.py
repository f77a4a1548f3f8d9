"""Real remote-code models that misbehave on purpose, for the runner's fault tests.

Each is a model folder loaded with `from_pretrained(..., trust_remote_code=True)`; its
`forward` raises, segfaults, hangs, exits, allocates without end, or leaves a grandchild
process running, as its config's `fault` says. Written with the standard library only (the
one-parameter safetensors file by hand), so the host needs no torch.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

FAULTS = (
    "raise", "segfault", "hang", "exit", "os_exit", "oom", "grandchild", "flood", "bad_bytes", "huge", "leak", "none"
)  # fmt: skip

CONFIGURATION = """
import os

from transformers import PretrainedConfig

# Proof that this file ran (transformers copies it to a folder named after the model's):
# the trust test checks that untrusted remote code never does.
if os.environ.get("MATRIX_TEST_IMPORT_MARKERS"):
    folder = os.path.basename(os.path.dirname(os.path.abspath(__file__)))
    open(os.path.join(os.environ["MATRIX_TEST_IMPORT_MARKERS"], folder), "w").write("remote code ran")


class FaultyConfig(PretrainedConfig):
    model_type = "faulty"

    def __init__(self, fault="none", pid_file="", **kwargs):
        self.fault = fault
        self.pid_file = pid_file
        super().__init__(**kwargs)
"""

MODELING = """
import ctypes
import os
import subprocess
import sys
import time

import torch
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput

from .configuration_faulty import FaultyConfig


class FaultyModel(PreTrainedModel):
    config_class = FaultyConfig

    def __init__(self, config):
        super().__init__(config)
        self.scale = torch.nn.Parameter(torch.ones(1))

    def _init_weights(self, module):
        pass

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        fault = self.config.fault
        if fault == "raise":
            raise RuntimeError("planted failure <b>bold</b> | pipe\\nsecond line")
        if fault == "segfault":
            ctypes.string_at(0)
        if fault == "hang":
            time.sleep(3600)
        if fault == "exit":
            sys.exit(3)
        if fault == "os_exit":
            os._exit(7)
        if fault == "oom":
            hoard = []
            while True:
                hoard.append(bytearray(64 * 2**20))
        if fault == "flood":
            chunk = "x" * 1023 + "\\n"
            for _ in range(50 * 1024):
                sys.stdout.write(chunk)
            sys.stdout.flush()
        if fault == "bad_bytes":
            raise ValueError(b"bad bytes \\xff\\xfe end".decode("utf-8", "surrogateescape"))
        if fault == "huge":
            raise RuntimeError("huge " + "y" * (5 * 2**20))
        if fault == "leak":
            tokens = [value for name, value in sorted(os.environ.items()) if "TOKEN" in name]
            print("tokens:", tokens)
            sys.stderr.write("index https://user:" + tokens[0] + "@example.invalid/simple\\n")
            raise RuntimeError("request with Authorization: Bearer " + tokens[0] + " failed; tokens=" + repr(tokens))
        if fault == "grandchild":
            child = subprocess.Popen(["sleep", "600"], start_new_session=False)
            with open(self.config.pid_file, "w") as handle:
                handle.write(str(child.pid))
        hidden = self.scale * torch.ones(tuple(input_ids.shape) + (4,))
        return BaseModelOutput(last_hidden_state=hidden)
"""

TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json")


def write_faulty_model(dest: Path, fault: str, tokenizer_from: Path) -> Path:
    """Write a model folder whose forward pass does `fault`; tokenizer files copied."""
    assert fault in FAULTS, fault
    dest.mkdir(parents=True, exist_ok=True)
    config = {
        "model_type": "faulty",
        "architectures": ["FaultyModel"],
        "auto_map": {"AutoConfig": "configuration_faulty.FaultyConfig", "AutoModel": "modeling_faulty.FaultyModel"},
        "fault": fault,
        "pid_file": str(dest / "grandchild.pid"),
    }
    (dest / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    (dest / "configuration_faulty.py").write_text(CONFIGURATION, encoding="utf-8")
    (dest / "modeling_faulty.py").write_text(MODELING, encoding="utf-8")
    tensors = {"__metadata__": {"format": "pt"}, "scale": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}
    header = json.dumps(tensors).encode()
    weights = struct.pack("<Q", len(header)) + header + struct.pack("<f", 1.0)
    (dest / "model.safetensors").write_bytes(weights)
    for name in TOKENIZER_FILES:
        if (tokenizer_from / name).exists():
            shutil.copy(tokenizer_from / name, dest / name)
    return dest
