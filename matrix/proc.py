"""The one way this project starts a subprocess.

Argument lists only (no shell), every command logged, and a scrubbed environment: a
child sees the variables a Python/uv/torch/HF process needs and nothing else, so secrets
that happen to be in the user's shell never reach a probe, a log or a result file.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("matrix")

_KEEP_EXACT = {
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "TERM",
    "TMPDIR",
    "TZ",
    "SHELL",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "CI",
    "GITHUB_ACTIONS",
}
_KEEP_PREFIXES = (
    "LC_",
    "XDG_",
    "UV_",
    "PIP_",
    "HF_",
    "HUGGINGFACE_",
    "TRANSFORMERS_",
    "TORCH",
    "CUDA_",
    "NVIDIA_",
    "OMP_",
    "MKL_",
    "OPENBLAS_",
    "SSL_",
    "REQUESTS_CA",
    "CURL_CA",
    "MATRIX_",
)


@dataclass(frozen=True)
class Completed:
    """What a finished command left: its exit code, its output, how long it took."""

    args: tuple[str, ...]
    returncode: int
    output: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def installer_env() -> dict[str, str]:
    """Let uv see the wheels this host's pip is told about (PIP_FIND_LINKS).

    Machines that keep a CPU build of torch in a local folder point pip at it; uv does not
    read pip's settings and would download a multi-GB CUDA build instead. UV_FIND_LINKS,
    when set, wins.
    """
    extra = {}
    if "UV_FIND_LINKS" not in os.environ and os.environ.get("PIP_FIND_LINKS"):
        folders = [f for f in os.environ["PIP_FIND_LINKS"].split() if Path(f).is_dir()]
        if folders:
            extra["UV_FIND_LINKS"] = ",".join(folders)
    return extra


def scrubbed_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The calling environment reduced to what tools need, plus `extra`."""
    env = {key: value for key, value in os.environ.items() if key in _KEEP_EXACT or key.startswith(_KEEP_PREFIXES)}
    env.update(extra or {})
    return env


def run(
    args: Sequence[str | Path],
    *,
    env: Mapping[str, str] | None = None,
    capture: bool = True,
    stdout_only: bool = False,
    timeout: float | None = None,
) -> Completed:
    """Run `args`; with `capture`, return stdout+stderr as text, else let it stream through.

    `stdout_only` keeps stderr out of the output (for machine-readable stdout); it still
    reaches the log.

    Never raises for a non-zero exit (the caller decides what a failure means); a missing
    program or a timeout comes back as returncode 127 / 124 with the reason as output.
    """
    argv = tuple(str(arg) for arg in args)
    log.info("$ %s", shlex.join(argv))
    start = time.perf_counter()
    try:
        done = subprocess.run(
            argv,
            env=scrubbed_env(env),
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.STDOUT if capture and not stdout_only else None,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        return Completed(argv, 127, f"cannot run {argv[0]!r}: {exc.strerror}", time.perf_counter() - start)
    except subprocess.TimeoutExpired as exc:
        output = (exc.output or b"").decode("utf-8", "replace")
        return Completed(argv, 124, output + f"\n(stopped after {timeout} s)", time.perf_counter() - start)
    output = (done.stdout or b"").decode("utf-8", "replace")
    return Completed(argv, done.returncode, output, time.perf_counter() - start)
