"""Failures that are verdicts of their own: a package the model needs, outputs that are not numbers.

Neither is a break in transformers' API, so neither belongs to symbol history:

- *Missing package*: the model's code imports something the env lacks (transformers says
  so in its own words, with a "Run `pip install ...`" that does not apply to envs this tool
  builds). The fix is to declare it in the model's `requires`. Where another env of the run
  has the package only because its transformers release pulled it in, the dependency left
  transformers; where another env runs the model without the package, the demand itself
  changed with the release (transformers checks a model's imports differently).
- *Non-finite outputs*: the probe found NaN or inf in logits, hidden states or embeddings
  (a silent numerical break); the cell fails in the phase of that call.
"""

from __future__ import annotations

from matrix.diagnosis.finding import Diagnosis
from matrix.results.aggregate import Matrix
from probes.record import CellResult

NON_FINITE_ERROR = "NonFiniteOutputs"


def missing_package(cell: CellResult, packages: list[str], matrix: Matrix) -> Diagnosis:
    """The verdict for a cell whose model needs `packages` that its env does not have."""
    columns = {env.name: env for env in matrix.envs}
    here = columns.get(cell.env)
    release = here.transformers if here else cell.env
    names = ", ".join(packages)
    evidence = [f"{cell.env} (transformers {release}) has none of: {names}"] if here and here.packages else []
    had_it, ran_without = [], []
    for env in matrix.envs:
        other = matrix.cell(env.name, cell.model, cell.variant)
        if env.name == cell.env or other is None or not other.status.passed or not env.packages:
            continue
        present = [p for p in packages if _normal(p) in {_normal(k) for k in env.packages}]
        if present:
            had_it.append(env)
            evidence.append(f"{env.name} (transformers {env.transformers}) has {', '.join(present)} and runs the model")
        else:
            ran_without.append(env)
            evidence.append(f"{env.name} (transformers {env.transformers}) runs the model without {names}")
    requires = ", ".join(f'"{p}"' for p in packages)
    fixes = [f"declare it: requires = [{requires}] in [models.{cell.model}]"]
    if ran_without:
        versions = ", ".join(env.transformers for env in ran_without)
        cause = (
            f"The model's code needs {names}, which this env does not have; transformers {versions} ran it without "
            f"{names}, so the demand changed with the release (how transformers checks a model's imports)."
        )
        verb = "runs" if len(ran_without) == 1 else "run"
        fixes.append(f"or use transformers {versions}, which {verb} it without {names}")
    elif had_it:
        versions = ", ".join(env.transformers for env in had_it)
        cause = (
            f"The model's code needs {names}, which transformers {versions} installed as its own dependency and "
            f"{release} no longer does: the demand was always the model's, so the model must declare it."
        )
    else:
        cause = f"The model's code needs {names}, which is not installed in this env; the model must declare it."
    return Diagnosis(
        source="missing-package",
        id=f"missing package: {names}",
        cause=cause,
        confidence="high",
        symbol=names,
        evidence=evidence,
        fixes=fixes,
    )


def non_finite(cell: CellResult) -> Diagnosis | None:
    """The verdict for a cell whose outputs held NaN or inf (the probe's own check failed)."""
    error = cell.error or {}
    if error.get("type") != NON_FINITE_ERROR:
        return None
    return Diagnosis(
        source="non-finite",
        id="non-finite outputs",
        cause=f"The model's {cell.phase} outputs hold NaN or inf, a silent numerical break: {error.get('message', '')}",
        confidence="high",
        evidence=[f"{cell.env}: {error.get('message', '')}"],
        fixes=[],
    )


def _normal(name: str) -> str:
    return name.lower().replace("_", "-")
