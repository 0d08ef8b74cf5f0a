"""arm64 stop paths: `arch/arm64/kernel/smp.c`.

`smp_send_stop()` sends IPI_CPU_STOP and waits up to a second on the number of
other online CPUs; with Linux kernel commit "arm64: smp: smp_send_stop() and
crash_smp_send_stop() should try non-NMI first" (in v6.12) it then retries with
IPI_CPU_STOP_NMI for 10 ms, if the system runs with pseudo-NMIs (GIC priority
masking); without pseudo-NMIs a CPU with interrupts masked is never stopped and
the panic goes on with it running. The receiver (`local_cpu_stop()`) clears its
online bit and parks in `cpu_park_loop()` with every exception masked.

Between Linux kernel commit d7402513c935 ("arm64: smp: IPI_CPU_STOP and
IPI_CPU_CRASH_STOP should try for NMI") (in v6.7) and v6.12, with pseudo-NMIs
both stop IPIs are sent as pseudo-NMIs (`ipi_should_be_nmi()`): a CPU with
interrupts masked is stopped at once, with no 1 s wait and no retry.

arm64 overrides `panic_smp_self_stop()` with `local_cpu_stop()`, so a second
panicking CPU clears its online bit and is not waited for.

The crash stop (`crash_smp_send_stop()`, kdump or `crash_kexec_post_notifiers`):
since v6.12 it sets `crash_stop` and calls `smp_send_stop()`, whose stop IPIs
then run `ipi_cpu_crash_stop()`; before, it sent its own IPI_CPU_CRASH_STOP and
waited up to 1 s on `waiting_for_crash_ipi`, the receiver decrementing that
counter and leaving its online bit set. The receiver tries `__cpu_try_die()`
(PSCI CPU_OFF, `KernelConfig.hotplug_cpu`), then parks. `machine_crash_shutdown()`
and `machine_kexec()` are `arch/arm64/kernel/machine_kexec.c`'s.

The kexec shutdown (S3; `machine_shutdown()`, arch/arm64/kernel/process.c):
stock `smp_shutdown_nonboot_cpus()` (kernel/cpuhp.py), with this file's part
of it: `__cpu_disable()`, `__cpu_die()` (5.x-6.4: `cpu_wait_death()` and
`op_cpu_kill()`; since 6.5 `arch_cpuhp_cleanup_dead_cpu()`), `cpu_die()` on
the dying CPU and PSCI's `cpu_psci_cpu_die()`/`cpu_psci_cpu_kill()`
(arch/arm64/kernel/psci.c: AFFINITY_INFO polled for up to 100 ms with
`usleep_range(100, 1000)` between polls). S3's patch as the policy
`smp-send-stop`: `smp_send_stop()`, `local_cpu_stop()` calling `cpu_die()`
when `kexec_in_progress` (before its park loop [inferred: the thread
describes the change, only process.c's hunk is quoted]), and a 1 s bound on
`num_online_cpus() > 1`. `machine_kexec()` for a normal kexec BUGs with CPUs
still online.

Abridged: no SDEI, no `crash_save_cpu()` (memory no CPU reads here), no
`machine_kexec_mask_interrupts()`, and of `machine_kexec()`'s WARN only its
message line.

Shape: v6.12 and later (7.1 unchanged here), with the pre-6.12 stops as the
kernels without that commit; names as in that file.
"""

from __future__ import annotations

from haltlab.engine.context import ktime_get_ns, smp_processor_id
from haltlab.engine.memory import cpumask_weight
from haltlab.engine.ops import (
    PSCI_0_2_AFFINITY_LEVEL_OFF, READ_ONCE, WRITE_ONCE, atomic_add_return, clear_bit, local_irq_disable,
    native_halt, ndelay, psci_affinity_info, psci_cpu_off, relocate_kernel, send_IPI_mask, send_NMI_mask,
    spin_until, test_and_set_bit, this_cpu_read,
)
from haltlab.engine.symmetry import cpu_locals
from haltlab.kernel import cpuhp, crash_core, idle
from haltlab.kernel.cpuhp import cpuhp_ap_report_dead
from haltlab.kernel.irq import irq_migrate_all_off_this_cpu
from haltlab.kernel.sched import Task
from haltlab.kernel.timers import jiffies, jiffies_to_msecs, msecs_to_jiffies, usleep_range
from haltlab.kernel.bug import BUG
from haltlab.kernel.kernel import SystemState
from haltlab.kernel.policies import KexecShutdown
from haltlab.kernel.printk import LOGLEVEL_INFO, LOGLEVEL_WARNING, printk, printk_level

