"""The loaded model's tensors, as a diagnosis probe records them (probes/recorder.py).

An output that changes with no exception is most often a tensor the new loading path left
wrong: a parameter re-initialised after the checkpoint was read, a non-persistent buffer
(rotary `inv_freq`, a causal mask) that is allocated but never computed. So each parameter
and buffer is recorded with where it came from (a name the checkpoint holds, or only
`__init__`), a checksum, its non-finite count, whether it is all zero, whether it equals
the checkpoint's tensor, and, for buffers, whether it equals what the class's `__init__`
computes (one fresh instance built from the same config, seeded, outside the load).
"""

from __future__ import annotations

import copy
import hashlib
import os
from typing import Any, Dict, Optional, Set

from probes.loading import checkpoint_keys

MAX_CHECKSUM_ELEMENTS = 1 << 22  # a bigger tensor gets counts, not a checksum
MAX_FRESH_ELEMENTS = 50_000_000  # a bigger model is not built a second time
MAX_CHECKPOINT_BYTES = 1 << 30  # a bigger checkpoint is not read a second time


def loaded_state(model: Any, location: str, torch: Any) -> Dict[str, Any]:
    """Per tensor name: kind, persistent, from, shape, dtype, checksum, nonfinite, all_zero,
    matches_checkpoint (None when unread), matches_init (buffers; None when not built)."""
    saved = checkpoint_keys(location)
    prefix = (getattr(model, "base_model_prefix", "") or "") + "."
    tensors: Dict[str, Dict[str, Any]] = {}
    non_persistent = _non_persistent(model)
    named = [("param", name, value) for name, value in model.named_parameters()]
    named += [("buffer", name, value) for name, value in model.named_buffers()]
    for kind, name, value in named:
        stored = _stored_name(name, saved, prefix)
        tensors[name] = {
            "kind": kind,
            "persistent": kind == "param" or name not in non_persistent,
            "from": "checkpoint" if stored else "init",
            **_describe(value.detach(), torch),
        }
        tensors[name]["stored_as"] = stored
    values = {name: value for _, name, value in named}
    notes = _compare_checkpoint(tensors, values, location, torch)
    notes += _compare_fresh(model, tensors, torch)
    for entry in tensors.values():
        entry.pop("stored_as", None)
    return {"tensors": tensors, "notes": notes}


def _non_persistent(model: Any) -> Set[str]:
    names: Set[str] = set()
    for module_name, module in model.named_modules():
        for buffer in getattr(module, "_non_persistent_buffers_set", ()):
            names.add(f"{module_name}.{buffer}" if module_name else buffer)
    return names


def _stored_name(name: str, saved: Set[str], prefix: str) -> Optional[str]:
    for candidate in (name, prefix + name, name[len(prefix) :] if name.startswith(prefix) else None):
        if candidate and candidate in saved:
            return candidate
    return None


def _describe(value: Any, torch: Any) -> Dict[str, Any]:
    cpu = value.to("cpu")
    floating = cpu.is_floating_point() or cpu.is_complex()
    nonfinite = int((~torch.isfinite(cpu)).sum().item()) if floating else 0
    checksum = None
    if cpu.numel() <= MAX_CHECKSUM_ELEMENTS and cpu.dtype != torch.bfloat16:
        checksum = hashlib.sha256(cpu.contiguous().numpy().tobytes()).hexdigest()[:16]
    return {
        "shape": list(cpu.shape),
        "dtype": str(cpu.dtype).replace("torch.", ""),
        "checksum": checksum,
        "nonfinite": nonfinite,
        "all_zero": bool(cpu.numel()) and not bool(cpu.any().item()),
    }


def _same(a: Any, b: Any, torch: Any) -> bool:
    a, b = a.detach().to("cpu"), b.detach().to("cpu")
    if a.shape != b.shape:
        return False
    if a.dtype != b.dtype:
        a, b = a.float(), b.float()
    return bool(torch.equal(a, b))


def _compare_checkpoint(
    tensors: Dict[str, Dict[str, Any]], values: Dict[str, Any], location: str, torch: Any
) -> list[str]:
    files = sorted(n for n in os.listdir(location) if n.endswith(".safetensors")) if os.path.isdir(location) else []
    if not files:
        return ["no safetensors checkpoint: loaded tensors not compared with the checkpoint"]
    if sum(os.path.getsize(os.path.join(location, name)) for name in files) > MAX_CHECKPOINT_BYTES:
        return ["checkpoint over 1 GiB: loaded tensors not compared with it"]
    from safetensors import safe_open

    wanted = {entry["stored_as"]: name for name, entry in tensors.items() if entry["stored_as"]}
    for file in files:
        with safe_open(os.path.join(location, file), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - a safetensors handle is not iterable
                name = wanted.get(key)
                if name is not None:
                    tensors[name]["matches_checkpoint"] = _same(values[name], handle.get_tensor(key), torch)
    return []


def _compare_fresh(model: Any, tensors: Dict[str, Dict[str, Any]], torch: Any) -> list[str]:
    if sum(parameter.numel() for parameter in model.parameters()) > MAX_FRESH_ELEMENTS:
        return ["model over 50M parameters: buffers not compared with a fresh __init__"]
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            fresh = type(model)(copy.deepcopy(model.config))
    except Exception as exc:  # noqa: BLE001 - a class that cannot be built plainly is a note, not a failure
        return [f"a fresh {type(model).__name__}(config) raised {type(exc).__name__}: {str(exc)[:200]}"]
    fresh_buffers = dict(fresh.named_buffers())
    for name, value in model.named_buffers():
        if name in fresh_buffers:
            tensors[name]["matches_init"] = _same(value, fresh_buffers[name], torch)
    return []
