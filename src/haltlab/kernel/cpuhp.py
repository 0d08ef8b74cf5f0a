"""CPU hotplug's way down: `smp_shutdown_nonboot_cpus()` and `_cpu_down()`.

How arm64 takes its secondary CPUs down for kexec (`machine_shutdown()`),
one after the other, each in three hand-offs (kernel/cpu.c):

1. the control CPU takes `cpu_hotplug_lock` for writing (`cpus_write_lock()`:
   `percpu_down_write()` -> `rcu_sync_enter()`, which waits for a grace
   period the first time, when the rcu_sync is idle; the later calls of one
   shutdown find it still in GP_PASSED, since each comes far less than a
   grace period after the last unlock) and kicks the target's `cpuhp/N`
   thread (`cpuhp_kick_ap_work()`), which runs the AP-side teardown callbacks
   down to CPUHP_TEARDOWN_CPU, among them `sched_cpu_deactivate()` with its
   `synchronize_rcu()`, and completes `st->done_down`;
2. `takedown_cpu()` stops the machine (`stop_machine_cpuslocked()` with
   `take_cpu_down()` on the target: `__cpu_disable()`, which clears the
   online bit and migrates the interrupts away, then the DYING callbacks),
   and waits for the target's idle task to report it is dead
   (`cpuhp_report_idle_dead()` completes `done_down` through an IPI to an
   online CPU);
3. the wait for the death report and the firmware's confirmation: 5.x-6.4
   `__cpu_die()` -> `cpu_wait_death()` (kernel/smpboot.c: one check,
   `udelay(5)`, then jiffy sleeps growing by 1.1x, 5 s budget) and
   `op_cpu_kill()`; since 6.5 (HOTPLUG_CORE_SYNC_DEAD) `cpuhp_bp_sync_dead()`
   (1 ms of `cpu_relax()`, then `usleep_range(1000, 2000)`, 10 s budget) and
   `arch_cpuhp_cleanup_dead_cpu()` -> `op_cpu_kill()`. Then the DEAD
   callbacks on the control CPU.

What the model keeps of the callbacks: their order and the waits inside
them; the rest of each callback range is one cost from the profile
(`cpuhp_ap_callbacks_ns`, `cpuhp_dying_callbacks_ns`, `cpuhp_dead_callbacks_ns`,
labelled estimates). A callback that refuses (`dl_bw_deactivate()`'s -EBUSY)
is not modelled: every `_cpu_down()` here succeeds or times out.

`smp_shutdown_nonboot_cpus_parallel()` is the design S3's review points to
and no kernel has (kernel-notes §3b): kick every `cpuhp/N` at once, so their
grace periods overlap, then one `stop_machine()` whose RUN state takes all
targets down together, then the death waits. What it must keep to stay
safe, each checked by the explorer: every CPU still runs the AP teardown
before its stop (the callbacks are what PSCI §5.5.2 asks for); and the
interrupts of a dying CPU must go to a CPU that stays up, so all targets
clear their online bits, and agree they have, before any migrates
(`take_cpus_down()`'s barrier). Without the barrier (`parallel-hotplug-naive`,
a known bug in tests/quality/) a dying CPU can hand its interrupt to another
dying CPU that is still marked online.

Shape: kernel/cpu.c of 7.1 for the order and names, with 6.1's
`cpu_wait_death()` where the kernel lacks the 6.5 commit.
"""

from __future__ import annotations

import enum

from haltlab.engine.context import ktime_get_ns, smp_processor_id
from haltlab.engine.memory import cpumask_of, cpumask_weight, for_each_cpu
from haltlab.engine.ops import (
    READ_ONCE, WRITE_ONCE, atomic_add_return, clear_bit, ndelay, sleep_until, spin_until, this_cpu_read,
    this_cpu_write, udelay,
)
from haltlab.engine.symmetry import cpu_locals
from haltlab.kernel.printk import printk
from haltlab.kernel.rcu import synchronize_rcu
from haltlab.kernel.sched import Task, wake_up_process
from haltlab.kernel.smp import smp_call_function_single
from haltlab.kernel.bug import BUG
from haltlab.kernel.stop_machine import stop_machine_cpuslocked
from haltlab.kernel.timers import NSEC_PER_MSEC, NSEC_PER_SEC, schedule_timeout_uninterruptible, usleep_range

