"""Hub preflight: ask the Hugging Face Hub about every hub model once per run, before any env.

Without it, each env finds out for itself, cell by cell: an unreachable hub costs about
23 s of retries per file in every env, and a missing, gated or mistyped model fails the
same way in each. So the host asks first, with a short timeout:

- hub unreachable (or `HF_HUB_OFFLINE=1` already set): the probes run with
  `HF_HUB_OFFLINE=1`; a hub model in the local HF cache loads from it, one not in it is
  `unavailable (offline, not cached)` at once;
- hub reachable: per model id, `invalid-model` when the repo does not exist (with up to
  three similar ids from the hub's search), `unavailable (gated: set HF_TOKEN)` when its
  files need a token with access, `invalid-model` naming the revision when a pinned one
  does not exist.

The answers are read the way the hub clients read them (`hf_raise_for_status`): the
`X-Error-Code` header (RepoNotFound, GatedRepo, RevisionNotFound), then the status code.
Standard library only: the host's venv has no huggingface_hub. The token (HF_TOKEN) is sent
in a header and never printed, logged or stored.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from matrix.config import ModelSpec
from probes.status import Status

DEFAULT_ENDPOINT = "https://huggingface.co"
TIMEOUT_S = 3.0
MAX_SUGGESTIONS = 3
SEARCH_LIMIT = 100
COMMIT_ID = re.compile(r"^[0-9a-f]{40}$")

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

    def blocked(self) -> dict[str, Verdict]:
        """Models whose cells are decided here, by name."""
        return {v.model: v for v in self.verdicts if v.status is not None}

    def covers(self, models: Iterable[ModelSpec]) -> bool:
        """True when this preflight asked about exactly these hub models (same ids and revisions)."""
        asked = {(v.model, v.repo, v.revision) for v in self.verdicts}
        return asked == {(m.name, m.source, m.revision) for m in models if m.source_kind == "hub"}

    def lines(self) -> list[str]:
        """What the terminal shows: the hub's state, then one line per model."""
        if self.reachable:
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


@dataclass(frozen=True)
class _Answer:
    """One HTTP answer: status, the hub's error code and message, the body (JSON when it is)."""

    status: int
    error_code: str = ""
    error_message: str = ""
    body: Any = None


class _Unreachable(Exception):
    """No HTTP answer at all (refused, timed out, DNS, TLS)."""


def preflight(
    models: Iterable[ModelSpec],
    endpoint: str | None = None,
    token: str | None = None,
    timeout: float = TIMEOUT_S,
) -> Preflight:
    """Ask the hub about every hub model of `models` (others are ignored).

    `endpoint` defaults to HF_ENDPOINT, else https://huggingface.co; `token` to the one the
    probes' hub client will use (`client_token`).
    """
    hub_models = [m for m in models if m.source_kind == "hub"]
    endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    token = token if token is not None else client_token()
    client = _Client(endpoint, token, timeout)
    start = time.perf_counter()
    why_offline = ""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        why_offline = "HF_HUB_OFFLINE is set"
    else:
        try:
            client.get("/api/models", {"limit": "1"})
        except _Unreachable as why:
            why_offline = str(why)
    if why_offline:
        verdicts = [_offline_verdict(m, hub_cache_dir()) for m in hub_models]
    else:
        verdicts = [_online_verdict(m, client) for m in hub_models]
    return Preflight(
        endpoint=endpoint,
        reachable=not why_offline,
        why_offline=why_offline,
        token_given=token is not None,
        seconds=round(time.perf_counter() - start, 3),
        verdicts=tuple(verdicts),
    )


def client_token() -> str | None:
    """The token huggingface_hub uses: HF_TOKEN, else the file `hf auth login` saved
    (HF_TOKEN_PATH, else HF_HOME/token, else ~/.cache/huggingface/token), so that a logged-in
    user's gated models are not reported as gated."""
    if os.environ.get("HF_TOKEN"):
        return os.environ["HF_TOKEN"].strip() or None
    path = Path(os.environ.get("HF_TOKEN_PATH") or hf_home() / "token").expanduser()
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def hf_home() -> Path:
    """HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface."""
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "huggingface"


