"""Build the remote-code corpus: tiny 2023-2024-style hub models that break over the release line.

Each fixture is a folder next to this file holding only its remote code (a
`configuration_*.py` and a `modeling_*.py`, named by `auto_map`, loaded with
`trust_remote_code=True`). This module writes the rest of a model folder around that code:
`config.json`, `generation_config.json`, a stock byte-level tokenizer and deterministic
safetensors weights, with the helpers the embedded fixtures use (`probes/fixtures/`). What
each fixture does in which release was measured in real envs and is recorded in
`EXPECTED.toml` beside this file.

Importing this module needs only the standard library (the host lists fixtures and reads
their probe settings); numpy and safetensors are imported when weights are written, so
build inside a probed env, as the matrix does for its own fixtures:

    <env>/bin/python tests/corpus/build.py DEST_ROOT [NAME ...]

writes `DEST_ROOT/<name>-<fingerprint>/` for each fixture (all when no name is given),
skipping folders already there, and prints one `name<TAB>path` line per fixture.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parent
if str(CORPUS.parent.parent) not in sys.path:  # run as a script: make `probes` importable
    sys.path.insert(0, str(CORPUS.parent.parent))

from probes.fixtures import qwen2, roberta  # noqa: E402
from probes.fixtures import tokenizer_files as tok  # noqa: E402
from probes.fixtures.serialize import canonical_json, sha256_hex, write_json  # noqa: E402
from probes.record import place_folder  # noqa: E402

# Bump when this generator changes the bytes it writes for an unchanged fixture.
GENERATOR_VERSION = 1
EOS = "<|endoftext|>"
ROBERTA_SPECIALS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "sep_token": "</s>",
    "cls_token": "<s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "mask_token": "<mask>",
}

# A small llama-shaped decoder: every causal fixture uses this module tree and these names.
DECODER = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 256,
    "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0,
    "initializer_range": 0.02,
    "hidden_act": "silu",
}
# A small BERT-shaped encoder.
ENCODER = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": 130,
    "type_vocab_size": 1,
    "layer_norm_eps": 1e-5,
    "initializer_range": 0.02,
    "hidden_act": "gelu",
}


@dataclass(frozen=True)
class Fixture:
    """One corpus model: where its code lives, what its config says, how the probe runs it."""

    folder: str
    model_type: str
    config_class: str  # "configuration_x.XConfig"
    model_class: str  # "modeling_x.XForCausalLM" (or the encoder's model class)
    seed: int
    family: str = "decoder"  # "decoder" (causal-lm) or "encoder" (embedding)
    config: dict[str, Any] = field(default_factory=dict)  # extra or overriding config.json keys
    probe: dict[str, Any] = field(default_factory=dict)  # extra [models.<name>] keys: chat, ...

    @property
    def task(self) -> str:
        return "causal-lm" if self.family == "decoder" else "embedding"

    def remote_code(self) -> dict[str, bytes]:
        """The folder's Python files, by name: these are copied verbatim into the model."""
        folder = CORPUS / self.folder
        return {p.name: p.read_bytes() for p in sorted(folder.glob("*.py"))}


FIXTURES: dict[str, Fixture] = {
    "removed-method": Fixture(
        folder="removed-method",
        model_type="nimbus",
        config_class="configuration_nimbus.NimbusConfig",
        model_class="modeling_nimbus.NimbusForCausalLM",
        seed=164,
    ),
    "removed-module": Fixture(
        folder="removed-module",
        model_type="aurora",
        config_class="configuration_aurora.AuroraConfig",
        model_class="modeling_aurora.AuroraForCausalLM",
        seed=128,
    ),
    "cache-none": Fixture(
        folder="cache-none",
        model_type="ember",
        config_class="configuration_ember.EmberConfig",
        model_class="modeling_ember.EmberForCausalLM",
        seed=168,
    ),
    "silent-nan": Fixture(
        folder="silent-nan",
        model_type="glacier",
        config_class="configuration_glacier.GlacierConfig",
        model_class="modeling_glacier.GlacierForCausalLM",
        seed=174,
        # A 64 MiB causal-mask buffer: allocations this large always come from fresh pages.
        config={"max_position_embeddings": 8192},
    ),
    "patch-fixed": Fixture(
        folder="patch-fixed",
        model_type="harbor",
        config_class="configuration_harbor.HarborConfig",
        model_class="modeling_harbor.HarborForCausalLM",
        seed=105,
    ),
    "moved-import": Fixture(
        folder="moved-import",
        model_type="cedar",
        config_class="configuration_cedar.CedarConfig",
        model_class="modeling_cedar.CedarModel",
        seed=103,
        family="encoder",
    ),
    "changed-signature": Fixture(
        folder="changed-signature",
        model_type="delta",
        config_class="configuration_delta.DeltaConfig",
        model_class="modeling_delta.DeltaForCausalLM",
        seed=110,
    ),
    "missing-package": Fixture(
        folder="missing-package",
        model_type="fjord",
        config_class="configuration_fjord.FjordConfig",
        model_class="modeling_fjord.FjordForCausalLM",
        seed=134,
    ),
    "breaks-twice": Fixture(
        folder="breaks-twice",
        model_type="iris",
        config_class="configuration_iris.IrisConfig",
        model_class="modeling_iris.IrisForCausalLM",
        seed=145,
        probe={"chat": "method"},
    ),
    "cache-object": Fixture(
        folder="cache-object",
        model_type="quill",
        config_class="configuration_quill.QuillConfig",
        model_class="modeling_quill.QuillForCausalLM",
        seed=151,
    ),
    "config-value": Fixture(
        folder="config-value",
        model_type="sable",
        config_class="configuration_sable.SableConfig",
        model_class="modeling_sable.SableForCausalLM",
        seed=157,
        config={"rope_scaling": None},
    ),
    "buffer-uninit": Fixture(
        folder="buffer-uninit",
        model_type="tundra",
        config_class="configuration_tundra.TundraConfig",
        model_class="modeling_tundra.TundraForCausalLM",
        seed=163,
        # A 64 MiB ALiBi buffer (4 heads x 2048 x 2048 float32): fresh pages, like silent-nan's mask.
        config={"max_position_embeddings": 2048},
    ),
    "custom-load": Fixture(
        folder="custom-load",
        model_type="willow",
        config_class="configuration_willow.WillowConfig",
        model_class="modeling_willow.WillowForCausalLM",
        seed=171,
    ),
}
NAMES: tuple[str, ...] = tuple(FIXTURES)


