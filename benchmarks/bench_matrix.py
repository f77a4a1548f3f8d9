"""Whole-process benchmarks, side by side in one run, printed as one table with ratios.

1. A warm rerun of a matrix (`nox -s matrix`, envs rebuilt from the warm uv cache, the
   config's auto_bisect answered from cached probe facts) against its floor: one
   `import torch, transformers` (+ the warmed modules) per env, plus each cell's own
   in-process work (its phase timings), measured in the same run; and how many bisect
   probes the warm rerun made (0 when nothing changed).
2. Per-cell overhead: the forked runner against a fresh interpreter per cell, on the same
   env and plan.
3. Env build: `uv venv` + `uv pip install` from a warm cache against `python -m venv` +
   `pip install` (pip's cache warm too), same exact pins.
4. The naive way: pip-built envs and a fresh interpreter per cell for the whole matrix,
   against the warm rerun.

Run with `nox -s bench` (or `python benchmarks/bench_matrix.py` with nox on the path).
Figures are wall-clock seconds on this machine; compare the ratios, not the absolutes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from matrix.envs.plan import ENV_FACTS_FILE, PLAN_FILE  # noqa: E402
from matrix.proc import installer_env  # noqa: E402
from matrix.results.collect import collect, collect_bisects  # noqa: E402
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


def build_uv(target: Path, pins: Path) -> float:
    env = {**os.environ, **installer_env()}
    start = time.perf_counter()
    subprocess.run(["uv", "venv", "--quiet", "--python", sys.executable, str(target)], env=env, check=True)
    subprocess.run(
        ["uv", "pip", "install", "--quiet", "--python", str(target / "bin" / "python"), "-r", str(pins)],
        env=env,
        check=True,
    )
    return time.perf_counter() - start


def build_pip(target: Path, pins: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(target)], check=True)
    subprocess.run(
        [str(target / "bin" / "python"), "-m", "pip", "install", "--quiet", "-r", str(pins)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def pins_file(run_dir: Path, env: str, folder: Path) -> Path:
    """The exact packages the matrix installed in `env` (as `uv pip install -r` takes them)."""
    packages = json.loads((run_dir / env / ENV_FACTS_FILE).read_text())["packages"]
    path = folder / f"{env}.txt"
    path.write_text("".join(f"{name}=={version}\n" for name, version in packages.items() if name not in ("pip",)))
    return path


def naive_matrix(run_dir: Path, plans: dict[str, dict], work: Path) -> float:
    """pip-built envs, then every cell in a fresh interpreter: what a user would script by hand."""
    start = time.perf_counter()
    for env, plan in plans.items():
        target = work / "naive" / env
        shutil.rmtree(target, ignore_errors=True)
        build_pip(target, pins_file(run_dir, env, work))
        runner(target / "bin" / "python", plan, fresh=True)
    return time.perf_counter() - start


def in_process(work: Path) -> list[list[str]]:
    """The pytest-benchmark figures (collect, and aggregate + render, of 1,000 models x 30 envs)."""
    report = work / "in-process.json"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "bench", str(ROOT / "tests" / "test_bench_report.py"),
         f"--benchmark-json={report}"],
        cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    rows = []
    for bench in json.loads(report.read_text())["benchmarks"]:
        what = bench["name"].removeprefix("test_").replace("_", " ")
        rows.append([f"in process: {what}", f"{bench['stats']['median']:.1f}", "", ""])
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "matrix.toml")
    parser.add_argument("--out", type=Path, help="also write the table (Markdown) to this file")
    parser.add_argument("--warm-only", action="store_true", help="only the warm rerun against its floor (item 1)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="matrix-bench-"))
    envdir = work / "nox"
    print("cold run (builds envs and fixtures, not timed) ...", flush=True)
    matrix_run(work / "results", envdir, args.config)
    print("warm rerun ...", flush=True)
    warm_s, run_dir = matrix_run(work / "results", envdir, args.config)
    run = collect(run_dir)
    bisect_probes = sum(report.get("probes", 0) for report in collect_bisects(run_dir).values())
    work_s = sum(sum(cell.timings.values()) for cell in run.cells)
    imports = {}
    plans = {}
    for env_dir in sorted(p for p in run_dir.iterdir() if (p / PLAN_FILE).exists()):
        plans[env_dir.name] = json.loads((env_dir / PLAN_FILE).read_text())
        python = next(envdir.glob(f"probe-env-{env_dir.name.replace('.', '-')}*")) / "bin" / "python"
        imports[env_dir.name] = (python, import_floor(python, plans[env_dir.name]))
    floor_s = sum(seconds for _, seconds in imports.values()) + work_s
    warm_rows = [
        ["warm rerun of the matrix (nox -s matrix)", f"{warm_s:.1f}", "", f"{warm_s / floor_s:.2f}x floor"],
        ["  floor: one import per env", f"{sum(s for _, s in imports.values()):.1f}", f"{len(imports)} envs", ""],
        ["  floor: cells' own work", f"{work_s:.1f}", f"{len(run.cells)} cells", ""],
        ["  floor total", f"{floor_s:.1f}", "", "1.00x"],
        ["  bisect probes made by the warm rerun", str(bisect_probes), "", ""],
    ]
    if args.warm_only:
        return report(warm_rows, args)
    env_name = max(plans, key=lambda name: len(plans[name]["cells"]))
    python = imports[env_name][0]
    fork_s = runner(python, plans[env_name], fresh=False)
    fresh_s = runner(python, plans[env_name], fresh=True)
    cells = len(plans[env_name]["cells"])
    pins = pins_file(run_dir, env_name, work)
    build_pip(work / "pip-warm", pins)  # fill pip's cache first: compare warm against warm
    uv_s = min(build_uv(work / f"uv-{i}", pins) for i in range(2))
    pip_s = build_pip(work / "pip", pins)
    print("naive matrix (pip envs, fresh interpreter per cell) ...", flush=True)
    naive_s = naive_matrix(run_dir, plans, work)
    print("in-process benchmarks (pytest-benchmark) ...", flush=True)
    in_process_rows = in_process(work)
    rows = [
        *warm_rows,
        [f"forked runner, {env_name}", f"{fork_s:.1f}", f"{cells} cells", "1.00x"],
        [
            f"fresh interpreter per cell, {env_name}",
            f"{fresh_s:.1f}",
            f"{cells} cells",
            f"{fresh_s / fork_s:.2f}x forked",
        ],
        [f"env build: uv venv + uv pip install, warm cache ({env_name})", f"{uv_s:.1f}", "", "1.00x"],
        [f"env build: venv + pip install, warm cache ({env_name})", f"{pip_s:.1f}", "", f"{pip_s / uv_s:.2f}x uv"],
        ["naive matrix: pip envs + fresh interpreter per cell", f"{naive_s:.1f}", "", f"{naive_s / warm_s:.2f}x warm"],
        *in_process_rows,
    ]
    return report(rows, args)


def report(rows: list[list[str]], args: argparse.Namespace) -> int:
    """Print the table (and write it to --out)."""
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