__all__ = ["setup_irqs", "smp_send_stop", "local_cpu_stop", "panic_smp_self_stop", "PANIC_NOTIFIER_LINES",
           "crash_smp_send_stop", "ipi_cpu_crash_stop", "machine_crash_shutdown", "machine_kexec",
           "do_handle_IPI", "ipi_should_be_nmi", "C_FILES", "machine_shutdown", "__cpu_disable",
           "cpu_die_wait", "op_cpu_kill", "cpu_psci_cpu_kill", "arch_cpu_idle_dead", "cpu_die",
           "cpu_psci_cpu_die", "idle_task_exit"]

C_FILES = {"machine_crash_shutdown": "arch/arm64/kernel/machine_kexec.c",
           "machine_kexec": "arch/arm64/kernel/machine_kexec.c",
           "machine_shutdown": "arch/arm64/kernel/process.c",
           "_machine_shutdown_smp_send_stop": "arch/arm64/kernel/process.c",
           "cpu_psci_cpu_kill": "arch/arm64/kernel/psci.c", "cpu_psci_cpu_die": "arch/arm64/kernel/psci.c"}

USEC_PER_SEC = 1_000_000
USEC_PER_MSEC = 1_000
# GIC interrupt IDs. Linux gives its IPIs and the arch timer the same GIC
# priority; among equal priorities the GIC takes the lowest ID first (in
# practice; the architecture leaves the choice to the implementation), so the
# machine's "higher priority first" gets -ID. IPI_CPU_STOP is SGI 2 (enum
# ipi_msg_type, arch/arm64/kernel/smp.c); the timer is a PPI (IDs 16-31; 27 is
# the EL1 virtual timer in the Arm Base System Architecture's PPI map), so any
# timer PPI ranks below every SGI.
IPI_RESCHEDULE = 0
IPI_CALL_FUNC = 1
IPI_CPU_STOP = 2
IPI_CPU_CRASH_STOP = 3      # before v6.12; then SGI 3 became IPI_CPU_STOP_NMI
IPI_CPU_STOP_NMI = 3
ARCH_TIMER_PPI = 27
_IPI_NAMES = {IPI_CPU_STOP: "IPI_CPU_STOP", IPI_CPU_CRASH_STOP: "IPI_CPU_CRASH_STOP"}

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
    k.machine.request_irq("IPI_CPU_STOP", -IPI_CPU_STOP, lambda cpu: do_handle_IPI(k, IPI_CPU_STOP))
    k.machine.request_irq("IPI_CPU_CRASH_STOP", -IPI_CPU_CRASH_STOP,
                          lambda cpu: do_handle_IPI(k, IPI_CPU_CRASH_STOP))
    k.machine.request_irq("LOCAL_TIMER", -ARCH_TIMER_PPI, lambda cpu: idle.tick_handler(k, cpu))
    if k.sched is not None:                     # the runs that take CPUs down (kernel/sched.py)
        from haltlab.kernel.sched import IPI_RESCHEDULE as resched, scheduler_ipi
        from haltlab.kernel.smp import IPI_CALL_FUNC as call_func, generic_smp_call_function_single_interrupt
        k.machine.request_irq(resched, -IPI_RESCHEDULE, lambda cpu: scheduler_ipi(k, cpu))
        k.machine.request_irq(call_func, -IPI_CALL_FUNC,
                              lambda cpu: generic_smp_call_function_single_interrupt(k, cpu))
    k.machine.register_nmi_handler(lambda cpu: stop_nmi(k))


