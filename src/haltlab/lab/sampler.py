"""Host CPU time of a QEMU process and of each of its vCPU threads.

The S1 question is what a panicked guest costs the host, so the measure is the
host's own accounting: utime + stime of the QEMU process (`/proc/PID/stat`,
which also counts threads that have exited) and of every thread
(`/proc/PID/task/TID/stat`), read at both ends of a window. QEMU runs each vCPU
on its own thread (KVM and TCG `thread=multi` alike); QMP `query-cpus-fast`
names each vCPU's `thread-id`, which maps thread CPU time to vCPUs.

perf-style samples are derived, not recorded: `perf record -F f` takes about f
samples per second of CPU time a thread runs, so samples = cpu_seconds * f. That
is the unit of S1's "55K samples before, 51 after".

On a busy host a vCPU that spins gets less than a full CPU: CPU time then
measures what it got, not what it wanted. `/proc/PID/task/TID/schedstat` adds
the time the thread waited on a run queue (ns); run + wait per second is the
vCPU's demand, which is about 1 for a spinning vCPU whatever else the host runs,
and about 0 for a halted or paused one.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path

__all__ = ["parse_stat_ticks", "read_ticks", "read_schedstat", "CpuSample", "cpu_usage", "no_cpu_usage",
           "host_cpu_hz",
           "VcpuTrace", "TRACE_INTERVAL_NS"]

CLK_TCK = os.sysconf("SC_CLK_TCK")


def parse_stat_ticks(stat: str) -> int:
    """utime + stime (fields 14 and 15, clock ticks) of a `/proc/.../stat` line.

    The command name (field 2) is in parentheses and may contain spaces and
    parentheses itself, so fields are counted after the last ')'.
    """
    rest = stat[stat.rindex(")") + 2 :].split()
    return int(rest[11]) + int(rest[12])  # rest[0] is field 3 (state)


def read_ticks(path: Path) -> int | None:
    """Ticks from one stat file; None if the thread or process is gone."""
    try:
        return parse_stat_ticks(path.read_text())
    except (FileNotFoundError, ProcessLookupError):
        return None


def read_schedstat(path: Path) -> tuple[int, int] | None:
    """(ns on CPU, ns waiting on a run queue) of a thread; None if unavailable."""
    try:
        run_ns, wait_ns, _ = path.read_text().split()
        return int(run_ns), int(wait_ns)
    except (OSError, ValueError):
        return None


class CpuSample:
    """CPU ticks of a process and of chosen threads at one host instant."""

    def __init__(self, pid: int, tids: Mapping[int, int]):
        self.ns = time.monotonic_ns()
        self.process = read_ticks(Path(f"/proc/{pid}/stat"))
        self.threads = {tid: read_ticks(Path(f"/proc/{pid}/task/{tid}/stat")) for tid in tids}
        self.sched = {tid: read_schedstat(Path(f"/proc/{pid}/task/{tid}/schedstat")) for tid in tids}


def _figures(t0: int | None, t1: int | None, window_s: float, perf_freq_hz: int) -> dict:
    """CPU seconds, CPU-s per s and perf-style samples from two tick counts."""
    cpu_s = (t1 - t0) / CLK_TCK if t0 is not None and t1 is not None else None
    rate = cpu_s / window_s if cpu_s is not None else None
    return {
        "host_cpu_s": cpu_s,
        "host_cpu_s_per_s": rate,
        "perf_samples": round(cpu_s * perf_freq_hz) if cpu_s is not None else None,
        "perf_samples_per_s": round(rate * perf_freq_hz) if rate is not None else None,
    }


def _demand(a: tuple[int, int] | None, b: tuple[int, int] | None, window_s: float) -> dict:
    """Run-queue wait and demand (run + wait) per second from two schedstat readings."""
    if a is None or b is None:
        return {"host_runqueue_wait_s_per_s": None, "host_cpu_demand_s_per_s": None}
    wait = (b[1] - a[1]) / 1e9 / window_s
    return {"host_runqueue_wait_s_per_s": wait, "host_cpu_demand_s_per_s": (b[0] - a[0]) / 1e9 / window_s + wait}


def cpu_usage(before: CpuSample, after: CpuSample, vcpus: Mapping[int, int], perf_freq_hz: int) -> dict:
    """Host CPU-seconds per second over [before, after], whole process and per vCPU.

    `vcpus` maps thread id -> vCPU index (from query-cpus-fast).
    """
    window_s = (after.ns - before.ns) / 1e9
    per_vcpu = [
        {
            "cpu_index": idx,
            "thread_id": tid,
            **_figures(before.threads.get(tid), after.threads.get(tid), window_s, perf_freq_hz),
            **_demand(before.sched.get(tid), after.sched.get(tid), window_s),
        }
        for tid, idx in sorted(vcpus.items(), key=lambda kv: kv[1])
    ]
    demands = [v["host_cpu_demand_s_per_s"] for v in per_vcpu]
    return {
        "window_ns": after.ns - before.ns,
        **_figures(before.process, after.process, window_s, perf_freq_hz),
        "vcpu_demand_s_per_s": sum(demands) if None not in demands else None,
        "per_vcpu": per_vcpu,
    }


def no_cpu_usage() -> dict:
    """cpu_usage()'s fields for a run that measured no window (it hung, or reset)."""
    return {"window_ns": None, **_figures(None, None, 1.0, 1), "vcpu_demand_s_per_s": None, "per_vcpu": []}


def host_cpu_hz() -> int:
    """This host's clock from /proc/cpuinfo ('cpu MHz'), 0 if it says none:
    what turns host CPU time into perf-style cycles."""
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("cpu MHz"):
                return round(float(line.split(":")[1]) * 1e6)
    return 0


TRACE_INTERVAL_NS = 10_000_000  # 10 ms: 2.5 guest ticks at HZ=250, ~0.1 ms of host CPU per sample


class VcpuTrace:
    """Each vCPU thread's time on a host CPU, read every `interval_ns` by a thread.

    `readings` is a list of `(host_ns, {cpu_index: run_ns})`, the run_ns from
    schedstat (nanoseconds, not clock ticks: a 10 ms sample needs better than
    the 4-10 ms of a tick). What the lab's per-vCPU timeline is drawn from
    (lab/timeline.py); it runs in haltlab, not in QEMU, so it costs the guest
    nothing it measures. `stop()` ends it; readings taken so far stay.
    """

    def __init__(self, pid: int, vcpus: Mapping[int, int], interval_ns: int = TRACE_INTERVAL_NS):
        self.interval_ns = interval_ns
        self.readings: list[tuple[int, dict[int, int]]] = []
        self._paths = {idx: Path(f"/proc/{pid}/task/{tid}/schedstat") for tid, idx in vcpus.items()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vcpu-trace", daemon=True)
        self._thread.start()

    def _read(self) -> tuple[int, dict[int, int]] | None:
        now = time.monotonic_ns()
        runs = {}
        for idx, path in self._paths.items():
            got = read_schedstat(path)
            if got is None:
                return None  # QEMU (or the thread) is gone
            runs[idx] = got[0]
        return now, runs

    def _run(self) -> None:
        while True:
            reading = self._read()
            if reading is None:
                return
            self.readings.append(reading)
            if self._stop.wait(self.interval_ns / 1e9):
                return

    def stop(self) -> None:
        """End the sampling with one last reading, so the readings reach now."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(5)
        last = self._read()
        if last is not None:
            self.readings.append(last)
