"""`stop_machine_cpuslocked()`: every online CPU in `multi_cpu_stop()`.

CPU hotplug takes a CPU down by running `take_cpu_down()` on it while every
other online CPU spins with interrupts off, so that no CPU can see the dying
one half gone. The caller queues the stopper work on every online CPU and
wakes each CPU's stopper thread (the stop class: it preempts whatever runs);
the stoppers step together through MULTI_STOP_PREPARE, DISABLE_IRQ, RUN and
EXIT, each state acknowledged by all (`ack_state()`: the last to acknowledge
sets the next state, `set_state()` resetting the count first); in RUN the
active CPUs call the function. The caller then waits for every stopper to
have signalled done (`cpu_stop_signal_done()`), sleeping on a completion.

One stop_machine at a time (`stop_cpus_mutex`), so its `msdata` is a set of
globals here. The caller's own stopper preempts it as soon as it is woken;
the model runs the caller's `multi_cpu_stop()` inline after waking the
others, the same order.

Shape: kernel/stop_machine.c of 7.1 (`multi_cpu_stop()` unchanged since 4.x
but for `rcu_momentary_eqs()`, whose effect the model's RCU waits do not need).
"""

from __future__ import annotations

import enum

from haltlab.engine.context import smp_processor_id
from haltlab.engine.memory import cpumask_weight, for_each_cpu
from haltlab.engine.ops import (
    READ_ONCE, WRITE_ONCE, atomic_add_return, local_irq_disable, local_irq_enable, sleep_until, spin_until,
)
from haltlab.engine.symmetry import cpu_locals
from haltlab.kernel.sched import Task, wake_up_process

__all__ = ["MultiStopState", "StopMachine", "stop_machine_init", "stop_machine_cpuslocked", "multi_cpu_stop",
           "cpu_stopper_thread"]


class MultiStopState(enum.IntEnum):
    NONE = 0
    PREPARE = 1
    DISABLE_IRQ = 2
    RUN = 3
    EXIT = 4


class StopMachine:
    """`struct multi_stop_data` and the caller's `cpu_stop_done`.

    `fn`, `active_cpus` and `num_threads` are plain attributes, not `Var`s:
    the caller sets them before it wakes any stopper and no one changes them
    until every stopper is done (`stop_cpus_mutex`), so their values follow
    from where the caller is (its stack, in every state fingerprint) and
    reading them is no race. `state`, `thread_ack` and `nr_todo` change while
    the stoppers run: shared variables."""

    def __init__(self, k) -> None:
        mem = k.machine.memory
        self.state = mem.var("msdata.state", MultiStopState.NONE)
        self.thread_ack = mem.var("msdata.thread_ack", 0)
        self.nr_todo = mem.var("cpu_stop_done.nr_todo", 0)
        self.num_threads = 0
        self.active_cpus = 0
        self.fn = None              # the function RUN calls on the active CPUs: async fn(k) -> int

    def __fingerprint__(self) -> str:
        return "msdata"


def stop_machine_init(k) -> StopMachine:
    k.stop_machine = StopMachine(k)
    return k.stop_machine


@cpu_locals(cpu=("this_cpu", "cpu"), cpumask=("online", "cpus"), plain=("n",))
async def stop_machine_cpuslocked(k, fn, cpus: int) -> int:
    """Run `fn(k)` on the CPUs of `cpus` with every online CPU stopped."""
    ms = k.stop_machine
    this_cpu = smp_processor_id()
    online = await READ_ONCE(k.cpu_online_mask)
    n = cpumask_weight(online)
    ms.fn, ms.active_cpus, ms.num_threads = fn, cpus, n
    await WRITE_ONCE(ms.thread_ack, n)                  # set_state(msdata, MULTI_STOP_PREPARE)
    await WRITE_ONCE(ms.state, MultiStopState.PREPARE)
    await WRITE_ONCE(ms.nr_todo, n)
    for cpu in for_each_cpu(online):                    # queue_stop_cpus_work()
        if cpu != this_cpu:
            await wake_up_process(k, cpu, Task.STOPPER)
    err = await cpu_stopper_thread(k, this_cpu)          # the caller's own stopper
    await sleep_until(lambda: ms.nr_todo.value == 0, what="wait_for_completion(&done.completion)")
    return err


@cpu_locals(cpu=("cpu",), plain=("err",))
async def cpu_stopper_thread(k, cpu: int) -> int:
    err = await multi_cpu_stop(k)
    await atomic_add_return(k.stop_machine.nr_todo, -1)  # cpu_stop_signal_done()
    return err


@cpu_locals(cpu=("cpu",), cpumask=("active",), plain=("curstate", "newstate", "err", "is_active"))
async def multi_cpu_stop(k) -> int:
    ms = k.stop_machine
    cpu = smp_processor_id()
    active = ms.active_cpus
    is_active = bool(active >> cpu & 1)
    curstate, err = MultiStopState.NONE, 0
    while curstate != MultiStopState.EXIT:
        await spin_until(lambda: ms.state.value != curstate, what="multi_cpu_stop(): msdata->state")
        newstate = ms.state.value               # the value the spin saw, read in the same step
        curstate = newstate
        if curstate == MultiStopState.DISABLE_IRQ:
            await local_irq_disable()
        elif curstate == MultiStopState.RUN and is_active:
            err = await ms.fn(k)
        await _ack_state(k, curstate)
    await local_irq_enable()                             # local_irq_restore(flags): kthreads run with irqs on
    return err


@cpu_locals(plain=("curstate", "left"))
async def _ack_state(k, curstate: MultiStopState) -> None:
    ms = k.stop_machine
    left = await atomic_add_return(ms.thread_ack, -1)
    if left == 0 and curstate != MultiStopState.EXIT:   # the kernel sets EXIT + 1, which no one reads
        await WRITE_ONCE(ms.thread_ack, ms.num_threads)
        await WRITE_ONCE(ms.state, MultiStopState(curstate + 1))