def ipi_should_be_nmi(k, ipinr: int) -> bool:
    """Whether `ipinr` goes as a pseudo-NMI: only with GIC priority masking
    (`pseudo_nmi`); since v6.12 only IPI_CPU_STOP_NMI, from d7402513c935 until
    then both stop IPIs."""
    if not k.config.pseudo_nmi:
        return False
    if k.config.has("arm64_stop_irq_then_nmi"):
        return ipinr == IPI_CPU_STOP_NMI
    return k.config.has("arm64_stop_ipis_try_nmi") and ipinr in (IPI_CPU_STOP, IPI_CPU_CRASH_STOP)


@cpu_locals(cpumask=("mask",), plain=("ipinr",))
async def smp_cross_call(k, mask: int, ipinr: int) -> None:
    if ipi_should_be_nmi(k, ipinr):
        await send_NMI_mask(mask)
    else:
        await send_IPI_mask(mask, _IPI_NAMES[ipinr])


@cpu_locals(plain=("ipinr",))
async def do_handle_IPI(k, ipinr: int) -> None:
    """The stop cases of `do_handle_IPI()`: since v6.12 both stop IPIs run the
    crash stop once `crash_stop` is set (read only in runs that can set it,
    `KernelConfig.crash_stop_possible`); before, IPI_CPU_CRASH_STOP had its own."""
    if ipinr == IPI_CPU_CRASH_STOP and not k.config.has("arm64_stop_irq_then_nmi"):
        return await ipi_cpu_crash_stop(k)
    if (k.config.crash_stop_possible and k.config.has("arm64_stop_irq_then_nmi")
            and await READ_ONCE(k.crash_stop)):
        return await ipi_cpu_crash_stop(k)
    await local_cpu_stop(k)


async def stop_nmi(k) -> None:
    """A pseudo-NMI. The machine's NMI carries no IPI number; the only ones these
    runs send are stop IPIs: IPI_CPU_STOP_NMI since v6.12, else IPI_CPU_STOP or
    IPI_CPU_CRASH_STOP sent as NMIs, the crash one once crash_smp_send_stop()
    has run (`cpus_stopped`; a panic sends one kind only)."""
    if k.config.has("arm64_stop_irq_then_nmi"):
        return await do_handle_IPI(k, IPI_CPU_STOP_NMI)
    if k.config.crash_stop_possible and await READ_ONCE(k.cpus_stopped):
        return await do_handle_IPI(k, IPI_CPU_CRASH_STOP)
    await do_handle_IPI(k, IPI_CPU_STOP)


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
    if k.system_state <= SystemState.RUNNING:          # not on a reboot or kexec (D6, mended)
        await printk(k, "SMP: stopping secondary CPUs")
    await smp_cross_call(k, mask, IPI_CPU_STOP)
    await spin_until(lambda: _other_online(k, this_cpu) == 0, timeout_ns=USEC_PER_SEC * 1000,
                     what="num_other_online_cpus() == 0")
    if (_other_online(k, this_cpu) and k.config.pseudo_nmi
            and k.config.has("arm64_stop_irq_then_nmi")):
        mask = await READ_ONCE(k.cpu_online_mask) & ~(1 << this_cpu)
        await printk(k, "SMP: retry stop with NMI for CPUs")
        await smp_cross_call(k, mask, IPI_CPU_STOP_NMI)
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
    if (k.kexec_in_progress is not None and k.policies.kexec_shutdown is KexecShutdown.SMP_SEND_STOP
            and await READ_ONCE(k.kexec_in_progress)):
        await cpu_die(k)                        # S3's patch: never returns
    while True:                                 # cpu_park_loop(): wfe(); wfi();
        await native_halt()


async def panic_smp_self_stop(k) -> None:
    await local_cpu_stop(k)


# --- the crash stop (kdump, crash_kexec_post_notifiers) -------------------------------

async def crash_smp_send_stop(k) -> None:
    """Once only: since v6.12 through `crash_stop` and `smp_send_stop()`."""
    if not k.config.has("arm64_stop_irq_then_nmi"):
        return await _crash_smp_send_stop_pre_6_12(k)
    if await READ_ONCE(k.crash_stop):
        return
    await WRITE_ONCE(k.crash_stop, 1)
    await smp_send_stop(k)


