"""Which diagnosis layer explains each corpus cell, differential evidence included, and what it costs.

Runs every corpus fixture's base cell in the corpus releases (tests/test_corpus.RELEASES)
through the matrix's own runner, takes each fixture's windows over the release line from
tests/corpus/EXPECTED.toml (measured in real envs; `exact` where it says) as its bisect report,
and diagnoses the run with the layers `nox -s matrix` uses (known-break table, verdicts,
symbol history from the releases' sources, differential evidence, traceback). Where a
failing cell is explained only by *where* it failed (the traceback, the bare non-finite
verdict) or not at all, or where a cell's outputs changed, the two releases of its exact
window (its first release and the newest release before it that ran the model,
`first_bad.baselines`) are probed again with the recorder on and the window carries both
records (`recorded`), as the bisect asks them; the run is then diagnosed again. Prints one line
per cell that failed or changed its outputs, the table of sources, and the differential
probes' count and seconds.

    .venv/bin/python benchmarks/corpus_sources.py [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from packaging.version import Version  # noqa: E402

from matrix.diagnosis import Sources, diagnose, load_known_breaks  # noqa: E402
from matrix.diagnosis.finding import SOURCES  # noqa: E402
from matrix.first_bad import baselines  # noqa: E402
from matrix.judge.drift import judge_outputs, with_judgements  # noqa: E402
from matrix.pipeline import release_line  # noqa: E402
from matrix.results.aggregate import aggregate  # noqa: E402
from matrix.results.collect import Run  # noqa: E402
from probes.record import CellResult  # noqa: E402
from tests.test_corpus import FIXTURES, RELEASES, release_env  # noqa: E402
from tests.test_corpus_differential import record_of, run_cells  # noqa: E402

CACHE = ROOT / ".cache"
SAY_WHERE = ("traceback", "non-finite")


def build_models() -> dict[str, str]:
    python = release_env(RELEASES[0], CACHE)
    done = subprocess.run(
        [python, ROOT / "tests" / "corpus" / "build.py", CACHE / "corpus"], capture_output=True, text=True, check=True
    )
    return dict(line.split("\t", 1) for line in done.stdout.splitlines())


def windows_of(record: dict[str, Any], cells: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """EXPECTED's windows as a bisect report's: outcome, the error (a run cell's where one fell
    inside the window, with its traceback), and exact_from."""
    windows = []
    for window in record["windows"]:
        if window["status"] == "pass":
            outcome, error = ("outputs differ" if window.get("outputs") == "differ" else "pass"), None
        else:
            outcome = "fail"
            inside = [v for v in cells if Version(window["from"]) <= Version(v) <= Version(window["to"])]
            seen = (cells[inside[0]].get("error") or {}) if inside else {}
            error = {
                "type": seen.get("type", window["exception"]),
                "phase": window["phase"],
                "message": seen.get("message", window["message"]),
                "traceback": seen.get("traceback", ""),
            }
        windows.append(
            {
                "from": window["from"],
                "to": window["to"],
                "outcome": outcome,
                "error": error,
                "exact_from": bool(window.get("exact")),
            }
        )
    return windows


def window_at(windows: list[dict[str, Any]], version: str) -> int | None:
    for index, window in enumerate(windows):
        if Version(window["from"]) <= Version(version) <= Version(window["to"]):
            return index
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the per-cell rows here")
    args = parser.parse_args()
    models = build_models()
    work = Path(tempfile.mkdtemp(prefix="corpus-sources-"))
    by_release = {v: run_cells(v, models, CACHE, work / v, record=False) for v in RELEASES}
    cells = [
        CellResult.from_dict({**cell, "env": f"tf-{v}"}) for v, found in by_release.items() for cell in found.values()
    ]
    envs = {f"tf-{v}": {"name": f"tf-{v}", "packages": {"transformers": v}} for v in RELEASES}
    matrix = aggregate(Run(work / "run", envs, cells, list(models)))
    matrix = with_judgements(matrix, judge_outputs(matrix, {}, {}))
    bisects = {
        name: {"windows": windows_of(FIXTURES[name], {v: by_release[v][name] for v in RELEASES})} for name in models
    }
    table = load_known_breaks()
    sources = Sources(CACHE, release_line(CACHE))
    diagnose(matrix, table, bisects, sources)

    records: dict[tuple[str, str], dict[str, Any]] = {}
    probes, seconds = 0, 0.0
    for cell in matrix.all_cells():
        drifted = cell.status.passed and (cell.drift or {}).get("differs")
        unexplained = cell.status.value == "fail" and (not cell.diagnosis or cell.diagnosis["source"] in SAY_WHERE)
        if not (drifted or unexplained):
            continue
        windows = bisects[cell.model]["windows"]
        index = window_at(windows, cell.env.removeprefix("tf-"))
        baseline = baselines([(w["to"], w["outcome"] == "pass", w["exact_from"]) for w in windows]).get(index or 0)
        if index is None or baseline is None:
            continue  # the bisect records exact windows against the newest release that ran the model
        edges = {"last_good": baseline, "first_bad": windows[index]["from"]}
        for side, release in edges.items():
            if (cell.model, release) not in records:
                start = time.perf_counter()
                found = run_cells(release, {cell.model: models[cell.model]}, CACHE, work / f"rec-{release}", True)
                seconds += time.perf_counter() - start
                probes += 1
                records[(cell.model, release)] = record_of(found[cell.model], release)
            windows[index].setdefault("recorded", {})[side] = records[(cell.model, release)]
    diagnose(matrix, table, bisects, sources)

    rows = []
    for cell in matrix.all_cells():
        drifted = cell.status.passed and (cell.drift or {}).get("differs")
        if cell.status.value != "fail" and not drifted:
            continue
        if drifted:
            index = window_at(bisects[cell.model]["windows"], cell.env.removeprefix("tf-"))
            found = (bisects[cell.model]["windows"][index] if index is not None else {}).get("diagnosis")
        else:
            found = cell.diagnosis
        rows.append(
            {
                "model": cell.model,
                "env": cell.env,
                "outcome": "outputs differ" if drifted else f"fail ({(cell.error or {}).get('type')})",
                "source": found["source"] if found else "none",
                "id": found["id"] if found else "",
                "since": found.get("introduced_in") if found else None,
                "exact": found.get("exact") if found else None,
            }
        )
    for row in rows:
        print(
            f"{row['model']:18} {row['env']:11} {row['outcome']:28} {row['source']:15} {row['id']} "
            f"(since {row['since']}, exact {row['exact']})"
        )
    counts = Counter(row["source"] for row in rows)
    print("\n| source | cells |\n| --- | --- |")
    for source in (*SOURCES, "none"):
        print(f"| {source} | {counts.get(source, 0)} |")
    print(f"\n{len(rows)} cells failed or changed outputs; differential probes: {probes} cells in {seconds:.1f} s")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "probes": probes, "seconds": seconds}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
