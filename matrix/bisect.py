"""Find the first transformers release that breaks a model, by binary search over releases.

The matrix says a model passes in one env and fails in a newer one; the releases between
are the suspects. Each probe builds a throw-away uv env for one release (kept under
`<cache>/bisect/tf-<version>/`, reused while its marker says it was fully installed with
the same requirements) and runs only the model's base cell, with the matrix's own runner,
so a verdict here means what it means in the matrix. A release whose env cannot be built,
or whose cell says nothing (`unavailable`), is neither good nor bad: it is skipped, like
`git bisect skip`, and reported.

Usage: nox -s bisect -- <model> [--good X] [--bad Y]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from matrix import proc
from matrix.config import LATEST, Config, EnvSpec, ModelSpec
from matrix.plan import PLAN_FILE, runner_plan
from matrix.releases import ReleasesError, between, fetch_releases, index_url
from matrix.run import install_env, model_locations, probe_env_vars
from probes.record import BASE_VARIANT, CellResult, write_json_atomic
from probes.status import Status

BISECT_SCHEMA = 1
MARKER = ".matrix-env.json"
Column = tuple[str, str, CellResult]  # (transformers version, env name, the model's base cell)


class BisectError(Exception):
    """A usage mistake (unknown model, no good/bad pair): one line, exit code 2."""


@dataclasses.dataclass(frozen=True)
class BisectResult:
    """Where the search ended; `unresolved`: skipped versions the first bad may hide among."""

    last_good: str
    first_bad: str
    probed: list[tuple[str, bool | None]]
    unresolved: list[str]


def first_bad(candidates: list[str], is_good: Callable[[str], bool | None]) -> BisectResult:
    """Binary search; candidates[0] is known good, candidates[-1] known bad (neither re-tested).

    `is_good` may answer None (the version says nothing): it is dropped and the untested
    version nearest the middle is tried instead. Without skips it asks at most
    ceil(log2(len(candidates) - 1)) times.
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


def suggested_bound(good_floor: str, last_good: str, first_bad: str) -> dict[str, str]:
    """`transformers>=<floor major.minor>,<<first bad>` and the exact pin of the newest good."""
    floor, bad = Version(good_floor), Version(first_bad)
    upper = f"{bad.major}.{bad.minor}" if not any(bad.release[2:]) else str(bad)
    return {"range": f"transformers>={floor.major}.{floor.minor},<{upper}", "pin": f"transformers=={last_good}"}


def pick_endpoints(
    columns: list[Column], good: str | None, bad: str | None
) -> tuple[tuple[str, str | None], tuple[str, str | None]]:
    """((good version, env), (bad version, env)): given ones win, the rest come from a run.

    Good: the newest env where the cell passes (older than `bad`); bad: the oldest newer env
    where it really fails (a cell that says nothing is no evidence either way).
    """
    known = sorted((Version(v), env, cell) for v, env, cell in columns if _is_version(v))
    if good is None:
        passing = [(str(v), e) for v, e, c in known if c.status.passed and (bad is None or v < Version(bad))]
        if not passing:
            raise BisectError("no env of the newest run where the model passes; give --good VERSION")
        found_good: tuple[str, str | None] = passing[-1]
    else:
        found_good = (good, None)
    if bad is not None:
        return found_good, (bad, None)
    floor = Version(found_good[0])
    failing = [(str(v), e) for v, e, c in known if v > floor and not c.status.passed and not c.status.says_nothing]
    if not failing:
        raise BisectError(f"no env newer than {found_good[0]} where the model fails; give --bad VERSION")
    return found_good, failing[0]


