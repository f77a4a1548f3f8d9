"""docs/config.md documents exactly the keys the config loader accepts, table by table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from matrix import config

DOC = Path(__file__).resolve().parents[2] / "docs" / "config.md"

# The heading of each table's section in docs/config.md, and the keys the loader accepts there
# (the same tuples it names in its "unknown key (known keys: ...)" message).
SECTIONS = {
    "## [settings]": config.KNOWN_KEYS["settings"],
    "## [envs.<name>]": config.KNOWN_KEYS["envs"],
    "## [models.<name>]": config.KNOWN_KEYS["models"],
}

ROW = re.compile(r"^\| `([^`]+)` \|")


def documented_keys(heading: str) -> list[str]:
    """The keys of the table rows (`| `key` | ...`) under one `## ` heading, up to the next one."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    assert heading in lines, f"{DOC.name} has no section {heading!r}"
    keys = []
    for line in lines[lines.index(heading) + 1 :]:
        if line.startswith("## "):
            break
        if match := ROW.match(line):
            keys.append(match.group(1))
    return keys


@pytest.mark.parametrize("heading", SECTIONS)
def test_every_accepted_key_is_documented(heading: str) -> None:
    documented = documented_keys(heading)
    missing = [key for key in SECTIONS[heading] if key not in documented]
    assert not missing, f"{DOC.name} {heading} lacks rows for {missing}"


@pytest.mark.parametrize("heading", SECTIONS)
def test_every_documented_key_is_accepted(heading: str) -> None:
    documented = documented_keys(heading)
    unknown = [key for key in documented if key not in SECTIONS[heading]]
    assert not unknown, f"{DOC.name} {heading} documents keys the loader refuses: {unknown}"
    duplicated = sorted({key for key in documented if documented.count(key) > 1})
    assert not duplicated, f"{DOC.name} {heading} documents {duplicated} twice"


def test_sections_are_not_empty() -> None:
    for heading, accepted in SECTIONS.items():
        assert accepted, f"the loader accepts no keys for {heading}: the test reads the wrong names"
