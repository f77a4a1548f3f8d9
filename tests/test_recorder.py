"""The recorder's mechanism (probes/recorder.py) on plain Python: the real hooks, no model.

A module file under a `transformers_modules/` folder stands for remote code; a stand-in
`transformers` namespace gives it a `PretrainedConfig` (with its own `__getattribute__`, as
4.x has, and without one). The recorder must see the calls into that module with their
arguments summarised, the config attributes that code read (a missing one as missing), none
of the reads made from anywhere else, and leave both hooks as it found them.
"""

from __future__ import annotations

import importlib.util
import sys
import types

import pytest

from probes import recorder

MODEL_CODE = """
class Model:
    def __init__(self, config):
        self.size = config.hidden_size
        self.scaling = getattr(config, "rope_scaling", None)
        self.layers = getattr(config, "num_layers_missing", 2)

    def prepare_inputs_for_generation(self, input_ids, past_key_values=None, **kwargs):
        if past_key_values is not None:
            return past_key_values[0]
        return input_ids
"""


class DynamicCache:
    """Stands in for transformers' cache: a class name with Cache in it and get_seq_length."""

    def __init__(self, layers: int) -> None:
        self.layers = [(None, None)] * layers

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, index: int):
        return self.layers[index]

    def get_seq_length(self) -> int:
        return 0


def config_base(own_getattribute: bool) -> type:
    class PretrainedConfig:
        def __init__(self, **values):
            self.__dict__.update(values)

    if own_getattribute:

        def __getattribute__(self, name):  # noqa: N807 - as transformers 4.x defines it
            return object.__getattribute__(self, name)

        PretrainedConfig.__getattribute__ = __getattribute__  # type: ignore[method-assign]
    return PretrainedConfig


@pytest.fixture
def model_module(tmp_path):
    folder = tmp_path / "transformers_modules" / "fake"
    folder.mkdir(parents=True)
    (folder / "modeling_fake.py").write_text(MODEL_CODE, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("modeling_fake", folder / "modeling_fake.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("own_getattribute", [True, False])
def test_calls_and_config_reads_of_the_models_code_are_recorded(model_module, own_getattribute):
    base = config_base(own_getattribute)
    before = base.__dict__.get("__getattribute__")
    config = type("FakeConfig", (base,), {})(hidden_size=64, rope_scaling={"type": "linear", "factor": 2.0})
    phase = ["load"]
    watch = recorder.Recorder(lambda: phase[0])
    watch.start(types.SimpleNamespace(PretrainedConfig=base))
    try:
        model = model_module.Model(config)
        assert config.hidden_size == 64  # read here, not by the model's code: not recorded
        phase[0] = "generate"
        model.prepare_inputs_for_generation([1, 2], past_key_values=None, use_cache=True)
        model.prepare_inputs_for_generation([1, 2], past_key_values=DynamicCache(2))
        watch.set_model(model)
    finally:
        watch.stop()
    assert sys.getprofile() is None and base.__dict__.get("__getattribute__") is before
    facts = watch.facts()
    calls = {call["function"]: call for call in facts["calls"]}
    assert set(calls) == {"Model.__init__", "Model.prepare_inputs_for_generation"}
    prepare = calls["Model.prepare_inputs_for_generation"]
    assert (prepare["phase"], prepare["count"], prepare["file"]) == ("generate", 2, "modeling_fake.py")
    first, second = prepare["first"]
    assert first == {
        "input_ids": {"type": "list", "len": 2, "items": [1, 2]},
        "past_key_values": None,
        "**use_cache": True,
    }
    assert second["past_key_values"] == {"type": "DynamicCache", "cache": True, "len": 2, "seq_length": 0}
    assert prepare["returned"] == {"type": "list", "len": 2, "items": [1, 2]}
    reads = {read["attribute"]: read for read in facts["config_reads"]}
    assert set(reads) == {"hidden_size", "rope_scaling", "num_layers_missing"}
    assert reads["hidden_size"]["count"] == 1 and reads["hidden_size"]["values"] == [64]
    assert reads["rope_scaling"]["values"] == [{"type": "dict", "len": 2, "items": {"type": "linear", "factor": 2.0}}]
    assert reads["num_layers_missing"]["values"] == [{"missing": True}]


def test_it_is_off_unless_asked(monkeypatch):
    monkeypatch.delenv(recorder.ENV_VAR, raising=False)
    assert not recorder.wanted({"model": "m"})
    assert recorder.wanted({"model": "m", "record": True})
    monkeypatch.setenv(recorder.ENV_VAR, "1")
    assert recorder.wanted({"model": "m"})


def test_summaries_name_no_local_path_and_stay_small():
    assert recorder.summary("/home/someone/models/tiny") == {"type": "path", "name": "tiny"}
    assert recorder.summary("x" * 100) == {"type": "str", "len": 100}
    assert recorder.summary(float("nan")) == "nan"
    pair = {"type": "tuple", "len": 2, "items": [1, 2]}
    assert recorder.summary(((1, 2), (1, 2), (5, 6))) == {"type": "tuple", "len": 3, "items": [pair, pair]}