class Prober:
    """Builds (or reuses) one env per release and runs the model's base cell in it."""

    def __init__(self, config: Config, model: ModelSpec, template: EnvSpec, results: Path, cache: Path) -> None:
        self.config, self.model, self.template = config, dataclasses.replace(model, shims=()), template
        self.run_dir, self.cache = results / "bisect" / model.name, cache
        self.outcomes: dict[str, dict[str, Any]] = {}
        self.builds = 0

    def is_good(self, version: str) -> bool | None:
        """True when the cell passes, False when it fails, None when this release says nothing."""
        start = time.perf_counter()
        spec = dataclasses.replace(self.template, name=f"tf-{version}", transformers=f"=={version}")
        python, built, reason = self.ensure_env(spec)
        status, cell, reason = self.run_cell(spec, python) if python else (Status.ENV_FAILED, None, reason)
        verdict = None if cell is None or status.says_nothing else status.passed
        reason = (cell.reason if cell else reason).strip()[-400:]
        self.outcomes[version] = outcome = {
            "status": status.value,
            "verdict": {True: "good", False: "bad", None: "skipped"}[verdict],
            "env": "built" if built else "reused",
            "reason": reason,
            "error": _error(cell) if cell else None,
            "cell": f"bisect/{self.model.name}/{spec.name}/{self.model.name}.json" if cell else None,
            "seconds": round(time.perf_counter() - start, 1),
        }
        why = f" ({reason.splitlines()[-1][:160]})" if reason else ""
        head = f"[bisect {self.model.name}] {version}: {status.value} -> {outcome['verdict']}{why}"
        print(f"{head}  [{outcome['env']} env, {outcome['seconds']} s]", flush=True)
        return verdict

    def run_cell(self, spec: EnvSpec, python: Path) -> tuple[Status, CellResult | None, str]:
        """The model's base cell in the env, through the runner the matrix uses."""
        sub = dataclasses.replace(self.config, envs=(spec,), models=(self.model,))
        try:
            locations = model_locations(sub, python, self.cache)
        except RuntimeError as exc:
            return Status.UNAVAILABLE, None, str(exc)
        plan = runner_plan(sub, spec.name, self.run_dir, locations)
        plan["cells"] = [c for c in plan["cells"] if c["variant"] == BASE_VARIANT]
        env_dir = self.run_dir / spec.name
        cell_file = env_dir / f"{self.model.name}.json"
        cell_file.unlink(missing_ok=True)  # a stale verdict must never be read back
        write_json_atomic(env_dir / PLAN_FILE, plan)
        args: list[str | Path] = [python, "-m", "probes.runner", env_dir / PLAN_FILE]
        done = proc.run(args, env=probe_env_vars(sub), timeout=self.model.timeout + 600)
        try:
            cell = CellResult.from_dict(json.loads(cell_file.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as exc:  # the runner itself died: no verdict
            return Status.CRASHED, None, f"the runner wrote no result ({type(exc).__name__}): {done.output}"
        return cell.status, cell, ""

    def ensure_env(self, spec: EnvSpec) -> tuple[Path | None, bool, str]:
        """(python, newly built, problem): reuse a complete env with the same requirements."""
        env_dir = self.cache / "bisect" / spec.name
        python, marker = env_dir / "bin" / "python", env_dir / MARKER
        interpreter = spec.python or os.path.realpath(sys.executable)  # one spelling per interpreter
        wanted = {"requirements": spec.requirements(), "python": interpreter}
        with contextlib.suppress(OSError, ValueError):
            if python.exists() and json.loads(marker.read_text(encoding="utf-8")) == wanted:
                return python, False, ""
        shutil.rmtree(env_dir, ignore_errors=True)
        self.builds += 1
        made = proc.run(["uv", "venv", "--quiet", "--python", interpreter, env_dir])
        done = install_env(python, spec) if made.ok else made
        if not done.ok:
            return None, True, f"env could not be built (uv exit code {done.returncode}): {done.output}"
        write_json_atomic(marker, wanted)  # written last: only a complete env is ever reused
        return python, True, ""


def bisect(
    config: Config,
    model_name: str,
    *,
    results: Path,
    cache: Path,
    good: str | None = None,
    bad: str | None = None,
    releases: list[Version] | None = None,
) -> dict[str, Any]:
    """Bisect one model between a good and a bad release; write results/bisect/<model>.json."""
    start = time.perf_counter()
    model = next((m for m in config.models if m.name == model_name), None)
    if model is None:
        raise BisectError(f"unknown model {model_name!r} (known: {', '.join(m.name for m in config.models)})")
    for flag, value in (("--good", good), ("--bad", bad)):
        if value is not None and not _is_version(value):
            raise BisectError(f"{flag} {value!r} is not a version such as 4.40.2")
    columns, source = ([], "command line") if good and bad else _run_columns(results, model_name)
    try:
        (good, good_env), (bad, _) = pick_endpoints(columns, good, bad)
    except BisectError as exc:
        raise BisectError(f"{model_name} ({source}): {exc}") from None
    if Version(good) >= Version(bad):
        raise BisectError(f"good version {good} is not older than bad version {bad}")
    template = _template(config, good_env, good)
    listed = fetch_releases("transformers") if releases is None else releases
    suspects = [str(v) for v in between(listed, Version(good), Version(bad))]
    print(f"[bisect {model_name}] good {good}, bad {bad} ({source}): {len(suspects)} releases between", flush=True)
    prober = Prober(config, model, template, results, cache)
    found = first_bad([good, *suspects, bad], prober.is_good)
    error = prober.outcomes.get(found.first_bad, {}).get("error")
    if error is None and found.first_bad == bad:  # never probed here: the run's cell has the error
        error = next((_error(c) for v, _, c in columns if v == bad), None)
    bound = suggested_bound(good, found.last_good, min([found.first_bad, *found.unresolved], key=Version))
    report: dict[str, Any] = {
        "schema": BISECT_SCHEMA,
        "model": model_name,
        "package": "transformers",
        "good": good,
        "bad": bad,
        "endpoints_from": source,
        "last_good": found.last_good,
        "first_bad": found.first_bad,
        "exact": not found.unresolved,
        "unresolved": found.unresolved,
        "first_bad_error": error,
        "bound": bound,
        "candidates": len(suspects),
        "max_probes": math.ceil(math.log2(max(len(suspects), 1))) + 1,
        "probes": len(found.probed),
        "env_builds": prober.builds,
        "env_template": {"torch": template.torch, "python": template.python, "pins": list(template.pins)},
        "index": index_url() if releases is None else "given",
        "wall_s": round(time.perf_counter() - start, 1),
        "outcomes": [{"version": v, **prober.outcomes[v]} for v, _ in found.probed],
    }
    path = results / "bisect" / f"{model_name}.json"
    write_json_atomic(path, report)
    what = f"{error['phase']} {error['type']}: {error['message']}"[:200] if error else "no error recorded"
    hedge = f" (or one of the skipped {', '.join(found.unresolved)})" if found.unresolved else ""
    print(f"[bisect {model_name}] last good {found.last_good}, first bad {found.first_bad}{hedge}: {what}")
    print(f"[bisect {model_name}] {len(found.probed)} probes, {prober.builds} env builds, {report['wall_s']} s")
    print(f"[bisect {model_name}] use {bound['range']} (newest good: {bound['pin']}); wrote {path}", flush=True)
    return report


def _run_columns(results: Path, model: str) -> tuple[list[Column], str]:
    """The model's base cell in each env of the newest run."""
    from matrix.aggregate import aggregate
    from matrix.collect import CollectError, collect, newest_run

    try:
        matrix = aggregate(collect(newest_run(results)))
    except CollectError as exc:
        raise BisectError(f"{exc}; or give --good VERSION --bad VERSION") from None
    cells = [(env.transformers, env.name, matrix.cell(env.name, model)) for env in matrix.envs]
    return [(v, e, c) for v, e, c in cells if c is not None], f"run {matrix.run_id}"


def _template(config: Config, env_name: str | None, good: str) -> EnvSpec:
    """torch, python and pins for the throw-away envs: the good env's, as the matrix built it."""
    named = [e for e in config.envs if e.name == env_name]
    holding = [e for e in config.envs if e.transformers != LATEST and Version(good) in SpecifierSet(e.transformers)]
    return (named or holding or list(config.envs))[0]


def _error(cell: CellResult) -> dict[str, Any] | None:
    if cell.status.passed or not cell.error:
        return None
    return {"phase": cell.phase, "type": cell.error.get("type"), "message": cell.error.get("message", "")[:2000]}


def _is_version(text: str) -> bool:
    try:
        Version(text)
    except InvalidVersion:
        return False
    return True


def main(argv: list[str], *, config: Config, results: Path, cache: Path) -> int:
    """`nox -s bisect -- ...`: 2 and one line for a usage mistake, 1 when the index cannot be read."""
    parser = argparse.ArgumentParser(prog="nox -s bisect --", description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a model name of the config")
    parser.add_argument("--good", help="a release where the model passes (default: from the newest run)")
    parser.add_argument("--bad", help="a newer release where it fails (default: from the newest run)")
    args = parser.parse_args(argv)
    try:
        bisect(config, args.model, good=args.good, bad=args.bad, results=results, cache=cache)
    except (BisectError, ReleasesError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, BisectError) else 1
    return 0
