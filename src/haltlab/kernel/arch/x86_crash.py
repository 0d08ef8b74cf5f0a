"""x86 crash stop: `arch/x86/kernel/crash.c` and the NMI shoot-down of
`arch/x86/kernel/reboot.c` (7.1).

`crash_smp_send_stop()` (once, its static `cpus_stopped`) calls
`smp_ops.crash_stop_other_cpus` = `kdump_nmi_shootdown_cpus()` (CONFIG_CRASH_DUMP,
as distribution kernels build) -> `nmi_shootdown_cpus(kdump_nmi_callback)`: note
`crashing_cpu`, set `waiting_for_crash_ipi = num_online_cpus() - 1`, install
`crash_nmi_callback()` as the emergency NMI handler (it runs before, and instead
of, every other NMI handler), send an NMI to all but self at once (no IRQ
first, unlike `smp_send_stop()`), and wait up to 1000 ms for the counter. A CPU
with interrupts off is stopped as fast as one without. Each other CPU, in the
NMI: interrupts off, `kdump_nmi_callback()` (`disable_local_APIC()`), decrement
the counter, halt. Its online bit stays set: nothing in this path clears it.

The wait is `while (waiting_for_crash_ipi > 0 && msecs) { mdelay(1); msecs--; }`:
the model takes the first test and the first `mdelay(1)` as they are, then the
other 999 steps as one wait that ends when the counter reaches 0 (not at the
next whole millisecond, so up to 1 ms early, and only when a CPU takes longer
than the first millisecond to answer).

Older kernels (6.1 among them) registered `crash_nmi_callback()` with
`register_nmi_handler(NMI_LOCAL, ..., NMI_FLAG_FIRST)`, first in the list
rather than alone, and the early return on `crash_ipi_issued` is not in every
kernel; in `panic()` only `crash_smp_send_stop()` calls the shoot-down, and that
runs once, so the shapes behave alike here and the model has the 7.1 one.

Abridged: no `crash_save_cpu()`, Intel PT, SEV or virtualization steps (no
host, no PT), no IO-APIC, HPET or encrypted-guest steps in
`native_machine_crash_shutdown()`, none with a cost (the profile has no key for
them).
"""

from __future__ import annotations

from haltlab.engine.context import ktime_get_ns, smp_processor_id
from haltlab.engine.memory import cpumask_weight
from haltlab.engine.ops import (
    READ_ONCE, WRITE_ONCE, atomic_add_return, local_irq_disable, mdelay, native_halt,
    relocate_kernel, send_NMI_mask, set_cpu_state, spin_until,
)
from haltlab.engine.symmetry import cpu_locals
from haltlab.kernel import crash_core
from haltlab.kernel.arch.x86_kexec import machine_kexec_reboot

__all__ = ["machine_crash_shutdown", "native_machine_crash_shutdown", "machine_kexec", "crash_smp_send_stop",
           "kdump_nmi_shootdown_cpus", "nmi_shootdown_cpus", "crash_nmi_callback", "kdump_nmi_callback",
           "C_FILES"]

# Where each function is in the kernel (report/race_trace.py reads C_FILES).
C_FILES = {"native_machine_crash_shutdown": "arch/x86/kernel/crash.c",
           "machine_crash_shutdown": "arch/x86/kernel/reboot.c",
           "machine_kexec": "arch/x86/kernel/machine_kexec_64.c",
           "crash_smp_send_stop": "arch/x86/kernel/crash.c",
           "kdump_nmi_shootdown_cpus": "arch/x86/kernel/crash.c",
           "kdump_nmi_callback": "arch/x86/kernel/crash.c",
           "nmi_shootdown_cpus": "arch/x86/kernel/reboot.c",
           "crash_nmi_callback": "arch/x86/kernel/reboot.c"}

NSEC_PER_MSEC = 1_000_000
CRASH_WAIT_MS = 1000        # nmi_shootdown_cpus(): "Wait at most a second for the other cpus to stop"


