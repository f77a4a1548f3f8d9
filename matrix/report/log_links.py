"""Where a published report's readers find each cell's log.

A run folder's logs stay on the machine that ran it (results/runs is not published), so a
link into it is dead anywhere else. Scheduled CI uploads the logs of the run it publishes
as one artifact (`cell-logs`, its files named as the cells' `log` fields: `<env>/<cell>.log`)
and names the workflow run that holds it in MATRIX_LOGS_URL
(`<server>/<owner>/<repo>/actions/runs/<id>`); the page and COMPATIBILITY.md then point
there. Without it (a local run) they name the log's place in the run folder.
"""

from __future__ import annotations

import os

LOGS_URL = "MATRIX_LOGS_URL"
LOGS_ARTIFACT = "cell-logs"


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
