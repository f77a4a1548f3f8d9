"""What the report says about the release search: its lead lines and the upgrade-blockers table.

`matrix/newest.py` finds the newest release every model runs on and `matrix/confirm.py`
confirms it with real probes; this turns their record (`<run>/_newest.json`) into the
recommendation's first lines and one row per model: its newest release as is, with shims,
and the first break past the pin with the fix the evidence supports.
"""

from __future__ import annotations

from typing import Any

from packaging.version import Version

from matrix.envs.plan import variant_words
from matrix.newest.search import Track, TrackVerdict, first_failing, newest_running, preferred, tracks_from, verdict


def shim_words(choices: dict[str, str]) -> str:
    """ "shim extract-past for chatglm-legacy" (one model per part, combinations joined by +)."""
    return ", ".join(f"{variant_words(variant)} for {model}" for model, variant in choices.items() if variant)


def every_model(total: int) -> str:
    """'all 4 models', or 'the 1 model' (a team may have one)."""
    return "the 1 model" if total == 1 else f"all {total} models"


def lead_lines(data: dict[str, Any]) -> list[str]:
    """The recommendation's first lines: the newest confirmed release, as is and with shims."""
    total = len(data.get("models") or [])
    as_is, shims = data.get("as_is"), data.get("with_shims")
    low, high = (data.get("range") or ["?", "?"])[:2]
    lines = []
    if as_is:
        release = as_is["release"]
        lines.append(
            f"Pin transformers=={release}: the newest release that runs {every_model(total)} as is"
            f" (confirmed by a probe of each on {release})."
        )
    if shims:
        release, how = shims["release"], shim_words(shims["choices"])
        if as_is:
            lines.append(
                f"- with shims: transformers=={release} is the newest release that runs {every_model(total)},"
                f" with {how} (confirmed by a probe of each on {release})"
            )
        else:
            lines.append(
                f"Pin transformers=={release}: the newest release that runs {every_model(total)} with {how}"
                f" (confirmed by a probe of each on {release})."
            )
    if not as_is and not shims:
        stopped = " before the search reached its end (its build limit)" if data.get("limited") else ""
        lines.append(f"No single release from {low} to {high} runs {every_model(total)}{stopped}.")
    assumed = [m for m in data.get("not_bisected") or [] if m in (data.get("models") or [])]
    if assumed:
        pinned = " and".join(f" {a['release']}" for a in (as_is, shims) if a)
        one = len(assumed) == 1
        lines.append(
            f"- assumed: {', '.join(assumed)} {'passes' if one else 'pass'} in every env, so"
            f" {'it was not' if one else 'none was'} bisected: {'it is' if one else 'each is'} taken to run on every"
            f" release between the envs{f' (probed on{pinned})' if pinned else ''}"
        )
    excluded = ", ".join(f"{item['release']} ({item['why']})" for item in (data.get("excluded") or [])[:5])
    lines.append(
        f"- release search over {len(data.get('line') or [])} releases ({low} to {high}):"
        f" {_count(data.get('builds', 0), 'env build')} (bound {data.get('bound')}, limit {data.get('limit')}),"
        f" {_count(data.get('probes', 0), 'probe')}"
        + (f" ({data['cached']} answers cached)" if data.get("cached") else "")
        + (f"; not pinned: {excluded}" if excluded else "")
        + ("; stopped at the build limit" if data.get("limited") else "")
    )
    return lines


def _count(number: int, what: str) -> str:
    return f"{number} {what}{'' if number == 1 else 's'}"


