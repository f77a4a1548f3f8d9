"""The hub preflight's questions, asked through huggingface_hub in a probed env's interpreter.

`matrix.envs.hub` runs `python -m probes.hub_client REQUEST` with an env's Python (the host's has
no huggingface_hub) and makes the verdicts from what this prints: this module only asks the
hub and reports its answers, the way the probes' own client will meet them: `HfApi.model_info`,
`get_hf_file_metadata` (a HEAD of `config.json`, for gated repos), `list_models(search=...)`,
the client's token (`get_token()`: HF_TOKEN, else the saved login), endpoint (HF_ENDPOINT),
offline setting (HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE), cache folder, proxies and
certificates, and its typed errors (`huggingface_hub.utils`, where 0.x and 1.x+ both keep them).

It runs inside the envs: standard library and huggingface_hub only, and syntax that every
env's Python reads (3.8 and newer).

Request, `argv[1]` as JSON: `{"timeout": s, "search_limit": n, "models": [{"repo", "revision",
"queries"}]}`; the endpoint is the client's own (the host sets HF_ENDPOINT). Output: one line
per fact, `hub-client: <JSON>`, flushed as soon as it is known (what was learnt before a hang
still reaches the host), in this order:

- `{"settings": {"offline": "", "token_given": bool, "cache_dir": str}}`:
  `offline` names the variable that put the client offline, if one did (then nothing is asked);
- `{"unreachable": why}`: the first request got no answer at all; nothing more is asked;
- `{"model": i, "answer": answer}` for each model in turn, where `answer` is
  `{"status": 200, "gated": bool, "sha": str, "files": answer-of-the-HEAD-or-null}`, or
  `{"status": code, "error": kind, "message": str, "similar": [ids] or null}` (`kind` from the
  error's class: RepoNotFound, GatedRepo, RevisionNotFound, EntryNotFound, InvalidId, or ""),
  or `{"no_answer": why}` (refused, timed out, DNS, TLS), or `{"failed": why}` (anything else).

`similar` (only for a repo that is not there): the ids of the first of `queries` whose search
names another id than the repo. The token is never printed.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

PREFIX = "hub-client: "
CHAIN_DEPTH = 10


def main(argv: list[str]) -> int:
    request = json.loads(argv[1])
    try:
        from huggingface_hub import HfApi, constants, get_hf_file_metadata, hf_hub_url
    except ImportError as error:
        _say({"failed": _why(error, innermost=False)}, None)
        return 1
    try:
        from huggingface_hub import get_token
    except ImportError:  # huggingface_hub before 0.20
        from huggingface_hub import HfFolder

        get_token = HfFolder.get_token
    token = get_token()
    if getattr(constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", False):
        token = None  # the probes' loads would not send it either
    offline = ""
    if constants.HF_HUB_OFFLINE:
        offline = "HF_HUB_OFFLINE" if os.environ.get("HF_HUB_OFFLINE") else "TRANSFORMERS_OFFLINE"
    settings = {
        "offline": offline,
        "token_given": token is not None,
        "cache_dir": str(constants.HF_HUB_CACHE),
    }
    _say({"settings": settings}, token)
    if offline:
        return 0
    api = HfApi(endpoint=constants.ENDPOINT)
    timeout = float(request["timeout"])

    def head(repo: str, commit: str) -> dict[str, Any]:
        url = hf_hub_url(repo, "config.json", revision=commit, endpoint=constants.ENDPOINT)
        return _ask(get_hf_file_metadata, url, token=token, timeout=timeout)[0]

    def search(query: str) -> list[str]:
        found = api.list_models(search=query, limit=int(request["search_limit"]), token=token)
        return [str(getattr(m, "id", None) or getattr(m, "modelId", "")) for m in found]

    answered = False
    for index, model in enumerate(request["models"]):
        repo, revision = model["repo"], model["revision"]
        answer, info = _ask(api.model_info, repo, revision=revision, timeout=timeout, token=token)
        if "no_answer" in answer and not answered:
            _say({"unreachable": answer["no_answer"]}, token)
            return 0
        answered = answered or bool(answer.get("status"))
        if answer.get("status") == 200:
            gated = bool(getattr(info, "gated", False))
            sha = str(getattr(info, "sha", None) or revision or "main")
            answer.update(gated=gated, sha=sha, files=head(repo, sha) if gated else None)
        elif answer.get("error") not in ("RevisionNotFound", "GatedRepo", "InvalidId") and (
            answer.get("error") == "RepoNotFound" or answer.get("status") in (401, 404)
        ):
            answer["similar"] = _similar(search, repo, model["queries"])
        _say({"model": index, "answer": answer}, token)
    return 0


def _ask(call: Any, *args: Any, **kwargs: Any) -> tuple[dict[str, Any], Any]:
    """Make one request: what the hub answered (status, error kind, its message) or why nothing
    came, and what the call returned (None unless it succeeded)."""
    from huggingface_hub.utils import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        result = call(*args, **kwargs)
    except HfHubHTTPError as error:
        response = getattr(error, "response", None)
        headers = getattr(response, "headers", None) or {}
        kind = ""
        for cls, name in (
            (GatedRepoError, "GatedRepo"),  # a RepositoryNotFoundError too: first
            (RepositoryNotFoundError, "RepoNotFound"),
            (RevisionNotFoundError, "RevisionNotFound"),
            (EntryNotFoundError, "EntryNotFound"),
        ):
            if isinstance(error, cls):
                kind = name
                break
        message = headers.get("X-Error-Message") or getattr(error, "server_message", None) or ""
        status = int(getattr(response, "status_code", 0) or 0)
        return {"status": status, "error": kind, "message": str(message)}, None
    except HFValidationError as error:
        return {"status": 0, "error": "InvalidId", "message": str(error)}, None
    except OfflineModeIsEnabled as error:
        return {"no_answer": _why(error)}, None
    except Exception as error:  # noqa: BLE001 - what the client raised is reported, not raised
        if isinstance(error, _transport_errors()):
            return {"no_answer": _why(error)}, None
        return {"failed": _why(error, innermost=False)}, None
    return {"status": 200}, result


def _similar(search: Any, repo: str, queries: list[str]) -> list[str]:
    """The ids of the first query whose search names another id than `repo` ([] when none does)."""
    from huggingface_hub.utils import HfHubHTTPError

    for query in queries:
        try:
            ids = [i for i in search(query) if i and i != repo]
        except HfHubHTTPError:
            continue  # the hub answered this search with an error: try the next one
        except Exception:  # noqa: BLE001 - no answer: no suggestions, as before
            return []
        if ids:
            return list(dict.fromkeys(ids))
    return []


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The errors of the HTTP library the client uses (requests for 0.x, httpx for 1.x+) that
    mean no answer came; it is imported by then."""
    kinds: list[type[BaseException]] = [OSError]
    for module, name in (("requests", "RequestException"), ("httpx", "TransportError"), ("httpx2", "TransportError")):
        found = getattr(sys.modules.get(module), name, None)
        if isinstance(found, type) and issubclass(found, BaseException):
            kinds.append(found)
    return tuple(kinds)


def _why(error: BaseException, innermost: bool = True) -> str:
    """`Type: message` of the error, or of its innermost cause: for no answer, what the socket
    said (`ConnectionRefusedError: [Errno 111] Connection refused`, `TimeoutError: timed out`)."""
    inner = error
    for _ in range(CHAIN_DEPTH if innermost else 0):
        cause = inner.__cause__ or inner.__context__
        if cause is None:
            break
        inner = cause
    return f"{type(inner).__name__}: {inner}" if str(inner) else type(inner).__name__


def _say(fact: dict[str, Any], token: str | None) -> None:
    line = json.dumps(fact)
    if token:
        line = line.replace(token, "<token>")
    print(PREFIX + line, flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
