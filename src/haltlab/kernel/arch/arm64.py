"""arm64 stop paths: `arch/arm64/kernel/smp.c`.

`smp_send_stop()` sends IPI_CPU_STOP and waits up to a second on the number of
other online CPUs; with Linux kernel commit "arm64: smp: smp_send_stop() and
crash_smp_send_stop() should try non-NMI first" (in v6.12) it then retries with
IPI_CPU_STOP_NMI for 10 ms, if the system runs with pseudo-NMIs (GIC priority
masking); without pseudo-NMIs a CPU with interrupts masked is never stopped and
the panic goes on with it running. The receiver (`local_cpu_stop()`) clears its
online bit and parks in `cpu_park_loop()` with every exception masked.

arm64 overrides `panic_smp_self_stop()` with `local_cpu_stop()`, so a second
panicking CPU clears its online bit and is not waited for. Abridged: no SDEI, no
crash-stop variant (no kdump in these runs).

Shape: v6.12 and later (7.1 unchanged here), with the pre-6.12 IPI-only stop as
the kernels without that commit; names as in that file.
"""

from __future__ import annotations

from haltlab.engine.context import ktime_get_ns, smp_processor_id
from haltlab.engine.memory import cpumask_weight
from haltlab.engine.ops import (
    READ_ONCE, clear_bit, local_irq_disable, native_halt, send_IPI_mask, send_NMI_mask,
    spin_until, test_and_set_bit,
)
from haltlab.engine.symmetry import cpu_locals
from haltlab.kernel import idle
from haltlab.kernel.printk import printk

__all__ = ["setup_irqs", "smp_send_stop", "local_cpu_stop", "panic_smp_self_stop", "PANIC_NOTIFIER_LINES"]

USEC_PER_SEC = 1_000_000
USEC_PER_MSEC = 1_000
# GIC interrupt IDs. Linux gives its IPIs and the arch timer the same GIC
# priority; among equal priorities the GIC takes the lowest ID first (in
# practice; the architecture leaves the choice to the implementation), so the
# machine's "higher priority first" gets -ID. IPI_CPU_STOP is SGI 2 (enum
# ipi_msg_type, arch/arm64/kernel/smp.c); the timer is a PPI (IDs 16-31; 27 is
# the EL1 virtual timer in the Arm Base System Architecture's PPI map), so any
# timer PPI ranks below every SGI.
IPI_CPU_STOP = 2
ARCH_TIMER_PPI = 27

# arm64's panic notifier (arm64_panic_block_dump(), arch/arm64/kernel/setup.c):
# dump_kernel_offset() (two lines with KASLR), dump_cpu_features(),
# dump_mem_limit(). The formats are the kernel's; the values are placeholders
# of typical width (only the line count and length reach the model).
PANIC_NOTIFIER_LINES = (
    "Kernel Offset: 0x2d1a0e000000 from 0xffff800080000000",
    "PHYS_OFFSET: 0x40000000",
    "CPU features: 0x00,00000017,80b2b240,4642720b",
    "Memory Limit: none",
)


def setup_irqs(k) -> None:
    k.machine.request_irq("IPI_CPU_STOP", -IPI_CPU_STOP, lambda cpu: local_cpu_stop(k))
    k.machine.request_irq("LOCAL_TIMER", -ARCH_TIMER_PPI, lambda cpu: idle.tick_handler(k, cpu))
    k.machine.register_nmi_handler(lambda cpu: local_cpu_stop(k))   # IPI_CPU_STOP_NMI


def _other_online(k, this_cpu: int) -> int:
    return cpumask_weight(k.cpu_online_mask.value & ~(1 << this_cpu))


@cpu_locals(cpu=("this_cpu",), cpumask=("mask",))
async def smp_send_stop(k) -> None:
    this_cpu = smp_processor_id()
    if not (await READ_ONCE(k.cpu_online_mask) & ~(1 << this_cpu)):
        return
    if k.config.has("arm64_stop_irq_then_nmi") and await test_and_set_bit(0, k.stop_in_progress):
        return                                           # only the first caller proceeds
    mask = await READ_ONCE(k.cpu_online_mask) & ~(1 << this_cpu)
    await printk(k, "SMP: stopping secondary CPUs")
    await send_IPI_mask(mask, "IPI_CPU_STOP")
    await spin_until(lambda: _other_online(k, this_cpu) == 0, timeout_ns=USEC_PER_SEC * 1000,
                     what="num_other_online_cpus() == 0")
    if (_other_online(k, this_cpu) and k.config.pseudo_nmi
            and k.config.has("arm64_stop_irq_then_nmi")):
        mask = await READ_ONCE(k.cpu_online_mask) & ~(1 << this_cpu)
        await printk(k, "SMP: retry stop with NMI for CPUs")
        await send_NMI_mask(mask)
        await spin_until(lambda: _other_online(k, this_cpu) == 0, timeout_ns=USEC_PER_MSEC * 10 * 1000,
                         what="num_other_online_cpus() == 0")
    if _other_online(k, this_cpu):
        await printk(k, "SMP: failed to stop secondary CPUs")


@cpu_locals(cpu=("cpu",))
async def local_cpu_stop(k) -> None:
    cpu = smp_processor_id()
    k.ghost_add("stopped", cpu)
    await clear_bit(cpu, k.cpu_online_mask)     # set_cpu_online(cpu, false)
    await local_irq_disable()                   # local_daif_mask()
    k.note_parked(cpu, ktime_get_ns())
    while True:                                 # cpu_park_loop(): wfe(); wfi();
        await native_halt()


async def panic_smp_self_stop(k) -> None:
    await local_cpu_stop(k)
