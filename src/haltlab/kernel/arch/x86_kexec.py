"""An x86 kexec reboot end to end: the old kernel's `native_machine_shutdown()`,
`machine_kexec()` and purgatory, the new kernel's boot to `init` (S4).

The old kernel (arch/x86/kernel/reboot.c, 7.1): `native_machine_shutdown()`
is `clear_IO_APIC()`, `local_irq_disable()`, `stop_other_cpus()` (=
`native_stop_other_cpus(1)`: with `wait`, the NMI stage waits forever),
`lapic_shutdown()`, `restore_boot_irq_mode()`, `hpet_disable()`,
`iommu_shutdown()`; the device steps are one cost
(`machine_shutdown_devices_ns`). The online APs end in `stop_this_cpu()`'s
HLT loop (kernel/arch/x86.py) or, under a park design, in the park
(x86_park). CPUs that were offline sit in `mwait_play_dead()` (deepest
C-state, here C6); since Linux kernel commit d7893093a7417 ("x86/smp: Cure
kexec() vs. mwait_play_dead() breakage") (in v6.5, with 1f5e7eb7868e: the
preset's `stop_other_cpus_robust` stands for both) `smp_kick_mwait_play_dead()`
moves each to a HLT loop first, up to 5 ms each.

`machine_kexec()` -> `relocate_kernel()`: the image copy (the loaded
segments, `kexec_image_kib`, at `kexec_copy_ns_per_mib`) and the purgatory's
SHA-256 check of the segments (`purgatory_sha256_ns_per_mib`), one CPU,
interrupts off. Then the new kernel from its entry to `smp_init()`
(`boot_to_smp_init_ns`, with `mm_init()`'s hand-over of free memory in it),
`native_smp_prepare_cpus()` (`smp_set_init_udelay()`; the review's park wakes
here), `smp_init()` (kernel/smpboot.py), and from there to `init`
(`smp_init_to_init_ns`: the initcalls and driver probes). Those three boot
costs are labelled estimates in the shipped profiles.

Shape: arch/x86/kernel/reboot.c, smp.c and machine_kexec_64.c of 7.1, with
5.17's stop (kernel/arch/x86.py) where the kernel lacks the 6.5 commits.
"""

from __future__ import annotations

from haltlab.engine.context import ktime_get_ns, smp_processor_id
from haltlab.engine.ops import (
    READ_ONCE, WRITE_ONCE, local_irq_disable, mwait_until, native_halt, ndelay, set_cpu_state, spin_until,
)
from haltlab.engine.symmetry import cpu_locals
from haltlab.kernel import smpboot
from haltlab.kernel.arch import x86_park, x86_smpboot
from haltlab.kernel.timers import NSEC_PER_USEC

__all__ = ["CPUDEAD_MWAIT_WAIT", "CPUDEAD_MWAIT_KEXEC_HLT", "MwaitDead", "mwait_dead_init",
           "native_machine_shutdown", "smp_kick_mwait_play_dead", "mwait_play_dead", "machine_kexec_reboot",
           "C_FILES"]

C_FILES = {"mwait_play_dead": "arch/x86/kernel/smpboot.c", "smp_kick_mwait_play_dead": "arch/x86/kernel/smpboot.c",
           "machine_kexec_reboot": "arch/x86/kernel/machine_kexec_64.c"}

CPUDEAD_MWAIT_WAIT = 0xDEADBEEF
CPUDEAD_MWAIT_KEXEC_HLT = 0x4A17DEAD
_KICK_TRIES = 1000                   # smp_kick_mwait_play_dead(): 1000 x udelay(5)


class MwaitDead:
    """`struct mwait_cpu_dead` per CPU: `status` and `control`, each on the
    line the CPU monitors."""

    def __init__(self, k, offline: int) -> None:
        mem = k.machine.memory
        self.offline = offline                          # the mask of CPUs offline before the kexec
        self.status = [mem.var(f"mwait_cpu_dead[{c}].status", 0) for c in range(k.machine.ncpus)]
        self.control = [mem.var(f"mwait_cpu_dead[{c}].control", 0) for c in range(k.machine.ncpus)]

    def __fingerprint__(self) -> str:
        return "mwait_cpu_dead"


