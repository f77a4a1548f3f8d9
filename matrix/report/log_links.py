"""Where a published report's readers find each cell's log.

A run folder's logs stay on the machine that ran it (results/runs is not published), so a
link into it is dead anywhere else. Scheduled CI names the workflow run in MATRIX_LOGS_URL
(`<server>/<owner>/<repo>/actions/runs/<id>`); the report then writes the run's logs, passed
through the publication like every published file (no local path, host or secret), to
`<results>/logs/<env>/<cell>.log`, the workflow uploads that folder as the artifact
`cell-logs` (its files named as the cells' `log` fields), and the page and COMPATIBILITY.md
point there. Without it (a local run) they name the log's place in the run folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from probes.public import Publication, publish_text

LOGS_URL = "MATRIX_LOGS_URL"
LOGS_ARTIFACT = "cell-logs"
LOGS_FOLDER = "logs"  # below the results folder; uploaded, never committed


def logs_url() -> str | None:
    """The workflow run that holds the logs artifact, when one is named (https only: it
    becomes a link on the page)."""
    url = os.environ.get(LOGS_URL, "").strip()
    return url if url.startswith("https://") and not any(c.isspace() or c in "\"'<>" for c in url) else None


def log_place(run_id: str, log: str) -> str:
    """Where the log `<env>/<cell>.log` of run `run_id` can be read, as Markdown."""
    url = logs_url()
    if url:
        return f"`{log}` in the artifact `{LOGS_ARTIFACT}` of {url}"
    return f"`runs/{run_id}/{log}`"


def publish_logs(run_dir: Path, folder: Path, public: Publication) -> list[Path]:
    """The run's cell logs, as published, in `folder` (emptied first: one run's logs)."""
    for old in sorted(folder.glob("*/*.log")):
        old.unlink()
    written = []
    for log in sorted(run_dir.glob("*/*.log")):
        target = folder / log.parent.name / log.name
        publish_text(target, log.read_bytes().decode("utf-8", "replace"), public)
        written.append(target)
    return written
