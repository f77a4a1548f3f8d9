"""The example deployment config validates and asks for what the deployment runs."""

from __future__ import annotations

from matrix.config import load
from matrix.envs.plan import cells
from tests.helpers import ROOT

EXAMPLE = ROOT / "examples" / "deployment.toml"


def test_the_example_validates_with_no_warnings():
    config = load(EXAMPLE)
    assert [env.name for env in config.envs] == ["tf-4.40", "tf-4.50", "latest"]
    assert config.warnings() == []


def test_the_example_models():
    models = {model.name: model for model in load(EXAMPLE).models}
    assert {name: (m.source_kind, m.source) for name, m in models.items()} == {
        "codebert": ("hub", "microsoft/codebert-base"),
        "chatglm3": ("hub", "THUDM/chatglm3-6b"),
        "qwen2-instruct": ("hub", "Qwen/Qwen2-7B-Instruct"),
        "qwen2-base": ("hub", "Qwen/Qwen2-7B-Base"),
    }
    glm = models["chatglm3"]
    assert glm.trust_remote_code and len(glm.revision or "") == 40 and glm.chat == "method"
    assert {"extract-past", "pad-padding-side"} <= set(glm.shims)
    assert models["qwen2-instruct"].chat == "template"
    # loaded the way the deployment loads them, with the packages their own code imports
    assert glm.load_kwargs == {"torch_dtype": "float16"} and glm.requires == ("sentencepiece",)
    assert models["qwen2-instruct"].load_kwargs == {"torch_dtype": "auto"}
    # the 6B/7B models need a GPU; the embedding model takes one when there is one
    assert {name for name, m in models.items() if m.device == "cuda"} == {"chatglm3", "qwen2-instruct", "qwen2-base"}
    assert models["codebert"].device == "auto"
    assert not any(m.trust_remote_code for name, m in models.items() if name != "chatglm3")


def test_the_example_plans_every_variant_in_every_env():
    planned = cells(load(EXAMPLE))
    assert len(planned) == 3 * (1 + 4 + 1 + 1)
    assert {c.variant for c in planned if c.model == "chatglm3"} == {
        "",
        "extract-past",
        "pad-padding-side",
        "extract-past+pad-padding-side",
    }


def test_unpinned_remote_code_from_the_hub_is_warned_about(write_config):
    text = EXAMPLE.read_text().replace('revision = "e46a14881eae613281abbd266ee918e93a56018f"\n', "")
    (warning,) = load(write_config(text)).warnings()
    assert warning.startswith("matrix.toml: [models.chatglm3] trust_remote_code = true without a pinned `revision`")
