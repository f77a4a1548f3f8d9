"""A fixture's remote code is readable before the fixture is built (building needs torch, which
only an env has): the bisect reads the model's code for candidate edges before its first env."""

from __future__ import annotations

import hashlib

from probes.fixtures import FIXTURE_NAMES, code_files, definition


def test_code_files_are_the_bytes_the_build_copies_in():
    for name in FIXTURE_NAMES:
        wanted = definition(name).get("remote_code_sha256", {})
        files = code_files(name)
        assert sorted(path.name for path in files) == sorted(wanted), name
        for path in files:
            assert hashlib.sha256(path.read_bytes()).hexdigest() == wanted[path.name], path
