"""`synchronize_rcu()`: a grace period, as a modelled wait.

What a normal grace period costs, from the tree RCU code (kernel/rcu/tree.c
and tree.h, 5.10 to 7.1): `synchronize_rcu()` queues a callback and wakes the
grace-period kthread; the kthread starts the period and waits
`jiffies_till_first_fqs` jiffies for quiescent states, then forces them
(`rcu_gp_fqs()`), which is when CPUs in dyntick-idle are counted quiescent;
CPUs running user code report at their next tick (`rcu_sched_clock_irq()`),
within the same wait. `jiffies_till_first_fqs` defaults to
`RCU_JIFFIES_TILL_FORCE_QS + nr_cpu_ids / RCU_JIFFIES_FQS_DIV`, that is
`1 + (HZ > 250) + (HZ > 500) + nr_cpu_ids / 256` (`rcu_init_geometry()`).
After the period ends, the waiter's callback runs from RCU's softirq on the
waiting CPU at its next tick. The model's grace period is therefore
`(jiffies_till_first_fqs + 1)` jiffies [inferred from that code: one wait for
the forcing scan plus one tick for the callback; an estimate, so stated in
docs/design.md and beside every S3 figure in the README]. It grows with the number of CPUs through `nr_cpu_ids / 256`, and
does not grow with user load: a CPU in user mode is quiescent at its tick.

A profile may add `rcu_gp_overhead_ns`, what a grace period takes beyond
those jiffies on its machine (the grace-period kthread's and the waiter's
wake-ups, the quiescent-state reports, the callback's softirq): the lab
measures a whole grace period under TCG (`sched_cpu_deactivate()`'s span in
the cpuhp trace, `haltlab lab calibrate --arch arm64`) and finds it twice
the jiffy waits. Absent, nothing is added (the bare-metal profiles).

Not modelled: expedited grace periods (`rcu_expedited`, not set after boot),
RCU callback offloading, and a CPU that stays in the kernel without a
quiescent state (which is what would make a grace period long under load).
"""

from __future__ import annotations

from haltlab.engine.ops import sleep_until

__all__ = ["rcu_gp_ns", "jiffies_till_first_fqs", "synchronize_rcu", "RCU_JIFFIES_FQS_DIV"]

RCU_JIFFIES_FQS_DIV = 256


def _never() -> bool:
    return False


def jiffies_till_first_fqs(hz: int, nr_cpu_ids: int) -> int:
    return 1 + (hz > 250) + (hz > 500) + nr_cpu_ids // RCU_JIFFIES_FQS_DIV


def rcu_gp_ns(k) -> int:
    profile = k.machine.profile
    hz = int(profile.get("hz"))
    extra = profile.cost_ns("rcu_gp_overhead_ns") if "rcu_gp_overhead_ns" in profile.params else 0
    return (jiffies_till_first_fqs(hz, k.machine.ncpus) + 1) * k.machine.tick_period_ns + extra


async def synchronize_rcu(k) -> None:
    await sleep_until(_never, timeout_ns=rcu_gp_ns(k), what="synchronize_rcu()")