__all__ = ["CpuDeadState", "Hotplug", "cpuhp_init", "smp_shutdown_nonboot_cpus",
           "smp_shutdown_nonboot_cpus_parallel", "cpuhp_thread_fun", "cpuhp_report_idle_dead",
           "cpuhp_ap_report_dead", "cpuhp_complete_idle_dead", "cpu_wait_death", "cpuhp_bp_sync_dead",
           "cpus_write_lock", "takedown_cpu", "take_cpu_down", "take_cpus_down", "EBUSY", "ETIMEDOUT"]

EBUSY = 16
ETIMEDOUT = 110
CPU_WAIT_DEATH_S = 5             # __cpu_die(): cpu_wait_death(cpu, 5)
CPUHP_SYNC_DEAD_TIMEOUT_S = 10   # cpuhp_wait_for_sync_state(): 10 s


class CpuDeadState(enum.StrEnum):
    """The death report: 6.1's per-CPU `cpu_hotplug_state` (CPU_ONLINE,
    CPU_DEAD, CPU_POST_DEAD, CPU_BROKEN), 6.5's SYNC_STATE_* of the same meaning."""

    ONLINE = "online"
    DEAD = "dead"
    POST_DEAD = "post-dead"
    BROKEN = "broken"


class Hotplug:
    """Per CPU the `done_down` completion of `struct cpuhp_cpu_state` and the
    death report; the hotplug lock's rcu_sync (only the control CPU touches
    it); the parallel design's barrier.

    Not modelled: `st->state` and `cpu_active_mask`, which nothing on these
    paths reads (the comments mark where the kernel writes them). A side
    record, not state: each phase of each CPU's way down (for the results)."""

    def __init__(self, k) -> None:
        mem = k.machine.memory
        n = k.machine.ncpus
        self.done_down = [mem.var(f"cpuhp_state[{c}].done_down", False) for c in range(n)]
        self.dead = [mem.var(f"cpu_hotplug_state[{c}]", CpuDeadState.ONLINE) for c in range(n)]
        self.rcu_sync_idle = mem.var("cpu_hotplug_lock.rss.gp_state_idle", True)
        self.teardown_barrier = mem.var("take_cpus_down.left", 0)
        self.phases: list[tuple[int, str, int, int]] = []     # (cpu, phase, start, end)

    def __fingerprint__(self) -> str:
        return "cpuhp"

    def phase(self, cpu: int, name: str, start_ns: int) -> None:
        self.phases.append((cpu, name, start_ns, ktime_get_ns()))


def cpuhp_init(k) -> Hotplug:
    k.cpuhp = Hotplug(k)
    return k.cpuhp


# --- the control CPU -----------------------------------------------------------------

@cpu_locals(cpu=("primary_cpu", "cpu"), cpumask=("online",), plain=("err",))
async def smp_shutdown_nonboot_cpus(k, primary_cpu: int) -> None:
    online = await READ_ONCE(k.cpu_online_mask)
    if not online >> primary_cpu & 1:
        primary_cpu = next(for_each_cpu(online))
    for cpu in for_each_cpu(online):
        if cpu == primary_cpu:
            continue
        err = await _cpu_down(k, cpu)                  # cpu_down_maps_locked(cpu, CPUHP_OFFLINE)
        if err:
            await printk(k, f"Failed to offline CPU{cpu} - error={-err}")
            break
    if cpumask_weight(await READ_ONCE(k.cpu_online_mask)) > 1:
        await BUG(k, "kernel/cpu.c", "BUG_ON(num_online_cpus() > 1) in smp_shutdown_nonboot_cpus()")


@cpu_locals(cpu=("cpu",), plain=("t0", "err"))
async def _cpu_down(k, cpu: int) -> int:
    hp = k.cpuhp
    if cpumask_weight(await READ_ONCE(k.cpu_online_mask)) == 1:
        return -EBUSY
    t0 = ktime_get_ns()
    await cpus_write_lock(k)
    await cpuhp_kick_ap_work(k, cpu)
    err = await takedown_cpu(k, cpu)
    if not err:
        await ndelay(k.machine.cost_ns("cpuhp_dead_callbacks_ns"))   # the DEAD callbacks, BP side
        # st->state = CPUHP_OFFLINE
    hp.phase(cpu, "_cpu_down", t0)
    return err


async def cpus_write_lock(k) -> None:
    """`percpu_down_write(&cpu_hotplug_lock)`: `rcu_sync_enter()` waits for a
    grace period when the rcu_sync is idle (the first lock of a shutdown)."""
    if await this_cpu_read(k.cpuhp.rcu_sync_idle):      # only the control CPU takes the lock here
        t0 = ktime_get_ns()
        await synchronize_rcu(k)
        await this_cpu_write(k.cpuhp.rcu_sync_idle, False)
        k.cpuhp.phase(smp_processor_id(), "rcu_sync_enter", t0)


