"""What the other CPUs are doing when a panic starts, and the timer tick.

`do_idle()` (`kernel/sched/idle.c`, abridged): NO_HZ idle stops the tick, then the
arch idle routine halts with interrupts enabled (x86 `default_idle()` is
`safe_halt()`; arm64 `cpu_do_idle()` is `wfi`), and the loop re-enters idle after
every interrupt. `busy_task()` is a user task that never sleeps: the tick runs and
interrupts it. `irqsoff_task()` is kernel code spinning with interrupts disabled,
the case that forces the NMI fallback of the stop path. Shape: 7.1's
`do_idle()`, which for what is modelled here (tick stop, halt, re-entry) reads
the same back to 5.x.
"""

from __future__ import annotations

import enum

from haltlab.engine.context import smp_processor_id
from haltlab.engine.ops import (
    READ_ONCE, local_irq_disable, local_irq_enable, ndelay, safe_halt, set_cpu_state, this_cpu_read,
)
from haltlab.engine.symmetry import cpu_locals
from haltlab.kernel.cpuhp import cpuhp_report_idle_dead
from haltlab.kernel.sched import schedule

__all__ = ["Others", "do_idle", "busy_task", "irqsoff_task", "tick_handler", "OTHERS"]


class Others(enum.StrEnum):
    """What the CPUs that do not panic are doing when the panic starts."""

    IDLE = "idle"
    BUSY = "busy"
    IRQSOFF = "irqsoff"

_FOREVER_NS = 10**15   # one delay that only interrupts end, instead of a loop of short ones


async def do_idle(k) -> None:
    if k.sched is not None:
        return await _do_idle_hotplug(k)
    while True:
        await set_cpu_state(tick_enabled=False)      # tick_nohz_idle_stop_tick()
        await safe_halt()                             # arch_cpu_idle()


@cpu_locals(cpu=("cpu",))
async def _do_idle_hotplug(k) -> None:
    """`do_idle()` with what CPU hotplug needs of it (runs that take CPUs down
    only, so the panic runs keep their schedule points): with interrupts off,
    leave for `schedule()` when a thread was woken, or die when this CPU is
    offline (`cpuhp_report_idle_dead()`, `arch_cpu_idle_dead()`); else halt,
    waking with interrupts enabled (`safe_halt()` stands for arm64's `wfi`
    with the interrupt pending)."""
    cpu = smp_processor_id()
    while True:
        await local_irq_disable()
        if await this_cpu_read(k.sched.need_resched[cpu]):
            await local_irq_enable()
            await schedule(k)
            continue
        if not await READ_ONCE(k.cpu_online_mask) >> cpu & 1:
            await cpuhp_report_idle_dead(k)
            await k.arch.arch_cpu_idle_dead(k)       # never returns
        await set_cpu_state(tick_enabled=False)      # tick_nohz_idle_stop_tick()
        await safe_halt()                             # arch_cpu_idle()


async def busy_task(k) -> None:
    await set_cpu_state(tick_enabled=True)
    while True:
        await ndelay(_FOREVER_NS)


async def irqsoff_task(k) -> None:
    await set_cpu_state(tick_enabled=True)
    await local_irq_disable()
    while True:
        await ndelay(_FOREVER_NS)


@cpu_locals(cpu=("cpu",))
async def tick_handler(k, cpu: int) -> None:
    """`tick_sched_timer()`: jiffies, scheduler tick, timers; a fixed cost here."""
    await ndelay(k.machine.cost_ns("tick_handler_ns"))


OTHERS = {Others.IDLE.value: do_idle, Others.BUSY.value: busy_task, Others.IRQSOFF.value: irqsoff_task}
"""The task each `Others` runs, keyed by value as plain `str` (for option parsers
that match Enum choices by member name); a member looks it up just as well."""
