"""Run every cell of one env: import once, fork one child per cell.

The parent imports torch, transformers and the modeling modules the plan needs (about
4-8 s), then forks a child per cell, so each cell starts warm (DESIGN.md: five tiny cells
took 0.3 s this way against 48 s as fresh interpreters). The parent never runs a torch op
and never touches CUDA: OpenMP pools and CUDA contexts do not survive fork. A child that
crashes, hangs or runs out of memory becomes that cell's result and the next cell runs
(the child and its supervision: `probes.supervise`).

A plan holds any cells of one env, of any models and variants: the matrix hands it an
env's cells, and the bisect and the release search hand it every question of a round for
one release (`matrix.bisect.batch`), so that release pays its import once.

Usage (inside the env): python -m probes.runner PLAN.json [--fresh]
`--fresh` runs each cell in a new interpreter instead (slow; the baseline benchmarks
compare against).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import json
import os
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from probes.record import CellResult, cell_stem, machine_fingerprint
from probes.redact import redact_file
from probes.status import Status
from probes.supervise import child_main, read_child, supervise, tail, write_child_result

PACKAGES = ("transformers", "torch", "huggingface-hub", "tokenizers", "safetensors", "numpy", "accelerate")
# torch._dynamo is imported by transformers' `is_torchdynamo_compiling()` on the first
# forward pass (measured: +7 s in a child); importing it runs no torch op.
COMMON_MODULES = (
    "torch._dynamo",
    "transformers.modeling_utils",
    "transformers.generation.utils",
    "transformers.models.auto.modeling_auto",
    "transformers.models.auto.tokenization_auto",
    "transformers.dynamic_module_utils",
    "safetensors.torch",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m probes.runner", description=__doc__.splitlines()[0])
    parser.add_argument("plan", type=Path, help="plan JSON written by the host (env, run_dir, cells)")
    parser.add_argument("--fresh", action="store_true", help="a new interpreter per cell instead of fork")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # used by --fresh for cell N
    args = parser.parse_args(argv)
    plan = json.loads(args.plan.read_text(encoding="utf-8"))
    plan["plan_path"] = str(args.plan.resolve())
    if args.one is not None:
        return _run_one_in_this_process(plan, args.one)
    runner = Runner(plan, fresh=args.fresh)
    return runner.run_all()


class Runner:
    """Supervises one env's cells; the env's facts are gathered once, here."""

    def __init__(self, plan: dict[str, Any], fresh: bool = False) -> None:
        self.plan = plan
        self.env = plan["env"]
        self.run_dir = Path(plan["run_dir"])
        self.fresh = fresh
        self.versions = _versions()
        self.machine = machine_fingerprint()

    def run_all(self) -> int:
        cells = self.plan["cells"]
        if not self.fresh:
            try:
                warm_s = warm_imports(cells)
            except Exception as exc:  # noqa: BLE001 - a broken env is data for every cell
                return self._fail_all(cells, exc)
            print(f"[{self.env}] warmed imports in {warm_s:.1f} s", flush=True)
        for index, spec in enumerate(cells, start=1):
            done = self.run_dir / self.env / f"{cell_stem(spec['model'], spec.get('variant', ''))}.json"
            if self.plan.get("resume") and done.exists():  # cell files are atomic: present = finished
                print(f"[{self.env}] {index}/{len(cells)} {done.stem}: already done (resumed run)", flush=True)
                continue
            result = self.run_cell(index - 1, spec)
            path = result.write(self.run_dir)
            print(f"[{self.env}] {index}/{len(cells)} {result.stem}: {_summary(result)}  ({path.name})", flush=True)
        return 0

    def _fail_all(self, cells: list[dict[str, Any]], exc: Exception) -> int:
        """torch or transformers cannot even be imported here: every cell fails at 'import'."""
        import traceback

        error = {"type": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc()}
        reason = f"{type(exc).__name__} in import: {str(exc).strip()[:200]}"
        for spec in cells:
            result = CellResult(
                env=self.env,
                model=spec["model"],
                variant=spec.get("variant", ""),
                status=Status.FAIL,
                reason=reason,
                phase="import",
                error=error,
                versions=self.versions,
                machine=self.machine,
            )
            result.write(self.run_dir)
            print(f"[{self.env}] {result.stem}: fail: {reason}", flush=True)
        return 0

    def run_cell(self, index: int, spec: dict[str, Any]) -> CellResult:
        stem = cell_stem(spec["model"], spec.get("variant", ""))
        env_dir = self.run_dir / self.env
        env_dir.mkdir(parents=True, exist_ok=True)
        log_path = env_dir / f"{stem}.log"
        child_out = env_dir / f".{stem}.child.json"
        child_out.unlink(missing_ok=True)
        started_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        start = time.perf_counter()
        if self.fresh:
            outcome = self._spawn_fresh(index, log_path, spec["timeout"])
        else:
            outcome = self._fork(spec, log_path, child_out)
        redact_file(log_path)  # model code may have printed a token
        partial = read_child(child_out)
        status, reason = outcome
        if partial is None or status is not None:
            partial = {"status": (status or Status.CRASHED).value, "reason": reason or "child wrote no result"}
        partial.pop("schema", None)
        log_tail = tail(log_path)
        if partial["status"] != Status.PASS.value and log_tail:
            partial.setdefault("facts", {})["log_tail"] = log_tail
        return CellResult(
            env=self.env,
            model=spec["model"],
            variant=spec.get("variant", ""),
            versions=self.versions,
            machine=self.machine,
            log=str(log_path.relative_to(self.run_dir)),
            started_at=started_at,
            duration_s=round(time.perf_counter() - start, 3),
            **partial,
        )

    def _fork(self, spec: dict[str, Any], log_path: Path, child_out: Path) -> tuple[Status | None, str]:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # child: never returns
            child_main(spec, log_path, child_out)
        return supervise(pid, spec["timeout"])

    def _spawn_fresh(self, index: int, log_path: Path, timeout: float) -> tuple[Status | None, str]:
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "probes.runner", str(self.plan["plan_path"]), "--one", str(index)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return supervise(proc.pid, timeout)


def _run_one_in_this_process(plan: dict[str, Any], index: int) -> int:
    spec = plan["cells"][index]
    env_dir = Path(plan["run_dir"]) / plan["env"]
    stem = cell_stem(spec["model"], spec.get("variant", ""))
    write_child_result(env_dir / f".{stem}.child.json", spec)
    return 0


def warm_imports(cells: list[dict[str, Any]]) -> float:
    """Import torch, transformers and the modules the cells will need, once, in the parent."""
    start = time.perf_counter()
    import torch  # noqa: F401
    import transformers  # noqa: F401

    modules = list(COMMON_MODULES)
    for spec in cells:
        modules += [
            f"transformers.models.{name}.{kind}_{name}"
            for name in spec.get("warm", [])
            for kind in ("configuration", "modeling", "tokenization")
        ]
        modules += [f"transformers.models.{name}.tokenization_{name}_fast" for name in spec.get("warm", [])]
    for module in dict.fromkeys(modules):
        with contextlib.suppress(Exception):  # a module this version lacks is simply not warmed
            importlib.import_module(module)
    return time.perf_counter() - start


def _versions() -> dict[str, str]:
    found = {"python": ".".join(map(str, sys.version_info[:3]))}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _summary(result: CellResult) -> str:
    if result.status.passed:
        key = next((k for k in ("generate_median_s", "embed_median_s") if k in result.metrics), None)
        timing = f", {key.split('_')[0]} {result.metrics[key] * 1000:.0f} ms" if key else ""
        return f"{result.status.value} (load {result.timings.get('load_s', 0):.2f} s{timing})"
    return f"{result.status.value}: {result.reason}"


if __name__ == "__main__":
    sys.exit(main())
