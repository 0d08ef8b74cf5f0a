"""What both drivers share: each CPU's stack of contexts, and running it to the
next operation.

A CPU (`Strand` here, which keeps the engine free of the machine's `Cpu`) runs a
stack of frames: the task at the bottom, then any interrupt or NMI handlers pushed
on top. A handler that returns pops its frame and the code below goes on with the
operation it was in the middle of: a delay still ends at its deadline, a halt ends
because an interrupt was taken, a spin re-checks its condition. A handler that
never returns (`stop_this_cpu()`) leaves the code below suspended for good, as on
hardware.

The two drivers differ only in *when* an operation starts: the simulator starts
each one as soon as it is yielded and lets virtual time pass; the explorer holds
every shared operation at a gate so that it can choose which CPU goes next.
`_gate()` is that difference; everything else here is common.
"""

from __future__ import annotations

import enum
import random
from typing import Any, Coroutine

from haltlab.engine import context
from haltlab.engine.ops import Activity, Busy, Done, Gone, Op, Wait

__all__ = ["Driver", "DriverError", "Frame", "Status", "Strand", "Timer", "PARKED"]


class Status(enum.StrEnum):
    """Where a CPU's current operation stands, for its driver."""

    READY = "ready"          # between two ops (or held at the explorer's gate)
    BUSY = "busy"            # in a delay, until its deadline
    WAITING = "waiting"      # in a Wait (spin, halt, mwait), until its condition
    DONE = "done"            # no task, or its task returned
    GONE = "gone"            # left the model


# Members as module globals for the hot paths below: in Python 3.11 reading
# `Status.READY` is a class-attribute lookup of about 100 ns, a global about 10.
_READY = Status.READY
_DONE = Status.DONE
_STATUS_GONE = Status.GONE
_RUNNING = Activity.RUNNING
_IDLE = Activity.IDLE
_ACTIVITY_GONE = Activity.GONE

PARKED = object()
"""Returned by the step helpers when the CPU stops running for now (it waits, is
busy until a deadline, is held at the explorer's gate, or is gone)."""


class DriverError(RuntimeError):
    """Kernel code did something the engine cannot run: a bug in the model."""


class Frame:
    """One context on a CPU: the task, or one interrupt or NMI handler."""

    __slots__ = ("coro", "kind", "on_return", "op", "outcome", "deadline_ns", "resume_value")

    def __init__(self, coro: Coroutine, kind: str, on_return=None) -> None:
        self.coro = coro
        self.kind = kind            # "task", "irq" or "nmi"
        self.on_return = on_return  # the machine's `iret`: restores IF and NMI state
        self.op: Op | None = None   # yielded and not finished (held, busy or waiting)
        self.outcome: Busy | Wait | None = None
        self.deadline_ns: int | None = None
        self.resume_value: Any = None


class Timer:
    """A periodic device timer armed through `Driver.arm_timer()` (the LAPIC or
    arch timer behind the tick)."""

    __slots__ = ("period_ns", "fn", "args", "cancelled")

    def __init__(self, period_ns: int, fn, args: tuple) -> None:
        self.period_ns, self.fn, self.args = period_ns, fn, args
        self.cancelled = False


class Strand:
    """The driver's view of one CPU: its frames and what it is doing now."""

    __slots__ = ("cpu", "stack", "status", "gen", "activity")

    def __init__(self, cpu: int) -> None:
        self.cpu = cpu
        self.stack: list[Frame] = []
        self.status = Status.DONE
        self.gen = 0              # bumped to invalidate events scheduled for it
        self.activity = Activity.IDLE

    @property
    def top(self) -> Frame:
        return self.stack[-1]


