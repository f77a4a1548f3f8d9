"""What a cell records while it runs, and the checks of ours that can fail it.

`probes.cell` runs the phases and `probes.tasks` does the work inside them; both need the
record (timings, metrics, fingerprint, facts) and the failures a check raises, so those
live here and neither of the two imports the other's internals.
"""

from __future__ import annotations

import statistics
import time
from contextlib import contextmanager
from typing import Any, Iterator

REPEATS = 5


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
        """Time the first call and the median of `repeats` more; return the first result."""
        start = time.perf_counter()
        first = call()
        self._sync()
        self.metrics[f"{name}_first_s"] = round(time.perf_counter() - start, 6)
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            self._sync()
            samples.append(time.perf_counter() - start)
        self.metrics[f"{name}_median_s"] = round(statistics.median(samples), 6)
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
