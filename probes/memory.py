"""The cell's memory figures: peak RSS over its start, and the model's own share of it.

Kept apart from the phases (probes/cell.py): these read /proc of the child process and
nothing of the model.
"""

from __future__ import annotations

from typing import Dict, NamedTuple


def proc_status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class MemoryStart(NamedTuple):
    """The cell's memory at its start: RSS, and the resident kB of each file mapping."""

    rss_kb: int
    mapped_kb: Dict[str, int]


def reset_peak_rss() -> MemoryStart:
    """Note the file mappings' resident pages, reset this process's peak RSS (VmHWM), and
    return the RSS now (kB).

    Two metrics come of it. `peak_rss_increase_mb` (the budgets' metric) is the peak RSS
    over the RSS at the start. `model_peak_mb` leaves out the pages of files the process
    had mapped before the cell began (torch's and Python's shared libraries): fork does not
    copy their page-table entries, so the child faults back in whatever library code it runs,
    memory the parent already holds, and how much each fault maps depends on how the page
    cache holds the library (large folios after a whole-file read or a fresh install).
    Measured on one cell (codebert-tiny, transformers 4.50, 2 CPUs, one env): a peak RSS
    increase of 32, 37-40, 52 and 148 MB with the page cache in different states, 30 to 140 MB
    of it such library pages; `model_peak_mb` 5.3-5.7 MB across the first states (before the
    heap trim below) and 7.0-7.8 MB with it across all. Files mapped during the cell
    (safetensors weights) still count.

    The heap is trimmed first: free memory the parent's allocator kept (a fresh env's first
    run compiles its imports and leaves more) would otherwise be reused by the child without
    counting, and move the figure by 3-6 MB between a fresh and a warm env."""
    mapped = file_mappings_kb()  # before the reset: reading smaps allocates a little
    _trim_heap()
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
            clear.write("5")
    except OSError:
        pass
    return MemoryStart(proc_status_kb("VmRSS"), mapped)


def _trim_heap() -> None:
    """Give the free memory the parent's allocator left in its heap back to the system."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def file_mappings_kb() -> Dict[str, int]:
    """Resident kB of the file-backed mappings, per file (a mapping split by mprotect or a
    second mapping of the same file adds to its file)."""
    found: Dict[str, int] = {}
    key = None
    try:
        with open("/proc/self/smaps", encoding="utf-8", errors="replace") as smaps:
            for line in smaps:
                first = line.split(None, 1)[0] if line.strip() else ""
                if not first.endswith(":"):  # a mapping's header: range perms offset dev inode [path]
                    parts = line.split(None, 5)
                    file_backed = len(parts) == 6 and parts[4] != "0"
                    key = parts[5].strip() if file_backed else None
                elif first == "Rss:" and key is not None:
                    found[key] = found.get(key, 0) + int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return {}
    return found


def remapped_kb(start: Dict[str, int], end: Dict[str, int]) -> int:
    """kB of pages that came back into mappings the cell started with (not the cell's own)."""
    return sum(max(0, kb - start[key]) for key, kb in end.items() if key in start)
