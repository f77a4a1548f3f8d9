"""Shims: small, named patches that let old model code run on a newer transformers.

A shim is tried as its own variant cell (`<model>+<shim>`), applied only to models that
list it, so the matrix shows both "does it run as is" and "does it run with this fix".
This module imports nothing heavy at import time: the config validator reads `SHIM_NAMES`
on the host, where torch is not installed.
"""

from __future__ import annotations

import inspect
import types
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Shim:
    """A patch applied to a loaded model (and its tokenizer) before the task runs.

    `stage` says when: "tokenizer" shims run right after the tokenizer loads (the
    tokenizer phase already calls `_pad`), with no model yet; "model" shims after load.
    """

    name: str
    patches: str
    meant_for: str
    apply: Callable[[Any, Any], None]
    stage: str = "model"


def _extract_past(model: Any, tokenizer: Any) -> None:
    """Give back the method remote code written for 4.3x calls (removed in 4.49).

    ChatGLM2/3's `_update_model_kwargs_for_generation` calls
    `self._extract_past_from_model_output(outputs, standardize_cache_format=...)`; binding
    a version that returns `outputs.past_key_values` restores the old contract.
    """

    def extract_past_from_model_output(self: Any, outputs: Any, standardize_cache_format: bool = False) -> Any:
        return outputs.past_key_values

    model._extract_past_from_model_output = types.MethodType(extract_past_from_model_output, model)


def _pad_padding_side(model: Any, tokenizer: Any) -> None:
    """Let a tokenizer whose `_pad` override predates 4.45 accept and honour `padding_side`.

    From 4.45, `PreTrainedTokenizerBase.pad` calls `self._pad(..., padding_side=...)` on
    every call, padding or not (and `prepare_for_model` calls `pad` even for one unpadded
    text), so remote tokenizers that override `_pad` with the old signature, such as THUDM
    ChatGLM2/3's `ChatGLMTokenizer`, raise `TypeError: ... got an unexpected keyword
    argument 'padding_side'` on `tokenizer("a")`. The wrapper takes the keyword off and,
    when it is not None, sets `self.padding_side` to it for the one call (old overrides
    read the attribute) and restores it after, so a per-call `padding_side` is honoured
    and the tokenizer's own default is left as it was.

    Bound on the instance, not the class: other tokenizers in the process stay untouched.
    A no-op when `_pad` already names `padding_side` (a 4.45+ `_pad`, an updated override,
    or this shim applied twice). Harmless before 4.45, where nothing passes the keyword.
    It has to be applied as soon as the tokenizer is loaded, before its first call (in a
    probe that is the tokenizer phase's round trip, which already raises without it).
    """
    original = tokenizer._pad
    if _names_parameter(original, "padding_side"):
        return

    def _pad(self: Any, encoded_inputs: Any, *args: Any, padding_side: Any = None, **kwargs: Any) -> Any:
        if padding_side is None:
            return original(encoded_inputs, *args, **kwargs)
        saved = self.padding_side
        self.padding_side = padding_side
        try:
            return original(encoded_inputs, *args, **kwargs)
        finally:
            self.padding_side = saved

    tokenizer._pad = types.MethodType(_pad, tokenizer)


def _names_parameter(function: Any, name: str) -> bool:
    """Whether `function`'s signature has a parameter called `name` (not just **kwargs).

    A bare **kwargs would accept `padding_side` without honouring it, so it does not count.
    """
    try:
        return name in inspect.signature(function).parameters
    except (TypeError, ValueError):  # no signature to read (a builtin, a C extension)
        return False


# Where configs that predate the `num_hidden_layers` convention keep their layer count.
_LAYER_COUNT_NAMES = ("num_layers", "n_layer", "n_layers")


def _num_hidden_layers(model: Any, tokenizer: Any) -> None:
    """Expose the config's own layer count as `num_hidden_layers` where it is missing.

    From 4.56, `generate` builds its cache from `config.get_text_config(decoder=True)`
    and reads `num_hidden_layers` there; configs written before that convention (ChatGLM's
    `num_layers`, GPT-2-style `n_layer`, ...) raise AttributeError. The attribute is set
    on the model's config and on its text/decoder sub-config when that is another object,
    and only where it is missing or None.

    Applied after load, to the loaded model's config object, because the probe's config
    phase has already run by then and nothing before `generate` reads the attribute:
    `from_pretrained` never needs it for a remote model that counts its layers itself,
    and `generate` reads `model.config` (the same object) at call time, so setting it in
    place is enough. A config whose own code needs it at load time would need a
    before-load shim instead; none of ours does.
    """
    config = getattr(model, "config", None)
    if config is None:
        return
    configs = [config, getattr(config, "text_config", None)]
    get_text_config = getattr(config, "get_text_config", None)  # 4.45+
    if callable(get_text_config):
        try:
            configs.append(get_text_config(decoder=True))
        except TypeError:  # before its `decoder` keyword
            configs.append(get_text_config())
    for each in {id(c): c for c in configs if c is not None}.values():
        if getattr(each, "num_hidden_layers", None) is not None:
            continue
        for name in _LAYER_COUNT_NAMES:
            count = getattr(each, name, None)
            if isinstance(count, int) and not isinstance(count, bool):
                each.num_hidden_layers = count
                break


SHIMS: dict[str, Shim] = {
    shim.name: shim
    for shim in (
        Shim(
            name="extract-past",
            patches="model._extract_past_from_model_output (returns outputs.past_key_values)",
            meant_for="remote code written for transformers < 4.42 run on >= 4.42",
            apply=_extract_past,
        ),
        Shim(
            name="pad-padding-side",
            patches="tokenizer._pad on the instance (accepts padding_side; sets self.padding_side for the call)",
            meant_for="remote tokenizers whose _pad override predates 4.45, run on >= 4.45",
            apply=_pad_padding_side,
            stage="tokenizer",
        ),
        Shim(
            name="num-hidden-layers",
            patches="model.config.num_hidden_layers (and the text sub-config's) from num_layers / n_layer / n_layers",
            meant_for="remote configs without num_hidden_layers, run on >= 4.56 (generate builds its cache from it)",
            apply=_num_hidden_layers,
        ),
    )
}
SHIM_NAMES = tuple(SHIMS)