def _decoder_tokenizer() -> dict[str, Any]:
    return tok.tokenizer_spec(
        "GPT2Tokenizer",
        specials_first=[],
        specials_last=[EOS],
        roles={"bos_token": EOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS},
        extra_config={"add_prefix_space": False, "add_bos_token": False, "errors": "replace"},
    )


def _encoder_tokenizer() -> dict[str, Any]:
    return tok.tokenizer_spec(
        "RobertaTokenizer",
        specials_first=["<s>", "<pad>", "</s>", "<unk>"],
        specials_last=["<mask>"],
        roles=dict(ROBERTA_SPECIALS),
        lstrip=("<mask>",),
        extra_config={"add_prefix_space": False, "errors": "replace", "trim_offsets": True},
    )


def definition(name: str) -> dict[str, Any]:
    """Everything that decides the bytes of fixture `name` (JSON-able, hashed for the folder name)."""
    fixture = FIXTURES[name]
    decoder = fixture.family == "decoder"
    return {
        "name": name,
        "generator_version": GENERATOR_VERSION,
        "family": fixture.family,
        "seed": fixture.seed,
        "architecture": dict(DECODER if decoder else ENCODER),
        "config": fixture.config,
        "remote_code_sha256": {n: sha256_hex(data) for n, data in fixture.remote_code().items()},
        "tokenizer": _decoder_tokenizer() if decoder else _encoder_tokenizer(),
    }


def fingerprint(name: str) -> str:
    return hashlib.sha256(canonical_json(definition(name)).encode("utf-8")).hexdigest()[:12]


def model_config(name: str) -> dict[str, Any]:
    """The config.json of fixture `name`."""
    fixture, defn = FIXTURES[name], definition(name)
    spec = defn["tokenizer"]
    config: dict[str, Any] = {
        "architectures": [fixture.model_class.split(".")[1]],
        "auto_map": {"AutoConfig": fixture.config_class, "AutoModel": fixture.model_class},
        "model_type": fixture.model_type,
        "vocab_size": tok.vocab_size(spec),
        "torch_dtype": "float32",
        **defn["architecture"],
    }
    if fixture.family == "decoder":
        eos = tok.token_id(spec, EOS)
        config["auto_map"]["AutoModelForCausalLM"] = fixture.model_class
        config.update(bos_token_id=eos, eos_token_id=eos, pad_token_id=eos, tie_word_embeddings=False, use_cache=True)
    else:
        config.update(
            bos_token_id=tok.token_id(spec, "<s>"),
            eos_token_id=tok.token_id(spec, "</s>"),
            pad_token_id=tok.token_id(spec, "<pad>"),
        )
    config.update(fixture.config)
    return config


def build(name: str, dest: Path) -> None:
    """Write every file of fixture `name` into `dest` (created if missing)."""
    fixture, defn = FIXTURES[name], definition(name)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    config = model_config(name)
    write_json(dest / "config.json", config)
    if fixture.family == "decoder":
        eos = config["eos_token_id"]
        write_json(
            dest / "generation_config.json",
            {"bos_token_id": eos, "eos_token_id": eos, "pad_token_id": eos, "do_sample": False},
        )
    for filename, data in fixture.remote_code().items():
        if sha256_hex(data) != defn["remote_code_sha256"][filename]:
            raise RuntimeError(f"{filename} changed while building {name}; build again")
        (dest / filename).write_bytes(data)
    if fixture.family == "decoder":
        weights = qwen2.weights(defn["seed"], config, qkv_bias=False)
    else:
        weights = roberta.weights(defn["seed"], config, pooler=False)
    weights.save(dest / "model.safetensors")
    tok.write_tokenizer(defn["tokenizer"], dest)


def ensure(name: str, root: Path) -> Path:
    """`root/<name>-<fingerprint>`, built aside and renamed into place when missing."""
    final = Path(root) / f"{name}-{fingerprint(name)}"
    if final.is_dir():
        return final
    place_folder(final, lambda staging: build(name, staging))
    return final


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: python tests/corpus/build.py DEST_ROOT [NAME ...]\nknown: {' '.join(NAMES)}", file=sys.stderr)
        return 2
    names = argv[1:] or list(NAMES)
    unknown = [n for n in names if n not in FIXTURES]
    if unknown:
        print(f"error: unknown corpus fixture(s) {', '.join(unknown)}; known: {' '.join(NAMES)}", file=sys.stderr)
        return 2
    for name in names:
        print(f"{name}\t{os.path.abspath(ensure(name, Path(argv[0])))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
