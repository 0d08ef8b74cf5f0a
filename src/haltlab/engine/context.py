"""Which CPU is running, as `smp_processor_id()` tells kernel code.

The driver sets `current` before every resume of a CPU's coroutine; kernel code
reads it through `smp_processor_id()` exactly as it does in C. One run at a time
per process: drivers are not re-entrant, and a sweep uses processes, not threads.
"""

from __future__ import annotations

__all__ = ["smp_processor_id", "ktime_get_ns", "set_current"]

_cpu: int = -1
_driver = None


def set_current(driver, cpu: int) -> None:
    global _cpu, _driver
    _driver, _cpu = driver, cpu


def smp_processor_id() -> int:
    if _cpu < 0:
        raise RuntimeError("smp_processor_id() called outside a running CPU")
    return _cpu


def ktime_get_ns() -> int:
    """Virtual time in ns (the simulator's clock; the explorer's step count)."""
    return _driver.now_ns
