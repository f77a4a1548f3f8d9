"""Hub preflight: ask the Hugging Face Hub about every hub model once per run, before any env.

Without it, each env finds out for itself, cell by cell: an unreachable hub costs about
23 s of retries per file in every env, and a missing, gated or mistyped model fails the
same way in each. So the preflight asks first, with a short timeout:

- hub unreachable (or the client set offline, by `HF_HUB_OFFLINE=1` or `TRANSFORMERS_OFFLINE=1`):
  the probes run with `HF_HUB_OFFLINE=1`; a hub model in the client's HF cache loads from it,
  one not in it is `unavailable (offline, not cached)` at once;
- hub reachable: per model id, `invalid-model` when the repo does not exist (with up to
  three similar ids from the hub's search), `unavailable (gated: set HF_TOKEN)` when its
  files need a token with access, `invalid-model` naming the revision when a pinned one
  does not exist.

The questions go through the hub's own client, huggingface_hub, which every probed env has
and the host does not: `probes/hub_client.py` runs in the env's interpreter (one subprocess
per run, 0.x and 1.x+ alike; starting it and importing the client costs about 0.2 s) and
reports the hub's answers as the client's typed errors read them. Its token, endpoint,
offline setting, cache folder and proxies are the ones the probes will meet. The verdicts
are made here. The token (the client's: HF_TOKEN, else the saved login) is never printed,
logged or stored; one given to `preflight` reaches the client as HF_TOKEN in its environment.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import probes
from matrix import proc
from matrix.config import ModelSpec
from probes.hub_client import PREFIX as CLIENT_PREFIX
from probes.status import Status

DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_CACHE_DIR = "~/.cache/huggingface/hub"
TIMEOUT_S = 3.0
MAX_SUGGESTIONS = 3
SEARCH_LIMIT = 100
COMMIT_ID = re.compile(r"^[0-9a-f]{40}$")
# The client's run is cut off after CLIENT_START_S plus, per model, two requests and a search
# (list_models takes no timeout; huggingface_hub 2.x retries it on network errors, 429 and
# 5xx, for about 23 s).
CLIENT_START_S = 30.0
SEARCH_ALLOWANCE_S = 30.0

# Verdict kinds, and the status of the cells of a model with that verdict (None: probe it).
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
class Verdict:
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


@dataclass(frozen=True)
class Preflight:
    """The hub's answers for one run (stored as `<run_dir>/_hub.json`)."""

    endpoint: str
    reachable: bool
    why_offline: str = ""
    token_given: bool = False
    seconds: float = 0.0
    verdicts: tuple[Verdict, ...] = field(default_factory=tuple)
    # Why the hub could not be asked at all (the client did not run): the probes try it themselves.
    not_asked: str = ""

    def blocked(self) -> dict[str, Verdict]:
        """Models whose cells are decided here, by name."""
        return {v.model: v for v in self.verdicts if v.status is not None}

    def covers(self, models: Iterable[ModelSpec]) -> bool:
        """True when this preflight asked about exactly these hub models (same ids and revisions)."""
        asked = {(v.model, v.repo, v.revision) for v in self.verdicts}
        return asked == {(m.name, m.source, m.revision) for m in models if m.source_kind == "hub"}

    def lines(self) -> list[str]:
        """What the terminal shows: the hub's state, then one line per model."""
        if self.not_asked:
            head = f"[hub] {self.endpoint} not asked ({self.not_asked}): each probe tries the hub itself"
        elif self.reachable:
            head = f"[hub] {self.endpoint} reachable ({self.seconds:.1f} s)"
        else:
            head = f"[hub] {self.endpoint} not reachable ({self.why_offline}): probes run with HF_HUB_OFFLINE=1"
        rows = [f"[hub] {v.model} ({_ref(v.repo, v.revision)}): {v.kind}: {v.reason}" for v in self.verdicts]
        return [head, *rows]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preflight:
        fields = {key: value for key, value in data.items() if key != "verdicts"}
        verdicts = tuple(Verdict(**{**v, "suggestions": tuple(v.get("suggestions", ()))}) for v in data["verdicts"])
        return cls(**fields, verdicts=verdicts)


@dataclass
class _Answers:
    """What the hub client in the env reported (see probes/hub_client.py)."""

    settings: dict[str, Any] | None = None
    unreachable: str = ""
    models: dict[int, dict[str, Any]] = field(default_factory=dict)
    trouble: str = ""  # why the client stopped short, when it did


def preflight(
    models: Iterable[ModelSpec],
    python: Path | str,
    endpoint: str | None = None,
    token: str | None = None,
    timeout: float = TIMEOUT_S,
) -> Preflight:
    """Ask the hub about every hub model of `models` (others are ignored), through the
    huggingface_hub of the env whose interpreter is `python`.

    `endpoint` defaults to HF_ENDPOINT, else https://huggingface.co; `token` to the one that
    client uses (HF_TOKEN, else the saved login).
    """
    hub_models = [m for m in models if m.source_kind == "hub"]
    endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    if urlsplit(endpoint).scheme not in ("http", "https"):
        raise ValueError(f"HF_ENDPOINT: {endpoint!r} is not an http(s) URL")
    start = time.perf_counter()
    answers = _ask(python, hub_models, endpoint, token, timeout)
    settings = answers.settings or {}
    why_offline = f"{settings['offline']} is set" if settings.get("offline") else answers.unreachable
    if why_offline:
        cache_dir = Path(settings.get("cache_dir") or DEFAULT_CACHE_DIR).expanduser()  # the client's
        verdicts = [_offline_verdict(m, cache_dir) for m in hub_models]
    else:
        token_given = bool(settings.get("token_given"))
        verdicts = [
            _online_verdict(m, answers.models.get(i), token_given, answers.trouble) for i, m in enumerate(hub_models)
        ]
    return Preflight(
        endpoint=endpoint,
        reachable=not why_offline,
        why_offline=why_offline,
        token_given=bool(settings.get("token_given")),
        seconds=round(time.perf_counter() - start, 3),
        verdicts=tuple(verdicts),
        not_asked=answers.trouble if answers.settings is None else "",
    )


