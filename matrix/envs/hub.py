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
are made from its answers in `hub_verdicts.py`. The token (the client's: HF_TOKEN, else
the saved login) is never printed, logged or stored; one given to `preflight` reaches the
client as HF_TOKEN in its environment.
"""

from __future__ import annotations

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
from matrix.envs.hub_verdicts import (
    CELL_STATUS,
    GATED,
    INVALID,
    NO_REVISION,
    OFFLINE_CACHED,
    OFFLINE_NOT_CACHED,
    OK,
    UNCHECKED,
    HubVerdict,
    cached_snapshot,
    offline_verdict,
    online_verdict,
    ref,
)
from probes.hub_client import PREFIX as CLIENT_PREFIX

__all__ = [
    "CELL_STATUS",
    "GATED",
    "INVALID",
    "NO_REVISION",
    "OFFLINE_CACHED",
    "OFFLINE_NOT_CACHED",
    "OK",
    "UNCHECKED",
    "Preflight",
    "HubVerdict",
    "cached_snapshot",
    "preflight",
]

DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_CACHE_DIR = "~/.cache/huggingface/hub"
TIMEOUT_S = 3.0
SEARCH_LIMIT = 100
# The client's run is cut off after CLIENT_START_S plus, per model, two requests and a search
# (list_models takes no timeout; huggingface_hub 2.x retries it on network errors, 429 and
# 5xx, for about 23 s).
CLIENT_START_S = 30.0
SEARCH_ALLOWANCE_S = 30.0


@dataclass(frozen=True)
class Preflight:
    """The hub's answers for one run (stored as `<run_dir>/_hub.json`)."""

    endpoint: str
    reachable: bool
    why_offline: str = ""
    token_given: bool = False
    seconds: float = 0.0
    verdicts: tuple[HubVerdict, ...] = field(default_factory=tuple)
    # Why the hub could not be asked at all (the client did not run): the probes try it themselves.
    not_asked: str = ""

    def blocked(self) -> dict[str, HubVerdict]:
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
        rows = [f"[hub] {v.model} ({ref(v.repo, v.revision)}): {v.kind}: {v.reason}" for v in self.verdicts]
        return [head, *rows]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preflight:
        fields = {key: value for key, value in data.items() if key != "verdicts"}
        verdicts = tuple(HubVerdict(**{**v, "suggestions": tuple(v.get("suggestions", ()))}) for v in data["verdicts"])
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
        verdicts = [offline_verdict(m, cache_dir) for m in hub_models]
    else:
        token_given = bool(settings.get("token_given"))
        verdicts = [
            online_verdict(m, answers.models.get(i), token_given, answers.trouble) for i, m in enumerate(hub_models)
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


def _search_queries(repo: str) -> list[str]:
    """What the hub's search is asked for ids like `repo`, in turn, until one finds some.

    The search matches substrings, so `Qwen2-7B-Base` finds nothing when only `Qwen2-7B`
    exists: the name is shortened one `-`/`_`/`.` part at a time.
    """
    queries = [repo.split("/")[-1]]
    while (shorter := re.sub(r"[-_.][^-_.]*$", "", queries[-1])) != queries[-1] and shorter:
        queries.append(shorter)
    return queries
