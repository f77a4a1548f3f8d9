"""The hub preflight's verdicts: what the hub's answers (or, offline, the client's cache) say
about one hub model, and the status its cells get without being probed.

Pure functions over what `probes/hub_client.py` reported (see `matrix/envs/hub.py`, which
asks); kept apart so the asking and the judging can each be read on one screen.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matrix.config import ModelSpec
from probes.status import Status

MAX_SUGGESTIONS = 3
COMMIT_ID = re.compile(r"^[0-9a-f]{40}$")

# HubVerdict kinds, and the status of the cells of a model with that verdict (None: probe it).
OK = "ok"
INVALID = "invalid-model"
GATED = "gated"
NO_REVISION = "revision-not-found"
OFFLINE_CACHED = "offline-cached"
OFFLINE_NOT_CACHED = "offline-not-cached"
UNCHECKED = "unchecked"
CELL_STATUS = {
    OK: None,
    INVALID: Status.INVALID_MODEL,
    GATED: Status.UNAVAILABLE,
    NO_REVISION: Status.INVALID_MODEL,
    OFFLINE_CACHED: None,
    OFFLINE_NOT_CACHED: Status.UNAVAILABLE,
    UNCHECKED: None,
}


@dataclass(frozen=True)
class HubVerdict:
    """What the preflight found out about one hub model."""

    model: str
    repo: str
    revision: str | None
    kind: str
    reason: str
    suggestions: tuple[str, ...] = ()

    @property
    def status(self) -> Status | None:
        """The status its cells get without being probed; None when the probe should run."""
        return CELL_STATUS[self.kind]


def cached_snapshot(repo: str, revision: str | None, cache_dir: Path) -> Path | None:
    """The cached snapshot folder of `repo` at `revision` (default main), None when it is not there.

    Cache layout: `models--<org>--<name>/refs/<branch or tag>` holds a commit id, and
    `snapshots/<commit>/` the files. A revision that is a commit id needs no ref.
    """
    folder = cache_dir / f"models--{repo.replace('/', '--')}"
    wanted = revision or "main"
    if COMMIT_ID.match(wanted):
        commit = wanted
    else:
        try:
            commit = (folder / "refs" / wanted).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return None
    snapshot = folder / "snapshots" / commit
    return snapshot if commit and snapshot.is_dir() else None


def offline_verdict(model: ModelSpec, cache_dir: Path) -> HubVerdict:
    snapshot = cached_snapshot(model.source, model.revision, cache_dir)
    if snapshot is not None:
        return _verdict(model, OFFLINE_CACHED, f"offline; cached in {snapshot}")
    reason = f"offline, not cached ({ref(model.source, model.revision)} is not in the HF cache {cache_dir})"
    return _verdict(model, OFFLINE_NOT_CACHED, reason)


def online_verdict(model: ModelSpec, answer: dict[str, Any] | None, token_given: bool, trouble: str) -> HubVerdict:
    repo, revision = model.source, model.revision
    if answer is None:
        why = trouble or "it stopped before this model"
        return _verdict(model, UNCHECKED, f"no answer from the hub client ({why}); the probe will try")
    if "no_answer" in answer:
        return _verdict(model, UNCHECKED, f"no answer from the hub ({answer['no_answer']}); the probe will try")
    if "failed" in answer:
        return _verdict(model, UNCHECKED, f"the hub client failed ({answer['failed']}); the probe will try")
    status, error = answer.get("status"), answer.get("error", "")
    if status == 200:
        gated = bool(answer.get("gated"))
        files = answer.get("files") or {}
        if gated and "no_answer" in files:
            return _verdict(model, UNCHECKED, f"no answer from the hub ({files['no_answer']}); the probe will try")
        if gated and (files.get("error") == "GatedRepo" or files.get("status") in (401, 403)):
            return _gated(model, token_given)
        return _verdict(model, OK, "gated, and HF_TOKEN has access" if gated else "found")
    if error == "RevisionNotFound":
        return _verdict(model, NO_REVISION, f"no such revision ({revision!r} does not exist in {repo})")
    if error == "GatedRepo":
        return _gated(model, token_given)
    if error == "InvalidId":
        return _verdict(model, INVALID, f"not a valid hub id ({answer.get('message', '')})")
    if error == "RepoNotFound" or status in (401, 404):
        suggestions = _ranked(repo, answer.get("similar") or [])
        reason = f"no such model id ({repo}"
        reason += "; private repos need HF_TOKEN)" if not token_given else ")"
        if suggestions:
            reason += f"; similar ids: {', '.join(suggestions)}"
        return _verdict(model, INVALID, reason, suggestions)
    detail = f": {answer['message']}" if answer.get("message") else ""
    return _verdict(model, UNCHECKED, f"the hub answered HTTP {status}{detail}; the probe will try")


def _gated(model: ModelSpec, token_given: bool) -> HubVerdict:
    if token_given:
        why = f"HF_TOKEN has no access to {model.source}; ask for access on its hub page"
    else:
        why = f"{model.source} needs a token with access"
    return _verdict(model, GATED, f"gated: set HF_TOKEN ({why})")


def _ranked(repo: str, found: Iterable[str]) -> tuple[str, ...]:
    """Up to three of the ids the search found, most like `repo` first."""
    ids = [str(i) for i in dict.fromkeys(found) if i and i != repo]
    ranked = sorted(ids, key=lambda i: (-difflib.SequenceMatcher(None, repo.lower(), i.lower()).ratio(), i))
    return tuple(ranked[:MAX_SUGGESTIONS])


def _verdict(model: ModelSpec, kind: str, reason: str, suggestions: tuple[str, ...] = ()) -> HubVerdict:
    return HubVerdict(model.name, model.source, model.revision, kind, reason, suggestions)


def ref(repo: str, revision: str | None) -> str:
    return f"{repo}@{revision}" if revision else repo
