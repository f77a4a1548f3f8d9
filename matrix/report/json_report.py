"""matrix.json: the machine-readable result, schema-versioned with a meta block (coverage.py's
jsonreport shape), so a script reads the pin and every cell without parsing the Markdown."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from matrix import __version__
from matrix.recommend import Recommendation
from matrix.report.answer import upcoming_breaks
from matrix.report.line_stretches import axis, line_rows
from matrix.report.rows import loaded
from matrix.results.aggregate import Matrix
from matrix.signature import UnknownGroup
from probes.record import CellResult

SCHEMA = 1


def matrix_json(
    matrix: Matrix, rec: Recommendation, generated_at: str, unknown: Sequence[UnknownGroup] = ()
) -> dict[str, Any]:
    """The machine-readable result (schema-versioned, with a meta block)."""
    return {
        "schema": SCHEMA,
        "meta": {
            "tool": "transformers-matrix",
            "version": __version__,
            "generated_at": generated_at,
            "run_id": matrix.run_id,
            "machine": matrix.machine,
            "machines": [{"label": label, "machine": fp, "envs": envs} for label, fp, envs in matrix.machines()],
        },
        "envs": [
            {
                "name": env.name,
                "transformers": env.transformers,
                "torch": env.torch,
                "built": env.built,
                "install_s": env.install_s,
                "packages": env.packages,
            }
            for env in matrix.envs
        ],
        "models": matrix.models,
        "cells": [_cell_json(cell) for cell in matrix.all_cells()],
        "not_run": [{"env": env, "model": row.model, "variant": row.variant} for env, row in matrix.not_run()],
        "recommendation": rec.to_dict(),
        "unrecognised_failures": [group.to_dict() for group in unknown],
        "warnings": matrix.warnings,
        "release_line": _release_line(matrix, rec),
        "upcoming": [
            {
                "env": env.name,
                "transformers": env.transformers,
                "model": cell.model,
                "status": cell.status.value,
                "diagnosis": (cell.diagnosis or {}).get("id"),
            }
            for env, cell in upcoming_breaks(matrix)
        ],
    }


def _release_line(matrix: Matrix, rec: Recommendation) -> dict[str, Any]:
    """The stretches the picture draws, for a script: per row, the releases each verdict covers."""
    releases = axis(matrix, rec)
    return {
        "releases": releases,
        "rows": [
            {"model": row.model, "variant": row.variant, "stretches": [asdict(s) for s in row.stretches]}
            for row in line_rows(matrix, rec, releases)
        ],
    }


def _cell_json(cell: CellResult) -> dict[str, Any]:
    error = cell.error or {}
    return {
        "env": cell.env,
        "model": cell.model,
        "variant": cell.variant,
        "status": cell.status.value,
        "reason": cell.reason,
        "phase": cell.phase,
        "error": {"type": error.get("type", ""), "message": error.get("message", "")} if cell.error else None,
        "metrics": cell.metrics,
        "timings": cell.timings,
        "device": cell.device,
        "loaded": loaded(cell),
        "fingerprint": cell.fingerprint,
        "diagnosis": cell.diagnosis,
        "drift": cell.drift,
        "over_budget": cell.over_budget,
        "log": cell.log,
        "machine": cell.machine,
        "started_at": cell.started_at,
    }
