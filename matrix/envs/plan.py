"""From a `Config` to the cells to run: env x model x variant (the base, then one per shim).

Pure functions: the noxfile asks for one env's cells and hands them to the runner as a
JSON plan; tests check the plan without building anything.
"""

from __future__ import annotations

import datetime
import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matrix.config import Config, ModelSpec
from probes.record import BASE_VARIANT, cell_stem

ENV_FACTS_FILE = "_env.json"
PLAN_FILE = "_plan.json"


@dataclass(frozen=True)
class PlannedCell:
    """One cell to run."""

    env: str
    model: str
    variant: str

    @property
    def stem(self) -> str:
        return cell_stem(self.model, self.variant)


def new_run_id() -> str:
    """Sortable by time, unique across machines that start in the same second."""
    now = datetime.datetime.now(datetime.UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"


def variants(model: ModelSpec) -> list[str]:
    """The base variant, then one variant per shim the model lists."""
    return [BASE_VARIANT, *model.shims]


def variant_words(variant: str) -> str:
    """A variant as text: "shim a", or "shims a + b" for a combination applied together."""
    names = variant.split("+")
    return f"shim {variant}" if len(names) == 1 else f"shims {' + '.join(names)}"


def cells(config: Config, env: str | None = None) -> list[PlannedCell]:
    """Every cell of the config (or of one env), in config order."""
    envs = [e.name for e in config.envs if env is None or e.name == env]
    return [PlannedCell(e, m.name, v) for e in envs for m in config.models for v in variants(m)]


def runner_plan(
    config: Config,
    env: str,
    run_dir: Path,
    locations: dict[str, str],
    resume: bool = False,
    leave_out: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """The JSON the in-env runner reads: one spec per cell, with resolved model locations.

    Cells of the models in `leave_out` (decided on the host, such as a hub id the hub
    preflight found missing) are not run: their specs go under `left_out`, so the run
    folder still says what each model was asked to do.
    """
    models = {m.name: m for m in config.models}
    specs = []
    for cell in cells(config, env):
        model = models[cell.model]
        specs.append(
            {
                "model": model.name,
                "variant": cell.variant,
                "source_kind": model.source_kind,
                "location": locations[model.name],
                "task": model.task,
                "revision": model.revision,
                "trust_remote_code": model.trust_remote_code,
                "unpinned_remote_code": model.unpinned_remote_code,
                "timeout": model.timeout,
                "device": model.device,
                "dtype": model.dtype,
                "max_new_tokens": model.max_new_tokens,
                "chat": model.chat,
                "similarity_check": model.similarity_check,
                "memory_limit_mb": model.memory_limit_mb,
                "optional": model.optional,
                "budgets": model.budgets,
                "metric_budgets": {key: list(bound) for key, bound in model.metric_budgets.items()},
                "load_kwargs": model.load_kwargs,
                "probes": [script.to_plan() for script in model.probes],
                # Only the team's shims this variant applies: a changed shim file is a new
                # question for its variants' cells, not for the model's other cells.
                "team_shims": [s.to_plan() for s in model.team_shims if s.name in cell.variant.split("+")],
                "warm": _warm_names(locations[model.name]),
            }
        )
    return {
        "env": env,
        "run_dir": str(run_dir),
        "resume": resume,
        "settings": config.settings.to_dict(),
        "models": [model.name for model in config.models],  # the table's row order
        "cells": [spec for spec in specs if spec["model"] not in leave_out],
        "left_out": [spec for spec in specs if spec["model"] in leave_out],
    }


def _warm_names(location: str) -> list[str]:
    """`transformers.models.<name>` packages worth importing in the parent before the fork.

    Read from the model folder's config (model_type) and tokenizer config (tokenizer
    class). A remote-code model's own module cannot be warmed (transformers makes it at
    load time), but its tokenizer's usually can; a name this version lacks is skipped.
    """
    names = []
    for file_name, key in (("config.json", "model_type"), ("tokenizer_config.json", "tokenizer_class")):
        try:
            value = json.loads((Path(location) / file_name).read_text(encoding="utf-8")).get(key) or ""
        except (OSError, ValueError, AttributeError):
            continue
        name = re.sub(r"(TokenizerFast|Tokenizer)$", "", str(value)).lower().replace("-", "_")
        if name:
            names.append(name)
    return sorted(set(names))
