"""x86 stop paths: `arch/x86/kernel/smp.c`, `process.c`, `nmi.c`.

`native_stop_other_cpus()` as reworked by Linux kernel commit 1f5e7eb7868e
("x86/smp: Make stop_other_cpus() more robust") (in v6.5), with the older loop
(wait on `num_online_cpus()`, which a stopping CPU decrements *first*) when that
commit is absent. `smp_kick_mwait_play_dead()` runs only in the runs that model
offline CPUs (the x86 kexec reboot, x86_kexec). Abridged: no `reboot_force`, no WBINVD (no `cache_state_incoherent` CPUs), no
`cpu_emergency_disable_virtualization()` (not a host).

With `nonmi_ipi` on the command line (`KernelConfig.smp_no_nmi_ipi`) no NMI is
sent, but the stopping CPU still waits its 10 ms after the REBOOT stage: "In any
case try to wait for the other CPUs to stop", in the 6.5+ code and before it
since Linux kernel commit 747d5a1bf293 ("x86/reboot: Always use NMI fallback when
shutdown via reboot vector IPI fails") (in v5.4).

The crash (kdump) stop, `crash_smp_send_stop()`, is in `x86_crash`.

x86 does not override `panic_smp_self_stop()`: a second panicking CPU spins with
interrupts off, so REBOOT_VECTOR cannot reach it and the stopping CPU waits the
full second before the NMI stage (kernel-facts §1.2, [inferred] there; the model
shows it).
"""

from __future__ import annotations

from haltlab.engine.context import ktime_get_ns, smp_processor_id
from haltlab.engine.memory import cpumask_weight
from haltlab.engine.ops import (
    READ_ONCE, WRITE_ONCE, atomic_try_cmpxchg, clear_bit, local_irq_disable, local_irq_restore,
    local_irq_save, native_halt,
    ndelay, send_IPI_mask, send_NMI_mask, set_cpu_state, spin_until,
)
from haltlab.engine.symmetry import cpu_locals
from haltlab.kernel import idle
from haltlab.kernel.arch import x86_park
from haltlab.kernel.arch.x86_kexec import native_machine_shutdown as machine_shutdown, smp_kick_mwait_play_dead
from haltlab.kernel.arch.x86_crash import (crash_nmi_callback, crash_smp_send_stop, machine_crash_shutdown,
                                          machine_kexec)
from haltlab.kernel.printk import printk

__all__ = ["setup_irqs", "smp_send_stop", "native_stop_other_cpus",
           "stop_this_cpu", "panic_smp_self_stop", "do_nmi", "PANIC_NOTIFIER_LINES",
           "crash_smp_send_stop", "machine_crash_shutdown", "machine_kexec", "machine_shutdown"]

# The C file each function mirrors where it is not the docstring's first,
# arch/x86/kernel/smp.c (read by the explorer's trace view, report/race_trace.py).
C_FILES = {"stop_this_cpu": "arch/x86/kernel/process.c", "do_nmi": "arch/x86/kernel/nmi.c",
           "panic_smp_self_stop": "kernel/panic.c"}

USEC_PER_SEC = 1_000_000
USEC_PER_MSEC = 1_000
# arch/x86/include/asm/irq_vectors.h. The local APIC takes the pending vector of
# the highest priority class first (vector >> 4), which the machine's
# "higher number first" rule follows.
REBOOT_VECTOR = 0xF8
LOCAL_TIMER_VECTOR = 0xEC

# What x86's panic notifier (dump_kernel_offset(), arch/x86/kernel/setup.c)
# printed in the lab's Debian 6.1 guest, KASLR on.
PANIC_NOTIFIER_LINES = ("Kernel Offset: 0x1ae00000 from 0xffffffff81000000 "
                        "(relocation range: 0xffffffff80000000-0xffffffffbfffffff)",)


def setup_irqs(k) -> None:
    k.machine.request_irq("REBOOT", REBOOT_VECTOR, lambda cpu: sysvec_reboot(k))
    k.machine.request_irq("LOCAL_TIMER", LOCAL_TIMER_VECTOR, lambda cpu: idle.tick_handler(k, cpu))
    k.machine.register_nmi_handler(lambda cpu: do_nmi(k))


async def smp_send_stop(k) -> None:
    await native_stop_other_cpus(k, wait=False)


