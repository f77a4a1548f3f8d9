"""The publication of one report: which folders, hosts and kernel strings its published files
must not name (the rules are probes/public.py's; this module only gathers their inputs).

The config's folder is where the results folder sits (`results/` beside the config, the
default); the folder the report runs in and an absolute MATRIX_CONFIG's folder count too.
The machines are every fingerprint the run holds, cells and env facts, so a shard merged
from another machine loses its hostname as well; `[settings] machine_label` names them.
"""

from __future__ import annotations

import os
from pathlib import Path

from matrix.results.collect import Run
from probes.public import Publication, publication


def publication_of(run: Run, results: Path, cache: Path | None = None) -> Publication:
    """What `run`'s published files (under `results`) are rewritten with."""
    folders = [results.parent, Path.cwd()]
    config = os.environ.get("MATRIX_CONFIG", "")
    if config and Path(config).is_absolute():
        folders.insert(0, Path(config).parent)
    machines = [cell.machine for cell in run.cells] + [facts.get("machine") for facts in run.envs.values()]
    label = run.settings.get("machine_label")
    return publication(
        folders=folders,
        cache=cache,
        machines=[machine for machine in machines if isinstance(machine, dict)],
        label=str(label) if label else None,
    )