def mwait_dead_init(k, offline: int) -> MwaitDead:
    k.mwait_dead = MwaitDead(k, offline)
    return k.mwait_dead


# --- the old kernel ----------------------------------------------------------------------------

async def native_machine_shutdown(k) -> None:
    await local_irq_disable()
    await k.arch.native_stop_other_cpus(k, wait=True)     # stop_other_cpus()
    await set_cpu_state(apic_enabled=False)                # lapic_shutdown()
    await ndelay(k.machine.cost_ns("machine_shutdown_devices_ns"))


@cpu_locals(cpu=("this_cpu", "cpu"), cpumask=("offline",))
async def smp_kick_mwait_play_dead(k) -> None:
    """For each present CPU not online: if it is in `mwait_play_dead()`, tell
    it to go to HLT and wait up to 5 ms for its answer."""
    md = k.mwait_dead
    this_cpu = smp_processor_id()
    offline = k.all_cpus_mask & ~await READ_ONCE(k.cpu_online_mask) & ~(1 << this_cpu)
    for cpu in range(k.machine.ncpus):
        if not offline >> cpu & 1:
            continue
        if await READ_ONCE(md.status[cpu]) != CPUDEAD_MWAIT_WAIT:
            continue
        await WRITE_ONCE(md.control[cpu], CPUDEAD_MWAIT_KEXEC_HLT)
        await spin_until(lambda cpu=cpu: md.status[cpu].value == CPUDEAD_MWAIT_KEXEC_HLT,
                         timeout_ns=_KICK_TRIES * 5 * NSEC_PER_USEC, what=f"mwait_cpu_dead[{cpu}].status")


@cpu_locals(cpu=("cpu",))
async def mwait_play_dead(k) -> None:
    """An offline CPU (hot-unplugged, or `nosmt`): MWAIT in its deepest C-state
    on its own line until told to halt instead (6.5+)."""
    cpu = smp_processor_id()
    md = k.mwait_dead
    await local_irq_disable()
    await WRITE_ONCE(md.status[cpu], CPUDEAD_MWAIT_WAIT)
    await WRITE_ONCE(md.control[cpu], CPUDEAD_MWAIT_WAIT)
    k.x86_boot.cstate[cpu] = "C6"
    await mwait_until(lambda: md.control[cpu].value == CPUDEAD_MWAIT_KEXEC_HLT, what="mwait_play_dead")
    await ndelay(k.x86_boot.wake_latency_ns(k, cpu))
    k.x86_boot.cstate[cpu] = "C1"
    await WRITE_ONCE(md.status[cpu], CPUDEAD_MWAIT_KEXEC_HLT)
    while True:
        await native_halt()


# --- the jump and the new kernel ------------------------------------------------------------

async def machine_kexec_reboot(k) -> None:
    """The boot CPU from `machine_kexec()` to `init`; each step a mark."""
    cost = k.machine.cost_ns
    k.mark("machine_kexec", ktime_get_ns())
    await local_irq_disable()
    kib = int(k.machine.profile.get("kexec_image_kib"))
    await ndelay(kib * cost("kexec_copy_ns_per_mib") // 1024)          # relocate_kernel(): swap_pages
    k.mark("purgatory", ktime_get_ns())
    await ndelay(kib * cost("purgatory_sha256_ns_per_mib") // 1024)    # verify_sha256_digest()
    k.mark("new_kernel", ktime_get_ns())
    k.ghost_add("new_kernel", smp_processor_id())
    await ndelay(cost("boot_to_smp_init_ns"))
    x86_park.park_mm_init(k)
    k.x86_boot.init_udelay = x86_smpboot.smp_set_init_udelay(k)          # native_smp_prepare_cpus()
    await x86_park.park_wake_all(k)
    k.mark("smp_init", ktime_get_ns())
    await smpboot.smp_init(k)
    k.mark("smp_init_done", ktime_get_ns())
    x86_park.park_check_after_smp_init(k)
    await ndelay(cost("smp_init_to_init_ns"))
    k.mark("init", ktime_get_ns())
