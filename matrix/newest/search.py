"""The newest single release that runs every model, from what is known of each over the release line.

A run probes a few envs; the bisect maps each breaking model's windows between them. What a
platform team asks is the newest release it can pin for *all* its models, so this combines
every model's evidence release by release. Each model (and each shim variant of it) has a
`Track`: the bisect's windows (a window's untested releases are taken to share its outcome,
as the bisect assumes) and single observations (the run's own cells, the search's probes).
A release between two observations that agree (pass and pass, or fail and fail) is assumed
to agree with them: that is how a model that passes in every env, and so was never
bisected, is taken to pass on every release between; the confirm step then probes it on
the one release recommended. Between a pass and a failure the release is undecided: the
caller probes it (`OpenQuestion`), never this module.

Pure: the search walks the line newest first and returns the next thing to do (a
`PinCandidate` to confirm by probing every model on it, a `OpenQuestion` to probe, or None); the
caller (matrix/confirm.py) does it, records the answers and asks again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from packaging.version import Version

PASS = "pass"
NEWEST_SCHEMA = 1


@dataclass
class Track:
    """What is known of one variant of one model: windows, and observations by release.

    A point is `{"outcome": PASS | signature | None, "error", "source", "env"}`; an outcome
    of None says nothing (the env could not be built, the model was unavailable).
    """

    windows: list[dict[str, Any]] = field(default_factory=list)
    points: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"windows": self.windows, "points": self.points}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Track:
        return cls(list(data.get("windows") or []), dict(data.get("points") or {}))

    def anchors(self) -> list[tuple[Version, str, dict[str, Any]]]:
        """Every release whose outcome is known, with it, oldest first (window ends and points)."""
        found: dict[str, tuple[str, dict[str, Any]]] = {}
        for window in self.windows:
            outcome = PASS if window.get("outcome") == PASS else str(window.get("signature") or window.get("outcome"))
            for end in (window["from"], window["to"]):
                found[end] = (outcome, window)
        for release, point in self.points.items():
            if point.get("outcome") is not None:
                found[release] = (str(point["outcome"]), point)
        return sorted((Version(release), outcome, said) for release, (outcome, said) in found.items())


@dataclass(frozen=True)
class TrackVerdict:
    """What a track says of one release: `state` pass, fail, unknown or silent (probed, said nothing).

    `how`: observed, window or assumed; `below`/`above`: the nearest known releases (what an
    unknown release lies between); `evidence`: the point or window that decided it.
    """

    state: str
    how: str = ""
    below: str | None = None
    above: str | None = None
    evidence: dict[str, Any] | None = None


def verdict(track: Track, release: str) -> TrackVerdict:
    """A point at the release, else the window holding it, else its two known neighbours when they agree."""
    point = track.points.get(release)
    if point is not None:
        state = "silent" if point.get("outcome") is None else _state(point["outcome"])
        return TrackVerdict(state, "observed", evidence=point)
    at = Version(release)
    for window in track.windows:
        if Version(window["from"]) <= at <= Version(window["to"]):
            return TrackVerdict(_state(window.get("outcome")), "window", evidence=window)
    anchors = track.anchors()
    below = next((a for a in reversed(anchors) if a[0] < at), None)
    above = next((a for a in anchors if a[0] > at), None)
    if below and above and _state(below[1]) == _state(above[1]):
        return TrackVerdict(_state(below[1]), "assumed", str(below[0]), str(above[0]), below[2])
    return TrackVerdict("unknown", "", str(below[0]) if below else None, str(above[0]) if above else None)


def _state(outcome: Any) -> str:
    return "pass" if outcome == PASS else "fail"


@dataclass(frozen=True)
class PinCandidate:
    """A release the evidence says runs every model: `choices` model -> variant ("" as is)."""

    release: str
    choices: dict[str, str]
    how: dict[str, str]  # model -> how its verdict was reached (observed, window, assumed)


@dataclass(frozen=True)
class OpenQuestion:
    """A release no evidence decides for this variant: probe it (or the gap it lies in)."""

    model: str
    variant: str
    release: str
    below: str | None
    above: str | None


Tracks = dict[str, dict[str, Track]]  # model -> variant -> track


def next_step(
    line: list[str],
    tracks: Tracks,
    models: list[str],
    *,
    shims: bool,
    excluded: frozenset[str] | set[str] = frozenset(),
    floor: str | None = None,
) -> PinCandidate | OpenQuestion | None:
    """The newest release above `floor`, not excluded, where every model runs (as is, or with
    `shims` the variant with the fewest shims), or the question that stands in its way.

    A release where some model fails (or said nothing when probed) is passed over without
    asking about the others; one where every model runs or is undecided asks about the first
    undecided. None: no release is left.
    """
    for release in sorted(line, key=Version, reverse=True):
        if release in excluded or (floor is not None and Version(release) <= Version(floor)):
            continue
        step = _at(release, tracks, models, shims)
        if step is not None:
            return step
    return None


def _at(release: str, tracks: Tracks, models: list[str], shims: bool) -> PinCandidate | OpenQuestion | None:
    choices: dict[str, str] = {}
    how: dict[str, str] = {}
    question: OpenQuestion | None = None
    for model in models:
        chosen: tuple[str, str] | None = None
        asked: OpenQuestion | None = None
        for variant in preferred(tracks.get(model, {}), shims):
            said = verdict(tracks[model][variant], release)
            if said.state == "pass":
                chosen = (variant, said.how)
                break
            if said.state == "unknown":
                asked = OpenQuestion(model, variant, release, said.below, said.above)
                break
        if chosen is None and asked is None:
            return None  # this model does not run here
        if chosen is None:
            question = question or asked
        else:
            choices[model], how[model] = chosen
    return question or PinCandidate(release, choices, how)


def preferred(variants: dict[str, Track], shims: bool) -> list[str]:
    """As is first, then (with shims) fewest shims, then by name."""
    if not shims:
        return [""] if "" in variants else []
    return sorted(variants, key=lambda v: (0 if not v else 1 + v.count("+"), v))


def runs_at_all(tracks: Tracks, model: str, shims: bool) -> bool:
    """Whether any evidence shows the model running (a model failing everywhere is never served)."""
    return any(
        outcome == PASS
        for variant in preferred(tracks.get(model, {}), shims)
        for _, outcome, _ in tracks[model][variant].anchors()
    )


def breaks_found(tracks: Tracks) -> int:
    """Transitions into a failure over every track (from a pass, or from another failure)."""
    count = 0
    for variants in tracks.values():
        for track in variants.values():
            outcomes = [outcome for _, outcome, _ in track.anchors()]
            count += sum(1 for a, b in zip(outcomes, outcomes[1:], strict=False) if b != PASS and b != a)
    return count


def build_bound(breaks: int, releases: int) -> int:
    """The env builds a search may need: (breaks) x (ceil(log2 releases) + 1), plus the confirm."""
    return breaks * (math.ceil(math.log2(max(releases, 1))) + 1) + 1


def newest_running(track: Track | None, line: list[str], above: str | None = None) -> tuple[str, TrackVerdict] | None:
    """The newest release of `line` (above `above`) where the track says pass, with the verdict."""
    if track is None:
        return None
    for release in sorted(line, key=Version, reverse=True):
        if above is not None and Version(release) <= Version(above):
            break
        said = verdict(track, release)
        if said.state == "pass":
            return release, said
    return None


def first_failing(track: Track, line: list[str], after: str) -> tuple[str, TrackVerdict] | None:
    """The oldest release of `line` after `after` where the track says fail."""
    for release in sorted(line, key=Version):
        if Version(release) > Version(after):
            said = verdict(track, release)
            if said.state == "fail":
                return release, said
    return None


# From the search's record (`<run>/_newest.json`) to what the report says.


def tracks_from(data: dict[str, Any]) -> Tracks:
    return {
        model: {variant: Track.from_dict(track) for variant, track in variants.items()}
        for model, variants in (data.get("tracks") or {}).items()
    }
