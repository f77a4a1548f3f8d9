"""Where a model's outcome changes over a release line: windows, not one first bad release.

A model can break more than once between a good and a bad release, and a patch release
can undo a break. So the search compares *outcomes* (`PASS`, or a failure's signature:
phase, exception type, normalised message), not good/bad. It keeps what each release was
observed to do and bisects every gap between two neighbouring observed releases whose
outcomes differ and that still holds untested releases, until none is left; a gap whose
ends agree is taken to agree throughout (the bisection assumption).

A window that no probe lands in stays invisible, and the likeliest such window is a break
that a later patch release undoes. So, once no differing gap is left, the newest patch
release of every minor line where a failure begins, and of the failing end's line, is
probed too: if it disagrees, the gap it opens is bisected like any other.

A release that says nothing (None: its env could not be built, the model was unavailable)
is skipped, as `git bisect skip` would, and a boundary next to it is not exact.

Pure: `probe(version) -> outcome` is given, so tests drive the search with tables.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from packaging.version import Version

PASS = "pass"
# The outcome of a cell that passes with other outputs than the model's reference cell
# (bisected like a failure; never a release that runs the model unchanged).
OUTPUTS_DIFFER = "outputs differ"
Outcome = str | None  # PASS, a failure signature, or None: this release says nothing


@dataclass(frozen=True)
class Window:
    """Consecutive observed releases with one outcome (untested ones inside are assumed alike).

    `exact_from`: the release just before `first` was observed, with another outcome (so the
    window starts exactly here); `exact_to` likewise after `last`. `unresolved_before`: the
    releases between the previous window and this one that said nothing or were not tested.
    """

    first: str
    last: str
    outcome: str
    exact_from: bool = False
    exact_to: bool = False
    unresolved_before: tuple[str, ...] = ()


@dataclass(frozen=True)
class Transition:
    """Where one outcome ends (`last`) and the next begins (`first`)."""

    last: str
    first: str
    before: str
    after: str
    exact: bool
    unresolved: tuple[str, ...]


Edge = tuple[str, str]  # (the last release before a change the sources show, the first release with it)


@dataclass
class WindowSearch:
    """What the search observed: the known outcomes, then every probe in order.

    `hints`: candidate edges read from the releases' sources (a symbol the model's code
    uses was removed or changed there); inside a gap whose ends differ, both sides of each
    are probed before any halving. `lo`/`hi`: the ends; `limit`: the most probes.
    """

    line: list[str]
    observed: dict[str, Outcome]
    probed: list[tuple[str, Outcome, str]] = field(default_factory=list)  # (release, outcome, why)
    untested_at_start: int = 0
    limited: bool = False
    lo: str = ""
    hi: str = ""
    limit: int | None = None
    hints: tuple[Edge, ...] = ()

    def windows(self) -> list[Window]:
        runs: list[list[str]] = []
        for version in (v for v in self.line if self.observed.get(v) is not None):
            if runs and self.observed[runs[-1][-1]] == self.observed[version]:
                runs[-1].append(version)
            else:
                runs.append([version])
        index = {v: i for i, v in enumerate(self.line)}
        gaps = [()] + [tuple(self.line[index[a[-1]] + 1 : index[b[0]]]) for a, b in zip(runs, runs[1:], strict=False)]
        return [
            Window(
                first=run[0],
                last=run[-1],
                outcome=str(self.observed[run[0]]),
                exact_from=number > 0 and not gaps[number],
                exact_to=number + 1 < len(runs) and not gaps[number + 1],
                unresolved_before=gaps[number],
            )
            for number, run in enumerate(runs)
        ]

    def transitions(self) -> list[Transition]:
        windows = self.windows()
        return [
            Transition(a.last, b.first, a.outcome, b.outcome, b.exact_from, b.unresolved_before)
            for a, b in zip(windows, windows[1:], strict=False)
        ]

    def breaks(self) -> list[Transition]:
        """Every transition into a failure (from a pass or from another failure)."""
        return [t for t in self.transitions() if t.after != PASS]

    @property
    def per_transition(self) -> int:
        """Probes one transition can cost: ceil(log2(n)) + 1 for n untested releases."""
        return math.ceil(math.log2(max(self.untested_at_start, 1))) + 1

    @property
    def max_probes(self) -> int:
        """The bound the probes stay within: per transition, plus ends, patch and pointed probes and skips."""
        extra = sum(1 for _, outcome, why in self.probed if why != "gap" or outcome is None)
        return self.per_transition * len(self.transitions()) + extra

    def next_probes(self) -> list[tuple[str, str]]:
        """[(release, why)]: what this round may probe side by side (empty: the search is done).

        One per differing gap (both sides of every candidate edge inside it first, else its
        middle); the unknown ends before anything; the patch lines' newest once no gap is left.
        """
        steps = _next_probes(self)
        if self.limit is not None:
            asked = sum(1 for _, _, why in self.probed if why != "alongside")  # another lane's release
            room = max(self.limit - asked, 0)
            if len(steps) > room:
                self.limited = True
                steps = steps[:room]
        return steps

    def record(self, version: str, outcome: Outcome, why: str) -> None:
        self.observed[version] = outcome
        self.probed.append((version, outcome, why))

    def edge_costs(self) -> list[dict[str, object]]:
        """Per exact edge, the probes it cost: each probe counts for the exact edge nearest to it
        on the line (so the costs add up to the probes), and whether the sources pointed at it."""
        edges = [t for t in self.transitions() if t.exact]
        index = {v: i for i, v in enumerate(self.line)}
        costs = [0] * len(edges)
        for version, _, _ in self.probed:
            if edges:
                costs[min(range(len(edges)), key=lambda n: _distance(index, edges[n], version))] += 1
        hinted = set(self.hints)
        return [
            {"last": t.last, "first": t.first, "probes": cost, "pointed": (t.last, t.first) in hinted}
            for t, cost in zip(edges, costs, strict=True)
        ]


def _distance(index: dict[str, int], edge: Transition, version: str) -> float:
    return abs(index[version] - (index[edge.last] + index[edge.first]) / 2)


def start_search(
    line: Sequence[str],
    known: Mapping[str, Outcome],
    *,
    ends: tuple[str, str] | None = None,
    limit: int | None = None,
    hints: Sequence[Edge] = (),
) -> WindowSearch:
    """A search over `line` from what is `known` (never probed again); `ends` default to the line's."""
    ordered = sorted(dict.fromkeys([*line, *known, *(ends or ())]), key=Version)
    lo, hi = ends or (ordered[0], ordered[-1])
    ordered = [v for v in ordered if Version(v) >= Version(lo)]
    present = set(ordered)
    search = WindowSearch(
        ordered,
        {v: o for v, o in known.items() if v in present},
        lo=lo,
        hi=hi,
        limit=limit,
        hints=tuple((a, b) for a, b in hints if a in present and b in present),
    )
    search.untested_at_start = sum(1 for v in ordered if v not in search.observed and Version(v) <= Version(hi))
    return search


