"""The timed driver: integer-nanosecond virtual time over one event heap.

A heap of events ordered by `(time_ns, tiebreak, seq)`, as in SimPy's core,
where the tiebreak is drawn from the run's seeded generator: events at the same
nanosecond happen in an order that varies with the seed and never with anything
else, so (machine, kernel, policies, seed) always gives the same trace. `seq`
only makes heap entries totally ordered. The three are packed into one integer
key, `time_ns << 96 | tiebreak << 64 | seq` (the tiebreak has 32 bits, and `seq`
counts events scheduled, far below 2**64), whose order is exactly that of the
triple: an entry is `(key, time_ns, fn, args)`, and the heap compares one int
where it compared up to three tuple members, each behind a pointer (a burst of
8191 IPIs arriving in the same nanosecond compares tiebreaks all the way down).

Events scheduled for a CPU carry the CPU's generation number; when an interrupt
cuts a delay or a wait short the generation is bumped and the stale event is
dropped when it comes up, which is cheaper than removing it from the heap.

Shortcuts, and why each leaves every result as it was (byte for byte: the same
machine calls in the same order, the same draws from the generator, the same
`events_run`; `tests/engine/test_fast_paths.py` runs each configuration both
ways, against `Driver.run_strand()` with the shortcuts off):

* Ops start where kernel code awaits them. `Op.__await__` starts the op and
  hands its outcome to `context.inline` (this driver's `_inline()`, set while
  it runs a CPU), and goes on with the result without yielding up through
  every coroutine frame to this loop and back. That is what the loop would do with it: under this
  driver the gate always opens, so an op is started the moment it is yielded,
  and a `Done` that costs nothing resumes the coroutine at once unless an
  interrupt is deliverable (the loop checks before every resume; `_inline()`
  checks the same `irq_ready` and then hands the op back as `_Resolved`, so the
  loop takes the interrupt first, as before). When the CPU must wait instead
  (a cost, a delay, a spin, a halt) the op goes back to the loop, already
  started (`_Parked`, `_Started`), and the driver's state is what `start_op()`
  would have left. A subclass with an `on_op` hook gets every op yielded.
* The commonest ops have inline forms (`ops.py`, "Inline forms"): coroutines
  that do what the op's `start()` does and pass the outcome to `_inline()`
  themselves, with no op object or `__await__` generator; those that cost
  nothing (`READ_ONCE`, `this_cpu_read`/`_write`, `local_irq_save`/`_disable`,
  `set_cpu_state`) do not even call it, since a `Done` of cost 0 with no
  interrupt deliverable (and none of these ops can make one so) is resumed
  at once.
* `_inline()` starts a `Wait` itself, with the steps `Driver._started()` and
  `_begin_wait(until_checked=True)` take: the wait goes on the frame, an
  interrupt deliverable now is taken first (the loop takes it for a
  `_Resolved`, as `_take_interrupt()` would), else the CPU waits (`_wait()`).
  The op's condition was just found false and nothing ran since, so there is
  nothing to check again.
* `run()` sets `engine.context` (driver, runner, machine) and takes the lock
  that keeps simulations in threads apart once, and each strand sets only
  its CPU; a strand run outside `run()` (`start_task()`) sets all of it.
* One integer heap key (above) instead of three tuple members.
* A completion that is the next event runs at once (`_then()`). Scheduling an
  op's end draws its tiebreak and takes a sequence number as always; if the
  current event has nothing left to do after it (`chain`: `_resume`,
  `_busy_end`, `_wait_end` and `_arrive` end with the strand's run; a timer
  firing does not, it queues its next firing after) and the entry sorts before
  everything in the heap, `run()` would pop it next, with the same checks
  (`until_ns`, reset, stop) it makes before each pop. Running it in place saves
  the push, the pop and the dispatch and changes nothing else; it is counted
  in `events_run` as the event it is.
* `Machine.irq_ready` replaces asking the machine at every op boundary whether
  an interrupt can be taken: the machine recomputes it wherever one of the
  four fields it depends on changes (`Machine._ready()`).
* A spinner whose condition read the same variables as last time keeps its
  place in the watcher index instead of being removed and added again.
* `Machine.set_irq_flag()` with the flag as it was recomputes nothing: both
  `irq_ready` and the accounted state are current at every change of their
  inputs, so they would come out as they are.

No tick is skipped: in these models a halted idle CPU has no tick (NO_HZ idle
stops it, `do_idle()`), and once `smp_send_stop()` has run neither has the
panicking CPU (it disables its own local APIC), so the ticks left are those of
busy CPUs and of the panicking CPU before the stop, and every one of them is
observable (an `irq_log` entry, a state interval, a VM exit).
"""

