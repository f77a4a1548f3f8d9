"""Where transformers releases break a model, and where they stop: windows over the release line.

The matrix says a model passes in one env and fails in a newer one; the releases between
are the suspects. The search (`search`) bisects on the failure's signature, so a second
break and a patch release that undoes a break show as windows of their own; each probe
(`probe`) builds a throw-away env for one release and runs one variant's cell with the
matrix's own runner, and its answer is a cached fact (`cache`), never asked twice. The
driver (`driver`) picks the ends and searches the base cell and every shim variant, the
lanes of every model together in rounds (`rounds`, one runner per release: `batch`), first
where the model's code meets a change in the releases' sources (`pointers`), and writes the
report; `cli` is `nox -s bisect -- <model> [--good X] [--bad Y]`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matrix.bisect.cli import main
    from matrix.bisect.driver import BisectError, bisect, bisect_models, pick_endpoints, probe_limit
    from matrix.bisect.probe import Prober, outcome_of
    from matrix.bisect.report import suggested_bound
    from matrix.first_bad import PASS, BisectResult, WindowSearch, first_bad, search_windows

# Each name the package offers, and the module that defines it: imported on first use, so
# that `import matrix.bisect.report` (or the search in matrix.first_bad) does not load the
# driver, the prober and the envs they build.
_LAZY = {
    "main": "matrix.bisect.cli",
    "BisectError": "matrix.bisect.driver",
    "bisect": "matrix.bisect.driver",
    "bisect_models": "matrix.bisect.driver",
    "pick_endpoints": "matrix.bisect.driver",
    "probe_limit": "matrix.bisect.driver",
    "Prober": "matrix.bisect.probe",
    "outcome_of": "matrix.bisect.probe",
    "suggested_bound": "matrix.bisect.report",
    "PASS": "matrix.first_bad",
    "BisectResult": "matrix.first_bad",
    "WindowSearch": "matrix.first_bad",
    "first_bad": "matrix.first_bad",
    "search_windows": "matrix.first_bad",
}

__all__ = [
    "PASS",
    "BisectError",
    "BisectResult",
    "Prober",
    "WindowSearch",
    "bisect",
    "bisect_models",
    "first_bad",
    "main",
    "outcome_of",
    "pick_endpoints",
    "probe_limit",
    "search_windows",
    "suggested_bound",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
