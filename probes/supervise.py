"""One cell's child process, and its supervision: what survives a crash, a hang or an OOM.

The runner (`probes.runner`) forks a child per cell; the child puts itself in its own
process group, dies with its parent, sends its output to the cell's log, caps its address
space (CPU only) and writes its result; the parent waits with a deadline and kills the
whole group when the cell is done or overdue. Standard library only, like every module the
envs run.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Any

from probes.status import Status

LOG_TAIL_CHARS = 4000
POLL_S = 0.005


def child_main(spec: dict[str, Any], log_path: Path, child_out: Path) -> None:
    """In the forked child: own process group, output to the cell's log, run, exit."""
    code = 0
    try:
        os.setpgid(0, 0)
        die_with_parent()
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        limit_memory(spec)
        write_child_result(child_out, spec)
    except BaseException:  # noqa: BLE001 - nothing may escape a forked child
        import traceback

        traceback.print_exc()
        code = 70
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def die_with_parent() -> None:
    """Linux: SIGKILL this child when the runner dies (a killed run leaves no orphan cell)."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def write_child_result(child_out: Path, spec: dict[str, Any]) -> None:
    import faulthandler

    faulthandler.enable()
    from probes.cell import Cell
    from probes.record import write_json_atomic

    write_json_atomic(child_out, Cell(spec).run())


def limit_memory(spec: dict[str, Any]) -> None:
    """Cap the child's address space so a runaway allocation raises MemoryError (`oom`)
    instead of dragging the host into its OOM killer. CPU only: CUDA reserves huge virtual
    ranges. The cap is the child's size at fork plus `memory_limit_mb` (default: 90 % of RAM).
    """
    if spec.get("device") != "cpu":
        return
    limit_mb = spec.get("memory_limit_mb") or int(meminfo_kb("MemTotal") * 0.9 / 1024)
    with open("/proc/self/status", encoding="ascii") as status:
        vm_kb = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
    cap = vm_kb * 1024 + int(limit_mb) * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def meminfo_kb(field: str) -> int:
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        return next(int(line.split()[1]) for line in meminfo if line.startswith(field + ":"))


def supervise(pid: int, timeout: float) -> tuple[Status | None, str]:
    """Wait for the child; kill its whole process group on timeout or when it is done.

    Returns (None, "") when the child exited cleanly, else the status and reason to record.
    """
    deadline = time.monotonic() + timeout
    timed_out = False
    while True:
        done, wait_status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            timed_out = True
            kill_group(pid)
            _, wait_status = os.waitpid(pid, 0)
            break
        time.sleep(POLL_S)
    kill_group(pid)  # grandchildren the cell left behind
    if timed_out:
        return Status.TIMEOUT, f"no result within {timeout:g} s (killed)"
    if os.WIFSIGNALED(wait_status):
        sig = os.WTERMSIG(wait_status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        if sig == signal.SIGKILL:
            return Status.OOM, "killed by SIGKILL (most likely the kernel's out-of-memory killer)"
        return Status.CRASHED, f"killed by signal {name}"
    code = os.WEXITSTATUS(wait_status)
    if code != 0:
        return Status.CRASHED, f"child exited with code {code} before writing a result"
    return None, ""


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def read_child(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    finally:
        path.unlink(missing_ok=True)
    return data if isinstance(data, dict) else None


def tail(path: Path) -> str:
    try:
        with open(path, "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - LOG_TAIL_CHARS))
            return log.read().decode("utf-8", "replace")
    except OSError:
        return ""
