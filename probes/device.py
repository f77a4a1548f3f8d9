"""Where a cell runs and in which precision, and what it measured about the GPU.

Policy (per model, `device` and `dtype` in the config):
- device "cpu" runs on the CPU; "cuda" needs a GPU (on a host without one the cell is
  `skipped (needs a GPU)` before anything is downloaded or loaded); "auto" takes the GPU
  when there is one.
- no dtype (the default): none is passed to `from_pretrained`, so each release loads the
  model as a plain call does there (load_kwargs can pass the deployment's own);
- dtype "auto" is bfloat16 on a GPU that supports it, float16 on an older GPU, float32
  on the CPU (half precision on the CPU is slow and not what a deployment serves); an
  explicit dtype is used as given.

Only the forked child calls these: the runner's parent never touches CUDA, whose context
does not survive a fork.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

NEEDS_GPU = "needs a GPU"


class NoGPU(Exception):
    """The model needs a GPU and this host has none."""


def choose(device: str, dtype: Optional[str], torch: Any) -> Tuple[str, Any]:
    """The device name and torch dtype a cell uses, by the policy above (None: pass none)."""
    has_cuda = bool(torch.cuda.is_available())
    if device == "cuda" and not has_cuda:
        raise NoGPU(f"{NEEDS_GPU} (device = 'cuda') and this host has none")
    chosen = "cuda" if has_cuda and device in ("cuda", "auto") else "cpu"
    if dtype is None:
        return chosen, None
    if dtype != "auto":
        return chosen, getattr(torch, dtype)
    if chosen == "cpu":
        return chosen, torch.float32
    return chosen, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def start_memory(torch: Any) -> int:
    """Reset the peak counter; the bytes allocated now (the baseline of the increase)."""
    torch.cuda.reset_peak_memory_stats()
    return int(torch.cuda.memory_allocated())


def memory_metrics(torch: Any, baseline: int) -> Dict[str, float]:
    """Peak CUDA memory of the cell, and its increase over what was allocated at its start."""
    peak = int(torch.cuda.max_memory_allocated())
    return {
        "peak_cuda_mb": round(peak / 2**20, 1),
        "peak_cuda_increase_mb": round((peak - baseline) / 2**20, 1),
        "peak_cuda_reserved_mb": round(torch.cuda.max_memory_reserved() / 2**20, 1),
    }


def gpu_facts(torch: Any) -> Dict[str, Any]:
    """Which GPU, driver and CUDA the cell ran on (so two runs' timings can be compared)."""
    index = torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    return {
        "name": torch.cuda.get_device_name(index),
        "capability": "{}.{}".format(*torch.cuda.get_device_capability(index)),
        "memory_gb": round(props.total_memory / 2**30, 1),
        "cuda": torch.version.cuda or "",
        "driver": driver_version(),
        "bf16": bool(torch.cuda.is_bf16_supported()),
    }


def driver_version(proc_file: str = "/proc/driver/nvidia/version") -> str:
    """The NVIDIA kernel driver's version, read from the file the driver itself exposes."""
    try:
        with open(proc_file, encoding="utf-8", errors="replace") as handle:
            first = handle.readline()
    except OSError:
        return ""
    # "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 ..."
    for word in first.split():
        if word[:1].isdigit() and word.count(".") >= 1:
            return word
    return ""