@cpu_locals(cpu=("cpu",), plain=("t0",))
async def cpuhp_kick_ap_work(k, cpu: int) -> None:
    """Wake `cpuhp/cpu` to run the AP-side teardown, and wait for it
    (`wait_for_ap_thread(st, false)`)."""
    t0 = ktime_get_ns()
    await wake_up_process(k, cpu, Task.CPUHP)
    await sleep_until(lambda: k.cpuhp.done_down[cpu].value, what=f"wait_for_ap_thread(CPU{cpu})")
    await WRITE_ONCE(k.cpuhp.done_down[cpu], False)        # reinit_completion()
    k.cpuhp.phase(cpu, "ap_teardown", t0)


@cpu_locals(cpu=("cpu",), plain=("t0", "err"))
async def takedown_cpu(k, cpu: int) -> int:
    hp = k.cpuhp
    t0 = ktime_get_ns()
    err = await stop_machine_cpuslocked(k, take_cpu_down, cpumask_of(cpu))
    hp.phase(cpu, "stop_machine", t0)
    if err:
        return err
    t0 = ktime_get_ns()
    await sleep_until(lambda: hp.done_down[cpu].value, what=f"wait_for_ap_thread(CPU{cpu})")
    await WRITE_ONCE(hp.done_down[cpu], False)
    hp.phase(cpu, "idle_dead", t0)
    t0 = ktime_get_ns()
    await k.arch.cpu_die_wait(k, cpu)                     # __cpu_die() / cpuhp_bp_sync_dead()
    hp.phase(cpu, "wait_dead", t0)
    return 0


# --- the parallel design (no kernel has it) --------------------------------------------

@cpu_locals(cpu=("primary_cpu", "cpu"), cpumask=("online", "targets"), plain=("err", "t0"))
async def smp_shutdown_nonboot_cpus_parallel(k, primary_cpu: int, *, barrier: bool = True) -> None:
    hp = k.cpuhp
    online = await READ_ONCE(k.cpu_online_mask)
    targets = online & ~(1 << primary_cpu)
    await cpus_write_lock(k)
    t0 = ktime_get_ns()
    for cpu in for_each_cpu(targets):
        await wake_up_process(k, cpu, Task.CPUHP)
    for cpu in for_each_cpu(targets):
        await sleep_until(lambda cpu=cpu: hp.done_down[cpu].value, what=f"wait_for_ap_thread(CPU{cpu})")
        await WRITE_ONCE(hp.done_down[cpu], False)
    hp.phase(primary_cpu, "ap_teardown", t0)
    await WRITE_ONCE(hp.teardown_barrier, cpumask_weight(targets))
    t0 = ktime_get_ns()
    err = await stop_machine_cpuslocked(k, take_cpus_down if barrier else take_cpu_down, targets)
    hp.phase(primary_cpu, "stop_machine", t0)
    if err:
        await printk(k, f"Failed to offline CPUs - error={-err}")
        return
    for cpu in for_each_cpu(targets):
        t0 = ktime_get_ns()
        await sleep_until(lambda cpu=cpu: hp.done_down[cpu].value, what=f"wait_for_ap_thread(CPU{cpu})")
        await k.arch.cpu_die_wait(k, cpu)
        await ndelay(k.machine.cost_ns("cpuhp_dead_callbacks_ns"))   # then st->state = CPUHP_OFFLINE
        hp.phase(cpu, "wait_dead", t0)
    if cpumask_weight(await READ_ONCE(k.cpu_online_mask)) > 1:
        await BUG(k, "kernel/cpu.c", "BUG_ON(num_online_cpus() > 1) in smp_shutdown_nonboot_cpus()")


# --- the dying CPU ---------------------------------------------------------------------

@cpu_locals(cpu=("cpu",), plain=("t0",))
async def cpuhp_thread_fun(k, cpu: int) -> None:
    """`cpuhp/N`: the AP-side teardown callbacks from CPUHP_ONLINE down to
    CPUHP_TEARDOWN_CPU; `sched_cpu_deactivate()` is the one that waits."""
    hp = k.cpuhp
    await ndelay(k.machine.cost_ns("cpuhp_ap_callbacks_ns"))
    # sched_cpu_deactivate(): set_cpu_active(cpu, false), then the grace period
    t0 = ktime_get_ns()
    await synchronize_rcu(k)
    hp.phase(cpu, "synchronize_rcu", t0)
    await WRITE_ONCE(hp.done_down[cpu], True)             # st->state is CPUHP_TEARDOWN_CPU;             # complete_ap_thread(st, false)


