"""The terminal view: the table (or status counts past TERMINAL_MAX_ROWS rows), why cells
fail, what changed, the recommendation and what blocks the upgrade."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from tabulate import tabulate

from matrix.recommend import Recommendation
from matrix.report.answer import upcoming_lines
from matrix.report.rows import (
    BLOCKERS_HEADERS,
    blockers_rows,
    blockers_title,
    diagnosis_label,
    diagnosis_source,
    fix_lines,
    machines_line,
    table_rows,
)
from matrix.report.text import one_line
from matrix.results.aggregate import Matrix
from matrix.signature import UnknownGroup, normalise
from probes.record import CellResult
from probes.status import Status

TERMINAL_MAX_ROWS = 60


def terminal(
    matrix: Matrix, rec: Recommendation, unknown: Sequence[UnknownGroup] = (), since: Sequence[str] = ()
) -> str:
    """The table (or, past TERMINAL_MAX_ROWS models, status counts per env), why cells
    fail (cause and fix of each known break, each unrecognised kind once), the recommendation."""
    if len(matrix.rows) <= TERMINAL_MAX_ROWS:
        headers, rows = table_rows(matrix, markdown=False)
        table = tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)
    else:
        counted: dict[str, Counter[Status]] = {env.name: Counter() for env in matrix.envs}
        for cell in matrix.all_cells():
            counted[cell.env][cell.status] += 1
        shown = [status for status in Status if any(counted[env][status] for env in counted)]
        rows = [[env.header, *(str(counted[env.name][status]) for status in shown)] for env in matrix.envs]
        table = tabulate(rows, headers=["env", *(s.value for s in shown)], tablefmt="simple")
        table += f"\n\n{len(matrix.rows)} rows: the full table is in COMPATIBILITY.md."
    changes = ["", *since] if since else []
    machines = ["", machines_line(matrix)] if machines_line(matrix) else []
    upcoming = upcoming_lines(matrix)
    lines = [table, *machines, *why_cells_fail(matrix, unknown), *changes, "", "Recommendation:", *rec.lines]
    lines += ["", "The upcoming release:", *(f"- {line}" for line in upcoming)] if upcoming else []
    if rec.blockers:
        rows = blockers_rows(rec, markdown=False)
        lines += ["", f"{blockers_title(rec)}:", tabulate(rows, headers=BLOCKERS_HEADERS, tablefmt="simple")]
    return "\n".join(lines)


def why_cells_fail(matrix: Matrix, unknown: Sequence[UnknownGroup]) -> list[str]:
    """One paragraph per diagnosis (cells, where it came from, cause, evidence, fixes per
    env where the evidence differs), then each unrecognised kind and each cell that did not
    fail by an exception (timeout, crash, env not built, ...)."""
    failing = matrix.failing()
    if not failing:
        return []
    lines = ["", "Why cells fail:"]
    known: dict[tuple[str, str | None], list[CellResult]] = {}
    for cell in failing:
        if cell.diagnosis:
            known.setdefault((cell.diagnosis["id"], cell.diagnosis.get("introduced_in")), []).append(cell)
    for cells in known.values():
        diagnosis = cells[0].diagnosis or {}
        where = ", ".join(f"{cell.stem} on {cell.env}" for cell in cells[:8]) + (" ..." if len(cells) > 8 else "")
        lines += [
            f"- {diagnosis_label(diagnosis)}: {where} [{diagnosis_source(diagnosis)}]",
            f"    cause: {diagnosis['cause']}",
            *(f"    evidence: {line}" for line in diagnosis.get("evidence", [])[:3]),
            *(f"    {line}" for line in fix_lines(cells)),
        ]
    for group in unknown:
        where = ", ".join(f"{stem} on {env}" for env, stem in group.cells[:8])
        lines.append(f"- unrecognised {group.exception} in {group.phase}: {one_line(group.signature, 100)} ({where})")
    others = [cell for cell in failing if not cell.diagnosis and not (cell.error and cell.status is Status.FAIL)]
    lines += grouped_by_reason([cell for cell in others if not cell.status.says_nothing])
    silent = grouped_by_reason([cell for cell in others if cell.status.says_nothing])
    return lines + (["", "No verdict (these say nothing about compatibility):", *silent] if silent else [])


_WHAT_TO_DO = {
    Status.UNAVAILABLE: "reach the hub or fill the HF cache, then run again",
    Status.ENV_FAILED: "fix the env's requirements",
    Status.TIMEOUT: "raise the model's `timeout`, or find what hangs in its log",
}


def grouped_by_reason(cells: Sequence[CellResult]) -> list[str]:
    """One line per (status, reason with what varies removed): the cells it covers and what to do,
    so twenty cells that are offline for one cause read as one line (the Markdown keeps each cell)."""
    groups: dict[tuple[Status, str], list[CellResult]] = {}
    for cell in cells:
        groups.setdefault((cell.status, normalise(cell.reason)), []).append(cell)
    lines = []
    for (status, _), members in groups.items():
        stems = list(dict.fromkeys(cell.stem for cell in members))
        envs = list(dict.fromkeys(cell.env for cell in members))
        shown = ", ".join(stems[:6]) + (f" and {len(stems) - 6} more" if len(stems) > 6 else "")
        todo = f"; {_WHAT_TO_DO[status]}" if status in _WHAT_TO_DO else ""
        reason = one_line(members[0].reason, 150) if len(members) == 1 else one_line(normalise(members[0].reason), 150)
        lines.append(f"- {status.value}: {reason} ({shown} on {', '.join(envs)}){todo}")
    return lines