def search_windows(
    line: Sequence[str],
    known: Mapping[str, Outcome],
    probe: Callable[[str], Outcome],
    *,
    ends: tuple[str, str] | None = None,
    limit: int | None = None,
    hints: Sequence[Edge] = (),
) -> WindowSearch:
    """Probe releases of `line` until no gap between differing neighbours has untested releases.

    `known`: outcomes already observed (a run's own cells); they are never probed again.
    `ends` (default: the first and last of `line`) are probed first when not known; releases
    beyond the far end are probed only as newest patch releases of a failing line. `limit`
    caps the probes (the search then stops with `limited` set). One probe at a time, in
    the order a round lists them; `matrix.bisect.rounds` asks a round's probes side by side.
    """
    search = start_search(line, known, ends=ends, limit=limit, hints=hints)
    while steps := search.next_probes():
        for version, why in steps:
            search.record(version, probe(version), why)
    return search


def _next_probes(search: WindowSearch) -> list[tuple[str, str]]:
    line, seen = search.line, search.observed
    ends = [(end, "end") for end in dict.fromkeys((search.lo, search.hi)) if end not in seen]
    if ends:
        return ends
    index = {v: i for i, v in enumerate(line)}
    observed = [i for i, v in enumerate(line) if seen.get(v) is not None]
    steps: list[tuple[str, str]] = []
    for i, j in zip(observed, observed[1:], strict=False):
        if seen[line[i]] == seen[line[j]]:
            continue
        untested = [k for k in range(i + 1, j) if line[k] not in seen]
        if not untested:
            continue
        pointed = [
            index[side] for a, b in search.hints if i <= index[a] < index[b] <= j for side in (a, b) if side not in seen
        ]
        if pointed:
            steps += [(line[k], "pointed") for k in dict.fromkeys(pointed)]
            continue
        middle = (i + j) / 2
        steps.append((line[min(untested, key=lambda k: (abs(k - middle), k))], "gap"))
    if steps:
        return steps
    starts = [t.first for t in search.breaks()]
    if seen.get(search.hi) not in (None, PASS):
        starts.append(search.hi)
    patches = [newest_patch(line, start) for start in starts]
    return [(v, "patch") for v in dict.fromkeys(patches) if v not in seen]


