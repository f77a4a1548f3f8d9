"""Window searches of many models and variants, advanced together in rounds.

Each round gathers what every open search wants to probe next (its ends, one release per
gap whose ends differ, or both sides of each candidate edge the sources point at) and asks
it all at once (`batch.answer_many`): one runner per release, releases side by side. A
release one variant asks is also asked of the model's other variants whose searches it
would inform (it lies inside one of their differing gaps): one more forked cell in a
process that runs anyway, where it would otherwise be a process of its own in a later round.

When no search has a probe left, one last round asks the diagnosis probes: the first
release of every exact window that does not pass and the newest release before it that
ran the model (`baselines`), with the recorder on (a fact of
its own, `{"record": True}` in its key), what `matrix.diagnosis.differential` diffs; the
reruns of 'outputs differ' windows share that round. A model with no such window pays nothing.

The rounds, their questions and the order answers are recorded in do not depend on
`jobs`, so the windows, cells and facts are those of a serial run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from matrix.bisect.batch import answer_many
from matrix.bisect.probe import Prober
from matrix.first_bad import OUTPUTS_DIFFER, PASS, WindowSearch, baselines

ALONGSIDE = "alongside"


@dataclass
class Lane:
    """One variant of one model: its search and the prober that answers it."""

    prober: Prober
    variant: str
    search: WindowSearch


def informs(search: WindowSearch, release: str) -> bool:
    """Whether observing `release` would tell this search something: untested, inside a differing gap."""
    if release in search.observed or release not in search.line:
        return False
    known = [v for v in search.line if search.observed.get(v) is not None]
    place = search.line.index(release)
    below = [v for v in known if search.line.index(v) < place]
    above = [v for v in known if search.line.index(v) > place]
    return bool(below and above) and search.observed[below[-1]] != search.observed[above[0]]


def recorded_edges(lane: Lane) -> list[str]:
    """The releases a differential diagnosis of this lane's windows needs, each once: the
    first release of every exact window that does not pass and its baseline (`baselines`);
    none for a lane whose model never ran."""
    windows = lane.search.windows()
    pairs = baselines([(w.last, w.outcome == PASS, w.exact_from) for w in windows])
    edges: list[str] = []
    for index, baseline in pairs.items():
        edges += [r for r in (baseline, windows[index].first) if r not in edges]
    return edges


def run_rounds(lanes: list[Lane], jobs: int = 1) -> int:
    """Advance every lane until none has a probe left, then one last round: rerun once the
    first release of every 'outputs differ' window (a cell whose outputs differ between two
    runs is not a change of release but noise), and ask both edge releases of every exact
    window with the recorder on, and its baseline (`recorded_edges`); the number of rounds."""
    rounds = 0
    while True:
        asks: list[tuple[Lane, str, str]] = []
        for lane in lanes:
            asks += [(lane, release, why) for release, why in lane.search.next_probes()]
        if not asks:
            last: list[tuple[Any, ...]] = [
                (lane.prober, window.first, lane.variant, 1)
                for lane in lanes
                for window in lane.search.windows()
                if window.outcome.startswith(OUTPUTS_DIFFER)
            ]
            last += [
                (lane.prober, release, lane.variant, 0, True) for lane in lanes for release in recorded_edges(lane)
            ]
            if last:
                started = time.perf_counter()
                answer_many(last, jobs)
                rounds += 1
                for prober in {id(q[0]): q[0] for q in last if len(q) > 4 and q[0].record_probes}.values():
                    prober.record_seconds = round(time.perf_counter() - started, 1)
            return rounds
        asked = {(id(lane.prober), lane.variant, release) for lane, release, _ in asks}
        for lane, release, _ in list(asks):
            for other in lanes:
                key = (id(other.prober), other.variant, release)
                if other.prober is lane.prober and key not in asked and informs(other.search, release):
                    asked.add(key)
                    asks.append((other, release, ALONGSIDE))
        outcomes = answer_many([(lane.prober, release, lane.variant) for lane, release, _ in asks], jobs)
        for (lane, release, why), outcome in zip(asks, outcomes, strict=True):
            lane.search.record(release, outcome, why)
        rounds += 1
