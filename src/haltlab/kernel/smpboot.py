"""The new kernel's `smp_init()`: CPU hotplug's way up (kernel/cpu.c, kernel/smp.c).

Two shapes, by the presence of Thomas Gleixner's 6.5 hotplug series (the
preset marks it with `cpuhp_core_sync_dead`, "cpu/hotplug: Add CPU state
tracking and synchronization" (in v6.5); x86 switched to it in the same
series, 0c7ffa32dbd6 and 7e75178a0950):

* 6.5+ (7.1's shape): `bringup_nonboot_cpus()` tries
  `cpuhp_bringup_cpus_parallel()` (`--bringup parallel`, or park-mwait):
  with SMT the primary threads are kicked to CPUHP_BP_KICK_AP, then onlined
  one by one, then the secondary threads the same; otherwise (cpuhp.parallel=0,
  `--bringup init-sipi`) `cpuhp_bringup_mask(cpu_present_mask, CPUHP_ONLINE)`
  does kick and online per CPU, one after the other. CPUHP_BRINGUP_CPU is
  `cpuhp_bringup_ap()`: `cpuhp_bp_sync_alive()` (the AP reports ALIVE from
  `cpuhp_ap_sync_alive()`; the control CPU polls 1 ms with `cpu_relax()`,
  then sleeps `usleep_range(1000, 2000)` between checks, 10 s budget) and
  `bringup_wait_for_ap_online()`, then the AP's cpuhp thread runs the online
  callbacks.
* 5.17 (S4's era, its patch is on 5.10): `bringup_nonboot_cpus()` is
  `cpu_up(cpu, CPUHP_ONLINE)` per present CPU, and `bringup_cpu()` ->
  `__cpu_up()` is x86's `native_cpu_up()` (kernel/arch/x86_smpboot.py),
  which waits for the AP by the callout/callin masks.

What the model keeps of the callbacks: the BP-side prepare callbacks before
the kick (`cpuhp_bp_prepare_ns`) and the AP's online callbacks
(`cpuhp_ap_online_callbacks_ns`) as one cost each; `idle_threads_init()`,
`smp_cpus_done()` (MTRR set-up, the BogoMIPS line) and `announce_cpu()`'s
per-CPU continuation line are left out.
"""

from __future__ import annotations

import enum

from haltlab.engine.context import ktime_get_ns, smp_processor_id
from haltlab.engine.memory import cpumask_weight, for_each_cpu
from haltlab.engine.ops import (
    READ_ONCE, WRITE_ONCE, cmpxchg, ndelay, native_halt, sleep_until, spin_until,
)
from haltlab.engine.symmetry import cpu_locals
from haltlab.kernel.printk import LOGLEVEL_INFO, printk_level
from haltlab.kernel.timers import NSEC_PER_MSEC, NSEC_PER_SEC, usleep_range

__all__ = ["SyncState", "CpuhpState", "SmpBoot", "smpboot_init", "smp_init", "bringup_nonboot_cpus",
           "cpuhp_bringup_cpus_parallel", "cpuhp_bringup_mask", "cpu_up", "cpuhp_bp_sync_alive",
           "cpuhp_ap_sync_alive", "cpuhp_online_idle", "CPUHP_SYNC_TIMEOUT_S"]

CPUHP_SYNC_TIMEOUT_S = 10       # cpuhp_wait_for_sync_state(): 10 s


class SyncState(enum.StrEnum):
    """`enum cpuhp_sync_state` (kernel/cpu.c, 6.5+), the states the up path uses."""

    DEAD = "dead"
    ALIVE = "alive"
    SHOULD_ONLINE = "should-online"
    ONLINE = "online"


class CpuhpState(enum.IntEnum):
    """The hotplug states the up path passes (`enum cpuhp_state`, abridged)."""

    OFFLINE = 0
    BP_KICK_AP = 1
    ONLINE = 2