def _ask(python: Path | str, models: list[ModelSpec], endpoint: str, token: str | None, timeout: float) -> _Answers:
    """Run probes/hub_client.py in the env's interpreter and read what it reports.

    The token travels as HF_TOKEN in the child's environment (never in its arguments, which
    are logged); HF_ENDPOINT names the endpoint, so that every call of the client uses it.
    """
    answers = _Answers()
    if not models:
        return answers
    request = {
        "timeout": timeout,
        "search_limit": SEARCH_LIMIT,
        "models": [{"repo": m.source, "revision": m.revision, "queries": _search_queries(m.source)} for m in models],
    }
    # No telemetry: huggingface_hub 2.x would otherwise fetch `/api/agent-harnesses` (up to 3 s)
    # before the first question, to name an AI agent in its user agent.
    extra = {"PYTHONPATH": probes.import_root(), "HF_ENDPOINT": endpoint, "HF_HUB_DISABLE_TELEMETRY": "1"}
    if token is not None:
        extra["HF_TOKEN"] = token
    limit = CLIENT_START_S + len(models) * (2 * timeout + SEARCH_ALLOWANCE_S)
    done = proc.run([python, "-m", "probes.hub_client", json.dumps(request)], env=extra, timeout=limit)
    other = []
    for line in done.output.splitlines():
        if not line.startswith(CLIENT_PREFIX):
            other.append(line)
            continue
        try:
            fact = json.loads(line[len(CLIENT_PREFIX) :])
        except ValueError:
            continue
        if "settings" in fact:
            answers.settings = fact["settings"]
        elif "unreachable" in fact:
            answers.unreachable = str(fact["unreachable"])
        elif "model" in fact:
            answers.models[int(fact["model"])] = fact["answer"]
        elif "failed" in fact:
            answers.trouble = str(fact["failed"])
    if done.returncode == 124:
        answers.trouble = f"no answer within {limit:.0f} s"
    elif not done.ok and not answers.trouble:
        last = next((line.strip() for line in reversed(other) if line.strip()), "")
        answers.trouble = f"exit code {done.returncode}" + (f": {last[-300:]}" if last else "")
    for secret in (token, os.environ.get("HF_TOKEN")):
        if secret and secret.strip():
            answers.trouble = answers.trouble.replace(secret.strip(), "<token>")
    return answers


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


def _offline_verdict(model: ModelSpec, cache_dir: Path) -> Verdict:
    snapshot = cached_snapshot(model.source, model.revision, cache_dir)
    if snapshot is not None:
        return _verdict(model, OFFLINE_CACHED, f"offline; cached in {snapshot}")
    reason = f"offline, not cached ({_ref(model.source, model.revision)} is not in the HF cache {cache_dir})"
    return _verdict(model, OFFLINE_NOT_CACHED, reason)


def _online_verdict(model: ModelSpec, answer: dict[str, Any] | None, token_given: bool, trouble: str) -> Verdict:
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


def _gated(model: ModelSpec, token_given: bool) -> Verdict:
    if token_given:
        why = f"HF_TOKEN has no access to {model.source}; ask for access on its hub page"
    else:
        why = f"{model.source} needs a token with access"
    return _verdict(model, GATED, f"gated: set HF_TOKEN ({why})")


def _search_queries(repo: str) -> list[str]:
    """What the hub's search is asked for ids like `repo`, in turn, until one finds some.

    The search matches substrings, so `Qwen2-7B-Base` finds nothing when only `Qwen2-7B`
    exists: the name is shortened one `-`/`_`/`.` part at a time.
    """
    queries = [repo.split("/")[-1]]
    while (shorter := re.sub(r"[-_.][^-_.]*$", "", queries[-1])) != queries[-1] and shorter:
        queries.append(shorter)
    return queries


def _ranked(repo: str, found: Iterable[str]) -> tuple[str, ...]:
    """Up to three of the ids the search found, most like `repo` first."""
    ids = [str(i) for i in dict.fromkeys(found) if i and i != repo]
    ranked = sorted(ids, key=lambda i: (-difflib.SequenceMatcher(None, repo.lower(), i.lower()).ratio(), i))
    return tuple(ranked[:MAX_SUGGESTIONS])


def _verdict(model: ModelSpec, kind: str, reason: str, suggestions: tuple[str, ...] = ()) -> Verdict:
    return Verdict(model.name, model.source, model.revision, kind, reason, suggestions)


def _ref(repo: str, revision: str | None) -> str:
    return f"{repo}@{revision}" if revision else repo
