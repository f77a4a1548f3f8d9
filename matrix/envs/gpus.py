"""One GPU per env session when `nox -j N` runs env sessions side by side.

Two probe sessions sharing one GPU contend for its memory and time (peak memory and
latency figures would mix); on a host with several GPUs each env session gets its own
through CUDA_VISIBLE_DEVICES, by the env's index in the config modulo the GPU count.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence

from matrix import proc

_GPU_LINE = re.compile(r"^GPU (\d+):")


def visible_gpus(environ: Mapping[str, str] | None = None) -> list[str]:
    """The GPUs this process may use: the entries of CUDA_VISIBLE_DEVICES when it is set (an
    empty value means none), else the indices `nvidia-smi -L` lists (none without nvidia-smi)."""
    environ = os.environ if environ is None else environ
    if "CUDA_VISIBLE_DEVICES" in environ:
        return [item.strip() for item in environ["CUDA_VISIBLE_DEVICES"].split(",") if item.strip()]
    listed = proc.run(["nvidia-smi", "-L"], stdout_only=True, timeout=30)
    if not listed.ok:
        return []
    return gpus_from_listing(listed.output)


def gpus_from_listing(listing: str) -> list[str]:
    """Indices from `nvidia-smi -L` lines such as "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-...)"."""
    return [found.group(1) for line in listing.splitlines() if (found := _GPU_LINE.match(line.strip()))]


def gpu_for_env(env_index: int, gpus: Sequence[str]) -> str | None:
    """The CUDA_VISIBLE_DEVICES value for the env at `env_index` of the config; None when there is no GPU."""
    if not gpus:
        return None
    return gpus[env_index % len(gpus)]
