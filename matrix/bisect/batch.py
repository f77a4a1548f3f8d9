"""Many bisect questions at once: the facts first, then one runner per release, releases side by side.

A question is "what does this variant of this model do in release X?". Every question a
round has for one release (all models, all variants) is answered by one `probes.runner`
process in that release's env, which imports torch and transformers once and forks one
child per cell, as the matrix's own envs do: the import (about 15 s on this machine kind)
is paid once per release and round, not once per question. Releases are independent, so
up to `jobs` of them build their env and probe side by side.

Deterministic whatever `jobs` is: the groups, the cells of each runner and the order in
which answers are stored and printed follow the order of the questions, so a serial and a
parallel run write the same cells and the same facts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from matrix import proc
from matrix.bisect.outcome import error_of, outcome_of
from matrix.config import EnvSpec
from matrix.diagnosis import differential
from matrix.envs.gpus import visible_gpus
from matrix.envs.plan import PLAN_FILE, runner_plan
from matrix.envs.run import model_locations, probe_env_vars
from matrix.first_bad import Outcome
from probes.record import CellResult, cell_stem, write_json_atomic
from probes.status import Status


@dataclasses.dataclass
class Pending:
    """One question on its way: what it asks, and its answer once there is one."""

    prober: Any  # the Prober that asked (matrix.bisect.probe builds on this module)
    release: str
    variant: str
    spec: EnvSpec
    inputs: dict[str, Any] | None
    started: float
    fact: dict[str, Any] | None = None
    source: str = "cached"
    repeat: int = 0
    record: bool = False  # a diagnosis probe: the cell runs with the recorder on (probes/recorder.py)


Ran = tuple[Status, CellResult | None, str]  # (status, the cell when the runner wrote one, why not)
RECORDED_DIR = "recorded"  # <release>/recorded/: the cells a diagnosis probe ran with the recorder on
BATCH_DIR = ".batch"  # results/bisect/.batch/<env>: where one runner writes, before each cell moves to its model


def default_jobs(gpus: int = 0) -> int:
    """Side by side: one per CPU, or one per GPU on a GPU box (a release's cells share its device)."""
    return gpus if gpus > 0 else max(os.cpu_count() or 1, 1)


def answer_many(questions: Sequence[tuple[Any, ...]], jobs: int = 1) -> list[Outcome]:
    """The outcome of each (prober, release, variant[, repeat[, record]]): a stored fact, else
    one probe per release (a second question of the same cell in one release, a rerun or a
    recorded run, goes to a runner of its own: one runner writes one file per cell)."""
    pending = [question[0].pending(*question[1:]) for question in questions]
    groups: dict[tuple[str, int], list[Pending]] = {}
    seen: dict[tuple[int, str, str, int, bool], Pending] = {}
    for ask in pending:
        key = (id(ask.prober), ask.release, ask.variant, ask.repeat, ask.record)
        if ask.fact is None and key not in seen:
            seen[key] = ask
            slot = 0
            while any(
                (id(o.prober), o.variant) == (id(ask.prober), ask.variant)
                for o in groups.get((ask.spec.name, slot), [])
            ):
                slot += 1
            groups.setdefault((ask.spec.name, slot), []).append(ask)
    batches = list(groups.values())
    devices = Devices(visible_gpus())
    if jobs > 1 and len(batches) > 1:
        with ThreadPoolExecutor(max_workers=min(jobs, len(batches))) as pool:
            answers = list(pool.map(lambda batch: probe_group(batch, devices), batches))
    else:
        answers = [probe_group(batch, devices) for batch in batches]
    for batch, (facts, built) in zip(batches, answers, strict=True):
        if built:
            batch[0].prober.builds += 1
        for ask, fact in zip(batch, facts, strict=True):
            ask.fact, ask.source = fact, "probed"
    outcomes = []
    for ask in pending:
        if ask.fact is None:  # the same question twice: the first one's answer
            twin = seen[(id(ask.prober), ask.release, ask.variant, ask.repeat, ask.record)]
            ask.fact, ask.source = twin.fact, "cached"
        outcomes.append(ask.prober.settle(ask))
    return outcomes


class Devices:
    """The GPUs runners side by side take one each (none on a CPU box): a runner's cells share its GPU."""

    def __init__(self, gpus: list[str]) -> None:
        self.gpus, self.free, self.lock = list(gpus), list(gpus), threading.Condition()

    @contextlib.contextmanager
    def one(self) -> Iterator[str | None]:
        if not self.gpus:
            yield None
            return
        with self.lock:
            self.lock.wait_for(lambda: bool(self.free))
            gpu = self.free.pop(0)
        try:
            yield gpu
        finally:
            with self.lock:
                self.free.append(gpu)
                self.lock.notify()


def probe_group(asks: list[Pending], devices: Devices | None = None) -> tuple[list[dict[str, Any]], bool]:
    """One release's questions: build (or reuse) its env once per template, one runner per template."""
    facts: list[dict[str, Any]] = [{} for _ in asks]
    built_any = False
    templates: dict[tuple[str, ...], list[int]] = {}
    for index, ask in enumerate(asks):
        templates.setdefault(tuple(ask.spec.requirements()), []).append(index)
    for indexes in templates.values():
        first = asks[indexes[0]]
        python, built, reason = first.prober.ensure_env(first.spec)
        built_any = built_any or built
        pairs = [(asks[i].prober, asks[i].variant) for i in indexes]
        failed: list[Ran] = [(Status.ENV_FAILED, None, reason)] * len(pairs)
        if python:
            with (devices or Devices([])).one() as gpu:
                ran = run_cells(first.spec, python, pairs, gpu=gpu, record=[asks[i].record for i in indexes])
        else:
            ran = failed
        for i, (status, cell, why) in zip(indexes, ran, strict=True):
            facts[i] = fact_of(asks[i], status, cell, why, built)
    return facts, built_any


def fact_of(ask: Pending, status: Status, cell: CellResult | None, reason: str, built: bool) -> dict[str, Any]:
    """The answer to store, in the facts' format (unchanged: an older cache stays readable)."""
    prober, name = ask.prober, ask.spec.name
    folder = Path("bisect", prober.model.name, name, *([RECORDED_DIR] if ask.record else []))
    cell_file = folder / f"{cell_stem(prober.model.name, ask.variant)}.json"
    recorded = {"recorded": differential.side_of(cell, ask.release) if cell else None} if ask.record else {}
    return {
        "outcome": outcome_of(cell) if cell else None,
        "status": status.value,
        "error": error_of(cell) if cell else None,
        "reason": (cell.reason if cell else reason).strip()[-400:],
        "cell": str(cell_file) if cell else None,  # relative to results/
        "env": "built" if built else "reused",
        # What its outputs were, so a cached answer is compared with the reference too:
        "fingerprint": cell.fingerprint if cell and cell.status.passed else None,
        # A diagnosis probe's record: what the model's code saw, the status it ended in.
        **recorded,
    }


def run_cells(
    spec: EnvSpec,
    python: Path,
    pairs: list[tuple[Any, str]],
    gpu: str | None = None,
    record: Sequence[bool] = (),
) -> list[Ran]:
    """Every (model, variant) cell in the env, through one runner the matrix uses (on `gpu`,
    if given); a cell whose `record` flag is set runs with the recorder (`probes/cell.py`
    reads the plan cell's `record` key) and its files go to the release's `recorded/`."""
    flags = list(record) or [False] * len(pairs)
    probers: dict[str, Any] = {}
    for prober, _ in pairs:
        probers.setdefault(prober.model.name, prober)
    first = pairs[0][0]
    sub = dataclasses.replace(first.config, envs=(spec,), models=tuple(p.model for p in probers.values()))
    try:
        locations = model_locations(sub, python, first.cache)
    except RuntimeError as exc:
        return [(Status.UNAVAILABLE, None, str(exc))] * len(pairs)
    batch = first.cells.parent / BATCH_DIR
    env_dir = batch / spec.name
    plan = runner_plan(sub, spec.name, batch, locations)
    wanted = [(prober.model.name, variant) for prober, variant in pairs]
    by_key = {(c["model"], c["variant"]): c for c in plan["cells"]}
    plan["cells"] = [
        dict(by_key[key], record=True) if on else by_key[key] for key, on in zip(wanted, flags, strict=True)
    ]
    shutil.rmtree(env_dir, ignore_errors=True)  # a stale verdict must never be read back
    write_json_atomic(env_dir / PLAN_FILE, plan)
    timeout = sum(float(c["timeout"]) for c in plan["cells"]) + 600
    args: list[str | Path] = [python, "-m", "probes.runner", env_dir / PLAN_FILE]
    started = time.perf_counter()
    env = {**probe_env_vars(sub), **({"CUDA_VISIBLE_DEVICES": gpu} if gpu is not None else {})}
    done = proc.run(args, env=env, timeout=timeout)
    seconds = round(time.perf_counter() - started, 1)
    print(f"[bisect] {spec.name}: {len(pairs)} cell(s) in one runner, {seconds} s", flush=True)
    ran: list[Ran] = []
    for (prober, variant), on in zip(pairs, flags, strict=True):
        stem = cell_stem(prober.model.name, variant)
        target = prober.cells / spec.name / (RECORDED_DIR if on else "")
        target.mkdir(parents=True, exist_ok=True)
        for suffix in (".json", ".log"):
            (target / f"{stem}{suffix}").unlink(missing_ok=True)
            if (env_dir / f"{stem}{suffix}").exists():
                os.replace(env_dir / f"{stem}{suffix}", target / f"{stem}{suffix}")
        try:
            cell = CellResult.from_dict(json.loads((target / f"{stem}.json").read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as exc:  # the runner itself died: no verdict
            ran.append((Status.CRASHED, None, f"the runner wrote no result ({type(exc).__name__}): {done.output}"))
            continue
        ran.append((cell.status, cell, ""))
    return ran