@cpu_locals(cpu=("this_cpu", "_"), cpumask=("others", "remaining"))
async def native_stop_other_cpus(k, wait: bool) -> None:
    if not k.config.has("stop_other_cpus_robust"):
        return await _native_stop_other_cpus_pre_6_5(k, wait)
    this_cpu = smp_processor_id()
    ok, _ = await atomic_try_cmpxchg(k.stopping_cpu, -1, this_cpu)
    if not ok:
        return                          # only the first caller stops the others
    if k.mwait_dead is not None and await READ_ONCE(k.kexec_in_progress):
        await smp_kick_mwait_play_dead(k)
    others = await READ_ONCE(k.cpu_online_mask) & ~(1 << this_cpu)
    await WRITE_ONCE(k.cpus_stop_mask, others)
    if others:
        await send_IPI_mask(k.all_cpus_mask & ~(1 << this_cpu), "REBOOT")   # apic_send_IPI_allbutself
        await spin_until(lambda: k.cpus_stop_mask.value == 0, timeout_ns=USEC_PER_SEC * 1000,
                         what="cpumask_empty(&cpus_stop_mask)")
    remaining = await READ_ONCE(k.cpus_stop_mask)
    if remaining:                       # "if the REBOOT_VECTOR didn't work, try with the NMI"
        if not k.config.smp_no_nmi_ipi:
            await WRITE_ONCE(k.nmi_stop_registered, True)   # register_stop_handler()
            await printk(k, "Shutting down cpus with NMI")   # pr_emerg(), no pr_fmt in smp.c
            await send_NMI_mask(remaining)
        # "In any case try to wait for the other CPUs to stop": nonmi_ipi too.
        await spin_until(lambda: k.cpus_stop_mask.value == 0,
                         timeout_ns=None if wait else USEC_PER_MSEC * 10 * 1000,
                         what="cpumask_empty(&cpus_stop_mask)")
    await _disable_local_apic_and_clear(k)


@cpu_locals(cpu=("this_cpu", "_"))
async def _native_stop_other_cpus_pre_6_5(k, wait: bool) -> None:
    this_cpu = smp_processor_id()

    def others_online() -> bool:
        return cpumask_weight(k.cpu_online_mask.value) > 1

    if await READ_ONCE(k.cpu_online_mask) & ~(1 << this_cpu):
        ok, _ = await atomic_try_cmpxchg(k.stopping_cpu, -1, this_cpu)
        if not ok:
            return                                # "did someone beat us here?"
        await send_IPI_mask(k.all_cpus_mask & ~(1 << this_cpu), "REBOOT")
        await spin_until(lambda: not others_online(), timeout_ns=USEC_PER_SEC * 1000,
                         what="num_online_cpus() == 1")
    if others_online():
        if not k.config.smp_no_nmi_ipi:
            await WRITE_ONCE(k.nmi_stop_registered, True)
            await printk(k, "Shutting down cpus with NMI")   # pr_emerg(), no pr_fmt in smp.c
            await send_NMI_mask(k.all_cpus_mask & ~(1 << this_cpu))
        await spin_until(lambda: not others_online(),        # in any case, as 6.5+
                         timeout_ns=None if wait else USEC_PER_MSEC * 10 * 1000,
                         what="num_online_cpus() == 1")
    await _disable_local_apic_and_clear(k)


async def _disable_local_apic_and_clear(k) -> None:
    """The stopping CPU disables its *own* local APIC too, which masks its LAPIC
    timer: after `smp_send_stop()` no tick reaches the panicking CPU."""
    flags = await local_irq_save()
    await set_cpu_state(apic_enabled=False)       # disable_local_APIC()
    await ndelay(k.machine.cost_ns("stop_this_cpu_ns"))   # mcheck_cpu_clear()
    await local_irq_restore(flags)
    await WRITE_ONCE(k.cpus_stop_mask, 0)         # cpumask_clear(&cpus_stop_mask)


async def sysvec_reboot(k) -> None:
    """REBOOT_VECTOR: `apic_eoi(); stop_this_cpu()`."""
    await stop_this_cpu(k)


async def do_nmi(k) -> None:
    """The NMI path: the emergency handler `crash_nmi_callback()` alone once the
    crash shoot-down installed it (x86_crash; tested only in runs that can take
    that path, `KernelConfig.crash_stop_possible`), else `smp_stop_nmi_callback()`
    if registered (NMI_FLAG_FIRST)."""
    if k.config.crash_stop_possible and await READ_ONCE(k.emerg_handler):
        return await crash_nmi_callback(k)
    if not await READ_ONCE(k.nmi_stop_registered):
        return                                    # an unknown NMI: nothing to do here
    if smp_processor_id() == await READ_ONCE(k.stopping_cpu):
        return
    await stop_this_cpu(k)


@cpu_locals(cpu=("cpu",))
async def stop_this_cpu(k) -> None:
    """Never returns: the CPU halts with interrupts off; only NMIs wake it."""
    cpu = smp_processor_id()
    k.ghost_add("stopped", cpu)
    await local_irq_disable()
    await clear_bit(cpu, k.cpu_online_mask)           # set_cpu_online(cpu, false)
    await set_cpu_state(apic_enabled=False)           # disable_local_APIC()
    await ndelay(k.machine.cost_ns("stop_this_cpu_ns"))   # mcheck_cpu_clear()
    if k.park is not None:
        await x86_park.park_count_in(k)               # the review's count, before the stopper may go on
    if k.config.has("stop_other_cpus_robust"):
        await clear_bit(cpu, k.cpus_stop_mask)        # "I'm done": the last write
    k.note_parked(cpu, ktime_get_ns())
    if k.park is not None and await READ_ONCE(k.kexec_in_progress):
        await x86_park.cpu_park(k)                    # S4: leaves for the new kernel, unless it stays out
    while True:
        await native_halt()


async def panic_smp_self_stop(k) -> None:
    """The weak default, kept by x86: spin with interrupts off, forever."""
    await spin_until(lambda: False, what="while (1) cpu_relax()")
