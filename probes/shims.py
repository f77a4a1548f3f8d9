"""Shims: small, named patches that let old model code run on a newer transformers.

A shim is tried as its own variant cell (`<model>+<shim>`), applied only to models that
list it, so the matrix shows both "does it run as is" and "does it run with this fix".
This module imports nothing heavy at import time: the config validator reads `SHIM_NAMES`
on the host, where torch is not installed.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Shim:
    """A patch applied to a loaded model (and its tokenizer) before the task runs."""

    name: str
    patches: str
    meant_for: str
    apply: Callable[[Any, Any], None]


def _extract_past(model: Any, tokenizer: Any) -> None:
    """Give back the method remote code written for 4.3x calls (removed in 4.49).

    ChatGLM2/3's `_update_model_kwargs_for_generation` calls
    `self._extract_past_from_model_output(outputs, standardize_cache_format=...)`; binding
    a version that returns `outputs.past_key_values` restores the old contract.
    """

    def extract_past_from_model_output(self: Any, outputs: Any, standardize_cache_format: bool = False) -> Any:
        return outputs.past_key_values

    model._extract_past_from_model_output = types.MethodType(extract_past_from_model_output, model)


SHIMS: dict[str, Shim] = {
    shim.name: shim
    for shim in (
        Shim(
            name="extract-past",
            patches="model._extract_past_from_model_output (returns outputs.past_key_values)",
            meant_for="remote code written for transformers < 4.42 run on >= 4.42",
            apply=_extract_past,
        ),
    )
}
SHIM_NAMES = tuple(SHIMS)
