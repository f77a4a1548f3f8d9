"""Window searches of many models and variants, advanced together in rounds.

Each round gathers what every open search wants to probe next (its ends, one release per
gap whose ends differ, or both sides of each candidate edge the sources point at) and asks
it all at once (`batch.answer_many`): one runner per release, releases side by side. A
release one variant asks is also asked of the model's other variants whose searches it
would inform (it lies inside one of their differing gaps): one more forked cell in a
process that runs anyway, where it would otherwise be a process of its own in a later round.

The rounds, their questions and the order answers are recorded in do not depend on
`jobs`, so the windows, cells and facts are those of a serial run.
"""

from __future__ import annotations

from dataclasses import dataclass

from matrix.bisect.batch import answer_many
from matrix.bisect.probe import Prober
from matrix.first_bad import OUTPUTS_DIFFER, WindowSearch

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


def run_rounds(lanes: list[Lane], jobs: int = 1) -> int:
    """Advance every lane until none has a probe left, then rerun once the first release of
    every 'outputs differ' window (a cell whose outputs differ between two runs is not a
    change of release but noise); the number of rounds."""
    rounds = 0
    while True:
        asks: list[tuple[Lane, str, str]] = []
        for lane in lanes:
            asks += [(lane, release, why) for release, why in lane.search.next_probes()]
        if not asks:
            reruns = [
                (lane.prober, window.first, lane.variant, 1)
                for lane in lanes
                for window in lane.search.windows()
                if window.outcome.startswith(OUTPUTS_DIFFER)
            ]
            if reruns:
                answer_many(reruns, jobs)
                rounds += 1
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