@cpu_locals(cpu=("cpu",), plain=("err",))
async def take_cpu_down(k) -> int:
    """On the dying CPU, in stop_machine's RUN state."""
    cpu = smp_processor_id()
    err = await k.arch.__cpu_disable(k)
    if err:
        return err
    await ndelay(k.machine.cost_ns("cpuhp_dying_callbacks_ns"))   # the DYING callbacks, to CPUHP_AP_OFFLINE
    return 0


@cpu_locals(cpu=("cpu",))
async def take_cpus_down(k) -> int:
    """The parallel design's RUN step: every target clears its online bit,
    waits until all have, then migrates its interrupts (to a CPU that stays)."""
    cpu = smp_processor_id()
    await clear_bit(cpu, k.cpu_online_mask)
    await atomic_add_return(k.cpuhp.teardown_barrier, -1)
    await spin_until(lambda: k.cpuhp.teardown_barrier.value == 0, what="all targets offline")
    return await take_cpu_down(k)


@cpu_locals(cpu=("cpu", "target"))
async def cpuhp_report_idle_dead(k) -> None:
    """From the dying CPU's idle loop: complete `done_down` on an online CPU
    (`smp_call_function_single(cpumask_first(cpu_online_mask), ...)`)."""
    cpu = smp_processor_id()
    # st->state = CPUHP_AP_IDLE_DEAD; rcu_report_dead()
    target = next(for_each_cpu(await READ_ONCE(k.cpu_online_mask)))
    await smp_call_function_single(k, target, cpuhp_complete_idle_dead, cpu)


@cpu_locals(cpu=("cpu",))
async def cpuhp_complete_idle_dead(k, cpu: int) -> None:
    await WRITE_ONCE(k.cpuhp.done_down[cpu], True)       # complete_ap_thread(st, false)


async def cpuhp_ap_report_dead(k) -> None:
    """`cpuhp_ap_report_dead()` (6.5+) or `cpu_report_death()` (5.x-6.4)."""
    await WRITE_ONCE(k.cpuhp.dead[smp_processor_id()], CpuDeadState.DEAD)


# --- the death wait, both shapes ----------------------------------------------------------

@cpu_locals(cpu=("cpu",), plain=("left_jf", "sleep_jf", "ok"))
async def cpu_wait_death(k, cpu: int, seconds: int = CPU_WAIT_DEATH_S) -> bool:
    """5.x-6.4 (kernel/smpboot.c)."""
    dead = k.cpuhp.dead[cpu]
    hz = int(k.machine.profile.get("hz"))
    left_jf, sleep_jf = seconds * hz, 1
    if await READ_ONCE(dead) != CpuDeadState.DEAD:
        await udelay(5)
        while await READ_ONCE(dead) != CpuDeadState.DEAD:
            await schedule_timeout_uninterruptible(k, sleep_jf)
            left_jf -= sleep_jf
            if left_jf <= 0:
                break
            sleep_jf = -(-sleep_jf * 11 // 10)
    ok = await READ_ONCE(dead) == CpuDeadState.DEAD
    await WRITE_ONCE(dead, CpuDeadState.POST_DEAD if ok else CpuDeadState.BROKEN)
    return ok


@cpu_locals(cpu=("cpu",), plain=("start", "ok"))
async def cpuhp_bp_sync_dead(k, cpu: int) -> bool:
    """6.5+ (`cpuhp_wait_for_sync_state()`, kernel/cpu.c)."""
    dead = k.cpuhp.dead[cpu]
    start = ktime_get_ns()
    ok = await spin_until(lambda: dead.value == CpuDeadState.DEAD, timeout_ns=NSEC_PER_MSEC,
                          what=f"SYNC_STATE_DEAD(CPU{cpu})")
    while not ok:
        if ktime_get_ns() - start > CPUHP_SYNC_DEAD_TIMEOUT_S * NSEC_PER_SEC:
            break
        await usleep_range(k, 1000, 2000)
        ok = await READ_ONCE(dead) == CpuDeadState.DEAD
    await WRITE_ONCE(dead, CpuDeadState.POST_DEAD if ok else CpuDeadState.BROKEN)
    if not ok:
        await printk(k, f"CPU{cpu} failed to report dead state")
    return ok


