"""Whole-process benchmarks, side by side in one run, printed as one table with ratios.

1. A warm rerun of a matrix (`nox -s matrix`, envs rebuilt from the warm uv cache) against
   its floor: one `import torch, transformers` (+ the warmed modules) per env, plus each
   cell's own in-process work (its phase timings), measured in the same run.
2. Per-cell overhead: the forked runner against a fresh interpreter per cell, on the same
   env and plan.

Run with `nox -s bench` (or `python benchmarks/bench_matrix.py` with nox on the path).
Figures are wall-clock seconds on this machine; compare the ratios, not the absolutes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from matrix.collect import collect  # noqa: E402
from matrix.plan import PLAN_FILE  # noqa: E402
from probes.record import machine_fingerprint  # noqa: E402


def timed(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def matrix_run(results: Path, envdir: Path, config: Path) -> tuple[float, Path]:
    env = {**os.environ, "MATRIX_RESULTS": str(results), "MATRIX_CONFIG": str(config)}
    env.pop("MATRIX_RUN_ID", None)
    seconds = timed(
        [sys.executable, "-m", "nox", "-f", str(ROOT / "noxfile.py"), "-s", "matrix", "--envdir", str(envdir)], env
    )
    return seconds, sorted((results / "runs").iterdir())[-1]


def import_floor(python: Path, plan: dict) -> float:
    """Seconds for one interpreter to import what the runner's parent imports."""
    code = (
        "import sys, json; from probes.runner import warm_imports; warm_imports(json.load(open(sys.argv[1]))['cells'])"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(plan, handle)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    return min(timed([str(python), "-c", code, handle.name], env) for _ in range(2))


def runner(python: Path, plan: dict, fresh: bool) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        plan = {**plan, "run_dir": tmp}
        plan_file = Path(tmp) / "plan.json"
        plan_file.write_text(json.dumps(plan))
        env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
        return timed([str(python), "-m", "probes.runner", str(plan_file), *(["--fresh"] if fresh else [])], env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "matrix.toml")
    parser.add_argument("--out", type=Path, help="also write the table (Markdown) to this file")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="matrix-bench-"))
    envdir = work / "nox"
    print("cold run (builds envs and fixtures, not timed) ...", flush=True)
    matrix_run(work / "results", envdir, args.config)
    print("warm rerun ...", flush=True)
    warm_s, run_dir = matrix_run(work / "results", envdir, args.config)
    run = collect(run_dir)
    work_s = sum(sum(cell.timings.values()) for cell in run.cells)
    imports = {}
    plans = {}
    for env_dir in sorted(p for p in run_dir.iterdir() if (p / PLAN_FILE).exists()):
        plans[env_dir.name] = json.loads((env_dir / PLAN_FILE).read_text())
        python = next(envdir.glob(f"probe-env-{env_dir.name.replace('.', '-')}*")) / "bin" / "python"
        imports[env_dir.name] = (python, import_floor(python, plans[env_dir.name]))
    floor_s = sum(seconds for _, seconds in imports.values()) + work_s
    env_name = max(plans, key=lambda name: len(plans[name]["cells"]))
    python = imports[env_name][0]
    fork_s = runner(python, plans[env_name], fresh=False)
    fresh_s = runner(python, plans[env_name], fresh=True)
    cells = len(plans[env_name]["cells"])
    rows = [
        ["warm rerun of the matrix (nox -s matrix)", f"{warm_s:.1f}", "", f"{warm_s / floor_s:.2f}x floor"],
        ["  floor: one import per env", f"{sum(s for _, s in imports.values()):.1f}", f"{len(imports)} envs", ""],
        ["  floor: cells' own work", f"{work_s:.1f}", f"{len(run.cells)} cells", ""],
        ["  floor total", f"{floor_s:.1f}", "", "1.00x"],
        [f"forked runner, {env_name}", f"{fork_s:.1f}", f"{cells} cells", "1.00x"],
        [
            f"fresh interpreter per cell, {env_name}",
            f"{fresh_s:.1f}",
            f"{cells} cells",
            f"{fresh_s / fork_s:.2f}x forked",
        ],
    ]
    machine = machine_fingerprint()
    table = tabulate(rows, headers=["what", "seconds", "size", "ratio"], tablefmt="github")
    header = (
        f"Machine: {machine['platform']}, {machine['cpu_count']} CPUs, {machine['memory_gb']} GB;"
        f" config {args.config.name}"
    )
    print("\n" + header + "\n\n" + table)
    if args.out:
        args.out.write_text(f"# Benchmarks\n\n{header}\n\n{table}\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
