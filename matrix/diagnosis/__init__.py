"""Why each failing cell failed, from evidence, in layers.

A failing cell is explained by the first layer that can, and the explanation says which:

1. `table`: the curated known-break table (human-written cause and fixes);
2. `verdicts`: a package the model needs and the env lacks; non-finite outputs;
3. `symbols`: the failure names a transformers symbol (attribute, import, module,
   keyword): the releases' own sources say where it lived, when it went, where it moved;
4. `differential`: where the bisect re-ran the two releases of an exact window with the
   recorder on, what the model's code was handed, read and loaded in each (the first
   change that reaches the failing line, or the changed output); it speaks before the
   traceback and the bare non-finite verdict, which say where, not what changed;
5. `frames`: the failure is inside the model's own code: its frame, the transformers
   frame that called it, and how that transformers function changed.

Whatever layer explains a cell, its fixes are then filtered and led by the matrix's own
evidence (`evidence`): the shim variants that passed for that model in that env, the
release bounds the bisect or the envs show. Failures no layer explains are grouped by
signature so each new kind shows once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matrix.diagnosis import differential, evidence, failure, verdicts
from matrix.diagnosis.finding import Diagnosis
from matrix.diagnosis.table import from_table
from matrix.known_breaks import KnownBreak, load_known_breaks
from matrix.results.aggregate import Matrix
from matrix.signature import UnknownGroup, group_unknown
from probes.record import CellResult
from probes.status import Status

if TYPE_CHECKING:
    from matrix.diagnosis.symbols.sources import SourceShelf

__all__ = ["Diagnosis", "KnownBreak", "Sources", "UnknownGroup", "diagnose", "load_known_breaks"]


@dataclass(frozen=True)
class Sources:
    """Where release sources are read from (`cache`), and the release line (oldest first),
    for the layers that read transformers' own code; absent, only the table, the verdicts
    and the matrix's evidence speak."""

    cache: Path
    releases: tuple[str, ...] = ()


def diagnose(
    matrix: Matrix,
    table: list[KnownBreak],
    bisects: dict[str, dict[str, Any]] | None = None,
    sources: Sources | None = None,
) -> list[UnknownGroup]:
    """Attach a diagnosis to every failing cell some layer explains; group the others."""
    shelf = None
    if sources is not None:
        # the layers that read release sources load only when there are sources to read
        from matrix.diagnosis.symbols.sources import SourceShelf

        shelf = SourceShelf(sources.cache)
    for cell in matrix.all_cells():
        cell.diagnosis = None
        if cell.status is not Status.FAIL or not cell.error:
            continue
        found = evidence.bounds(cell, matrix, (bisects or {}).get(cell.model))
        explained = explain(cell, matrix, table, found, shelf, sources.releases if sources else ())
        window = _window_starting(found, (bisects or {}).get(cell.model), cell.variant)
        if window is not None and (explained is None or explained.source in _SAY_WHERE):
            explained = differential.from_window(window, cell.error, found.before if found else None) or explained
        if explained is None:
            continue
        if found is not None:
            if found.exact or not explained.introduced_in:
                explained.introduced_in, explained.exact = found.first_bad, found.exact
            explained.last_good = explained.last_good or found.last_good
        explained.fixes = evidence.evidence_fixes(cell, matrix, found, explained.fixes)
        cell.diagnosis = explained.to_dict()
    for model, report in (bisects or {}).items():
        _diagnose_windows(model, report, matrix, table, shelf, sources.releases if sources else ())
    return group_unknown(matrix.all_cells())


def _diagnose_windows(
    model: str,
    report: dict[str, Any],
    matrix: Matrix,
    table: list[KnownBreak],
    shelf: SourceShelf | None,
    releases: tuple[str, ...],
) -> None:
    """Explain each break the bisect found between the run's envs, in place (`diagnosis` on
    its window): the upgrade past a pin is blocked by such a break, and no cell of the run
    saw it. The same layers read the window's error (type, phase, message and the end of
    its traceback) with the window's own bounds; the matrix's cell evidence does not apply
    to a release the run has no env for."""
    for variant, windows in evidence.variant_windows(report).items():
        last_good: str | None = None
        for index, window in enumerate(windows):
            if window.get("outcome") == "pass":
                last_good = window["to"]
                continue
            error = window.get("error") or {}
            before = windows[index - 1]["to"] if index else None
            exact = bool(window.get("exact_from")) and before is not None
            if not error.get("type"):  # outputs that changed: only the recorded releases can say why
                changed = differential.from_window(window, None, before)
                if changed is not None:
                    if exact:  # the window's first release is exact even where its baseline is older
                        changed.introduced_in, changed.exact = window["from"], True
                    window["diagnosis"] = changed.to_dict()
                continue
            found = evidence.Bounds(window["from"], before, last_good, exact, "bisect")
            cell = CellResult(
                env=f"tf-{window['from']}",  # the bisect's own name for a release's env
                model=model,
                variant=variant,
                status=Status.FAIL,
                reason=f"{error['type']} in {error.get('phase')}",
                phase=error.get("phase"),
                error={key: error.get(key, "") for key in ("type", "message", "traceback")},
            )
            explained = explain(cell, matrix, table, found, shelf, releases)
            if explained is None or explained.source in _SAY_WHERE:
                explained = differential.from_window(window, cell.error, before) or explained
            if explained is None:
                continue
            if exact or not explained.introduced_in:
                explained.introduced_in, explained.exact = found.first_bad, exact
            explained.last_good = explained.last_good or last_good
            window["diagnosis"] = explained.to_dict()


# Layers that say where a failure is, not what changed: differential evidence, when the
# bisect recorded it for the window, speaks before them.
_SAY_WHERE = ("traceback", "non-finite")


def _window_starting(
    found: evidence.Bounds | None, report: dict[str, Any] | None, variant: str
) -> dict[str, Any] | None:
    """The bisect window that begins at `found.first_bad` and carries recorder records."""
    if found is None or found.source != "bisect" or not report:
        return None
    for window in evidence.variant_windows(report).get(variant, []):
        if window.get("from") == found.first_bad and window.get("recorded"):
            return window
    return None


def explain(
    cell: CellResult,
    matrix: Matrix,
    table: list[KnownBreak],
    found: evidence.Bounds | None,
    shelf: SourceShelf | None,
    releases: tuple[str, ...] = (),
) -> Diagnosis | None:
    """The first layer's explanation of one failing cell, or None."""
    if (known := from_table(cell, table)) is not None:
        return known
    named = failure.read_failure(cell.error or {}, cell.phase)
    if named.symbol is not None and named.symbol.kind == "missing-package":
        return verdicts.missing_package(cell, list(named.symbol.names or (named.symbol.name,)), matrix)
    if (numeric := verdicts.non_finite(cell)) is not None:
        return numeric
    if shelf is None or found is None or found.before is None:
        return None
    from matrix.diagnosis import frames
    from matrix.diagnosis.symbols import history as symbols

    failed_in = next((env.transformers for env in matrix.envs if env.name == cell.env), None)
    return symbols.symbol_history(
        named, found.before, found.first_bad, shelf, list(releases) or None
    ) or frames.traceback_history(named, found.before, found.first_bad, shelf, failed_in=failed_in)
