"""What a cell records while it runs, and the checks of ours that can fail it.

`probes.cell` runs the phases and `probes.tasks` does the work inside them; both need the
record (timings, metrics, fingerprint, facts) and the failures a check raises, so those
live here and neither of the two imports the other's internals.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Tuple

# Timed repeats of a call: at least `repeats` (REPEATS unless the task asks for fewer), then
# more until the samples add up to MIN_SAMPLES_S, never more than MAX_REPEATS. Measured on
# the default matrix's cells over three quiet reruns (2 CPUs): medians of 3 samples differed
# by up to 33 %, of 5 by up to 12 %, of 25 by up to 8 % (1 ms calls) and 3 % (7 ms calls).
# The 60 ms floor gives a 1 ms call 25 samples and a 7 ms call 9, at 0.04-0.13 s per cell.
REPEATS = 5
MIN_SAMPLES_S = 0.06
MAX_REPEATS = 25


class CellFailure(Exception):
    """A check of ours failed (not an exception from the model's code)."""


class NonFiniteOutputs(CellFailure):
    """The model returned NaN or inf: a silent numerical break, so the cell fails in the
    phase of the call. The message always starts "non-finite outputs in <phase>: "."""

    def __init__(self, phase: str, what: str, nan: int, inf: int, total: int) -> None:
        super().__init__(f"non-finite outputs in {phase}: {nan} of {total} {what} are NaN, {inf} are inf")
        self.phase, self.what, self.nan, self.inf, self.total = phase, what, nan, inf, total


class Observations:
    """The record one cell fills in: which phase it is in, timings, metrics, a fingerprint
    of the outputs, and plain facts."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.phase = "resolve"
        self.timings: dict[str, float] = {}
        self.metrics: dict[str, float] = {}
        self.fingerprint: dict[str, Any] = {}
        self.facts: dict[str, Any] = {}
        self.device = "cpu"

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Time a phase; on a GPU, wait for its queued kernels so the time is the phase's own."""
        self.phase = phase
        start = time.perf_counter()
        yield
        self._sync()
        self.timings[f"{phase}_s"] = round(time.perf_counter() - start, 6)

    def timed_calls(self, name: str, call: Any, torch: Any, repeats: int = REPEATS) -> Any:
        """Time the first call, then repeat it (see MIN_SAMPLES_S) and record the median and
        every sample; return the first result.

        `facts["samples"][name]` keeps, per sample, its wall time, how long this process's
        threads waited for a CPU during it (`waited_s`), and how much CPU time other
        processes used meanwhile (`others_s`, None where the system does not say): the host
        sets aside samples the rest of the machine slowed down (matrix/gate.py)."""
        start = time.perf_counter()
        first = call()
        self._sync()
        self.metrics[f"{name}_first_s"] = round(time.perf_counter() - start, 6)
        watch = CpuWatch()
        walls: List[float] = []
        waited: List[float] = []
        others: List[Optional[float]] = []
        while len(walls) < max(1, repeats) or (sum(walls) < MIN_SAMPLES_S and len(walls) < MAX_REPEATS):
            before = watch.read()
            start = time.perf_counter()
            call()
            self._sync()
            walls.append(time.perf_counter() - start)
            after = watch.read()
            waited.append(max(0, after[0] - before[0]) / 1e9)
            others.append(None if after[1] is None or before[1] is None else max(0, after[1] - before[1]) / 1e9)
        self.metrics[f"{name}_median_s"] = round(statistics.median(walls), 6)
        self.facts.setdefault("samples", {})[name] = {
            "wall_s": [round(value, 6) for value in walls],
            "waited_s": [round(value, 6) for value in waited],
            "others_s": [None if value is None else round(value, 6) for value in others],
        }
        return first

    def check_finite(self, tensor: Any, what: str) -> None:
        """Record in `fingerprint["finite"][phase]` whether `tensor` is all finite; raise
        `NonFiniteOutputs` when it is not. Called after the timed calls, never inside them."""
        import torch

        values = tensor.detach()
        nan = int(torch.isnan(values).sum().item())
        inf = int(torch.isinf(values).sum().item())
        finite = self.fingerprint.setdefault("finite", {})
        finite[self.phase] = finite.get(self.phase, True) is not False and nan == 0 and inf == 0
        if nan or inf:
            raise NonFiniteOutputs(self.phase, what, nan, inf, values.numel())

    def _sync(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()


class CpuWatch:
    """How busy the rest of the machine is, read before and after each timed sample.

    `read()` gives (ns this process's threads have waited on a run queue, from
    /proc/self/task/*/schedstat; ns of CPU time used by everything else, or None). The
    second is the CPU use visible to us (the root cgroup's usage, else the machine's
    /proc/stat, in clock ticks) minus this process's own CPU time. Waiting alone is not
    enough: a process whose thread pools outnumber the CPUs waits on itself (measured: a
    tokenizer's threads behind torch's spinning ones, 2-3 ms per 1.3 ms embed call, every run).
    """

    CGROUP_V1 = "/sys/fs/cgroup/cpuacct/cpuacct.usage"
    CGROUP_V2 = "/sys/fs/cgroup/cpu.stat"

    def __init__(self) -> None:
        readers = (self._cgroup_v1, self._cgroup_v2, self._proc_stat)
        self.source = next((reader for reader in readers if _ok(reader)), None)

    def read(self) -> Tuple[int, Optional[int]]:
        waited = _threads_waited_ns()
        if self.source is None:
            return waited, None
        used = self.source()
        own = time.process_time_ns()
        return waited, None if used is None else used - own

    def _cgroup_v1(self) -> Optional[int]:
        with open(self.CGROUP_V1, encoding="ascii") as usage:
            return int(usage.read())

    def _cgroup_v2(self) -> Optional[int]:
        with open(self.CGROUP_V2, encoding="ascii") as stat:
            for line in stat:
                if line.startswith("usage_usec "):
                    return int(line.split()[1]) * 1000
        return None

    def _proc_stat(self) -> Optional[int]:
        with open("/proc/stat", encoding="ascii") as stat:
            ticks = [int(value) for value in stat.readline().split()[1:9]]
        busy = sum(ticks) - ticks[3] - ticks[4]  # all but idle and iowait (steal counts: someone else ran)
        return busy * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def _ok(reader: Any) -> bool:
    try:
        return reader() is not None
    except (OSError, ValueError, IndexError):
        return False


def _threads_waited_ns() -> int:
    total = 0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 0
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/schedstat", encoding="ascii") as stat:
                total += int(stat.read().split()[1])
        except (OSError, ValueError, IndexError):
            continue  # a thread that ended meanwhile
    return total


def host_facts() -> Dict[str, str]:
    """What the samples were measured on, beyond `machine` (which names no CPU model): the
    CPU model and the NVIDIA driver, for the history's machine fingerprint."""
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "cpu model", "Model") and value.strip():
                    cpu = value.strip()
                    break
    except OSError:
        pass
    driver = ""
    try:
        with open("/proc/driver/nvidia/version", encoding="utf-8", errors="replace") as version:
            words = version.readline().split()
        driver = next((word for word in words if word[:1].isdigit() and "." in word), "")
    except OSError:
        pass
    return {"cpu_model": cpu or platform.processor() or platform.machine(), "gpu_driver": driver}
