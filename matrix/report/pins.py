"""results/pins/: the pin file of the one answer, for `uv pip install -r`."""

from __future__ import annotations

from typing import Any

from matrix.newest.blockers import shim_words
from matrix.recommend import Recommendation
from matrix.results.aggregate import Matrix


def pins(matrix: Matrix, rec: Recommendation) -> dict[str, str]:
    """The pin file of the one answer, for `uv pip install -r`: the release the search confirmed
    (`transformers-<release>.txt`) when it made one, else one file per recommended env
    (`<env>.txt`: one env when it runs every model, the fewest envs otherwise)."""
    for key in ("as_is", "with_shims"):
        answer = (rec.newest or {}).get(key)
        if answer and answer.get("packages"):
            return {f"transformers-{answer['release']}": _release_pins(matrix, answer)}
    files: dict[str, str] = {}
    if rec.best is None:
        return files
    for name in rec.best.envs:
        env = next(e for e in matrix.envs if e.name == name)
        served = ", ".join(choice.model for choice in rec.best.models_of(name))
        header = [
            f"# Exact pins of env {name} (transformers {env.transformers}), run {matrix.run_id}.",
            f"# Serves: {served}. Install with: uv pip install -r {name}.txt",
        ]
        if "+" in env.torch:
            header.append(f"# torch {env.torch} is a local build: point UV_FIND_LINKS at a folder holding it.")
        if "+" in env.transformers:
            header.append(f"# transformers {env.transformers} is a path: or git build, not from the index.")
        files[name] = "\n".join(header + [f"{pkg}=={version}" for pkg, version in env.packages.items()]) + "\n"
    return files


def _release_pins(matrix: Matrix, answer: dict[str, Any]) -> str:
    """The pin file of a release the search confirmed: the confirm env's freeze."""
    release, packages = answer["release"], answer["packages"]
    how = shim_words(answer["choices"])
    served = f"all {len(answer['choices'])} models " + (f"with {how}" if how else "as is")
    header = [
        f"# Exact pins of transformers {release}, run {matrix.run_id}: the newest release that runs {served},",
        f"# confirmed by a probe of each; frozen from env {answer['env']}.",
        f"# Install with: uv pip install -r transformers-{release}.txt",
    ]
    if "+" in packages.get("torch", ""):
        header.append(f"# torch {packages['torch']} is a local build: point UV_FIND_LINKS at a folder holding it.")
    return "\n".join(header + [f"{pkg}=={version}" for pkg, version in packages.items()]) + "\n"