from __future__ import annotations

import contextlib
import gc
import heapq
import threading
from typing import Any, Callable

from haltlab.engine import context
from haltlab.engine.core import PARKED, Driver, DriverError, Frame, Status, Strand, Timer
from haltlab.engine.ops import Activity, Busy, Done, Handover, Op, Wait
from haltlab.engine.ops import Resolved as _Resolved

# Members as module globals for the hot paths below: in Python 3.11 reading
# `Status.READY` is a class-attribute lookup of about 100 ns, a global about 10.
_READY = Status.READY
_BUSY = Status.BUSY
_WAITING = Status.WAITING
_RUNNING = Activity.RUNNING

__all__ = ["Simulator", "paused_gc"]

_RUNNING_A_CPU = threading.RLock()
"""Held while `Simulator.run()` runs events (and while `run_strand()` runs a
CPU outside it, as `start_task()` does). `engine.context` is one per process,
and the simulator clears it when `run()` returns, so two simulations in
threads of one process (a thread pool's sweep, a Dask worker's threads) must
not run CPUs at the same time: they take turns at `run()` boundaries, where
the context is set anew (without this a thread switch mid-strand let one
run's kernel code read the other's CPU). Turns used to be per strand; per
`run()` saves setting the context at every strand, and a scenario that needs
finer turns calls `run()` in slices (the flood does, every 5 ms)."""


class _Parked(Handover):
    """The op is started and the CPU parked (its resume or end is queued)."""

    __slots__ = ()


_PARK_TOKEN = _Parked()


class _Started(Handover):
    """The op is started with an outcome the loop handles (`Driver._started`)."""

    __slots__ = ("op", "outcome")

    def __init__(self, op: Op, outcome) -> None:
        self.op, self.outcome = op, outcome


def _clear_context() -> None:
    """`engine.context` cleared: nothing of a run stays reachable from the
    module once its CPUs are parked (`paused_gc()`: a dropped run must be
    garbage)."""
    context._driver = context.inline = context.hardware = None
    context._cpu = -1