def hub_cache_dir() -> Path:
    """Where the hub clients keep downloads: HF_HUB_CACHE, else HF_HOME/hub, else
    $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    return hf_home() / "hub"


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


def _online_verdict(model: ModelSpec, client: _Client) -> Verdict:
    repo, revision = model.source, model.revision
    path = f"/api/models/{repo}" + (f"/revision/{quote(revision, safe='')}" if revision else "")
    try:
        info = client.get(path)
        if info.status == 200 and isinstance(info.body, dict):
            gated = bool(info.body.get("gated"))
            if gated and not _can_read(client, repo, str(info.body.get("sha") or revision or "main")):
                return _gated(model, client.token is not None)
            return _verdict(model, OK, "gated, and HF_TOKEN has access" if gated else "found")
    except _Unreachable as why:
        return _verdict(model, UNCHECKED, f"no answer from the hub ({why}); the probe will try")
    if info.error_code == "RevisionNotFound":
        return _verdict(model, NO_REVISION, f"no such revision ({revision!r} does not exist in {repo})")
    if info.error_code == "GatedRepo":
        return _gated(model, client.token is not None)
    if info.error_code == "RepoNotFound" or info.status in (401, 404):
        suggestions = _similar_ids(client, repo)
        reason = f"no such model id ({repo}"
        reason += "; private repos need HF_TOKEN)" if client.token is None else ")"
        if suggestions:
            reason += f"; similar ids: {', '.join(suggestions)}"
        return _verdict(model, INVALID, reason, suggestions)
    detail = f": {info.error_message}" if info.error_message else ""
    return _verdict(model, UNCHECKED, f"the hub answered HTTP {info.status}{detail}; the probe will try")


def _can_read(client: _Client, repo: str, commit: str) -> bool:
    """Whether this token may download the repo's files (asked for config.json, as loading does)."""
    answer = client.head(f"/{repo}/resolve/{quote(commit, safe='')}/config.json")
    return not (answer.error_code == "GatedRepo" or answer.status in (401, 403))


def _gated(model: ModelSpec, token_given: bool) -> Verdict:
    if token_given:
        why = f"HF_TOKEN has no access to {model.source}; ask for access on its hub page"
    else:
        why = f"{model.source} needs a token with access"
    return _verdict(model, GATED, f"gated: set HF_TOKEN ({why})")


def _similar_ids(client: _Client, repo: str) -> tuple[str, ...]:
    """Up to three existing ids most like `repo`, from the hub's search.

    The search matches substrings, so `Qwen2-7B-Base` finds nothing when only `Qwen2-7B`
    exists: the name is shortened one `-`/`_`/`.` part at a time until something is found.
    """
    name = repo.split("/")[-1]
    queries = [name]
    while (shorter := re.sub(r"[-_.][^-_.]*$", "", queries[-1])) != queries[-1] and shorter:
        queries.append(shorter)
    for query in queries:
        try:
            found = client.get("/api/models", {"search": query, "limit": str(SEARCH_LIMIT)})
        except _Unreachable:
            return ()
        ids = [str(item.get("id")) for item in found.body or [] if isinstance(item, dict) and item.get("id")]
        ids = [i for i in dict.fromkeys(ids) if i != repo]
        if ids:
            ranked = sorted(ids, key=lambda i: (-difflib.SequenceMatcher(None, repo.lower(), i.lower()).ratio(), i))
            return tuple(ranked[:MAX_SUGGESTIONS])
    return ()


def _verdict(model: ModelSpec, kind: str, reason: str, suggestions: tuple[str, ...] = ()) -> Verdict:
    return Verdict(model.name, model.source, model.revision, kind, reason, suggestions)


def _ref(repo: str, revision: str | None) -> str:
    return f"{repo}@{revision}" if revision else repo


class _Client:
    """GET and HEAD against the endpoint with a short timeout; HTTP errors are answers, not exceptions."""

    def __init__(self, endpoint: str, token: str | None, timeout: float) -> None:
        if urlsplit(endpoint).scheme not in ("http", "https"):
            raise ValueError(f"HF_ENDPOINT: {endpoint!r} is not an http(s) URL")
        self.endpoint, self.token, self.timeout = endpoint, token, timeout

    def get(self, path: str, params: dict[str, str] | None = None) -> _Answer:
        return self._request("GET", path + (f"?{urlencode(params)}" if params else ""))

    def head(self, path: str) -> _Answer:
        return self._request("HEAD", path)

    def _request(self, method: str, path: str) -> _Answer:
        headers = {"User-Agent": "transformers-matrix-preflight", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.endpoint + path, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - http(s) only
                return _Answer(response.status, body=_json(response.read()))
        except urllib.error.HTTPError as error:
            with error:
                return _Answer(
                    error.code,
                    error.headers.get("X-Error-Code", ""),
                    error.headers.get("X-Error-Message", ""),
                    _json(error.read()),
                )
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise _Unreachable(f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__) from None


def _json(data: bytes) -> Any:
    try:
        return json.loads(data) if data else None
    except ValueError:
        return None
