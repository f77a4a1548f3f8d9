"""Failures that are verdicts of their own: a package the model needs, outputs that are not numbers.

Neither is a break in transformers' API, so neither belongs to symbol history:

- *Missing package*: the model's code imports something the env lacks (transformers says
  so in its own words, with a "Run `pip install ...`" that does not apply to envs this tool
  builds). The fix is to declare it in the model's `requires`. Where another env of the run
  has the package only because its transformers release pulled it in, the demand did not
  change with the model: the dependency left transformers.
- *Non-finite outputs*: the probe found NaN or inf in logits, hidden states or embeddings
  (a silent numerical break); the cell fails in the phase of that call.
"""

from __future__ import annotations

from matrix.aggregate import Matrix
from matrix.diagnosis.finding import Diagnosis
from probes.record import CellResult

NON_FINITE_ERROR = "NonFiniteOutputs"


def missing_package(cell: CellResult, packages: list[str], matrix: Matrix) -> Diagnosis:
    """The verdict for a cell whose model needs `packages` that its env does not have."""
    columns = {env.name: env for env in matrix.envs}
    here = columns.get(cell.env)
    release = here.transformers if here else cell.env
    names = ", ".join(packages)
    evidence = [f"{cell.env} (transformers {release}) has none of: {names}"] if here and here.packages else []
    had_it = []
    for env in matrix.envs:
        other = matrix.cell(env.name, cell.model, cell.variant)
        present = [p for p in packages if _normal(p) in {_normal(k) for k in env.packages}]
        if env.name != cell.env and present and other is not None and other.status.passed:
            had_it.append(env)
            evidence.append(f"{env.name} (transformers {env.transformers}) has {', '.join(present)} and runs the model")
    if had_it:
        versions = ", ".join(env.transformers for env in had_it)
        cause = (
            f"The model's code needs {names}, which transformers {versions} installed as its own dependency and "
            f"{release} no longer does: the demand was always the model's, so the model must declare it."
        )
    else:
        cause = f"The model's code needs {names}, which is not installed in this env; the model must declare it."
    requires = ", ".join(f'"{p}"' for p in packages)
    return Diagnosis(
        source="missing-package",
        id=f"missing package: {names}",
        cause=cause,
        confidence="high",
        symbol=names,
        evidence=evidence,
        fixes=[f"declare it: requires = [{requires}] in [models.{cell.model}]"],
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
