"""Device interrupts and where they go: the GIC's routing, and
`irq_migrate_all_off_this_cpu()` when a CPU goes down.

A GICv3 distributor routes each shared peripheral interrupt (SPI) to one CPU
(`GICD_IROUTER<n>`, written by `gic_set_affinity()` when the kernel changes an
interrupt's effective affinity). The machine's devices are one interrupt per
CPU, SPI 32+n routed to CPU n at boot, as a multi-queue NVMe or network
driver spreads its queues (`--irqs` sets how many; they are handed out round
robin). Each has an affinity mask: its CPU and the next one (an interrupt
irqbalance placed on a pair of CPUs sharing a cache, an assumption: the
threads name no device), or, for `managed` interrupts
(`irq_create_affinity_masks()`), its own CPU only.

`irq_migrate_all_off_this_cpu()` (kernel/irq/cpuhotplug.c, 7.1; the same
rules since 4.x), run by the dying CPU in `take_cpu_down()` after it has
cleared its online bit: for each interrupt whose effective affinity is this
CPU, if its affinity mask still holds an online CPU, route it to the first
one (`irq_do_set_affinity()` -> `cpumask_any_and()`); if not, a managed
interrupt is shut down, and any other has its affinity broken to all online
CPUs (a `pr_debug_ratelimited()`, not printed). The GIC driver routes to
the first online CPU of the mask (`gic_set_affinity()`). PSCI §5.5.2 (DEN0022) asks the OS
to have done this before a CPU calls CPU_OFF: the property
`checks.no_irq_routed_to_dead_cpu` reads it.

The routing is one `Var` holding a tuple (target CPU per SPI, -1 when shut
down), written one interrupt at a time as the kernel writes the registers.
"""

from __future__ import annotations

from haltlab.engine.context import smp_processor_id
from haltlab.engine.memory import for_each_cpu
from haltlab.engine.ops import READ_ONCE, lockless_update, ndelay
from haltlab.engine.symmetry import cpu_locals

__all__ = ["IrqRouting", "irq_init", "irq_migrate_all_off_this_cpu", "spis_routed_to", "IRQ_SHUTDOWN"]

IRQ_SHUTDOWN = -1
SPI_BASE = 32          # GIC INTIDs 32-1019 are SPIs; Linux numbers its irqs otherwise, the trace uses the INTID


class IrqRouting:
    def __init__(self, k, nr_irqs: int, managed: bool) -> None:
        ncpus = k.machine.ncpus
        self.managed = managed
        self.affinity = tuple((1 << (i % ncpus)) if managed else (1 << (i % ncpus)) | (1 << ((i + 1) % ncpus))
                              for i in range(nr_irqs))
        self.gicd_irouter = k.machine.memory.var("GICD_IROUTER", tuple(i % ncpus for i in range(nr_irqs)))

    def __fingerprint__(self) -> str:
        return "irq"


def irq_init(k, nr_irqs: int, managed: bool = False) -> IrqRouting:
    k.irq = IrqRouting(k, nr_irqs, managed)
    return k.irq


def spis_routed_to(k, cpu: int) -> tuple[int, ...]:
    """The INTIDs routed to `cpu` now (for the properties and the trace)."""
    if getattr(k, "irq", None) is None:
        return ()
    return tuple(SPI_BASE + i for i, t in enumerate(k.irq.gicd_irouter.value) if t == cpu)


def _route(i: int, target: int):
    return lambda routes: (routes[:i] + (target,) + routes[i + 1:], None)


@cpu_locals(cpu=("cpu", "target"), cpumask=("online",), plain=("i", "routes"))
async def irq_migrate_all_off_this_cpu(k) -> None:
    cpu = smp_processor_id()
    routes = await READ_ONCE(k.irq.gicd_irouter)
    online = await READ_ONCE(k.cpu_online_mask)
    for i, t in enumerate(routes):
        if t != cpu:
            continue
        allowed = k.irq.affinity[i] & online
        if allowed:
            target = next(for_each_cpu(allowed))
        elif k.irq.managed:
            target = IRQ_SHUTDOWN                        # irq_shutdown_and_deactivate()
        else:
            target = next(for_each_cpu(online))          # affinity broken (pr_debug: not printed)
        await ndelay(k.machine.cost_ns("irq_set_affinity_ns"))
        await lockless_update(k.irq.gicd_irouter, _route(i, target), f"GICD_IROUTER[{SPI_BASE + i}] = {target}")
