"""The processes of a command's tree, from ``/proc`` (Linux): for the benchmarks' CPU and memory
figures of a command together with the processes it starts."""

from __future__ import annotations

import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _stats() -> dict[int, list[str]]:
    """Each live process's ``stat`` fields after its name (the parent pid first)."""
    found: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            found[int(entry.name)] = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
    return found


def tree(root: int, stats: dict[int, list[str]] | None = None) -> list[int]:
    """``root`` and every live process descended from it."""
    children: dict[int, list[int]] = {}
    for pid, fields in (stats if stats is not None else _stats()).items():
        children.setdefault(int(fields[1]), []).append(pid)
    found, todo = [], [root]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def cpu_seconds(root: int) -> float:
    """User + system CPU seconds of ``root`` and its live descendants."""
    stats = _stats()
    return sum(
        (int(stats[p][11]) + int(stats[p][12])) / TICKS for p in tree(root, stats) if p in stats
    )


def status_bytes(pid: int | str, field: str) -> int:
    """A memory field of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM`` ...) in bytes; 0 when the
    process or the field is gone (``pid`` may be ``"self"``)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    return 0


def rss_bytes(root: int) -> int:
    """Resident memory of ``root`` and its live descendants together (``VmRSS``: cheap to read,
    unlike ``smaps``, whose page-table walk would slow the run it measures)."""
    return sum(status_bytes(pid, "VmRSS") for pid in tree(root))