def baselines(spans: list[tuple[str, bool, bool]]) -> dict[int, str]:
    """{index of a window: the release a differential diagnosis diffs it against}, for
    `spans` of (last release, passed, starts exactly) per window, oldest first.

    The baseline is the newest release before the window that ran the model: the window
    just before it when that one passed (the exact last good), else the end of the newest
    passing window further back (a release that broke another way in between recorded no
    baseline; the older one still shows what transformers hands the model differently,
    though a change it shows may be older than the window). No passing window before: none."""
    found: dict[int, str] = {}
    last_pass: str | None = None
    for index, (last, passed, exact) in enumerate(spans):
        if passed:
            last_pass = last
        elif exact and last_pass is not None:
            found[index] = last_pass
    return found


@dataclass(frozen=True)
class BisectResult:
    """Where a good/bad search ended; `unresolved`: skipped versions the first bad may hide among."""

    last_good: str
    first_bad: str
    probed: list[tuple[str, bool | None]]
    unresolved: list[str]


def first_bad(candidates: list[str], is_good: Callable[[str], bool | None]) -> BisectResult:
    """Plain binary search for one good -> bad edge; candidates[0] is good, candidates[-1] bad.

    For questions with two answers only (the symbol history asks "does this release still
    have the name?"); a model's outcomes go through `search_windows`. `is_good` may answer
    None (the version says nothing): it is dropped and the untested version nearest the
    middle is tried instead. Without skips it asks at most ceil(log2(len(candidates) - 1)) times.
    """
    if len(candidates) < 2:
        raise ValueError("need a known good and a known bad candidate")
    lo, hi, skipped, probed = 0, len(candidates) - 1, set(), []
    while untested := [i for i in range(lo + 1, hi) if i not in skipped]:
        middle = (lo + hi) / 2
        mid = min(untested, key=lambda i: (abs(i - middle), i))
        verdict = is_good(candidates[mid])
        probed.append((candidates[mid], verdict))
        if verdict is None:
            skipped.add(mid)
        elif verdict:
            lo = mid
        else:
            hi = mid
    unresolved = [candidates[i] for i in sorted(skipped) if lo < i < hi]
    return BisectResult(candidates[lo], candidates[hi], probed, unresolved)


def newest_patch(line: Sequence[str], version: str) -> str:
    """The newest release of `line` in the same major.minor line as `version`."""
    key = Version(version).release[:2]
    return max((v for v in line if Version(v).release[:2] == key), key=Version, default=version)
