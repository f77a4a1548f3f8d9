"""The source files of one transformers release, to be read statically (never imported).

Symbol history compares what two releases define, so it needs their files, not an env
that can import them. Three places can hold them, cheapest first: a folder fetched
earlier (`<cache>/sources/transformers-<version>/transformers`; a `path:` or git env's
build is kept there under its labelled version, `4.41.2+path.<sha8>`), a bisect env that
already installed that release, and uv: `uv pip install --no-deps --target` unpacks the
wheel (about 1 s when uv's cache has it, as it does for every release an env or bisect
installed). A fetch lands in a temporary folder beside its final place and is renamed in
one step, so concurrent callers never see half a release; the loser of a race uses the
winner's folder.

Nothing here raises for an unavailable release (offline, no such version): the caller
gets None and the reason, which a report can show.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from packaging.version import InvalidVersion, Version

from matrix import proc
from matrix.diagnosis.symbols.api_lookup import Release
from probes.record import place_folder

log = logging.getLogger("matrix")

FETCH_TIMEOUT_S = 300.0


@dataclass
class SourceShelf:
    """Release sources for one diagnosis run: where they are, which were read, which failed.

    `read`: the releases whose sources were needed (a search over the release line says how
    many); `unavailable`: why a version's sources could not be had, by version.
    """

    cache: Path
    read: set[str] = field(default_factory=set)
    unavailable: dict[str, str] = field(default_factory=dict)
    _opened: dict[str, Release] = field(default_factory=dict, repr=False)

    def package(self, version: str) -> Path | None:
        """The `transformers` package folder of `version`, or None (the reason is kept)."""
        if version in self.unavailable:
            return None
        path = release_source(version, self.cache, problems=self.unavailable)
        if path is not None:
            self.read.add(version)
        return path

    def release(self, version: str) -> Release | None:
        """The index of `version`'s sources (opened once per shelf), or None."""
        if version not in self._opened:
            package = self.package(version)
            if package is None:
                return None
            self._opened[version] = Release(version, package, self.cache)
        return self._opened[version]


def release_source(version: str, cache: Path, problems: dict[str, str] | None = None) -> Path | None:
    """The folder of the `transformers` package of `version`, or None when it cannot be had.

    When None, the reason goes to the log and, if given, into `problems[version]`.
    """
    try:
        canonical = str(Version(version))
    except InvalidVersion:
        _unavailable(version, f"{version!r} is not a version", problems)
        return None
    shelf = cache / "sources" / f"transformers-{canonical}"
    if (shelf / "transformers" / "__init__.py").is_file():
        return shelf / "transformers"
    if Version(canonical).local:  # a path: or git build (matrix/envs/builds.py): no index has it
        _unavailable(version, "a local build whose sources were not kept on the shelf when its env was built", problems)
        return None
    installed = _installed_in_bisect_env(canonical, cache)
    if installed is not None:
        return installed
    reason = _fetch(canonical, shelf)
    if reason:
        _unavailable(version, reason, problems)
        return None
    return shelf / "transformers"


def _unavailable(version: str, reason: str, problems: dict[str, str] | None) -> None:
    log.warning("no sources for transformers %s: %s", version, reason)
    if problems is not None:
        problems[version] = reason


def _installed_in_bisect_env(version: str, cache: Path) -> Path | None:
    """transformers as a bisect env installed it, when its metadata says this very version."""
    for site in sorted((cache / "bisect" / f"tf-{version}" / "lib").glob("python*/site-packages")):
        package = site / "transformers"
        if (site / f"transformers-{version}.dist-info").is_dir() and (package / "__init__.py").is_file():
            return package
    return None


class _NotFetched(Exception):
    """Why a release's sources could not be had (said, not raised, by `_fetch`)."""


def _fetch(version: str, shelf: Path) -> str:
    """Unpack the release's wheel into `shelf`; '' on success, else why not."""

    def unpack(staging: Path) -> None:
        done = proc.run(
            ["uv", "pip", "install", "--quiet", "--no-deps", "--target", staging, f"transformers=={version}"],
            env=proc.installer_env(),
            timeout=FETCH_TIMEOUT_S,
        )
        if not done.ok:
            lines = [line.strip() for line in done.output.splitlines() if line.strip()]
            detail = " / ".join(lines[-3:]) or f"exit code {done.returncode}"
            raise _NotFetched(f"uv could not fetch transformers=={version}: {detail}")
        if not (staging / "transformers" / "__init__.py").is_file():
            raise _NotFetched(f"the transformers=={version} wheel holds no transformers package")

    try:
        place_folder(shelf, unpack)
    except _NotFetched as why:
        return str(why)
    except OSError as exc:
        return f"cannot place transformers=={version} in {shelf}: {exc.strerror or exc}"
    if (shelf / "transformers" / "__init__.py").is_file():
        return ""
    return f"could not move the fetched transformers=={version} into {shelf}"