@cpu_locals(cpu=("this_cpu",), cpumask=("mask",))
async def _crash_smp_send_stop_pre_6_12(k) -> None:
    if await READ_ONCE(k.cpus_stopped):
        return
    await WRITE_ONCE(k.cpus_stopped, 1)
    this_cpu = smp_processor_id()
    mask = await READ_ONCE(k.cpu_online_mask) & ~(1 << this_cpu)
    if not mask:
        return                                           # skip_ipi
    await WRITE_ONCE(k.waiting_for_crash_ipi, cpumask_weight(mask))   # num_other_online_cpus()
    await printk(k, "SMP: stopping secondary CPUs")
    await smp_cross_call(k, mask, IPI_CPU_CRASH_STOP)
    if not await spin_until(lambda: k.waiting_for_crash_ipi.value <= 0, timeout_ns=USEC_PER_SEC * 1000,
                            what="atomic_read(&waiting_for_crash_ipi) == 0"):
        await printk(k, "SMP: failed to stop secondary CPUs")


@cpu_locals(cpu=("cpu",))
async def ipi_cpu_crash_stop(k) -> None:
    """Never returns: CPU_OFF, or the park loop."""
    cpu = smp_processor_id()
    k.ghost_add("stopped", cpu)
    if k.config.has("arm64_stop_irq_then_nmi"):
        await local_irq_disable()               # local_daif_mask()
        await clear_bit(cpu, k.cpu_online_mask)     # set_cpu_online(cpu, false)
    else:
        await atomic_add_return(k.waiting_for_crash_ipi, -1)   # atomic_dec(); the online bit stays
        await local_irq_disable()
    k.note_parked(cpu, ktime_get_ns())
    if k.config.hotplug_cpu:
        await psci_cpu_off()                    # __cpu_try_die(): ops->cpu_die()
    while True:                                 # cpu_park_loop(), "just in case"
        await native_halt()


async def machine_crash_shutdown(k) -> None:
    await local_irq_disable()
    await crash_core.crash_smp_send_stop(k)     # "shutdown non-crashing cpus"
    await printk(k, "Starting crashdump kernel...")


async def machine_kexec(k, image: str = "kexec_crash_image") -> None:
    """A normal kexec BUG()s with CPUs still online; a crash kexec WARN()s when
    the crash stop left CPUs running (`smp_crash_stop_failed()`). Then "Bye!",
    and the jump."""
    if image != "kexec_crash_image":
        if cpumask_weight(await READ_ONCE(k.cpu_online_mask)) > 1:
            await BUG(k, "arch/arm64/kernel/machine_kexec.c:183", "BUG_ON(num_online_cpus() > 1) in machine_kexec()")
        k.ghost_add("kexec_jump", smp_processor_id())
        k.mark("machine_kexec", ktime_get_ns())
        await printk_level(k, LOGLEVEL_INFO, "Bye!")
        await local_irq_disable()                   # local_daif_mask()
        await relocate_kernel(image)
    if k.config.has("arm64_stop_irq_then_nmi"):
        failed = bool(await READ_ONCE(k.cpu_online_mask) & ~(1 << smp_processor_id()))
    else:
        failed = await READ_ONCE(k.waiting_for_crash_ipi) > 0
    if failed:
        await printk(k, "Some CPUs may be stale, kdump will be unreliable.")
    await printk(k, "Bye!")
    await relocate_kernel("kexec_crash_image")


# --- kexec: machine_shutdown() and CPU hotplug's arm64 part ---------------------------------

async def machine_shutdown(k) -> None:
    """arch/arm64/kernel/process.c: `smp_shutdown_nonboot_cpus(reboot_cpu)`,
    or the policy chosen (kernel/policies.py, `kexec_shutdown`)."""
    shutdown = k.policies.kexec_shutdown
    if shutdown is KexecShutdown.HOTPLUG:
        await cpuhp.smp_shutdown_nonboot_cpus(k, 0)
    elif shutdown is KexecShutdown.SMP_SEND_STOP:
        await _machine_shutdown_smp_send_stop(k)
    else:
        await cpuhp.smp_shutdown_nonboot_cpus_parallel(
            k, 0, barrier=shutdown is KexecShutdown.PARALLEL_HOTPLUG)


async def _machine_shutdown_smp_send_stop(k) -> None:
    """S3's patch: "Don't wait forever, but no longer than a second"."""
    await smp_send_stop(k)
    await spin_until(lambda: cpumask_weight(k.cpu_online_mask.value) <= 1,
                     timeout_ns=USEC_PER_SEC * 1000, what="num_online_cpus() > 1 && timeout--")


