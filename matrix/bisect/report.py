"""A finished search as the report's JSON: windows, breaks, and the first break's old fields.

Each outcome is shown with the evidence behind it (the status and error of a release that
has it: a probe's, or the run's own cell for a release the run had), so a window says
"fails in generate with ValueError ..." and not just a signature.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.version import InvalidVersion, Version

from matrix.bisect.cache import probe_code_version
from matrix.first_bad import OUTPUTS_DIFFER, PASS, WindowSearch, baselines
from probes.record import cell_stem

if TYPE_CHECKING:
    from matrix.bisect.probe import Prober
    from matrix.config import EnvSpec

BISECT_SCHEMA = 2
Cells = dict[str, list[tuple[str, str, Any]]]  # variant -> its (version, env, cell) in the run
Details = Callable[[str], dict[str, Any]]  # release -> {"status", "error"} of what it said


def windows_json(search: WindowSearch, details: Details) -> list[dict[str, Any]]:
    """[{from, to, outcome, signature, error, exact_from, exact_to, unresolved_before}, ...]."""
    found = []
    for window in search.windows():
        entry: dict[str, Any] = {"from": window.first, "to": window.last, "outcome": "pass"}
        if window.outcome != PASS:
            said = details(window.first)
            status = OUTPUTS_DIFFER if window.outcome.startswith(OUTPUTS_DIFFER) else said.get("status") or "fail"
            entry.update(outcome=status, signature=window.outcome, error=said.get("error"))
        entry.update(exact_from=window.exact_from, exact_to=window.exact_to)
        entry["unresolved_before"] = list(window.unresolved_before)
        found.append(entry)
    return found


def breaks_json(search: WindowSearch, details: Details) -> list[dict[str, Any]]:
    """Each transition into a failure: [{last_good, first_bad, before, signature, error, exact, unresolved}]."""
    return [
        {
            "last_good": found.last,  # the last release with the outcome before (a pass, or another failure)
            "first_bad": found.first,
            "before": found.before,
            "signature": found.after,
            "error": details(found.first).get("error"),
            "exact": found.exact,
            "unresolved": list(found.unresolved),
        }
        for found in search.breaks()
    ]


def first_break(breaks: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first break after the good end (the old report's single answer)."""
    return next((b for b in breaks if b["before"] == PASS), None)


def suggested_bound(good_floor: str, last_good: str, first_bad: str) -> dict[str, str]:
    """`transformers>=<floor major.minor>,<<first bad>` and the exact pin of the newest good."""
    floor, bad = Version(good_floor), Version(first_bad)
    upper = f"{bad.major}.{bad.minor}" if not any(bad.release[2:]) else str(bad)
    return {"range": f"transformers>={floor.major}.{floor.minor},<{upper}", "pin": f"transformers=={last_good}"}


def summary_lines(name: str, windows: list[dict[str, Any]]) -> list[str]:
    """'works 4.40.2-4.41.2; 4.42.0-4.43.4 fails with ValueError in generate: ...'."""
    parts = []
    for window in windows:
        span = window["from"] if window["from"] == window["to"] else f"{window['from']}-{window['to']}"
        if window["outcome"] == PASS:
            parts.append(f"works {span}")
            continue
        error = window.get("error") or {}
        if window["outcome"] == OUTPUTS_DIFFER:
            parts.append(f"{span} runs, {window['signature'].removeprefix(OUTPUTS_DIFFER + ': ')} differ")
            continue
        what = (
            f"{error.get('type')} in {error.get('phase')}: {error.get('message', '')}" if error else window["signature"]
        )
        verb = "fails" if window["outcome"] == "fail" else f"ends in {window['outcome']}"
        parts.append(f"{span} {verb} with {' '.join(what.split())[:160]}")
    return [f"[bisect {name}] {part}" for part in parts]


# The whole report, and its summary lines.