class SmpBoot:
    """The new kernel's bring-up state: its `cpu_online_mask`, per CPU the
    `struct cpuhp_cpu_state` fields the up path reads (`state`,
    `ap_sync_state`, the `done_up` completion, the AP thread's kick and its
    completion), 5.17's x86 callout/callin masks, the trampoline's lock.

    A side record, not state: when each AP was kicked, reported alive, set
    itself online and finished (`timeline`, for the results)."""

    def __init__(self, k, topo, *, max_cpus: int) -> None:
        mem = k.machine.memory
        n = k.machine.ncpus
        self.topo = topo
        self.max_cpus = max_cpus
        self.core_sync = k.config.has("cpuhp_core_sync_dead")
        self.cpu_online_mask = mem.var("new:cpu_online_mask", 1)
        self.state = [mem.var(f"new:cpuhp_state[{c}].state", CpuhpState.ONLINE if c == 0 else CpuhpState.OFFLINE)
                      for c in range(n)]
        self.ap_sync_state = [mem.var(f"new:cpuhp_state[{c}].ap_sync_state", SyncState.DEAD) for c in range(n)]
        self.done_up = [mem.var(f"new:cpuhp_state[{c}].done_up", False) for c in range(n)]
        self.should_run = [mem.var(f"new:cpuhp_state[{c}].should_run", False) for c in range(n)]
        self.cpu_initialized_mask = mem.var("new:cpu_initialized_mask", 1)
        self.cpu_callout_mask = mem.var("new:cpu_callout_mask", 1)
        self.cpu_callin_mask = mem.var("new:cpu_callin_mask", 1)
        self.trampoline_lock = mem.var("new:tr_lock", 0)
        self.timeline: dict[int, dict[str, int]] = {}

    def __fingerprint__(self) -> str:
        return "smpboot"

    def note(self, cpu: int, event: str) -> None:
        self.timeline.setdefault(cpu, {}).setdefault(event, ktime_get_ns())


def smpboot_init(k, topo, *, max_cpus: int | None = None) -> SmpBoot:
    """`max_cpus`: `maxcpus=` (`setup_max_cpus`); None: every present CPU."""
    k.smpboot = SmpBoot(k, topo, max_cpus=k.machine.ncpus if max_cpus is None else max_cpus)
    return k.smpboot


# --- the control CPU -----------------------------------------------------------------------

async def smp_init(k) -> None:
    """kernel/smp.c; `smp_init_ns` is from its first line to its return."""
    sb = k.smpboot
    await printk_level(k, LOGLEVEL_INFO, "smp: Bringing up secondary CPUs ...")
    await bringup_nonboot_cpus(k, sb.max_cpus)
    ncpus = cpumask_weight(await READ_ONCE(sb.cpu_online_mask))
    nodes = len({sb.topo.package_of(c) for c in for_each_cpu(sb.cpu_online_mask.value)})
    await printk_level(k, LOGLEVEL_INFO, f"smp: Brought up {nodes} node{'s' if nodes > 1 else ''}, "
                                         f"{ncpus} CPU{'s' if ncpus > 1 else ''}")


async def bringup_nonboot_cpus(k, max_cpus: int) -> None:
    sb = k.smpboot
    if not sb.core_sync:
        return await _bringup_nonboot_cpus_5_17(k, max_cpus)
    if not max_cpus:
        return
    if await cpuhp_bringup_cpus_parallel(k, max_cpus):
        return
    await cpuhp_bringup_mask(k, k.all_cpus_mask, max_cpus, CpuhpState.ONLINE)


@cpu_locals(cpu=("cpu",), plain=("max_cpus",))
async def _bringup_nonboot_cpus_5_17(k, max_cpus: int) -> None:
    sb = k.smpboot
    for cpu in range(k.machine.ncpus):                 # for_each_present_cpu()
        if cpumask_weight(await READ_ONCE(sb.cpu_online_mask)) >= max_cpus:
            break
        if not sb.cpu_online_mask.value >> cpu & 1:
            await cpu_up(k, cpu, CpuhpState.ONLINE)


@cpu_locals(cpumask=("mask",), plain=("ncpus",))
async def cpuhp_bringup_cpus_parallel(k, ncpus: int) -> bool:
    """False unless the arch allows it (`arch_cpuhp_init_parallel_bringup()`,
    which is the bring-up policy here)."""
    if not k.arch_smpboot.parallel_bringup(k):
        return False
    sb = k.smpboot
    mask = k.all_cpus_mask
    if sb.topo.threads_per_core > 1:                   # cpuhp_smt_aware()
        pmask = mask & sb.topo.primary_mask()
        await cpuhp_bringup_mask(k, pmask, ncpus, CpuhpState.BP_KICK_AP)
        await cpuhp_bringup_mask(k, pmask, ncpus, CpuhpState.ONLINE)
        ncpus -= cpumask_weight(await READ_ONCE(sb.cpu_online_mask))
        if ncpus <= 0:
            return True
        mask &= ~sb.topo.primary_mask()
    await cpuhp_bringup_mask(k, mask, ncpus, CpuhpState.BP_KICK_AP)
    await cpuhp_bringup_mask(k, mask, ncpus, CpuhpState.ONLINE)
    return True


@cpu_locals(cpu=("cpu",), cpumask=("mask",), plain=("ncpus",))
async def cpuhp_bringup_mask(k, mask: int, ncpus: int, target: CpuhpState) -> None:
    for cpu in for_each_cpu(mask):
        await cpu_up(k, cpu, target)
        ncpus -= 1
        if not ncpus:
            break


