"""What the page's details panel shows for one cell: every fact the probe recorded, as (label, text).

The page embeds these pairs as JSON and its script sets them with `textContent` only, so
a message holding markup is shown, never run.
"""

from __future__ import annotations

from typing import Any

from matrix.report.log_links import logs_url
from matrix.report.rows import diagnosis_label, diagnosis_source, loaded
from probes.record import CellResult


def _machine_text(machine: dict[str, Any]) -> str:
    """Where the cell ran: merged runs mix machines, and timings only compare on one."""
    if not machine:
        return ""
    about = [str(machine.get("platform", "")), f"{machine.get('cpu_count', '?')} CPUs"]
    about += [f"{machine['memory_gb']} GB" if machine.get("memory_gb") else "", f"Python {machine.get('python', '?')}"]
    return f"{machine.get('hostname', '?')} ({', '.join(part for part in about if part)})"


def cell_details(cell: CellResult) -> list[tuple[str, str]]:
    """What the details panel shows for one cell, as (label, text) pairs."""
    error = cell.error or {}
    rows: list[tuple[str, Any]] = [
        ("cell", f"{cell.stem} on {cell.env}"),
        ("status", cell.status.value),
        ("reason", cell.reason),
        ("phase", cell.phase or ""),
        ("exception", error.get("type", "")),
        ("message", error.get("message", "")[:4000]),
    ]
    if cell.diagnosis:
        rows += [
            ("known break", diagnosis_label(cell.diagnosis)),
            ("diagnosis from", diagnosis_source(cell.diagnosis)),
            ("cause", cell.diagnosis["cause"]),
            *(("evidence", line) for line in cell.diagnosis.get("evidence", [])[:5]),
            ("fix", "; ".join(cell.diagnosis["fixes"])),
        ]
    rows += [
        ("timings", ", ".join(f"{k} {v:.3f} s" for k, v in sorted(cell.timings.items()))),
        ("metrics", ", ".join(f"{k} {v}" for k, v in sorted(cell.metrics.items()))),
        ("loaded", _loaded_text(cell)),
        ("over budget", ", ".join(_missed_budget(b) for b in cell.over_budget)),
        ("drift", (cell.drift or {}).get("detail", "")),
        ("versions", ", ".join(f"{k} {v}" for k, v in sorted(cell.versions.items()))),
        ("machine", _machine_text(cell.machine)),
        ("started", cell.started_at),
        ("log", cell.log),
        ("logs", (logs_url() or "") if cell.log else ""),  # a link on the page (static/page.js)
        ("log tail", str(cell.facts.get("log_tail", ""))[-3000:]),
        ("traceback", error.get("traceback", "")[-3000:]),
    ]
    return [(label, str(value)) for label, value in rows if value]


def _missed_budget(missed: dict[str, Any]) -> str:
    """ "max_latency_s 2.4 > 2", "rag.recall 0.5 < 0.9": the value against the bound it misses."""
    bound = missed.get("bound") or (">=" if str(missed["budget"]).startswith("min_") else "<=")
    return f"{missed['budget']} {missed['value']} {'<' if bound == '>=' else '>'} {missed['limit']}"


def _loaded_text(cell: CellResult) -> str:
    """ "float32 on cpu; from_pretrained(torch_dtype=torch.float32)": what the model got, and how."""
    facts = loaded(cell)
    if not facts:
        return ""
    text = f"{facts.get('dtype', '?')} on {facts.get('model_device', '?')}"
    kwargs = facts.get("load_kwargs")
    return text + (f"; from_pretrained({', '.join(f'{k}={v}' for k, v in kwargs.items())})" if kwargs else "")
