"""Generic SMP entry points: `smp_send_stop()` and `smp_call_function_single()`.

x86's `smp_send_stop()` is `smp_ops.stop_other_cpus(0)` = `native_stop_other_cpus()`
(`arch/x86/kernel/smp.c`); arm64 is its own `smp_send_stop()`
(`arch/arm64/kernel/smp.c`). Both live under `haltlab.kernel.arch`.

`smp_call_function_single(cpu, func, info, wait=0)` (kernel/smp.c) queues
`func(info)` on `cpu`'s call-single queue and sends it IPI_CALL_FUNC; the
target's handler (`generic_smp_call_function_single_interrupt()` ->
`__flush_smp_call_function_queue()`) runs every queued function. CPU hotplug
uses it for the dying CPU's last word (`cpuhp_report_idle_dead()`). The queue
is one `Var` per CPU holding a tuple of (function, argument).

Shape: 7.1's `include/linux/smp.h`, `arch/x86/include/asm/smp.h` and
kernel/smp.c (the asynchronous call only).
"""

from __future__ import annotations

from haltlab.engine.context import smp_processor_id
from haltlab.engine.ops import lockless_update, send_IPI_mask
from haltlab.engine.symmetry import cpu_locals

__all__ = ["smp_send_stop", "CallSingleQueues", "csd_init", "smp_call_function_single",
           "generic_smp_call_function_single_interrupt", "IPI_CALL_FUNC"]

C_FILE = "include/linux/smp.h"      # the generic declaration (read by report/race_trace.py)
IPI_CALL_FUNC = "IPI_CALL_FUNC"


async def smp_send_stop(k) -> None:
    """Panic path: stop the others without waiting forever (x86 `wait = 0`)."""
    await k.arch.smp_send_stop(k)


class CallSingleQueues:
    def __init__(self, k) -> None:
        self.queue = [k.machine.memory.var(f"call_single_queue[{c}]", ()) for c in range(k.machine.ncpus)]

    def __fingerprint__(self) -> str:
        return "csd"


def csd_init(k) -> CallSingleQueues:
    k.csd = CallSingleQueues(k)
    return k.csd


@cpu_locals(cpu=("cpu",))
async def smp_call_function_single(k, cpu: int, func, info) -> None:
    """Asynchronous (`wait = 0`): queue and kick, or run here if `cpu` is this one."""
    if cpu == smp_processor_id():
        await func(k, info)
        return
    await lockless_update(k.csd.queue[cpu], lambda q: (q + ((func, info),), None), "__smp_call_single_queue()")
    await send_IPI_mask(1 << cpu, IPI_CALL_FUNC)


@cpu_locals(cpu=("cpu",), plain=("entries",))
async def generic_smp_call_function_single_interrupt(k, cpu: int) -> None:
    entries = await lockless_update(k.csd.queue[cpu], lambda q: ((), q), "llist_del_all()")
    for func, info in entries:
        await func(k, info)

