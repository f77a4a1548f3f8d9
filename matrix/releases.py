"""The releases of a package, as the package index lists them.

Bisecting needs every release between a good and a bad version, in order. The index's
simple JSON API (PEP 691) lists each version and its files with their yanked flag, in one
request, with the standard library only (the noxfile's Python has no `requests`).
Parsing is a pure function so it is tested on a canned document, without the network.

Only final releases count on the release line: a pre-release or dev build is not what
anyone pins, and a post release only repackages its final release. An env may still ask
for the upcoming release (`next`): the newest pre-release newer than the newest final,
read from the same document (`parse_versions` keeps every kind, `upcoming` picks it). A
version is yanked when every one of its files is yanked (the index yanks files, not
versions); a yanked version is skipped, as an installer would skip it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from probes.record import write_json_atomic

DEFAULT_INDEX = "https://pypi.org"
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
TIMEOUT_S = 20.0
LIST_MAX_AGE_S = 3600.0


class ReleasesError(Exception):
    """The index could not be read or did not answer with a release list; names the URL."""


def index_url() -> str:
    """The index to ask: UV_INDEX_URL or PIP_INDEX_URL when set to an http(s) URL, else PyPI.

    The simple API lives at `<index>/simple/<name>/`, so an index URL that already ends in
    `/simple` is trimmed to its root. A `file://` index (some machines point pip at local
    folders) has no JSON API, so it falls back to PyPI.
    """
    for key in ("UV_INDEX_URL", "PIP_INDEX_URL"):
        value = os.environ.get(key, "").strip()
        if value.startswith(("http://", "https://")):
            return value.rstrip("/").removesuffix("/simple")
    return DEFAULT_INDEX


def simple_url(package: str, index: str | None = None) -> str:
    """`<index>/simple/<normalized name>/`."""
    return f"{(index or index_url()).rstrip('/')}/simple/{canonicalize_name(package)}/"


def fetch_releases(package: str, index: str | None = None, timeout: float = TIMEOUT_S) -> list[Version]:
    """Final, non-yanked releases of `package`, oldest first (one request to the index)."""
    return [version for version in fetch_versions(package, index, timeout) if is_final(version)]


def fetch_versions(package: str, index: str | None = None, timeout: float = TIMEOUT_S) -> list[Version]:
    """Every non-yanked version of `package` (pre-releases too), oldest first."""
    url = simple_url(package, index)
    request = urllib.request.Request(url, headers={"Accept": SIMPLE_JSON, "User-Agent": "transformers-matrix"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ReleasesError(f"cannot read the release list of {package} from {url}: {reason}") from None
    try:
        document = json.loads(body)
    except ValueError:
        raise ReleasesError(f"{url} did not answer with the simple JSON API ({SIMPLE_JSON})") from None
    try:
        return parse_versions(document)
    except ValueError as exc:
        raise ReleasesError(f"{url}: {exc}") from None


def cached_releases(
    package: str,
    cache: Path,
    max_age: float = LIST_MAX_AGE_S,
    index: str | None = None,
    timeout: float = TIMEOUT_S,
    pre: bool = False,
) -> list[Version]:
    """`fetch_releases`, kept under `<cache>/releases/<name>.json` for `max_age` seconds.

    A warm rerun then asks the index nothing: the newest release changes a few times a
    month, and within the hour the list is reused it would rarely differ. The stored list
    names its index, so another index is asked afresh; ReleasesError as fetch_releases.
    With `pre`, every version (pre-releases too), kept in a file of its own.
    """
    url = simple_url(package, index)
    path = cache / "releases" / f"{canonicalize_name(package)}{'.all' if pre else ''}.json"
    with contextlib.suppress(OSError, ValueError, TypeError, InvalidVersion):
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored["url"] == url and 0 <= time.time() - float(stored["fetched_at"]) <= max_age:
            return [Version(v) for v in stored["versions"]]
    releases = (fetch_versions if pre else fetch_releases)(package, index, timeout)
    with contextlib.suppress(OSError):
        write_json_atomic(path, {"url": url, "fetched_at": time.time(), "versions": [str(v) for v in releases]})
    return releases


def newest_release(package: str, cache: Path, timeout: float = TIMEOUT_S) -> Version | None:
    """The newest final release (from the cached list), or None when the index cannot be read."""
    try:
        releases = cached_releases(package, cache, timeout=timeout)
    except ReleasesError:
        return None
    return releases[-1] if releases else None


def upcoming(versions: list[Version]) -> Version | None:
    """The upcoming release: the newest pre-release (alpha, beta, rc; not a dev build) newer
    than the newest final release, or None when there is none."""
    finals = [v for v in versions if is_final(v)]
    pres = [v for v in versions if v.pre is not None and not (v.is_devrelease or v.is_postrelease or v.local)]
    newer = [v for v in pres if not finals or v > max(finals)]
    return max(newer) if newer else None


def parse_releases(document: dict[str, Any]) -> list[Version]:
    """Final, non-yanked versions of a PEP 691 project document, sorted ascending."""
    return [version for version in parse_versions(document) if is_final(version)]


def parse_versions(document: dict[str, Any]) -> list[Version]:
    """Every non-yanked version of a PEP 691 project document (any kind), sorted ascending.

    A version counts when at least one of its files is not yanked. The version of a file
    comes from its name (`<name>-<version>-...whl` or `<name>-<version>.tar.gz`); the
    document's `versions` list (API 1.1) adds nothing a file does not, since a version
    without files cannot be installed.
    """
    if not isinstance(document, dict) or not isinstance(document.get("files"), list):
        raise ValueError("not a simple API project document (no 'files' list)")
    name = canonicalize_name(str(document.get("name", "")))
    live: set[Version] = set()
    for file in document["files"]:
        version = _file_version(str(file.get("filename", "")), name)
        if version is None:
            continue
        if not file.get("yanked"):  # False, absent, or "" mean not yanked
            live.add(version)
    return sorted(live)


def is_final(version: Version) -> bool:
    """A plain X.Y.Z release: no pre, dev, post or local part."""
    return not (version.is_prerelease or version.is_devrelease or version.is_postrelease or version.local)


def between(releases: list[Version], good: Version, bad: Version) -> list[Version]:
    """The releases strictly between `good` and `bad`, in order."""
    return [v for v in releases if good < v < bad]


def _file_version(filename: str, name: str) -> Version | None:
    """The version part of a wheel or sdist file name, or None for anything else."""
    if filename.endswith(".whl"):
        parts = filename[: -len(".whl")].split("-")
        text = parts[1] if len(parts) >= 5 else ""
    else:
        stem = next((filename[: -len(ext)] for ext in (".tar.gz", ".zip", ".tar.bz2") if filename.endswith(ext)), "")
        base, _, text = stem.rpartition("-")
        if name and canonicalize_name(base) != name:
            return None
    try:
        return Version(text)
    except InvalidVersion:
        return None
