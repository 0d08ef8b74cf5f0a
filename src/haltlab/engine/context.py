"""Which CPU is running, as `smp_processor_id()` tells kernel code.

The driver sets `current` before every resume of a CPU's coroutine; kernel code
reads it through `smp_processor_id()` exactly as it does in C. One run at a time
per process: drivers are not re-entrant, and a sweep uses processes, not threads.
"""

from __future__ import annotations

__all__ = ["smp_processor_id", "ktime_get_ns", "set_current", "inline", "go_on", "hardware"]

_cpu: int = -1
_driver = None
inline = None
"""While a driver that starts ops where they are awaited runs a CPU, its runner:
`inline(op)` starts `op` and returns its result, or an `ops.Handover` for the
awaiting coroutine to yield instead (`Op.__await__`). None under any other
driver, which then gets every op yielded to it."""
go_on = None
"""While `inline` is set: `go_on(op, outcome)`, what the runner does with an op
it has started (`inline(op)` is `go_on(op, op.start(...))`), for the ops'
inline forms (`ops._write_once_now()`, ...), which start themselves."""
hardware = None
"""The machine, while `inline` is set: what the ops' inline forms act on, for
the CPU `smp_processor_id()` names."""


def set_current(driver, cpu: int, runner=None, runner_go_on=None) -> None:
    global _cpu, _driver, inline, go_on, hardware
    _driver, _cpu, inline, go_on = driver, cpu, runner, runner_go_on
    hardware = driver.machine if runner is not None else None


def smp_processor_id() -> int:
    if _cpu < 0:
        raise RuntimeError("smp_processor_id() called outside a running CPU")
    return _cpu


def ktime_get_ns() -> int:
    """Virtual time in ns (the simulator's clock; the explorer's step count)."""
    return _driver.now_ns
