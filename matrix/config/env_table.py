"""One `[envs.<name>]` table: which transformers (a release spec, `latest`, `next`, a wheel
file or source folder, a VCS URL), torch, Python, pins and requirement files.

Every path is checked now, relative to the config's folder, so a typo is a config error
naming the env and the key rather than an env that fails to build minutes later.
"""

from __future__ import annotations

import re
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from matrix.config.reader import Table
from matrix.config.specs import LATEST, NEXT, PATH_PREFIX, VCS_PREFIX, EnvSpec

ENV_KEYS = ("transformers", "torch", "python", "pins", "requirements", "constraints")
_SPEC_HINT = "'4.40.*', '==4.40.2' or '>=4.40,<4.42'"
_NAMED_HINT = (
    "'latest', 'next', '4.40.*', '==4.40.2', '==5.0.0rc1', '>=4.40,<4.42', 'path:<wheel or folder>' or 'git+<url>'"
)


def parse_env(table: Table, name: str) -> EnvSpec:
    spec = table.get("transformers", str)
    if spec is None:
        raise table.error("transformers", "missing: give a version spec such as '4.40.*', 'latest' or 'next'")
    transformers, path = _transformers(table, spec)
    torch = table.get("torch", str)
    python = table.get("python", str)
    if python is not None and not re.fullmatch(r"3\.\d+", python):
        raise table.error("python", f"{python!r} is not a Python version such as '3.11'")
    requirements, constraints = table.file_path("requirements"), table.file_path("constraints")
    return EnvSpec(
        name=name,
        transformers=transformers,
        torch=None if torch is None else version_spec(table, "torch", torch, allow_named=False),
        python=python,
        pins=requirement_list(table, "pins"),
        transformers_path=path,
        requirement_files=(requirements,) if requirements else (),
        constraint_files=(constraints,) if constraints else (),
    )


def requirement_list(table: Table, key: str) -> tuple[str, ...]:
    """A list of requirement strings; a bad one is named by its position."""
    found = table.strings(key)
    for index, text in enumerate(found, start=1):
        if text.strip().startswith(("-r", "-c", "--requirement", "--constraint")):
            problem = f"value #{index} {text!r}: name a requirements file with the table's `requirements` key "
            raise table.error(key, problem + "(a constraints file with `constraints`), not in a list of requirements")
        try:
            Requirement(text)
        except InvalidRequirement:
            raise table.error(key, f"value #{index} {text!r} is not a requirement such as 'numpy<2'") from None
    return found


def _transformers(table: Table, text: str) -> tuple[str, str | None]:
    """The env's transformers as stored (`latest`, `next`, a specifier, `path:...`, a VCS URL)
    and, for a path, the absolute wheel file or source folder."""
    text = text.strip()
    if text in (LATEST, NEXT):
        return text, None
    if text.startswith(PATH_PREFIX):
        return text, _build_path(table, text.removeprefix(PATH_PREFIX).strip())
    if text.startswith(VCS_PREFIX):
        problem = f"{text!r} is not a VCS URL such as 'git+https://host/repo@ref'"
        if not re.fullmatch(r"git\+(https?|ssh|file|git)://\S+", text):
            raise table.error("transformers", problem)
        try:
            Requirement(f"transformers @ {text}")
        except InvalidRequirement as error:
            raise table.error("transformers", f"{problem} ({error})") from None
        return text, None
    if "://" in text or re.match(r"^(hg|svn|bzr)\+", text):
        raise table.error("transformers", f"{text!r}: only git URLs ('git+https://...@ref') are installable by uv")
    return version_spec(table, "transformers", text, allow_named=True), None


def _build_path(table: Table, given: str) -> str:
    """A wheel file of transformers, or a source folder holding the transformers package."""
    where = f"(relative paths start at {table.base})"
    if not given:
        raise table.error("transformers", "'path:' names nothing: give a wheel file or a source folder after it")
    path = (table.base / Path(given).expanduser()).resolve()
    if not path.exists():
        raise table.error("transformers", f"path {given!r} does not exist {where}")
    if path.is_file():
        try:
            name = parse_wheel_filename(path.name)[0]
        except InvalidWheelFilename:
            raise table.error("transformers", f"path {given!r} is a file but not a wheel (.whl): {where}") from None
        if name != canonicalize_name("transformers"):
            raise table.error("transformers", f"path {given!r} is a wheel of {name}, not of transformers")
        return str(path)
    if not any((path / marker).is_file() for marker in ("pyproject.toml", "setup.py")):
        raise table.error("transformers", f"folder {given!r} has no pyproject.toml or setup.py to build from")
    if not any((path / inner / "__init__.py").is_file() for inner in ("src/transformers", "transformers")):
        raise table.error("transformers", f"folder {given!r} holds no transformers package (src/transformers/)")
    return str(path)


def version_spec(table: Table, key: str, text: str, allow_named: bool) -> str:
    """Normalise '4.40.*' / '4.40.2' / '5.0.0rc1' to '==...' and check the result is a valid specifier."""
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)*(\.\*)?", text) or _is_version(text):
        text = f"=={text}"
    try:
        spec = SpecifierSet(text)
    except InvalidSpecifier:
        hint = _NAMED_HINT if allow_named else _SPEC_HINT
        raise table.error(key, f"{text!r} is not a version spec (use {hint})") from None
    if not str(spec):
        raise table.error(key, "empty version spec")
    return str(spec)


def _is_version(text: str) -> bool:
    if not text[:1].isdigit():
        return False
    try:
        Version(text)
    except InvalidVersion:
        return False
    return True