def blockers(
    data: dict[str, Any],
    diagnoses: dict[tuple[str, str, str], dict[str, Any]],
    models: list[str],
    window_diagnoses: dict[tuple[str, str, str], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Per model: its newest release as is, with shims, and what blocks it past the pin.

    The pin is the recommended release (as is, else with shims); without one, each model's
    own newest release. The blocker is the first failing release after it, for the variant
    the pin uses: the run's diagnosis when one of its cells failed with that very signature
    (`diagnoses`: (env, model, variant) -> diagnosis), else the bisect window's diagnosis
    (`window_diagnoses`: (model, variant, signature) -> diagnosis), else the window's error.
    The fix: a cell's diagnosis's first (it already leads with what the env's cells showed),
    else a shim whose evidence runs the model there, else a window diagnosis's first, else
    an env of its own.
    """
    tracks = tracks_from(data)
    line = list(data.get("line") or [])
    answer = data.get("as_is") or data.get("with_shims")
    rows = []
    for model in models:
        variants = tracks.get(model, {})
        base = variants.get("")
        own = newest_running(base, line)
        shimmed = [
            (found[0], variant)
            for variant in preferred(variants, True)
            if variant and (found := newest_running(variants[variant], line, own[0] if own else None))
        ]
        best_shim = max(shimmed, key=lambda f: Version(f[0]), default=None)
        variant = answer["choices"].get(model, "") if answer else ""
        start = answer["release"] if answer and model in answer["choices"] else (own[0] if own else None)
        row: dict[str, Any] = {
            "model": model,
            "as_is": _newest_text(base, line, own),
            "with_shims": f"{best_shim[0]} ({best_shim[1]})" if best_shim else "-",
            "variant": variant,
            "from": start,
            "break": None,
        }
        track = variants.get(variant)
        if start is None or track is None:
            row["blocked_by"] = f"runs as is on no release from {line[0]} to {line[-1]}" if line else "no evidence"
        elif (failing := first_failing(track, line, start)) is None:
            row["blocked_by"] = f"nothing up to {line[-1]}"
        else:
            row["break"] = _break(model, variant, failing, track, variants, line, diagnoses, window_diagnoses or {})
            found = row["break"]
            row["blocked_by"] = f"{found['release']}: {found['what']}; fix: {found['fix']}"
        rows.append(row)
    return rows


def _newest_text(base: Track | None, line: list[str], own: tuple[str, TrackVerdict] | None) -> str:
    if own is None:
        return "none"
    release, said = own
    untested = base is not None and any(
        verdict(base, r).state in ("unknown", "silent") for r in line if Version(r) > Version(release)
    )
    note = " (assumed)" if said.how == "assumed" else ""
    return f"{release}{note}{' (newer untested)' if untested else ''}"


def _break(
    model: str,
    variant: str,
    failing: tuple[str, TrackVerdict],
    track: Track,
    variants: dict[str, Track],
    line: list[str],
    diagnoses: dict[tuple[str, str, str], dict[str, Any]],
    window_diagnoses: dict[tuple[str, str, str], dict[str, Any]],
) -> dict[str, Any]:
    release, said = failing
    evidence = said.evidence or {}
    signature = evidence.get("signature") or evidence.get("outcome")
    exact = bool(evidence.get("exact_from")) if "from" in evidence else said.how == "observed"
    error = evidence.get("error") or {}
    what = f"{error.get('type')} in {error.get('phase')}: {error.get('message', '')}" if error else str(signature)
    in_cells = next(
        (
            diagnoses[key]
            for point in track.points.values()
            if point.get("source") == "cell"
            and point.get("outcome") == signature
            and (key := (str(point.get("env")), model, variant)) in diagnoses
        ),
        None,
    )
    diagnosis = in_cells or window_diagnoses.get((model, variant, str(signature)))
    if diagnosis:
        since = diagnosis.get("introduced_in")
        what = f"{diagnosis['id']} (since {since})" if since else str(diagnosis["id"])
    rescues = [
        (other, newest_running(variants[other], line))
        for other in preferred(variants, True)
        if other != variant and verdict(variants[other], release).state == "pass"
    ]
    rescue = next((f"shim {other} (runs it through {found[0]})" for other, found in rescues if found), "")
    # A cell's diagnosis already leads with the fixes its env's cells showed; a window's
    # speaks for no cell, so a shim the evidence shows rescuing the model there comes first.
    own = next(iter((diagnosis or {}).get("fixes") or []), "")
    fix = (own or rescue) if in_cells else (rescue or own)
    fix = fix or f"none the evidence shows: keep {model} in an env of its own"
    return {
        "release": release if exact else f"~{release}",
        "exact": exact,
        "what": " ".join(what.split()),
        "fix": fix,
        "diagnosis": diagnosis.get("id") if diagnosis else None,
        "signature": signature,
    }
