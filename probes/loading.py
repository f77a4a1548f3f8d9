"""What the load left out or found extra, read beside the load, never through it.

The probe calls `from_pretrained` as the user's code would (probes/cell.py), so it cannot
ask for `output_loading_info`: a remote-code class that overrides `from_pretrained` may
return only the model. The missing and unexpected keys are read instead from the
checkpoint's own tensor names against the loaded model's state_dict.
"""

from __future__ import annotations

from typing import Any


def loading_info(model: Any, location: str) -> dict[str, list[str]]:
    """`missing_keys` and `unexpected_keys` (sorted, the first 20 of each, only non-empty ones),
    read without touching the load: the loaded model's state_dict names against the names in
    the checkpoint files of the model folder (safetensors headers, or a sharded checkpoint's
    index). Transformers' own rules are followed where they are plain: the base model prefix
    added or removed, tied weights, the class's `_keys_to_ignore_on_load_*` patterns. Empty
    when the checkpoint's names cannot be read (a single `.bin` file): it is a fact, never a
    reason for the load to fail."""
    try:
        saved = checkpoint_keys(location)
        if not saved:
            return {}
        return _compare_keys(model, saved)
    except Exception:  # noqa: BLE001 - an odd checkpoint or model must not fail the load phase
        return {}


def checkpoint_keys(location: str) -> set[str]:
    """The tensor names the checkpoint in the folder `location` holds (empty when unknown)."""
    import json
    import os
    import struct

    if not os.path.isdir(location):
        return set()
    names = sorted(os.listdir(location))
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if index in names:
            with open(os.path.join(location, index), encoding="utf-8") as handle:
                return set((json.load(handle).get("weight_map") or {}).keys())
    keys: set[str] = set()
    for name in names:
        if not name.endswith(".safetensors"):
            continue
        with open(os.path.join(location, name), "rb") as handle:
            (size,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(size).decode("utf-8"))
        keys.update(key for key in header if key != "__metadata__")
    return keys


def _compare_keys(model: Any, saved: set[str]) -> dict[str, list[str]]:
    import re

    state = model.state_dict()
    expected = set(state)
    prefix = getattr(model, "base_model_prefix", "") or ""
    if prefix:
        lead = prefix + "."
        saved_has = any(key.startswith(lead) for key in saved)
        model_has = any(key.startswith(lead) for key in expected)
        if saved_has and not model_has:
            saved = {key[len(lead) :] if key.startswith(lead) else key for key in saved}
        elif model_has and not saved_has:
            renamed = {key: key[len(lead) :] if key.startswith(lead) else key for key in expected}
            state = {renamed[key]: value for key, value in state.items()}
            expected = set(state)
    # Tied weights share one tensor: a name is not missing when a name of its tensor was saved.
    groups: dict[tuple[Any, ...], set[str]] = {}
    for key, tensor in state.items():
        pointer = tensor.data_ptr() if hasattr(tensor, "data_ptr") else 0
        if pointer:
            groups.setdefault((str(tensor.device), pointer, tuple(tensor.shape)), set()).add(key)
    tied = {key: group for group in groups.values() if len(group) > 1 for key in group}
    missing = {key for key in expected - saved if not (tied.get(key, set()) & saved)}
    unexpected = saved - expected

    def kept(keys: set[str], attribute: str) -> set[str]:
        patterns = getattr(model, attribute, None) or []
        return {key for key in keys if not any(re.search(pattern, key) for pattern in patterns)}

    info = {
        "missing_keys": kept(missing, "_keys_to_ignore_on_load_missing"),
        "unexpected_keys": kept(unexpected, "_keys_to_ignore_on_load_unexpected"),
    }
    return {key: sorted(value)[:20] for key, value in info.items() if value}
