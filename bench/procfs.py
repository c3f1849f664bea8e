"""What the kernel says about a process tree: CPU time, run-queue wait and memory."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cpu_seconds(pid: int) -> float:
    """utime+stime of pid and its live descendants, plus the children they already reaped."""
    total = 0
    for p in [pid, *_descendants(pid)]:
        fields = _stat_fields(p)
        if fields:
            # after comm: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
            total += sum(int(x) for x in fields[11:15])
    return total / CLK_TCK


def runqueue_wait_s(pid: int) -> float:
    """Time the threads of pid and its descendants spent runnable but waiting for a CPU
    (/proc/PID/task/TID/schedstat, second field): how much other load held the server back."""
    total_ns = 0
    for p in [pid, *_descendants(pid)]:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, NotADirectoryError):
            for task in Path(f"/proc/{p}/task").iterdir():
                with contextlib.suppress(FileNotFoundError, ProcessLookupError, IndexError):
                    total_ns += int((task / "schedstat").read_text().split()[1])
    return total_ns / 1e9


def machine_busy_s() -> float:
    """CPU seconds all cores spent busy (not idle or iowait) since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLK_TCK


def _status_kb(pid: int, field: str) -> int | None:
    """A kB field of /proc/PID/status (VmHWM, VmRSS) summed over pid and its live descendants."""
    total_kb = 0
    seen = False
    for p in [pid, *_descendants(pid)]:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    total_kb += int(line.split()[1])
                    seen = True
    return total_kb if seen else None


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM of pid plus that of its live descendants, in MB."""
    kb = _status_kb(pid, "VmHWM")
    return None if kb is None else kb / 1024


def rss_kb(pid: int) -> int | None:
    """VmRSS (resident now, as the OS sees it) of pid plus its live descendants, in kB."""
    return _status_kb(pid, "VmRSS")