async def machine_crash_shutdown(k) -> None:
    """`machine_ops.crash_shutdown` = `native_machine_crash_shutdown()`."""
    await native_machine_crash_shutdown(k)


async def native_machine_crash_shutdown(k) -> None:
    await local_irq_disable()                     # "The kernel is broken so disable interrupts"
    await crash_core.crash_smp_send_stop(k)       # crash_smp_send_stop(), with the stop's marks
    await set_cpu_state(apic_enabled=False)       # lapic_shutdown()


async def machine_kexec(k, image: str = "kexec_crash_image") -> None:
    """Prints nothing on x86; ends in `relocate_kernel()`. A normal kexec
    (`kexec_image`) goes on into the new kernel (x86_kexec, S4)."""
    if image != "kexec_crash_image":
        return await machine_kexec_reboot(k)
    await relocate_kernel("kexec_crash_image")


async def crash_smp_send_stop(k) -> None:
    """Overrides the weak one in kernel/panic.c: once only (`cpus_stopped`)."""
    if await READ_ONCE(k.cpus_stopped):
        return
    await kdump_nmi_shootdown_cpus(k)             # smp_ops.crash_stop_other_cpus
    await WRITE_ONCE(k.cpus_stopped, 1)


async def kdump_nmi_shootdown_cpus(k) -> None:
    await nmi_shootdown_cpus(k)                   # nmi_shootdown_cpus(kdump_nmi_callback)
    await set_cpu_state(apic_enabled=False)       # disable_local_APIC()


@cpu_locals(cpu=("this_cpu",), cpumask=("online",))
async def nmi_shootdown_cpus(k) -> None:
    """Stop every other CPU with an NMI; its callback is always
    `kdump_nmi_callback()` here (the `NULL` callback is the restart path's)."""
    await local_irq_disable()
    if await READ_ONCE(k.crash_ipi_issued):       # WARN_ON_ONCE(crash_ipi_issued)
        return
    this_cpu = smp_processor_id()
    await WRITE_ONCE(k.crashing_cpu, this_cpu)
    online = await READ_ONCE(k.cpu_online_mask)
    await WRITE_ONCE(k.waiting_for_crash_ipi, cpumask_weight(online) - 1)
    await WRITE_ONCE(k.emerg_handler, True)       # set_emergency_nmi_handler(NMI_LOCAL, ...)
    await send_NMI_mask(k.all_cpus_mask & ~(1 << this_cpu))   # apic_send_IPI_allbutself(NMI_VECTOR)
    await WRITE_ONCE(k.crash_ipi_issued, 1)       # "Kick CPUs looping in NMI context"
    if await READ_ONCE(k.waiting_for_crash_ipi) > 0:
        await mdelay(1)
        await spin_until(lambda: k.waiting_for_crash_ipi.value <= 0,
                         timeout_ns=(CRASH_WAIT_MS - 1) * NSEC_PER_MSEC,
                         what="atomic_read(&waiting_for_crash_ipi) == 0")
    # "Leave the nmi callback set, shootdown is a one-time thing."


@cpu_locals(cpu=("cpu",))
async def crash_nmi_callback(k) -> None:
    """The emergency NMI handler. Never returns on a CPU other than the
    crashing one: it halts inside the NMI, so later NMIs stay latched."""
    cpu = smp_processor_id()
    if cpu == await READ_ONCE(k.crashing_cpu):
        return                                    # NMI_HANDLED: the crashing CPU goes on
    k.ghost_add("stopped", cpu)
    await local_irq_disable()
    await kdump_nmi_callback(k)                   # shootdown_callback(cpu, regs)
    await atomic_add_return(k.waiting_for_crash_ipi, -1)   # atomic_dec()
    k.note_parked(cpu, ktime_get_ns())
    await native_halt()                           # "Assume hlt works"
    await spin_until(lambda: False, what="for (;;) cpu_relax()")


async def kdump_nmi_callback(k) -> None:
    """`crash_save_cpu()` (abridged), then `disable_local_APIC()`."""
    await set_cpu_state(apic_enabled=False)