@contextlib.contextmanager
def paused_gc():
    """The cyclic garbage collector off for a block (as it was, after): around
    `Simulator.run()`, whose objects (every CPU's coroutines, frames, strands)
    live until the run ends, so the collector would only rescan them; and
    around a whole run whose caller keeps only the result (`run_panic()`),
    build and result too (at 8192 CPUs 100-250 ms of a 0.6-0.9 s run went to
    rescanning the machine while it was built and while its result was read).

    A finished run is a cycle (machine and driver refer to each other) that
    only the collector frees, so the block must end after the run is
    dropped: then the run has never been scanned, all of it is still in the
    youngest generation, and the first collection after the block frees it.
    Ended while the run is still referenced (a pause inside
    `simulate_panic()`, which returns it), that collection would move the
    live run to an older generation instead, which back-to-back runs (a
    sweep's worker, a benchmark's repeats) do not collect in time: each kept
    the last one alive, 165 MiB instead of 67 MiB peak at 8192 busy CPUs
    (benchmarks/README.md). Nothing global may hold a run either: `run_strand()`
    clears `engine.context` when the CPU parks."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class Simulator(Driver):
    """Runs the kernel model in virtual time; deterministic for a seed."""

    def __init__(self, machine, *, seed: int = 0) -> None:
        self._heap: list[tuple] = []
        self._seq = 0
        # Spinners, indexed by what their condition read when last evaluated:
        # a store wakes only the CPUs that watch the variable it wrote.
        self._watchers: dict[Any, set[int]] = {}          # Var -> CPUs
        self._watching: dict[int, frozenset] = {}          # CPU -> Vars
        self.events_run = 0
        self.stopped = False
        self._until_ns: int | None = None   # while run() runs: how far an event may chain
        self._strand: Strand | None = None  # the CPU run_strand() runs, and
        self._chain = False                 # whether its completions may chain
        super().__init__(machine, seed=seed)
        machine.memory.on_write = self._on_write
        # Bound once: `run_strand()` hands `_inline` to `engine.context` at
        # every strand, and `_then()` draws a tiebreak at every completion.
        self._runner = self._inline
        self._getrandbits = self.rng.getrandbits
        self._irq_ready = machine.irq_ready
        # The hooks, when a subclass fills them in (the base ones do nothing).
        self._on_op = None if type(self).on_op is Driver.on_op else self.on_op
        self._on_interrupt = None if type(self).on_interrupt is Driver.on_interrupt else self.on_interrupt

    # --- the event queue -----------------------------------------------------------

    def schedule(self, at_ns: int, fn: Callable[..., Any], *args: Any) -> None:
        if at_ns < self.now_ns:
            raise ValueError(f"event scheduled in the past: {at_ns} < {self.now_ns}")
        self._seq += 1
        heapq.heappush(self._heap, ((at_ns << 96) | (self._getrandbits(32) << 64) | self._seq, at_ns, fn, args))

    def run(self, until_ns: int) -> None:
        """Run every event up to `until_ns`, or until the machine resets.

        The cyclic garbage collector is off meanwhile: a large machine keeps
        thousands of live coroutines and frames that it would rescan over and
        over for nothing (0.9 s of 1.6 s at 8192 CPUs, benchmarks/README.md)."""
        heap = self._heap
        pop = heapq.heappop
        self._until_ns = until_ns
        # `paused_gc()`, spelled out: a scenario that steps the run in slices
        # (the flood's livelock checks, every 5 ms of virtual time) calls this
        # hundreds of times a run, and a generator-based context manager costs
        # a few microseconds each time.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        # The CPUs run one at a time, each strand setting only `context._cpu`:
        # the rest of `engine.context` stays this run's until the loop ends
        # (`run_strand()`), and so does the lock, which a simulation in
        # another thread waits for.
        _RUNNING_A_CPU.acquire()
        self._set_context()
        try:
            while heap and heap[0][1] <= until_ns and self.reset_reason is None and not self.stopped:
                _, at_ns, fn, args = pop(heap)
                self.now_ns = at_ns
                fn(*args)
                self.events_run += 1
        finally:
            self._until_ns = None
            _clear_context()
            _RUNNING_A_CPU.release()
            if gc_was_enabled:
                gc.enable()
        if self.reset_reason is None and not self.stopped and self.now_ns < until_ns:
            self.now_ns = until_ns   # everyone waits: time still passes

    def stop(self) -> None:
        """End `run()` after the current event (a scenario's observation is over)."""
        self.stopped = True

    def _then(self, at_ns: int, chain: bool, fn: Callable[..., Any], args: tuple) -> bool:
        """Schedule `fn(*args)` at `at_ns`, unless `chain` and it would be the very
        next event `run()` pops: then count it as run and return True, and the
        caller runs it at once (see the module docstring for why that is exact)."""
        tiebreak = self._getrandbits(32)
        self._seq += 1
        if chain and at_ns <= self._until_ns and self.reset_reason is None and not self.stopped:
            heap = self._heap
            # Sorts first: before the head's time, or at it with a smaller
            # (tiebreak, seq); the packed key only for that tie.
            if not heap or at_ns < heap[0][1] or (
                    at_ns == heap[0][1] and (at_ns << 96 | tiebreak << 64 | self._seq) < heap[0][0]):
                self.now_ns = at_ns
                self.events_run += 1
                return True
        if at_ns < self.now_ns:
            raise ValueError(f"event scheduled in the past: {at_ns} < {self.now_ns}")
        heapq.heappush(self._heap, ((at_ns << 96) | (tiebreak << 64) | self._seq, at_ns, fn, args))
        return False

    # --- the step loop -----------------------------------------------------------------

    def run_strand(self, s: Strand, value: Any, chain: bool = False) -> None:
        """`Driver.run_strand()` for a driver whose gate always opens.

        Ops are started where kernel code awaits them (`_inline()`, through
        `context.inline`), so a CPU goes back to this loop only to park, to take
        an interrupt, or for an outcome other than `Done` and `Busy`; the calls
        on the machine are the same, in the same order, as `Driver.run_strand()`
        makes. With an `on_op` hook (a subclass watching ops) every op is yielded
        and started here instead.

        `chain`: this call is the last thing the current event does, so an op's
        completion that would be the very next event may run at once."""
        machine = self.machine
        cpu = s.cpu
        stack = s.stack
        irq_ready = machine.irq_ready
        on_op, on_interrupt = self._on_op, self._on_interrupt
        self._strand, self._chain = s, chain
        # Nothing in this loop runs another CPU (a store, an IPI or a timer only
        # queues events), so `smp_processor_id()` stays `cpu` throughout.
        # Inside `run()` the rest of the context is set and the lock held
        # already; a strand run from outside it (`start_task()`) sets both.
        outside_run = context._driver is not self
        if outside_run:
            _RUNNING_A_CPU.acquire()
            self._set_context()
        context._cpu = cpu
        try:
            while value is not PARKED:
                if irq_ready[cpu]:
                    coro, kind, on_return = machine.take_interrupt(cpu)
                    stack[-1].resume_value = value
                    stack.append(Frame(coro, kind, on_return))
                    if on_interrupt is not None:
                        on_interrupt(s, kind)
                    value = None
                    continue
                frame = stack[-1]
                try:
                    op = frame.coro.send(value)
                except StopIteration:
                    value = self._pop(s)
                    continue
                op_type = type(op)
                if op_type is _Parked:
                    return
                if op_type is _Resolved:
                    value = op.result
                    continue
                if op_type is _Started:
                    frame.op = op.op
                    value = self._started(s, frame, op.op, op.outcome)
                    continue
                if not isinstance(op, Op):
                    raise DriverError(f"CPU{cpu} yielded {op!r}: kernel code may only await haltlab.engine.ops")
                frame.op = op
                if on_op is not None:
                    on_op(s, op)
                value = self._started(s, frame, op, op.start(machine, cpu))
        finally:
            context._cpu = -1
            if outside_run:
                _clear_context()
                _RUNNING_A_CPU.release()

    def _set_context(self) -> None:
        """`set_current(self, -1, runner)`, spelled out: the runner when no
        `on_op` hook wants every op yielded."""
        context._driver = self
        if self._on_op is None:
            context.inline = self._runner
            context.hardware = self.machine
        else:
            context.inline = context.hardware = None

    def _inline(self, op: Op | None, outcome):
        """What the loop above would do with `op`, just started with `outcome`
        on the CPU `run_strand()` runs, done inside the coroutine that awaits
        it (`Op.__await__`, or an op's inline form, which passes `op` None): the
        op's result, to go on with at once, or a `Handover` when the loop
        would not resume the coroutine now.

        What the loop would do after `start_op()`: a `Done` costing nothing
        resumes at once, one with a cost schedules the resume; a `Busy`
        schedules its end; either may chain (`_then()`), and then goes on at
        once unless an interrupt is deliverable (the loop checks for one before
        every resume). Anything else goes back to the loop as `_Started`."""
        s = self._strand
        outcome_type = type(outcome)
        if outcome_type is Done:
            value = outcome.result
            cost_ns = outcome.cost_ns
            if cost_ns:
                s.status = _READY
                now_ns = self.now_ns
                if s.activity is not _RUNNING:
                    s.activity = _RUNNING
                    self.machine.account(s.cpu, _RUNNING, now_ns)
                # `_then(now_ns + cost_ns, self._chain, self._resume, ...)`,
                # inlined: this is the commonest completion there is.
                at_ns = now_ns + cost_ns
                tiebreak = self._getrandbits(32)
                seq = self._seq = self._seq + 1
                heap = self._heap
                if (self._chain and at_ns <= self._until_ns and self.reset_reason is None and not self.stopped
                        and (not heap or at_ns < heap[0][1]
                             or (at_ns == heap[0][1] and (at_ns << 96 | tiebreak << 64 | seq) < heap[0][0]))):
                    self.now_ns = at_ns
                    self.events_run += 1
                else:
                    heapq.heappush(heap, ((at_ns << 96) | (tiebreak << 64) | seq, at_ns, self._resume,
                                          (s, s.gen, value)))
                    return _PARK_TOKEN
            if self._irq_ready[s.cpu]:
                return _Resolved(value)
            return value
        if outcome_type is Busy:
            frame = s.stack[-1]
            frame.op, frame.outcome = op, outcome
            deadline_ns = frame.deadline_ns = self.now_ns + outcome.duration_ns
            s.status = _BUSY
            if s.activity is not _RUNNING:
                s.activity = _RUNNING
                self.machine.account(s.cpu, _RUNNING, self.now_ns)
            if not self._then(deadline_ns, self._chain, self._busy_end, (s, s.gen)):
                return _PARK_TOKEN
            s.gen += 1                      # as _busy_end() does
            frame.op = frame.outcome = frame.deadline_ns = None
            if self._irq_ready[s.cpu]:
                return _Resolved(None)
            return None
        if outcome_type is Wait:
            # `Driver._started()` then `_begin_wait(until_checked=True)`: an
            # interrupt deliverable now is taken first (the loop takes it for
            # a `_Resolved`, leaving the wait on the frame, as
            # `_take_interrupt()` does), else the CPU waits.
            frame = s.stack[-1]
            frame.op, frame.outcome = op, outcome
            frame.deadline_ns = None if outcome.timeout_ns is None else self.now_ns + outcome.timeout_ns
            if self._irq_ready[s.cpu]:
                return _Resolved(None)
            value = self._wait(s, frame)
            return _PARK_TOKEN if value is PARKED else value
        return _Started(op, outcome)

    # --- how time passes for a CPU -------------------------------------------------------

    def _after_done(self, s: Strand, done):
        if not done.cost_ns:
            return done.result
        s.status = _READY
        self.set_activity(s, _RUNNING)
        self.schedule(self.now_ns + done.cost_ns, self._resume, s, s.gen, done.result)
        return PARKED

    def _resume(self, s: Strand, gen: int, value: Any) -> None:
        if gen == s.gen:
            self.run_strand(s, value, True)

    def _busy(self, s: Strand, frame):
        s.status = _BUSY
        self.set_activity(s, _RUNNING)
        self.schedule(frame.deadline_ns, self._busy_end, s, s.gen)
        return PARKED

    def _busy_end(self, s: Strand, gen: int) -> None:
        if gen == s.gen:
            s.gen += 1
            frame = s.stack[-1]
            frame.op = frame.outcome = frame.deadline_ns = None     # `finish()`
            self.run_strand(s, None, True)

    def _wait(self, s: Strand, frame):
        if frame.deadline_ns is not None and frame.deadline_ns < self.now_ns:
            # A handler ran past the wait's timeout (its condition, re-checked
            # on return, is still false): the wait has timed out, now. It used
            # to queue its end in the past and stop the run with a ValueError.
            return self.finish(frame, False)
        s.status = _WAITING
        w = frame.outcome
        if s.activity is not w.state:           # `set_activity()`, inlined
            s.activity = w.state
            self.machine.account(s.cpu, w.state, self.now_ns)
        if w.until is not None:
            self._watch(s)
        if frame.deadline_ns is not None:
            self.schedule(frame.deadline_ns, self._wait_end, s, s.gen, False)
        return PARKED

    def _wait_end(self, s: Strand, gen: int, result: bool) -> None:
        if gen == s.gen:
            s.gen += 1
            if s.cpu in self._watching:         # (a spinner woken by a store is unwatched already)
                self._unwatch(s.cpu)
            if s.activity is not _RUNNING:      # `set_activity()`, inlined
                s.activity = _RUNNING
                self.machine.account(s.cpu, _RUNNING, self.now_ns)
            frame = s.stack[-1]
            frame.op = frame.outcome = frame.deadline_ns = None     # `finish()`
            self.run_strand(s, result, True)

    def _watch(self, s: Strand) -> None:
        """(Re-)evaluate a spinner's condition, noting what it read; if it holds,
        wake the spinner at this same nanosecond.

        Deferred through the heap rather than run here, because a writer may
        still be in the middle of its own operation."""
        cpu = s.cpu
        # `Memory.traced()`, inlined (a store to a variable every stopper spins
        # on re-checks all of them): the reads are made into a frozenset only
        # when they differ from what the index holds.
        memory = self.machine.memory
        outer, memory.reads = memory.reads, set()
        try:
            holds = s.stack[-1].outcome.until()
            reads = memory.reads
        finally:
            memory.reads = outer
        if holds:
            # `_unwatch(cpu)`, then `schedule(now_ns, _wait_end, ...)`, inlined:
            # a store every stopper spins on wakes all of them here.
            watched = self._watching.pop(cpu, None)
            if watched:
                watchers = self._watchers
                for var in watched:
                    watchers[var].discard(cpu)
            at_ns = self.now_ns
            seq = self._seq = self._seq + 1
            heapq.heappush(self._heap, ((at_ns << 96) | (self._getrandbits(32) << 64) | seq, at_ns,
                                        self._wait_end, (s, s.gen, True)))
            return
        if self._watching.get(cpu) == reads:
            return          # it read the same variables as last time: already indexed so
        self._unwatch(cpu)
        self._watching[cpu] = reads = frozenset(reads)
        for var in reads:
            self._watchers.setdefault(var, set()).add(cpu)

    def _unwatch(self, cpu: int) -> None:
        for var in self._watching.pop(cpu, ()):
            self._watchers[var].discard(cpu)

    def _on_write(self, var) -> None:
        """A store may satisfy the spinners whose condition read `var`, and only
        those (`Memory.traced`); in CPU order, so the seeded tie-breaks of their
        wake-ups are drawn in an order that does not depend on hashing."""
        cpus = self._watchers.get(var)
        if cpus:
            for cpu in sorted(cpus):
                self._watch(self.strands[cpu])

    # --- interrupts ------------------------------------------------------------------

    def post_interrupt(self, target: int, vector: str, latency_ns: int) -> None:
        self.schedule(self.now_ns + latency_ns, self._arrive, target, vector)

    def _arrive(self, cpu: int, vector: str) -> None:
        self.machine.raise_interrupt(cpu, vector)
        self.interrupt_now(cpu, True)

    def interrupt_now(self, cpu: int, chain: bool = False) -> None:
        """Cut a delay or wait short if the CPU can take a pending interrupt now.

        A CPU between two ops (its resume event pending) takes it at that boundary.
        `chain`: as for `run_strand()` (the machine's tick calls this from inside
        a timer event, which goes on to queue the next firing: no chaining)."""
        s = self.strands[cpu]
        if (s.status is _BUSY or s.status is _WAITING) and self._irq_ready[cpu]:
            s.gen += 1
            if cpu in self._watching:
                self._unwatch(cpu)
            if s.activity is not _RUNNING:      # `set_activity()`, inlined
                s.activity = _RUNNING
                self.machine.account(cpu, _RUNNING, self.now_ns)
            self.run_strand(s, None, chain)

    # --- timers ------------------------------------------------------------------------

    def arm_timer(self, period_ns: int, fn: Callable[..., Any], *args: Any) -> Timer:
        """The first firing comes at a phase in [0, period_ns) drawn from the run's
        generator: a timer's phase relative to the panic is unknown, and the seed
        is what varies it."""
        timer = Timer(period_ns, fn, args)
        phase = self.rng.randrange(period_ns)
        self.schedule(self.now_ns + phase, self._timer_fires, timer)
        return timer

    def _timer_fires(self, timer: Timer) -> None:
        """Fire, then queue the next firing. A timer cancelled meanwhile (even by
        what `fn` ran) keeps that one queued entry, dropped when it comes up:
        cheaper than removing it from the heap."""
        if timer.cancelled:
            return
        timer.fn(*timer.args)
        self.schedule(self.now_ns + timer.period_ns, self._timer_fires, timer)
