"""How busy the host was during a run: the record a TCG timing needs beside it.

Under TCG a guest's clocks follow the host's, so every time the lab measures
stretches when the host's CPUs are shared (the lab host has 2 cores, shared
with other work). A run therefore records, over its wall time:
- `host_busy_cpus`: the host CPUs busy, all processes together, from
  /proc/stat's non-idle jiffies (0 to the host's CPU count);
- `qemu_cpus`: the CPUs the guest's QEMU itself used, from the children's
  rusage (the only child a run reaps is its QEMU);
- `other_busy_cpus`: the difference, what everything else on the host took;
- `host_loadavg_1m_start` / `_end`: /proc/loadavg's first figure.
Linux only (/proc); elsewhere the fields are None.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Snapshot", "snapshot", "busy_jiffies", "host_load"]


@dataclass(frozen=True)
class Snapshot:
    wall_ns: int
    busy_jiffies: int | None   # the host's non-idle time so far, in USER_HZ ticks
    children_cpu_s: float      # user + system time of the reaped children so far
    loadavg_1m: float | None


def busy_jiffies(stat_text: str) -> int | None:
    """Non-idle jiffies of the aggregate `cpu` line of /proc/stat (pure):
    every field but idle and iowait; guest time is already in user."""
    for line in stat_text.splitlines():
        if line.startswith("cpu "):
            f = [int(v) for v in line.split()[1:]]
            # user nice system idle iowait irq softirq steal [guest guest_nice]
            return sum(f[:8]) - f[3] - f[4]
    return None


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def snapshot() -> Snapshot:
    stat, load = _read("/proc/stat"), _read("/proc/loadavg")
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Snapshot(
        wall_ns=time.monotonic_ns(),
        busy_jiffies=busy_jiffies(stat) if stat else None,
        children_cpu_s=ru.ru_utime + ru.ru_stime,
        loadavg_1m=float(load.split()[0]) if load else None,
    )


def host_load(a: Snapshot, b: Snapshot) -> dict:
    """The run's host-load fields between two snapshots (rounded to 0.01 CPU)."""
    wall_s = (b.wall_ns - a.wall_ns) / 1e9
    hz = os.sysconf("SC_CLK_TCK")
    busy = ((b.busy_jiffies - a.busy_jiffies) / hz / wall_s
            if wall_s > 0 and a.busy_jiffies is not None and b.busy_jiffies is not None else None)
    qemu = (b.children_cpu_s - a.children_cpu_s) / wall_s if wall_s > 0 else None
    return {
        "host_busy_cpus": round(busy, 2) if busy is not None else None,
        "qemu_cpus": round(qemu, 2) if qemu is not None else None,
        "other_busy_cpus": round(max(0.0, busy - qemu), 2) if busy is not None and qemu is not None else None,
        "host_loadavg_1m_start": a.loadavg_1m,
        "host_loadavg_1m_end": b.loadavg_1m,
        "host_cpus": os.cpu_count(),
    }
