"""Code that runs *inside* each probed environment.

It imports only the standard library, torch, transformers and huggingface_hub (numpy and
safetensors for fixtures), so it works in every env without installing this project
there. It records raw facts per cell and never judges compatibility: that is `matrix/`'s job.
"""

import os
import shutil
import tempfile
from pathlib import Path

_HERE = Path(__file__).resolve().parent


def import_root() -> str:
    """The folder an env's PYTHONPATH gets so that `import probes` works there and nothing else does.

    In a checkout that is the checkout (it holds only our own packages). Installed, the
    package's parent is site-packages, which must never reach a probed env (its torch or
    transformers would shadow the env's own): the package is copied, once per content, into
    a folder of its own under the temp dir and that folder is used instead."""
    parent = _HERE.parent
    if parent.name not in ("site-packages", "dist-packages"):
        return str(parent)
    stamp = max(p.stat().st_mtime_ns for p in _HERE.rglob("*.py"))
    target = Path(tempfile.gettempdir()) / "transformers-matrix-probes-{}".format(stamp)
    if not (target / "probes" / "__init__.py").exists():
        aside = Path(tempfile.mkdtemp(prefix="probes-", dir=tempfile.gettempdir()))
        shutil.copytree(str(_HERE), str(aside / "probes"), ignore=shutil.ignore_patterns("__pycache__"))
        try:
            os.replace(str(aside), str(target))
        except OSError:  # another process placed it first: keep theirs
            shutil.rmtree(str(aside), ignore_errors=True)
    return str(target)
