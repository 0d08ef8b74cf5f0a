"""`BUG()` and `BUG_ON()`: the kernel stops the task that hit one.

What follows a BUG in the kernel (an oops; the task killed, or, in interrupt
context, `panic("Fatal exception in interrupt")`) is not modelled: the run's
question is answered at the BUG, which is the verdict (the `checks` property
"no BUG()" reads the ghost fact `bug`). The CPU prints the kernel's first line
of the report and stops with interrupts off.

Shape: lib/bug.c's `report_bug()` message, arm64's `die()` line
("Internal error: Oops - BUG"), 7.1.
"""

from __future__ import annotations

from haltlab.engine.context import ktime_get_ns, smp_processor_id
from haltlab.engine.ops import local_irq_disable, native_halt
from haltlab.kernel.printk import printk

__all__ = ["BUG"]


async def BUG(k, file: str, what: str) -> None:
    """Never returns."""
    cpu = smp_processor_id()
    k.bugs.append((ktime_get_ns(), cpu, f"{file}: {what}"))
    k.ghost_add("bug", cpu)
    k.mark("bug", ktime_get_ns())
    await printk(k, f"kernel BUG at {file}!")
    await printk(k, "Internal error: Oops - BUG: 00000000f2000800 [#1] SMP")
    await local_irq_disable()
    while True:
        await native_halt()