@cpu_locals(cpu=("cpu",))
async def cpu_up(k, cpu: int, target: CpuhpState) -> int:
    """`cpu_up()` -> `_cpu_up()`: the states from where the CPU is to `target`."""
    sb = k.smpboot
    st = sb.state[cpu]
    if await READ_ONCE(st) >= target:
        return -22                                     # -EINVAL: already there (the boot CPU)
    if st.value < CpuhpState.BP_KICK_AP:
        await ndelay(k.machine.cost_ns("cpuhp_bp_prepare_ns"))   # the PREPARE callbacks
        if sb.core_sync:
            await k.arch_smpboot.native_kick_ap(k, cpu)          # CPUHP_BP_KICK_AP
        await WRITE_ONCE(st, CpuhpState.BP_KICK_AP)
        if target == CpuhpState.BP_KICK_AP:
            return 0
    if sb.core_sync:
        await cpuhp_bringup_ap(k, cpu)                 # CPUHP_BRINGUP_CPU
    else:
        await k.arch_smpboot.native_cpu_up(k, cpu)      # bringup_cpu() -> __cpu_up()
        await sleep_until(lambda: sb.done_up[cpu].value, what=f"wait_for_ap_thread(CPU{cpu})")
        await _cpuhp_kick_ap_online(k, cpu)
    await WRITE_ONCE(st, CpuhpState.ONLINE)
    sb.note(cpu, "up")
    return 0


@cpu_locals(cpu=("cpu",))
async def cpuhp_bringup_ap(k, cpu: int) -> None:
    sb = k.smpboot
    await cpuhp_bp_sync_alive(k, cpu)
    await sleep_until(lambda: sb.done_up[cpu].value, what=f"bringup_wait_for_ap_online(CPU{cpu})")
    await _cpuhp_kick_ap_online(k, cpu)


@cpu_locals(cpu=("cpu",))
async def _cpuhp_kick_ap_online(k, cpu: int) -> None:
    """`cpuhp_kick_ap(st, CPUHP_ONLINE)`: the AP's cpuhp thread runs the online
    callbacks; the control CPU sleeps until it completes."""
    sb = k.smpboot
    await WRITE_ONCE(sb.done_up[cpu], False)
    await WRITE_ONCE(sb.should_run[cpu], True)
    await sleep_until(lambda: sb.done_up[cpu].value, what=f"wait_for_ap_thread(CPU{cpu})")


@cpu_locals(cpu=("cpu",), plain=("start", "ok"))
async def cpuhp_bp_sync_alive(k, cpu: int) -> bool:
    """`cpuhp_wait_for_sync_state(cpu, SYNC_STATE_ALIVE, SYNC_STATE_SHOULD_ONLINE)`."""
    sync = k.smpboot.ap_sync_state[cpu]
    start = ktime_get_ns()
    ok = await spin_until(lambda: sync.value == SyncState.ALIVE, timeout_ns=NSEC_PER_MSEC,
                          what=f"SYNC_STATE_ALIVE(CPU{cpu})")
    while not ok:
        if ktime_get_ns() - start > CPUHP_SYNC_TIMEOUT_S * NSEC_PER_SEC:
            break
        await usleep_range(k, 1000, 2000)
        ok = await READ_ONCE(sync) == SyncState.ALIVE
    if ok:
        await cmpxchg(sync, SyncState.ALIVE, SyncState.SHOULD_ONLINE)
    return ok


# --- the AP ----------------------------------------------------------------------------------

@cpu_locals(cpu=("cpu",))
async def cpuhp_ap_sync_alive(k) -> None:
    """From `start_secondary()` (6.5+): report ALIVE, spin until released."""
    cpu = smp_processor_id()
    sync = k.smpboot.ap_sync_state[cpu]
    await WRITE_ONCE(sync, SyncState.ALIVE)
    k.smpboot.note(cpu, "alive")
    await spin_until(lambda: sync.value == SyncState.SHOULD_ONLINE, what="SYNC_STATE_SHOULD_ONLINE")


@cpu_locals(cpu=("cpu",))
async def cpuhp_online_idle(k) -> None:
    """`cpu_startup_entry(CPUHP_AP_ONLINE_IDLE)`: report ONLINE (6.5+), complete
    `done_up`; then this CPU's cpuhp thread runs the online callbacks when
    kicked, and the CPU idles (the new kernel's idle is not modelled further)."""
    cpu = smp_processor_id()
    sb = k.smpboot
    if sb.core_sync:
        await WRITE_ONCE(sb.ap_sync_state[cpu], SyncState.ONLINE)
    await WRITE_ONCE(sb.done_up[cpu], True)
    await sleep_until(lambda: sb.should_run[cpu].value, what="cpuhp_thread_fun")
    await ndelay(k.machine.cost_ns("cpuhp_ap_online_callbacks_ns"))
    await WRITE_ONCE(sb.should_run[cpu], False)
    await WRITE_ONCE(sb.done_up[cpu], True)
    sb.note(cpu, "online_callbacks_done")
    while True:
        await native_halt()
