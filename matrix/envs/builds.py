"""Builds of transformers that are not the index's releases: a wheel file, a source folder,
a git URL (`path:...` and `git+...` envs).

Such a build may carry the number of a release (a fix branch built from 4.41.2 says
4.41.2) while its code differs. So its version in the env's freeze gets a local label,
`<version>+path.<sha8>` (or `+vcs.`), from a digest of the files it installed: no table,
bisect or pin file takes it for the index's release, and two different builds of one
number stay apart. The installed package is kept under the release-source shelf
(`<cache>/sources/transformers-<labelled version>/transformers`, where
`matrix/diagnosis/symbols/sources.py` looks first), so that symbol history and the
traceback layer read that build's own sources, not the index's.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from matrix.config import EnvSpec
from probes.record import place_folder

BUILD_KINDS = ("path", "vcs")


def installed_package(python: Path) -> Path | None:
    """The `transformers` package folder in the venv whose interpreter is `python`."""
    venv = python.parent.parent
    found = sorted((venv / "lib").glob("python*/site-packages/transformers/__init__.py"))
    return found[0].parent if found else None


def package_digest(package: Path) -> str:
    """sha256 over the package's files (relative names and contents; bytecode left out)."""
    digest = hashlib.sha256()
    for file in sorted(p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(file.relative_to(package).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def labelled(version: str, kind: str, digest: str) -> str:
    """`4.41.2` -> `4.41.2+path.1a2b3c4d`; a version with a local label already gets one more part."""
    return f"{version}{'.' if '+' in version else '+'}{kind}.{digest[:8]}"


def keep_build(env: EnvSpec, python: Path, version: str, cache_root: Path) -> dict[str, Any]:
    """Label the env's build and keep its sources on the shelf; the facts `_env.json` records.

    `version` is what the build's own metadata says (the freeze). Returns `label` (the version
    the env's columns show), `version`, `kind`, `source` (as the config names it), `sha256`,
    and `sources` (whether its sources are on the shelf, else why not).
    """
    facts: dict[str, Any] = {"kind": env.kind, "source": env.transformers, "version": version, "label": version}
    package = installed_package(python)
    if package is None:
        facts["sources"] = "no transformers package found in the env"
        return facts
    digest = package_digest(package)
    label = labelled(version, env.kind, digest)
    try:
        canonical = str(Version(label))
    except InvalidVersion:
        facts.update(sha256=digest, sources=f"{label!r} is not a version: sources not kept")
        return facts
    facts.update(label=canonical, sha256=digest)
    shelf = cache_root / "sources" / f"transformers-{canonical}"
    if not (shelf / "transformers" / "__init__.py").is_file():
        try:
            place_folder(shelf, lambda staging: _copy(package, staging / "transformers"))
        except OSError as error:
            facts["sources"] = f"could not keep the build's sources: {error.strerror or error}"
            return facts
    facts["sources"] = "kept"
    return facts


def _copy(package: Path, target: Path) -> None:
    shutil.copytree(package, target, ignore=shutil.ignore_patterns("__pycache__"))
