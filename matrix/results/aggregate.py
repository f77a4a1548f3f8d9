"""Turn a collected run into the matrix every renderer shares: env columns and model rows.

Rows are built once and handed to the Markdown, terminal and JSON renderers (the way
coverage.py builds report rows once), so the three can never disagree.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from packaging.version import InvalidVersion, Version

from matrix.results.collect import Run
from probes.record import CellResult, cell_stem
from probes.status import Status

UNPINNED_MARK = "⚠ unpinned remote code"


@dataclass(frozen=True)
class EnvColumn:
    """One env as the table shows it: its name and what it resolved to."""

    name: str
    transformers: str
    torch: str
    built: bool
    packages: dict[str, str]
    install_s: float | None = None

    @property
    def header(self) -> str:
        return f"{self.name} ({self.transformers if self.built else 'not built'})"

    @property
    def version(self) -> Version | None:
        try:
            return Version(self.transformers)
        except InvalidVersion:
            return None


@dataclass(frozen=True)
class Row:
    """One model (or one shim variant of it) across every env."""

    model: str
    variant: str
    cells: dict[str, CellResult | None]

    @property
    def label(self) -> str:
        return cell_stem(self.model, self.variant)


@dataclass
class Matrix:
    """The aggregated run."""

    run_id: str
    envs: list[EnvColumn]
    rows: list[Row]
    models: list[str]
    machine: dict[str, Any]
    warnings: list[str]
    # Models whose remote code comes from the hub without a pinned revision (marked in tables).
    unpinned: frozenset[str] = frozenset()

    def label(self, row: Row) -> str:
        """The row's name as tables show it, with the unpinned-remote-code mark."""
        return f"{row.label} {UNPINNED_MARK}" if row.model in self.unpinned and not row.variant else row.label

    def row(self, model: str, variant: str = "") -> Row:
        return next(row for row in self.rows if row.model == model and row.variant == variant)

    def cell(self, env: str, model: str, variant: str = "") -> CellResult | None:
        for row in self.rows:
            if row.model == model and row.variant == variant:
                return row.cells.get(env)
        return None

    def all_cells(self) -> list[CellResult]:
        return [cell for row in self.rows for cell in row.cells.values() if cell is not None]

    def failing(self) -> list[CellResult]:
        """Cells that did not pass, in table order (rows, then env columns)."""
        order = [env.name for env in self.envs]
        found = [cell for cell in self.all_cells() if not cell.status.passed]
        rank = {(row.model, row.variant): index for index, row in enumerate(self.rows)}
        return sorted(found, key=lambda c: (rank[(c.model, c.variant)], order.index(c.env)))

    def counts(self) -> Counter[Status]:
        return Counter(cell.status for cell in self.all_cells())

    def not_run(self) -> list[tuple[str, Row]]:
        """(env, row) of every cell with no result (a partial run, a shard that never came)."""
        return [(env.name, row) for row in self.rows for env in self.envs if row.cells[env.name] is None]

    def machines(self) -> list[tuple[str, dict[str, Any], list[str]]]:
        """Each distinct machine the cells ran on: a label (its hostname, numbered when two
        machines share one), its fingerprint, and the envs it ran cells of (column order)."""
        found: dict[str, tuple[dict[str, Any], list[str]]] = {}
        for env in self.envs:
            for row in self.rows:
                cell = row.cells[env.name]
                if cell is None or not cell.machine:
                    continue
                fingerprint, envs = found.setdefault(machine_key(cell.machine), (cell.machine, []))
                if env.name not in envs:
                    envs.append(env.name)
        hostnames = Counter(str(fingerprint.get("hostname", "?")) for fingerprint, _ in found.values())
        seen: Counter[str] = Counter()
        labelled = []
        for fingerprint, envs in found.values():
            hostname = str(fingerprint.get("hostname", "?"))
            seen[hostname] += 1
            label = f"{hostname}#{seen[hostname]}" if hostnames[hostname] > 1 else hostname
            labelled.append((label, fingerprint, envs))
        return labelled


def serves(cell: CellResult | None, require_budgets: bool = False, drift_blocks: bool = False) -> bool:
    """Whether this cell counts as running its model (the recommendation's rule: it passes, is
    within budget when budgets are required, and its outputs neither collapsed nor, with
    `drift_blocks`, drift)."""
    if cell is None or not cell.status.passed or (require_budgets and cell.over_budget):
        return False
    drift = cell.drift or {}
    return not drift.get("degenerate") and not (drift_blocks and drift.get("differs"))


def machine_key(fingerprint: dict[str, Any]) -> str:
    """Two cells ran on the same machine when their whole fingerprints agree."""
    return json.dumps(fingerprint, sort_keys=True, default=str)


def aggregate(run: Run) -> Matrix:
    """Columns ordered by resolved transformers version (oldest first), rows in plan order:
    each model, then its shim variants in the order the config lists them."""
    names = sorted({*run.envs, *(cell.env for cell in run.cells)})
    columns = [_column(name, run) for name in names]
    columns.sort(key=lambda env: (env.version is None, env.version or Version("0"), env.name))
    by_key = {(cell.model, cell.variant, cell.env): cell for cell in run.cells}
    variants: dict[str, list[str]] = {}
    for model, variant in [*run.planned, *((cell.model, cell.variant) for cell in run.cells)]:
        variants.setdefault(model, [])
        if variant not in variants[model]:
            variants[model].append(variant)
    rows = [
        Row(model, variant, {env.name: by_key.get((model, variant, env.name)) for env in columns})
        for model in run.model_order
        for variant in sorted(variants.get(model, []), key=lambda v: v != "")  # base, then the config's order
    ]
    machine = next((cell.machine for cell in run.cells if cell.machine), {})
    unpinned = [m for m in run.model_order if (run.model_specs.get(m) or {}).get("unpinned_remote_code")]
    warnings = list(run.warnings) + [
        f"{model}: trust_remote_code = true without a pinned revision: the code that ran is whatever the repo "
        "held at run time; pin `revision` to a commit"
        for model in unpinned
    ]
    return Matrix(run.run_id, columns, rows, list(run.model_order), machine, warnings, frozenset(unpinned))


def _column(name: str, run: Run) -> EnvColumn:
    facts = run.envs.get(name, {})
    packages = facts.get("packages") or {}
    versions: dict[str, str] = {}
    if not packages.get("transformers") or not packages.get("torch"):  # no env facts: ask the cells
        versions = next((cell.versions for cell in run.cells if cell.env == name and cell.versions), {})
    transformers = packages.get("transformers") or versions.get("transformers") or "?"
    return EnvColumn(
        name=name,
        transformers=transformers,
        torch=packages.get("torch") or versions.get("torch") or "?",
        built=facts.get("status", "built") != Status.ENV_FAILED.value,
        packages=dict(sorted(packages.items())),
        install_s=facts.get("install_s"),
    )