def report_json(
    model: str,
    searches: dict[str, WindowSearch],
    prober: Prober,
    cells: Cells,
    ends: tuple[str, str, str],
    candidates: int,
    limit: int,
) -> dict[str, Any]:
    from matrix.bisect.probe import error_of  # the prober's module: loaded only when a report is made

    good, bad, source = ends

    def details(variant: str) -> Details:
        ran = {str(Version(v)): cell for v, _, cell in cells.get(variant, []) if is_version(v)}

        def said(version: str) -> dict[str, Any]:
            if (variant, version) in prober.outcomes:
                return prober.outcomes[(variant, version)]
            cell = ran.get(version)
            return {"status": cell.status.value, "error": error_of(cell)} if cell else {}

        return said

    base = searches[""]
    breaks = breaks_json(base, details(""))
    first = first_break(breaks)
    bound = None
    if first:
        bound = suggested_bound(good, first["last_good"], min([first["first_bad"], *first["unresolved"]], key=Version))
    asked = [(variant, version, why) for variant, s in searches.items() for version, _, why in s.probed]
    return {
        "schema": BISECT_SCHEMA,
        "model": model,
        "package": "transformers",
        "good": good,
        "bad": bad,
        "endpoints_from": source,
        # The first break after the good end, as the single-break report had it:
        "last_good": first["last_good"] if first else None,
        "first_bad": first["first_bad"] if first else None,
        "exact": first["exact"] if first else False,
        "unresolved": first["unresolved"] if first else [],
        "first_bad_error": first["error"] if first else None,
        "bound": bound,
        "bad_error": details("")(bad).get("error"),
        "windows": _recorded(_reruns(windows_json(base, details("")), prober, ""), prober, ""),
        "breaks": breaks,
        "variants": {
            v: _recorded(_reruns(windows_json(s, details(v)), prober, v), prober, v) for v, s in searches.items() if v
        },
        "candidates": candidates,
        "range": [base.line[0], base.line[-1]],
        "max_probes": sum(s.max_probes for s in searches.values()),
        "probes": prober.probes,
        # Of those, the diagnosis probes (both edges of each exact window, recorder on) and
        # the wall time of the round they ran in (shared with any reruns of that round):
        "record_probes": prober.record_probes,
        "record_seconds": prober.record_seconds,
        "answers": len(asked),
        "cached": sum(1 for v, r, _ in asked if prober.outcomes[(v, r)]["source"] == "cached"),
        "env_builds": prober.builds,
        "probe_limit": limit,
        "limited": any(s.limited for s in searches.values()),
        "budget": {
            cell_stem(model, variant): {
                "asked": len(s.probed),
                "max": s.max_probes,
                "transitions": len(s.transitions()),
                "per_transition": s.per_transition,
            }
            for variant, s in searches.items()
        },
        "edges": {cell_stem(model, variant): s.edge_costs() for variant, s in searches.items()},
        "outcomes": [
            {"version": version, "variant": variant, "why": why, **_verdict(prober.outcomes[(variant, version)])}
            for variant, version, why in asked
        ],
    }


def _reruns(windows: list[dict[str, Any]], prober: Prober, variant: str) -> list[dict[str, Any]]:
    """An 'outputs differ' window says whether a rerun of its first release gave the same outputs."""
    for window in windows:
        rerun = prober.repeats.get((variant, window["from"]))
        if window["outcome"] == OUTPUTS_DIFFER and rerun is not None:
            window["deterministic"] = rerun["deterministic"]
    return windows


def _recorded(windows: list[dict[str, Any]], prober: Prober, variant: str) -> list[dict[str, Any]]:
    """An exact window that does not pass carries its baseline's record and its first
    release's when the bisect asked them (`rounds.recorded_edges`, `first_bad.baselines`): what
    `matrix.diagnosis.differential.from_window` diffs."""
    spans = [(w["to"], w["outcome"] == PASS, bool(w.get("exact_from"))) for w in windows]
    for index, baseline in baselines(spans).items():
        window = windows[index]
        good, bad = prober.records.get((variant, baseline)), prober.records.get((variant, window["from"]))
        if good and bad:
            window["recorded"] = {"last_good": good, "first_bad": bad}
    return windows


def _verdict(said: dict[str, Any]) -> dict[str, Any]:
    outcome = said.get("outcome")
    verdict = "skipped" if outcome is None else ("good" if outcome == PASS else "bad")
    return {"verdict": verdict, **said}


def run_inputs(prober: Prober, template: EnvSpec, searches: dict[str, WindowSearch]) -> dict[str, Any]:
    """What this report answers: the model's files, the probe code, the env, and the run's known outcomes."""
    return {
        "model": prober.model_fingerprint(),
        "probes": probe_code_version(),
        "requirements": template.requirements()[1:],
        "python": template.python,
        "known": {
            cell_stem(prober.model.name, variant): {
                v: o for v, o in s.observed.items() if v not in {p for p, _, _ in s.probed}
            }
            for variant, s in searches.items()
        },
    }


def print_summary(model: str, report: dict[str, Any], path: Path) -> None:
    for line in summary_lines(model, report["windows"]):
        print(line)
    for variant, windows in report["variants"].items():
        for line in summary_lines(cell_stem(model, variant), windows):
            print(line)
    counts = f"{report['probes']} probes ({report['cached']} answers cached), {report['env_builds']} env builds"
    print(f"[bisect {model}] {counts}, {report['wall_s']} s")
    if report["bound"]:
        bound = report["bound"]
        hedge = "" if report["exact"] else f" (or one of the untested {', '.join(report['unresolved'])})"
        print(f"[bisect {model}] first break: last good {report['last_good']}, first bad {report['first_bad']}{hedge}")
        print(f"[bisect {model}] use {bound['range']} (newest good: {bound['pin']}); wrote {path}", flush=True)
    else:
        print(f"[bisect {model}] no break after {report['good']}; wrote {path}", flush=True)


def is_version(text: str) -> bool:
    try:
        Version(text)
    except InvalidVersion:
        return False
    return True