@cpu_locals(cpu=("cpu",))
async def __cpu_disable(k) -> int:
    """`op_cpu_disable()` (PSCI: 0), topology and NUMA removal (in the dying
    callbacks' cost), `set_cpu_online(cpu, false)`, `ipi_teardown()`,
    `irq_migrate_all_off_this_cpu()`."""
    cpu = smp_processor_id()
    await clear_bit(cpu, k.cpu_online_mask)
    await irq_migrate_all_off_this_cpu(k)
    return 0


@cpu_locals(cpu=("cpu",), plain=("ok", "err"))
async def cpu_die_wait(k, cpu: int) -> None:
    """The control CPU's wait for the dead CPU, by shape: 6.5+'s
    `cpuhp_bp_sync_dead()` then `arch_cpuhp_cleanup_dead_cpu()`, or
    5.x-6.4's `__cpu_die()`."""
    if k.config.has("cpuhp_core_sync_dead"):
        ok = await cpuhp.cpuhp_bp_sync_dead(k, cpu)
        if not ok:
            return
    else:
        ok = await cpuhp.cpu_wait_death(k, cpu)
        if not ok:
            await printk(k, f"CPU{cpu}: cpu didn't die")       # pr_crit
            return
    err = await op_cpu_kill(k, cpu)
    if err:
        await printk(k, f"CPU{cpu} may not have shut down cleanly: {err}")


async def op_cpu_kill(k, cpu: int) -> int:
    return await cpu_psci_cpu_kill(k, cpu)


@cpu_locals(cpu=("cpu",), plain=("start", "end", "err"))
async def cpu_psci_cpu_kill(k, cpu: int) -> int:
    """Poll AFFINITY_INFO until the firmware reports the core off."""
    start = jiffies(k)
    end = start + msecs_to_jiffies(k, 100)
    while True:
        err = await psci_affinity_info(cpu)
        if err == PSCI_0_2_AFFINITY_LEVEL_OFF:
            await printk_level(k, LOGLEVEL_INFO, f"psci: CPU{cpu} killed (polled {jiffies_to_msecs(k, jiffies(k) - start)} ms)")
            return 0
        await usleep_range(k, 100, 1000)
        if jiffies(k) >= end:
            break
    await printk_level(k, LOGLEVEL_WARNING, f"psci: CPU{cpu} may not have shut down cleanly (AFFINITY_INFO reports {err})")
    return -110


async def arch_cpu_idle_dead(k) -> None:
    await cpu_die(k)


@cpu_locals(cpu=("cpu",))
async def idle_task_exit(k) -> None:
    """kernel/sched/core.c: `BUG_ON(current != this_rq()->idle)` (read in 5.17
    and 6.1; the stop IPI of S3's patch may interrupt any task)."""
    cpu = smp_processor_id()
    if k.sched is not None and await this_cpu_read(k.sched.curr[cpu]) is not Task.IDLE:
        await BUG(k, "kernel/sched/core.c", "BUG_ON(current != this_rq()->idle) in idle_task_exit()")


async def cpu_die(k) -> None:
    """The dying CPU's last steps (arch/arm64/kernel/smp.c); never returns."""
    await idle_task_exit(k)
    await local_irq_disable()                   # local_daif_mask()
    await cpuhp_ap_report_dead(k)               # cpu_report_death() before 6.5
    await cpu_psci_cpu_die(k)


async def cpu_psci_cpu_die(k) -> None:
    """PSCI CPU_OFF. From the call on, the CPU runs firmware (in its own
    memory), not the kernel: the ghost fact `cpu_off` and the mark are set
    here, where PSCI §5.5.2's preconditions must hold. The firmware then
    takes `psci_cpu_off_ns` to power the core down, during which AFFINITY_INFO
    still reports it on."""
    k.mark(f"cpu_off:{smp_processor_id()}", ktime_get_ns())
    k.ghost_add("cpu_off", smp_processor_id())
    await ndelay(k.machine.cost_ns("psci_cpu_off_ns"))
    await psci_cpu_off()
