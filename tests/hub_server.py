"""A small Hugging Face Hub on 127.0.0.1, for tests that must not reach the real one.

It answers the endpoints the hub clients (huggingface_hub 0.x and 1.x+) and `matrix.envs.hub`
call, the way huggingface.co answers them, errors included: an `X-Error-Code` header
(RepoNotFound, GatedRepo, RevisionNotFound, EntryNotFound) with an `X-Error-Message`, 401
for a missing repo asked without a token (the hub does not tell missing from private then)
and 404 with one, 401 for a gated repo's files without a token and 403 with a token that has
no access. Clients pick their error class from exactly these headers and codes
(`huggingface_hub.utils.hf_raise_for_status`).

Endpoints: `GET /api/models?search=&limit=`, `GET /api/models/{id}[/revision/{rev}]`,
`GET /api/models/{id}/tree/{rev}[/{path}]` (hub 1.x+ lists files this way before a
snapshot download), and `HEAD`/`GET /{id}/resolve/{rev}/{file}` with `X-Repo-Commit`,
`ETag` and `Content-Length`. Every request is recorded in `requests`.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

MAIN = "main"


def git_blob_id(data: bytes) -> str:
    """The id git (and the hub) gives a file's bytes: the ETag of a non-LFS file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class FakeRepo:
    """One model repo: its files at one commit, the branch/tag names that point at it."""

    repo_id: str
    files: dict[str, bytes] = field(default_factory=dict)
    gated: bool = False
    refs: tuple[str, ...] = (MAIN,)

    @property
    def sha(self) -> str:
        digest = hashlib.sha1(self.repo_id.encode())
        for path in sorted(self.files):
            digest.update(path.encode() + b"\0" + git_blob_id(self.files[path]).encode())
        return digest.hexdigest()

    def commit(self, revision: str) -> str | None:
        """The commit a revision names (a ref or the full commit id), None when there is none."""
        return self.sha if revision in self.refs or revision == self.sha else None

    @classmethod
    def from_folder(cls, repo_id: str, folder: Path, **kwargs: object) -> FakeRepo:
        files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
        return cls(repo_id, files, **kwargs)  # type: ignore[arg-type]


class _Reply(Exception):
    """An HTTP answer other than 200 (raised inside a handler, turned into the response)."""

    def __init__(self, status: int, code: str | None, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class FakeHub:
    """The server: repos with files, extra ids that only the search knows, tokens with access."""

    def __init__(
        self,
        repos: list[FakeRepo],
        search_index: tuple[str, ...] = (),
        tokens_with_access: frozenset[str] = frozenset(),
    ) -> None:
        self.repos = {repo.repo_id: repo for repo in repos}
        self.search_index = list(self.repos) + [i for i in search_index if i not in self.repos]
        self.tokens_with_access = tokens_with_access
        self.requests: list[tuple[str, str]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "the fake hub is not running"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        hub = self

        class Handler(_HubHandler):
            fake_hub = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-hub", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(f"the fake hub did not stop within {timeout} s")
        self._server = self._thread = None

    # -- what the hub answers, independent of HTTP plumbing --

    def repo(self, repo_id: str, token: str | None) -> FakeRepo:
        repo = self.repos.get(repo_id)
        if repo is None:
            # Without a token the hub answers 401 (missing and private look the same), with one 404.
            raise _Reply(404 if token else 401, "RepoNotFound", "Repository not found")
        return repo

    def commit(self, repo: FakeRepo, revision: str) -> str:
        commit = repo.commit(revision)
        if commit is None:
            raise _Reply(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return commit

    def model_info(self, repo: FakeRepo, commit: str) -> dict[str, object]:
        return {
            "_id": repo.sha[:24],
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": commit,
            "private": False,
            "gated": "manual" if repo.gated else False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": ["transformers", "safetensors"],
            "library_name": "transformers",
            "lastModified": "2024-06-06T00:00:00.000Z",
            "createdAt": "2024-06-01T00:00:00.000Z",
            "siblings": [{"rfilename": path} for path in sorted(repo.files)],
        }

    def tree(self, repo: FakeRepo, prefix: str) -> list[dict[str, object]]:
        prefix = prefix.strip("/")
        return [
            {"type": "file", "oid": git_blob_id(data), "size": len(data), "path": path}
            for path, data in sorted(repo.files.items())
            if not prefix or path.startswith(prefix + "/")
        ]

    def search(self, query: str, limit: int) -> list[dict[str, object]]:
        found = [repo_id for repo_id in self.search_index if query.lower() in repo_id.lower()]
        return [{"_id": hashlib.sha1(i.encode()).hexdigest()[:24], "id": i, "modelId": i} for i in found[:limit]]

    def file(self, repo: FakeRepo, path: str, token: str | None) -> bytes:
        if repo.gated and token not in self.tokens_with_access:
            if token is None:
                message = f"Access to model {repo.repo_id} is restricted. You must have access to it and be authenticated to access it. Please log in."  # noqa: E501
                raise _Reply(401, "GatedRepo", message)
            message = f"Access to model {repo.repo_id} is restricted and you are not in the authorized list."
            raise _Reply(403, "GatedRepo", message)
        if path not in repo.files:
            raise _Reply(404, "EntryNotFound", f"{path} does not exist on {repo.repo_id}")
        return repo.files[path]


class _HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake_hub: FakeHub

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        """Quiet: requests are recorded in `FakeHub.requests` instead of printed."""

    def _answer(self, body: bool) -> None:
        hub = self.fake_hub
        url = urlsplit(self.path)
        hub.requests.append((self.command, url.path))
        auth = self.headers.get("Authorization", "")
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else None
        try:
            payload, headers = self._route(url.path, parse_qs(url.query), token)
        except _Reply as reply:
            error = json.dumps({"error": reply.message}).encode()
            extra = {"X-Error-Message": reply.message, **({"X-Error-Code": reply.code} if reply.code else {})}
            self._send(reply.status, error, "application/json", extra, body)
            return
        if isinstance(payload, bytes):
            self._send(200, payload, "application/octet-stream", headers, body)
        else:
            self._send(200, json.dumps(payload).encode(), "application/json", headers, body)

    def _route(self, path: str, query: dict[str, list[str]], token: str | None) -> tuple[object, dict[str, str]]:
        hub = self.fake_hub
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts == ["api", "models"]:
            limit = int(query.get("limit", ["1000"])[0])
            return hub.search(query.get("search", [""])[0], limit), {}
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            repo = hub.repo("/".join(parts[2:4]), token)
            rest = parts[4:]
            if not rest:
                return hub.model_info(repo, hub.commit(repo, MAIN)), {}
            if rest[0] == "revision" and len(rest) == 2:
                return hub.model_info(repo, hub.commit(repo, rest[1])), {}
            if rest[0] == "tree" and len(rest) >= 2:
                hub.commit(repo, rest[1])
                return hub.tree(repo, "/".join(rest[2:])), {}
        if len(parts) >= 5 and parts[2] == "resolve":
            repo = hub.repo("/".join(parts[:2]), token)
            commit = hub.commit(repo, parts[3])
            data = hub.file(repo, "/".join(parts[4:]), token)
            return data, {"X-Repo-Commit": commit, "ETag": f'"{git_blob_id(data)}"'}
        raise _Reply(404, None, f"no route for {path}")

    def _send(self, status: int, data: bytes, content_type: str, headers: dict[str, str], body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(data)


@contextmanager
def running(hub: FakeHub) -> Iterator[FakeHub]:
    """Start the server on a free port of 127.0.0.1 and stop it afterwards, whatever happens."""
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()
