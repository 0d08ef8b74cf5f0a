"""The scheduler as CPU hotplug needs it: which task runs on each CPU, and the
wake-ups of the per-CPU kthreads that take a CPU down.

CPU hotplug hands work to threads bound to the dying CPU: `cpuhp/N` (an
smpboot thread, SCHED_NORMAL: kernel/cpu.c and kernel/smpboot.c never raise
its class) runs the AP-side teardown, and the stopper `migration/N` (the stop
class, above every other) runs `multi_cpu_stop()`. Whether those threads get
the CPU at once, and what was running when a stop IPI arrived (the
`BUG_ON(current != this_rq()->idle)` of `idle_task_exit()`), are what this
module keeps: per CPU its runnable kthreads (`rq`), `need_resched`, and
`curr`.

The wake-up rule, from the kernel: `wake_up_process()` queues the thread and,
for another CPU, sends IPI_RESCHEDULE (`smp_send_reschedule()`); the target
notices `need_resched` on return from the interrupt and calls `schedule()`.
A CPU-bound user task is preempted there at once: for the stopper because
the stop class outranks CFS; for `cpuhp/N` because CFS places a thread that
slept long `sysctl_sched_latency / 2` of vruntime behind `min_vruntime`
(`place_entity()`, GENTLE_FAIR_SLEEPERS) and preempts the running task when
it leads by more than `sysctl_sched_wakeup_granularity` (`check_preempt_wakeup()`;
kernel/sched/fair.c, 5.10 to 6.5, the CFS kernels S3 ran; 6.6's EEVDF places
a woken task by its lag instead, which the model does not follow). With the
defaults (latency 6 ms and granularity 1 ms, both times 1 + ilog2(min(ncpus, 8)))
the lead, half the latency, always exceeds the granularity: the thread runs
at the next return from the interrupt, however many user tasks share the CPU.

Simplifications, each because no modelled run needs more: a kthread runs to
the end of its work before `schedule()` returns (it may sleep inside, and the
CPU then idles: no run here has a second runnable task on a CPU while a
thread sleeps, because `_cpu_down()` kicks `cpuhp/N` and stops the machine
one after the other); wake-ups of a task sleeping in `sleep_until()` (a
completion) take effect at the store, without the IPI and context switch
that wake it in the kernel (a few microseconds against milliseconds per CPU);
user tasks are not migrated to the CPUs that stay up when theirs goes down
(CPU 0's kexec task sleeps through most of the shutdown and, by the rule
above, preempts them when it wakes).

Shape: kernel/sched/core.c and kernel/sched/idle.c of 7.1 for what is
modelled (the wake-up, `scheduler_ipi()`, `schedule()`'s pick by class).
"""

from __future__ import annotations

import enum

from haltlab.engine.context import smp_processor_id
from haltlab.engine.ops import (
    READ_ONCE, lockless_update, ndelay, send_IPI_mask, set_cpu_state, spin_until, this_cpu_read, this_cpu_write,
)
from haltlab.engine.symmetry import cpu_locals

__all__ = ["Task", "RunQueues", "sched_init", "wake_up_process", "scheduler_ipi", "schedule", "user_task",
           "IPI_RESCHEDULE", "KTHREAD_PRIORITY"]

IPI_RESCHEDULE = "IPI_RESCHEDULE"


class Task(enum.StrEnum):
    """The tasks a CPU runs in a kexec shutdown, by the names `ps` shows."""

    IDLE = "swapper"          # the idle task, do_idle()
    USER = "user"             # a CPU-bound user task (`--others busy`)
    KEXEC = "kexec"           # the task in reboot(LINUX_REBOOT_CMD_KEXEC): kernel_kexec()
    CPUHP = "cpuhp"           # cpuhp/N: the AP-side hotplug callbacks
    STOPPER = "migration"     # migration/N: the stopper, multi_cpu_stop()


KTHREAD_PRIORITY = {Task.STOPPER: 2, Task.CPUHP: 1}
"""`pick_next_task()` by class: the stop class first, then CFS."""


