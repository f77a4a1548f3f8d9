"""Where transformers releases break a model, and where they stop: windows over the release line.

The matrix says a model passes in one env and fails in a newer one; the releases between
are the suspects. The search (`search`) bisects on the failure's signature, so a second
break and a patch release that undoes a break show as windows of their own; each probe
(`probe`) builds a throw-away env for one release and runs one variant's cell with the
matrix's own runner, and its answer is a cached fact (`cache`), never asked twice. The
driver (`driver`) picks the ends, searches the base cell and every shim variant, and
writes the report; `cli` is `nox -s bisect -- <model> [--good X] [--bad Y]`.
"""

from matrix.bisect.cli import main
from matrix.bisect.driver import BisectError, bisect, pick_endpoints, probe_limit
from matrix.bisect.probe import Prober, outcome_of
from matrix.bisect.report import suggested_bound
from matrix.first_bad import PASS, BisectResult, Search, first_bad, search_windows

__all__ = [
    "PASS",
    "BisectError",
    "BisectResult",
    "Prober",
    "Search",
    "bisect",
    "first_bad",
    "main",
    "outcome_of",
    "pick_endpoints",
    "probe_limit",
    "search_windows",
    "suggested_bound",
]
