"""Who used the machine's CPU during a stretch of a benchmark, read from /proc (Linux).

A snapshot sums user + system time per group of processes: each named root process with everything it started
(the suite's processes and their gunicorn workers, the private PostgreSQL's postmaster and its backends, Redis,
the Twilio stand-in) and this benchmark's own process. Two snapshots give cores used per group over the stretch; the machine's busy
time (/proc/stat) less theirs is everything else: other engineers' work (the noise) and processes that ended in
between (the suite's are long-lived).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK")
OTHER = "other processes (not the suite)"


@dataclass(frozen=True)
class Snapshot:
    at: float
    seconds: Counter[str]
    busy: float  # machine CPU seconds spent not idle, all cores
    total: float  # machine CPU seconds, all cores


def _stat(pid: str) -> tuple[int, str, float] | None:
    """(parent pid, command name, CPU seconds) of a live process."""
    try:
        raw = (PROC / pid / "stat").read_text()
    except OSError:
        return None
    name = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    # After the name: state, ppid, ... utime is field 14 and stime 15 of the whole line (11 and 12 here).
    return int(fields[1]), name, (int(fields[11]) + int(fields[12])) / TICKS


def _machine() -> tuple[float, float]:
    values = [int(v) for v in (PROC / "stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / TICKS, sum(values) / TICKS


def snapshot(roots: Mapping[int, str]) -> Snapshot:
    """CPU seconds so far per group; ``roots`` names the processes (the suite's, its PostgreSQL postmaster, its
    Redis, the stand-in) whose descendants count as theirs."""
    procs = {pid: stat for pid in os.listdir(PROC) if pid.isdigit() and (stat := _stat(pid)) is not None}
    me = str(os.getpid())
    seconds: Counter[str] = Counter()
    for pid, (_, name, cpu) in procs.items():
        seconds[_group(pid, name, procs, roots, me)] += cpu
    busy, total = _machine()
    return Snapshot(time.monotonic(), seconds, busy, total)


def _group(
    pid: str, name: str, procs: Mapping[str, tuple[int, str, float]], roots: Mapping[int, str], me: str
) -> str:
    if pid == me:
        return "this bench: load generator, SMTP server"
    seen = 0
    current = pid
    while current in procs and seen < 64:
        if int(current) in roots:
            return roots[int(current)]
        current, seen = str(procs[current][0]), seen + 1
    return OTHER


def rows(before: Snapshot, after: Snapshot) -> list[list[object]]:
    """Cores used per group between two snapshots, busiest first, then the rest of the machine's busy time
    (other processes, and processes that ended in between) and its busy share."""
    wall = max(after.at - before.at, 1e-9)
    used = {g: (after.seconds[g] - before.seconds.get(g, 0.0)) / wall for g in after.seconds if g != OTHER}
    out: list[list[object]] = [
        [g, f"{c:.2f}"] for g, c in sorted(used.items(), key=lambda kv: -kv[1]) if c >= 0.005
    ]
    busy = (after.busy - before.busy) / wall
    out.append([OTHER, f"{max(busy - sum(used.values()), 0.0):.2f}"])
    share = (after.busy - before.busy) / max(after.total - before.total, 1e-9)
    out.append([f"whole machine ({os.cpu_count()} cores), busy", f"{busy:.2f} ({share:.0%})"])
    return out
