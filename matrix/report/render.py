"""Write the published files: matrix.json, COMPATIBILITY.md and the pin files.

Each view has its module (rows shared by all of them in `rows.py`, then `markdown.py`,
`terminal.py`, `json_report.py`, `pins.py`, `page.py`, `charts.py`); this one writes them
under results/. The names below are the report's face: callers import them from here.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matrix.recommend import Recommendation
from matrix.report.json_report import SCHEMA, matrix_json
from matrix.report.line_svg import release_line_picture
from matrix.report.markdown import LINE_SVG, markdown
from matrix.report.pins import pins
from matrix.report.rows import cell_text, diagnosis_label, table_rows
from matrix.report.terminal import TERMINAL_MAX_ROWS, terminal, why_cells_fail
from matrix.report.text import md_escape, one_line
from matrix.results.aggregate import Matrix
from matrix.signature import UnknownGroup
from probes.record import write_json_atomic, write_text_atomic

__all__ = [
    "SCHEMA",
    "TERMINAL_MAX_ROWS",
    "cell_text",
    "diagnosis_label",
    "markdown",
    "matrix_json",
    "md_escape",
    "now_utc",
    "one_line",
    "pins",
    "release_line_picture",
    "table_rows",
    "terminal",
    "why_cells_fail",
    "write_outputs",
]


def now_utc() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def write_outputs(
    results: Path,
    matrix: Matrix,
    rec: Recommendation,
    generated_at: str,
    unknown: Sequence[UnknownGroup] = (),
    since: Sequence[str] = (),
    specs: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Path]:
    """Write every published file under `results/` (stale pin files removed)."""
    results.mkdir(parents=True, exist_ok=True)
    written = [results / "matrix.json", results / "COMPATIBILITY.md"]
    write_json_atomic(written[0], matrix_json(matrix, rec, generated_at, unknown))
    write_text_atomic(written[1], markdown(matrix, rec, generated_at, unknown, since, specs))
    picture = release_line_picture(matrix, rec)
    (results / LINE_SVG).unlink(missing_ok=True)
    if picture:
        write_text_atomic(results / LINE_SVG, picture)
        written.append(results / LINE_SVG)
    pin_dir = results / "pins"
    pin_dir.mkdir(exist_ok=True)
    for old in pin_dir.glob("*.txt"):
        old.unlink()
    for name, text in pins(matrix, rec).items():
        write_text_atomic(pin_dir / f"{name}.txt", text)
        written.append(pin_dir / f"{name}.txt")
    return written