class Driver:
    """Runs kernel coroutines on a machine; subclasses decide the schedule.

    The machine reaches its driver only through the methods under "what the
    machine may ask of the driver" below (and `now_ns`, the current time); each
    driver says there what it does with them."""

    def __init__(self, machine, *, seed: int = 0) -> None:
        self.machine = machine
        self.rng = random.Random(seed)
        self.now_ns = 0
        self.strands = [Strand(cpu) for cpu in range(machine.ncpus)]
        self.reset_reason: str | None = None
        machine.attach(self)

    def start_task(self, cpu: int, coro: Coroutine) -> None:
        """Put `coro` at the bottom of `cpu`'s stack and run it to its first op."""
        s = self.strands[cpu]
        if s.stack:
            raise DriverError(f"CPU{cpu} already runs a task")
        s.stack.append(Frame(coro, "task"))
        s.status = _READY
        self.set_activity(s, _RUNNING)
        self.run_strand(s, None)

    # --- the core step -----------------------------------------------------------

    def run_strand(self, s: Strand, value: Any) -> None:
        """Resume `s` with `value` and run it until it parks."""
        while value is not PARKED:
            if self._take_interrupt(s, value):
                value = None
                continue
            frame = s.top
            if frame.op is not None and frame.outcome is None:
                value = self._held(s, frame)       # a held op: start it if the gate allows
                continue
            try:
                context.set_current(self, s.cpu)
                op = frame.coro.send(value)
            except StopIteration:
                value = self._pop(s)
                continue
            if not isinstance(op, Op):
                raise DriverError(f"CPU{s.cpu} yielded {op!r}: kernel code may only await haltlab.engine.ops")
            frame.op = op
            value = self._held(s, frame)

    def _held(self, s: Strand, frame: Frame):
        op = frame.op
        if not self._gate(s, op):
            s.status = _READY
            return PARKED
        return self.start_op(s, frame, op)

    def start_op(self, s: Strand, frame: Frame, op: Op):
        """Start `op` on `s`; the value to resume with, or PARKED."""
        self.on_op(s, op)
        return self._started(s, frame, op, op.start(self.machine, s.cpu))

    def _started(self, s: Strand, frame: Frame, op: Op, outcome):
        """What `s` does once `op` has started with `outcome`: the value to resume
        with, or PARKED. (Split from `start_op()` so a driver with its own
        step loop can start the op itself and share this part.)"""
        if isinstance(outcome, Done):
            frame.op = None
            return self._after_done(s, outcome)
        if isinstance(outcome, Busy):
            frame.outcome = outcome
            frame.deadline_ns = self.now_ns + outcome.duration_ns
            return self._busy(s, frame)
        if isinstance(outcome, Wait):
            frame.outcome = outcome
            frame.deadline_ns = None if outcome.timeout_ns is None else self.now_ns + outcome.timeout_ns
            return self._begin_wait(s, frame, until_checked=True)
        if isinstance(outcome, Gone):
            frame.op = None
            self._gone(s, outcome)
            return PARKED
        raise DriverError(f"{op.describe()} returned {outcome!r}")

    def _take_interrupt(self, s: Strand, value: Any) -> bool:
        taken = self.machine.take_interrupt(s.cpu)
        if taken is None:
            return False
        coro, kind, on_return = taken
        s.top.resume_value = value
        s.stack.append(Frame(coro, kind, on_return))
        self.on_interrupt(s, kind)
        return True

    def _pop(self, s: Strand):
        """A frame returned: `iret` to the frame below and go on with its op."""
        frame = s.stack.pop()
        if frame.on_return is not None:
            frame.on_return()
        if not s.stack:
            s.status = _DONE
            self.set_activity(s, _IDLE)
            return PARKED
        below = s.top
        if below.outcome is None:
            return below.resume_value
        if self.machine.deliverable(s.cpu):
            # `iret` restored IF with another interrupt pending (it arrived while
            # the handler ran): take it before the interrupted op goes on.
            return None
        if isinstance(below.outcome, Busy):
            if self.now_ns >= below.deadline_ns:
                return self.finish(below, None)
            return self._busy(s, below)
        w = below.outcome
        if w.wake_on_irq:
            return self.finish(below, True)
        return self._begin_wait(s, below)

    def _begin_wait(self, s: Strand, frame: Frame, until_checked: bool = False):
        """`until_checked`: the op that returned this Wait has just found its
        condition false, and nothing has run since (no need to ask again)."""
        w = frame.outcome
        if not until_checked and w.until is not None and w.until():
            return self.finish(frame, True)
        if self._take_interrupt(s, None):
            return None     # e.g. `sti; hlt` with an interrupt pending: take it now
        return self._wait(s, frame)

    @staticmethod
    def finish(frame: Frame, result):
        frame.op = frame.outcome = frame.deadline_ns = None
        return result

    def _gone(self, s: Strand, gone: Gone) -> None:
        s.status = _STATUS_GONE
        self.set_activity(s, _ACTIVITY_GONE)
        if gone.whole_machine:
            self.reset_reason = gone.reason

    def set_activity(self, s: Strand, activity: Activity) -> None:
        if s.activity != activity:
            s.activity = activity
            self.machine.account(s.cpu, activity, self.now_ns)

    # --- what the drivers fill in ------------------------------------------------

    def _gate(self, s: Strand, op: Op) -> bool:
        """May `op` start now? The simulator says yes; the explorer holds shared ops."""
        return True

    def _after_done(self, s: Strand, done: Done):
        raise NotImplementedError

    def _busy(self, s: Strand, frame: Frame):
        raise NotImplementedError

    def _wait(self, s: Strand, frame: Frame):
        raise NotImplementedError

    # --- what the machine may ask of the driver ------------------------------------

    def post_interrupt(self, target: int, vector: str, latency_ns: int) -> None:
        """An interrupt is on its way to `target` and reaches it after `latency_ns`;
        the driver then calls `machine.raise_interrupt()` and delivers it."""
        raise NotImplementedError

    def interrupt_now(self, cpu: int) -> None:
        """A device has just raised an interrupt on `cpu` (the machine already set
        it pending): take it now if the CPU can."""
        raise NotImplementedError

    def arm_timer(self, period_ns: int, fn, *args) -> Timer:
        """Call `fn(*args)` every `period_ns`, the first time after a phase drawn
        from the run's seeded generator, until `cancel_timer()`."""
        raise NotImplementedError

    def cancel_timer(self, timer: Timer) -> None:
        """Stop `timer`; a firing it has already queued is dropped."""
        timer.cancelled = True

    # --- hooks ------------------------------------------------------------------------

    def on_op(self, s: Strand, op: Op) -> None:
        pass

    def on_interrupt(self, s: Strand, kind: str) -> None:
        pass
