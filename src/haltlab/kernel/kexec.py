"""`kernel_kexec()`: from `reboot(LINUX_REBOOT_CMD_KEXEC)` to the jump.

kernel/kexec_core.c, for a kexec without `preserve_context` (the usual one):
`kexec_in_progress = true`, `kernel_restart_prepare("kexec reboot")` (reboot
notifiers, `system_state = SYSTEM_RESTART`, `device_shutdown()`),
`migrate_to_reboot_cpu()`, `syscore_shutdown()`, `cpu_hotplug_enable()`,
`pr_notice("Starting new kernel")`, `machine_shutdown()`,
`kmsg_dump(KMSG_DUMP_SHUTDOWN)`, `machine_kexec(kexec_image)`.

The model starts with the task already on the reboot CPU (CPU 0, so
`migrate_to_reboot_cpu()` has nothing to do) and keeps what S3 measures,
"Starting new kernel" to "Bye!": `machine_shutdown()` and `machine_kexec()`'s
check. `kernel_restart_prepare()` and `syscore_shutdown()` are not modelled
(their time is the devices', not the CPUs'; S3 and the lab measure from the
line after them). `freeze_processes()`, which 5.10-7.1 call only for a
`preserve_context` kexec (CONFIG_KEXEC_JUMP), is an option here, as S3's
review suggested hoisting it: it freezes the user tasks before the shutdown
(kernel/power/process.c: each task is kicked and enters the refrigerator at
its next return to user space; the freezer sleeps `usleep_range(sleep / 2,
sleep)`, from 1 ms, between passes until none is left).

Shape: kernel/kexec_core.c of 7.1 (the same sequence in 5.10).
"""

from __future__ import annotations

from haltlab.engine.context import ktime_get_ns

from haltlab.engine.ops import READ_ONCE, WRITE_ONCE, send_IPI_mask
from haltlab.engine.symmetry import cpu_locals
from haltlab.kernel.kernel import SystemState
from haltlab.kernel.printk import LOGLEVEL_NOTICE, printk_level
from haltlab.kernel.sched import IPI_RESCHEDULE
from haltlab.kernel.timers import usleep_range

__all__ = ["kernel_kexec", "freeze_processes", "KexecState", "kexec_init"]


class KexecState:
    def __init__(self, k, user_cpus: int) -> None:
        mem = k.machine.memory
        k.kexec_in_progress = mem.var("kexec_in_progress", False)
        k.freezing = mem.var("pm_freezing", False)
        k.frozen = mem.var("frozen_tasks", 0)
        self.user_cpus = user_cpus
        self.nr_user_tasks = user_cpus.bit_count()


def kexec_init(k, user_cpus: int) -> KexecState:
    """`user_cpus`: the mask of CPUs that run a user task when kexec starts."""
    k.kexec = KexecState(k, user_cpus)
    return k.kexec


async def kernel_kexec(k, *, freeze: bool = False) -> None:
    if freeze:
        await freeze_processes(k)
    await WRITE_ONCE(k.kexec_in_progress, True)
    k.system_state = SystemState.RESTART                # kernel_restart_prepare()
    await printk_level(k, LOGLEVEL_NOTICE, "Starting new kernel")
    k.mark("machine_shutdown", ktime_get_ns())
    await k.arch.machine_shutdown(k)
    k.mark("machine_shutdown_done", ktime_get_ns())
    await k.arch.machine_kexec(k, "kexec_image")


@cpu_locals(cpumask=("mask",), plain=("sleep_us", "t0"))
async def freeze_processes(k) -> None:
    """Freeze the user tasks: set `pm_freezing`, kick each CPU that runs one
    (`freeze_task()` -> `signal_wake_up()` -> `kick_process()`, an
    IPI_RESCHEDULE), then sleep and re-count until all are frozen."""
    t0 = ktime_get_ns()
    await WRITE_ONCE(k.freezing, True)
    mask = k.kexec.user_cpus                    # the CPUs the user tasks run on (task_cpu())
    if mask:
        await send_IPI_mask(mask, IPI_RESCHEDULE)
    sleep_us = 1000
    while await READ_ONCE(k.frozen) < k.kexec.nr_user_tasks:
        await usleep_range(k, sleep_us // 2, sleep_us)
        sleep_us = min(2 * sleep_us, 8000)
    k.cpuhp.phase(0, "freeze_processes", t0)

