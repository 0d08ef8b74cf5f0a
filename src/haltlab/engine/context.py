"""Which CPU is running, as `smp_processor_id()` tells kernel code.

The driver sets `current` before every resume of a CPU's coroutine; kernel code
reads it through `smp_processor_id()` exactly as it does in C. One run at a time
per process: drivers are not re-entrant, and a sweep uses processes, not threads.
"""

from __future__ import annotations

__all__ = ["smp_processor_id", "ktime_get_ns", "set_current", "inline", "hardware"]

_cpu: int = -1
_driver = None
inline = None
"""While a driver that starts ops where they are awaited runs a CPU, its runner:
`inline(op, outcome)` does with `op`, just started with `outcome`, what the
driver's loop would, and returns the op's result or an `ops.Handover` for the
awaiting coroutine to yield instead (`Op.__await__`; an op's inline form,
`ops._write_once_now()` and the like, passes `op` None). None under any other
driver, which then gets every op yielded to it."""
hardware = None
"""The machine, while `inline` is set: what ops start on, for the CPU
`smp_processor_id()` names."""


def set_current(driver, cpu: int, runner=None) -> None:
    global _cpu, _driver, inline, hardware
    _driver, _cpu, inline = driver, cpu, runner
    hardware = driver.machine if runner is not None else None


def smp_processor_id() -> int:
    if _cpu < 0:
        raise RuntimeError("smp_processor_id() called outside a running CPU")
    return _cpu


def ktime_get_ns() -> int:
    """Virtual time in ns (the simulator's clock; the explorer's step count)."""
    return _driver.now_ns
