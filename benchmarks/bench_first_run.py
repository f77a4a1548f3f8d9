"""A newcomer's first run, against its floor, and how it grows with the number of models.

For the default config (and copies of it with 8 and 16 models: the same fixtures under
other model names, so every copy is bisected and confirmed like its original), in fresh
folders (results, caches, nox envs; uv's own package cache stays as it is):

1. the cold first `nox -s matrix` (probe envs, fixtures, bisects, release search, report)
   against its floor: distinct releases probed x (one env build + one import) / cores, plus
   the cells' own work (every cell's phase timings: the run's, the bisect's, the search's);
2. the warm rerun against its floor: per probe env one import plus its cells' own work, the
   envs side by side (the busier of all of it over the cores and the longest env alone);
3. the bisect's probes, env builds and rounds, and the probes each exact edge cost.

The env build (uv venv + install from the warm uv cache) and the import (what a runner's
parent imports, best of 2) are measured in the same run, after the matrix runs. Figures
are wall-clock seconds on this machine; the machine may be shared, so nothing is asserted.

Run with `nox -s bench` (or `python benchmarks/bench_first_run.py --out results/BENCHMARKS.md`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tabulate import tabulate

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_matrix import build_uv, import_floor, pins_file  # noqa: E402
from matrix.envs.plan import PLAN_FILE  # noqa: E402
from matrix.results.collect import collect, collect_bisects, collect_newest  # noqa: E402
from probes.record import CellResult, machine_fingerprint  # noqa: E402

START, END = "<!-- first-run: written by benchmarks/bench_first_run.py -->", "<!-- /first-run -->"


def grown_config(base: Path, models: int, folder: Path) -> Path:
    """The config with its [models.*] tables repeated under other names up to `models` models."""
    text = base.read_text(encoding="utf-8")
    head, _, _ = text.partition("\n[models.")
    tables = re.findall(r"^\[models\.([^\]]+)\]\n(.*?)(?=^\[|\Z)", text, flags=re.M | re.S)
    out, copy = [head.rstrip() + "\n"], 0
    while len(out) - 1 < models:
        for name, body in tables:
            if len(out) - 1 >= models:
                break
            label = name if copy == 0 else f"{name.strip(chr(34))}-{copy + 1}"
            out.append(f"\n[models.{label}]\n{body.rstrip()}\n")
        copy += 1
    path = folder / f"matrix-{models}.toml"
    path.write_text("".join(out), encoding="utf-8")
    return path


def nox_matrix(config: Path, work: Path) -> tuple[float, str]:
    env = {**os.environ, "MATRIX_RESULTS": str(work / "results"), "MATRIX_CONFIG": str(config)}
    env.update(MATRIX_CACHE=str(work / "cache"))
    env.pop("MATRIX_RUN_ID", None)
    args = [sys.executable, "-m", "nox", "-f", str(ROOT / "noxfile.py"), "-s", "matrix", "--envdir", str(work / "nox")]
    start = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        print(done.stdout[-4000:] + done.stderr[-4000:], file=sys.stderr)
    return seconds, done.stdout + done.stderr


def cells_work(cells: list[CellResult]) -> float:
    return sum(sum(v for v in cell.timings.values() if isinstance(v, (int, float))) for cell in cells)


def probed_cells(results: Path) -> list[CellResult]:
    """The cells the bisect and the release search ran (results/bisect/<model>/<env>/*.json)."""
    found = []
    for path in sorted((results / "bisect").glob("*/tf-*/*.json")):
        if path.name.startswith("_") or path.parent.parent.name.startswith("."):
            continue
        try:
            found.append(CellResult.from_dict(json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError, TypeError, KeyError):
            continue
    return found


def one_config(config: Path, work: Path, cores: int) -> dict[str, Any]:
    """Cold and warm runs of one config in fresh folders, with both floors and the bisect's figures."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    print(f"[bench] {config.name}: cold first run ...", flush=True)
    cold_s, cold_log = nox_matrix(config, work)
    runs = sorted((work / "results" / "runs").iterdir())
    cold_run = runs[-1]
    print(f"[bench] {config.name}: warm rerun ...", flush=True)
    warm_s, warm_log = nox_matrix(config, work)
    warm_run = sorted((work / "results" / "runs").iterdir())[-1]
    run, bisects, newest = collect(cold_run), collect_bisects(cold_run), collect_newest(cold_run) or {}
    plans = {p.name: json.loads((p / PLAN_FILE).read_text()) for p in cold_run.iterdir() if (p / PLAN_FILE).is_file()}
    pythons = {
        name: next((work / "nox").glob(f"probe-env-{name.replace('.', '-')}*")) / "bin" / "python" for name in plans
    }
    imports = {name: import_floor(pythons[name], plans[name]) for name in plans}
    env_name = sorted(plans)[0]
    build_s = build_uv(work / "bench-build", pins_file(cold_run, env_name, work))
    probed = probed_cells(work / "results")
    releases = {cell.versions.get("transformers") for cell in [*run.cells, *probed]} - {None}
    per_release = build_s + sum(imports.values()) / len(imports)
    cold_work = cells_work(run.cells) + cells_work(probed)
    cold_floor = len(releases) * per_release / cores + cold_work
    warm_cells = collect(warm_run).cells
    # The probe sessions run side by side (jobs): the floor is the busier of "all the work over
    # the cores" and "the longest env alone".
    per_env = {name: imports[name] + cells_work([c for c in warm_cells if c.env == name]) for name in plans}
    warm_floor = max(sum(per_env.values()) / min(cores, len(per_env)), max(per_env.values()))
    warm_bisect = sum(r.get("probes", 0) for r in collect_bisects(warm_run).values())
    return {
        "config": config.name,
        "models": len({cell.model for cell in run.cells}),
        "cells": len(run.cells),
        "cold_s": cold_s,
        "cold_floor_s": cold_floor,
        "releases": len(releases),
        "build_s": build_s,
        "import_s": sum(imports.values()) / len(imports),
        "cold_work_s": cold_work,
        "warm_s": warm_s,
        "warm_floor_s": warm_floor,
        "warm_probes": warm_bisect + (collect_newest(warm_run) or {}).get("probes", 0),
        "bisects": {
            name: {k: r.get(k) for k in ("probes", "env_builds", "answers", "edges", "pointers", "wall_s", "windows")}
            for name, r in bisects.items()
        },
        "newest": {k: newest.get(k) for k in ("probes", "builds", "wall_s")},
        "runners": cold_log.count("cell(s) in one runner"),
        "warm_runners": warm_log.count("cell(s) in one runner"),
    }


def edge_rows(figures: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name, report in figures["bisects"].items():
        edges = [edge for lane in (report.get("edges") or {}).values() for edge in lane]
        spans = ", ".join(
            f"{e['last']}..{e['first']} {e['probes']}{' (pointed)' if e['pointed'] else ''}" for e in edges
        )
        rows.append([f"bisect {name}: probes per exact edge", spans or "-", f"{len(edges)} edges", ""])
        pointers = report.get("pointers") or {}
        rows.append(
            [
                f"bisect {name}: probes, env builds (total)",
                f"{report.get('probes')} probes, {report.get('env_builds')} builds",
                f"sources read: {pointers.get('read')} releases, {pointers.get('seconds')} s",
                f"{report.get('wall_s')} s",
            ]
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "matrix.toml")
    parser.add_argument("--out", type=Path, help="write the table into this Markdown file (its first-run section)")
    parser.add_argument("--growth", default="8,16", help="model counts to grow to (default 8,16; '' for none)")
    parser.add_argument("--keep", action="store_true", help="keep the work folders")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="matrix-first-run-"))
    base = one_config(args.config.resolve(), work / "base", cores)
    grown = [
        one_config(grown_config(args.config.resolve(), int(n), work), work / f"grow-{n}", cores)
        for n in args.growth.split(",")
        if n.strip()
    ]
    rows = [
        ["cold first run (nox -s matrix)", f"{base['cold_s']:.1f}", f"{base['cells']} cells",
         f"{base['cold_s'] / base['cold_floor_s']:.2f}x floor"],
        [f"  floor: {base['releases']} releases x (build {base['build_s']:.1f} + import {base['import_s']:.1f})"
         f" / {cores} cores + cells' work {base['cold_work_s']:.1f}", f"{base['cold_floor_s']:.1f}", "", "1.00x"],
        ["  bisect and search runners (one per release per round)", str(base["runners"]), str(base["newest"]), ""],
        ["warm rerun", f"{base['warm_s']:.1f}", f"{base['warm_probes']} probes",
         f"{base['warm_s'] / base['warm_floor_s']:.2f}x floor"],
        ["  floor: per env one import + its cells' work, side by side", f"{base['warm_floor_s']:.1f}", "", "1.00x"],
        *edge_rows(base),
    ]  # fmt: skip
    growth = [
        [f["models"], f["cells"], f"{f['cold_s']:.1f}", f"{f['cold_s'] / f['cold_floor_s']:.2f}x",
         f"{f['warm_s']:.1f}", f"{f['warm_s'] / f['warm_floor_s']:.2f}x", f["releases"], f["runners"],
         sum(b.get("probes") or 0 for b in f["bisects"].values())]
        for f in [base, *grown]
    ]  # fmt: skip
    machine = machine_fingerprint()
    header = f"Machine: {machine['platform']}, {cores} CPUs, {machine['memory_gb']} GB; config {args.config.name}"
    table = tabulate(rows, headers=["what", "seconds", "size", "ratio"], tablefmt="github")
    growth_table = tabulate(
        growth,
        headers=["models", "cells", "cold s", "cold/floor", "warm s", "warm/floor", "releases", "runners", "probes"],
        tablefmt="github",
    )
    growth_title = "Growth (copies of the default's models under other names, same envs):"
    text = f"{header}\n\n{table}\n\n{growth_title}\n\n{growth_table}\n"
    print("\n" + text)
    (work / "figures.json").write_text(json.dumps({"base": base, "grown": grown}, indent=1, default=str))
    print(f"[bench] figures: {work / 'figures.json'}")
    if args.out:
        write_section(args.out, f"## A newcomer's first run (`nox -s bench`)\n\n{text}")
    if not args.keep:
        for folder in work.iterdir():
            if folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)
    return 0


def write_section(path: Path, text: str) -> None:
    """Replace this benchmark's section of the Markdown file (appended the first time)."""
    old = path.read_text(encoding="utf-8") if path.is_file() else "# Benchmarks\n"
    section = f"{START}\n{text}{END}\n"
    if START in old and END in old:
        new = old[: old.index(START)] + section + old[old.index(END) + len(END) + 1 :]
    else:
        new = old.rstrip() + "\n\n" + section
    path.write_text(new, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