class RunQueues:
    """Per CPU: the kthreads woken and not yet run (`rq`, a tuple of `Task`s,
    highest class first: `pick_next_task()` takes the head), `need_resched`, and the task on the CPU (`curr`). `curr` and
    `need_resched` are only ever touched by their own CPU (`this_cpu_read()`:
    the wake-up's IPI handler sets `need_resched` on the target itself); a
    wake-up sets the target's `rq` from another CPU (under the rq lock in the
    kernel: one atomic update here)."""

    def __init__(self, k, ncpus: int) -> None:
        mem = k.machine.memory
        self.rq = [mem.var(f"rq[{c}]", ()) for c in range(ncpus)]
        self.need_resched = [mem.var(f"need_resched[{c}]", False) for c in range(ncpus)]
        self.curr = [mem.var(f"curr[{c}]", Task.IDLE) for c in range(ncpus)]
        self.kthreads: dict[Task, object] = {}    # Task -> async fn(k, cpu): the thread's work

    def __fingerprint__(self) -> str:
        return "rq"


def sched_init(k, kthreads: dict) -> RunQueues:
    """Give `k` its run queues, with the kthreads' bodies (`Task` -> function)."""
    k.sched = RunQueues(k, k.machine.ncpus)
    k.sched.kthreads.update(kthreads)
    return k.sched


@cpu_locals(cpu=("cpu", "this_cpu"))
async def wake_up_process(k, cpu: int, task: Task) -> None:
    """Queue kthread `task` on `cpu` and kick that CPU (`try_to_wake_up()` ->
    `ttwu_queue()`; `resched_curr()` -> `smp_send_reschedule()`)."""
    this_cpu = smp_processor_id()
    await lockless_update(k.sched.rq[cpu], lambda q: (_enqueue(q, task), None), f"ttwu({task}/{cpu})")
    if cpu == this_cpu:
        await this_cpu_write(k.sched.need_resched[cpu], True)
    else:
        await send_IPI_mask(1 << cpu, IPI_RESCHEDULE)


@cpu_locals(cpu=("cpu",))
async def scheduler_ipi(k, cpu: int) -> None:
    """IPI_RESCHEDULE's handler: the woken thread preempts what runs (the
    module docstring says why, for CFS too)."""
    await this_cpu_write(k.sched.need_resched[cpu], True)


@cpu_locals(cpu=("cpu",), plain=("prev", "task"))
async def schedule(k) -> None:
    """Run the woken kthreads, highest class first, then go back to `prev`."""
    cpu = smp_processor_id()
    s = k.sched
    prev = await this_cpu_read(s.curr[cpu])
    await this_cpu_write(s.need_resched[cpu], False)
    while True:
        task = await lockless_update(s.rq[cpu], _dequeue, "pick_next_task()")   # under the rq lock: one step
        if task is None:
            break
        await _context_switch(k, cpu, task)
        await s.kthreads[task](k, cpu)
    await _context_switch(k, cpu, prev)


def _dequeue(q: tuple) -> tuple:
    return (q[1:], q[0]) if q else (q, None)


def _enqueue(q: tuple, task: Task) -> tuple:
    if task in q:
        return q                                        # already woken: ttwu() does nothing
    return tuple(sorted(q + (task,), key=lambda t: -KTHREAD_PRIORITY[t]))


async def _context_switch(k, cpu: int, task: Task) -> None:
    await this_cpu_write(k.sched.curr[cpu], task)
    await ndelay(k.machine.cost_ns("context_switch_ns"))


@cpu_locals(cpu=("cpu",))
async def user_task(k) -> None:
    """A CPU-bound user task (S3's "executing user code"): runs until its
    CPU goes offline under it (the scheduler pushes it away, `balance_push()`),
    or until the freezer stops it (`freeze_processes()`, kernel/power/process.c:
    it enters the refrigerator at its next return to user space)."""
    cpu = smp_processor_id()
    s = k.sched
    await this_cpu_write(s.curr[cpu], Task.USER)
    await set_cpu_state(tick_enabled=True)
    while True:
        await spin_until(lambda: s.need_resched[cpu].value, what="user code")
        await schedule(k)
        if not await READ_ONCE(k.cpu_online_mask) >> cpu & 1:
            break                                        # pushed off the dead CPU
        if k.freezing is not None and await READ_ONCE(k.freezing):
            await lockless_update(k.frozen, lambda n: (n + 1, None), "try_to_freeze()")
            break
    await this_cpu_write(s.curr[cpu], Task.IDLE)
