"""The only things kernel code awaits.

As in Trio's `_traps.py`, this module holds every operation that yields to the
driver; everything else in the kernel model is plain `async def` code that awaits
these. Each operation is a small request object: the coroutine yields it, the
driver (simulator or explorer) carries it out against the machine and resumes the
coroutine with its result. Pure computation between two operations is not a
scheduling point, so every race window in the model is visible here.

Operations come in three sorts:

* shared: touches state other CPUs can see (memory, interrupts in flight). The
  explorer branches on the order of these.
* local: touches only the calling CPU (its interrupt flag, its local APIC). They
  commute with every other CPU's operations, so the explorer runs them without
  branching (the classic "invisible operation" reduction).
* waits: `mdelay`, `spin_until`, `safe_halt`, ... The op's `start()` returns what
  the CPU does meanwhile (busy, spinning, halted) and when it ends. A delay is
  local but still a branch point: it is where time passes, so interrupts and
  other CPUs can overtake it.

All a driver needs to know is `branch`: whether the explorer chooses the next
CPU before the op (true for shared ops and delays, false for local ones).

An op that needs the hardware calls one method of `Hardware`, the protocol the
machine implements (the engine never imports the machine). Each operation is its
own class here calling its own method, never a name looked up at run time, so
this module is the complete list of what kernel code can do.

A forgotten `await` leaves a coroutine never started; `Op.__del__` cannot see that,
so the drivers instead refuse any yielded value that is not an `Op`.
"""

from __future__ import annotations

import enum
import types
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Union

from haltlab.engine import context
from haltlab.engine.memory import Var, for_each_cpu

__all__ = [
    "Activity", "WAIT_STATES", "Op", "Handover", "Resolved", "Done", "DONE", "Busy", "Wait", "Gone",
    "READ_ONCE", "WRITE_ONCE", "xchg", "cmpxchg", "atomic_try_cmpxchg",
    "atomic_add_return", "lockless_update", "raw_spin_section", "set_bit", "clear_bit", "test_and_set_bit",
    "cpu_relax", "spin_until", "sleep_until", "mwait_until", "this_cpu_read", "this_cpu_write", "mdelay", "udelay", "ndelay",
    "local_irq_disable", "local_irq_enable", "local_irq_save", "local_irq_restore", "safe_halt", "native_halt",
    "send_IPI_mask", "send_NMI_mask", "set_cpu_state", "irq_entry", "uart_write",
    "pvpanic_event", "emergency_restart", "relocate_kernel", "psci_cpu_off", "psci_affinity_info", "PSCI_0_2_AFFINITY_LEVEL_ON",
    "PSCI_0_2_AFFINITY_LEVEL_OFF", "Hardware", "Outcome",
    "Footprint", "Shared", "BitUpdate", "Inflight", "Local", "Ghost", "Device", "CONSOLE", "WHOLE_MACHINE", "cond_footprint",
]

NSEC_PER_USEC = 1_000
NSEC_PER_MSEC = 1_000_000


class Activity(enum.StrEnum):
    """What a CPU's hardware does, as the driver sees it (`Strand.activity`)."""

    RUNNING = "running"      # executing (a delay, an op's cost, a handler)
    SPINNING = "spinning"    # in a `spin_until` loop: executing too
    HALTED = "halted"        # `hlt`/`wfi`: releases the CPU until an interrupt
    MWAIT = "mwait"          # `mwait`: released until a store or an interrupt
    IDLE = "idle"            # no task yet, or its task returned
    GONE = "gone"            # left the model (CPU_OFF, or the machine reset)


WAIT_STATES = frozenset((Activity.SPINNING, Activity.HALTED, Activity.MWAIT))
"""The activities a `Wait` may name."""

_SPINNING = Activity.SPINNING   # a global: a member lookup costs ~100 ns in Python 3.11
_HALTED = Activity.HALTED
_MWAIT = Activity.MWAIT


# --- what a started operation does -------------------------------------------------

class Done:
    """The op completed at once; the CPU is busy for `cost_ns` before its next op.

    Never changed once made, so one instance may stand for every op that ends
    the same way (`DONE`, and the machine's `Machine.done()`): a Python object
    with an `__init__` costs about 150 ns to make, at most op boundaries."""

    __slots__ = ("result", "cost_ns")

    def __init__(self, result: Any = None, cost_ns: int = 0) -> None:
        self.result = result
        self.cost_ns = cost_ns


class Busy:
    """The CPU executes for `duration_ns` (a delay loop). Interrupts, if enabled,
    run in the middle and the delay still ends at its deadline, as `delay_tsc()`
    measures elapsed TSC rather than loop iterations."""

    __slots__ = ("duration_ns",)

    def __init__(self, duration_ns: int) -> None:
        self.duration_ns = duration_ns


class Wait:
    """The CPU waits for `until()` to become true.

    `state` is what the hardware does meanwhile, one of `WAIT_STATES` (SPINNING
    burns the CPU; HALTED and MWAIT release it). `until` is re-checked after a store to a
    shared variable it read and after every interrupt handler this CPU runs. With
    `timeout_ns` the wait ends with result False at the deadline. `wake_on_irq`
    ends the wait (result True) once an interrupt has been taken, as `hlt` does.
    """

    __slots__ = ("until", "state", "timeout_ns", "wake_on_irq")

    def __init__(self, until: Callable[[], bool] | None, state: Activity,
                 timeout_ns: int | None = None, wake_on_irq: bool = False) -> None:
        if state not in WAIT_STATES:
            raise ValueError(f"Wait(state={state!r}): a wait spins, halts or mwaits")
        self.until = until
        self.state = state
        self.timeout_ns = timeout_ns
        self.wake_on_irq = wake_on_irq


class Gone:
    """This CPU leaves the model (PSCI CPU_OFF) or the whole machine resets."""

    __slots__ = ("reason", "whole_machine")

    def __init__(self, reason: str, whole_machine: bool = False) -> None:
        self.reason = reason
        self.whole_machine = whole_machine


DONE = Done()
"""The op completed at once, costing nothing and returning nothing."""

Outcome = Union[Done, Busy, Wait, Gone]
"""What a started operation does: the value of every `Op.start()`."""


# --- footprints: what an operation touches, for the partial-order reduction -----------
#
# Two steps of different CPUs commute (give the same state in either order, and
# neither enables or disables the other) when their footprints do not conflict:
# no resource that one writes and the other reads or writes. Each operation
# declares its own below (`Op.footprint`); `haltlab.engine.por` uses them.

@dataclass(frozen=True)
class Shared:
    """A shared variable (`Var`), by name (the same across replays of a run)."""
    name: str


@dataclass(frozen=True)
class Inflight:
    """The interrupt `vector` in flight to `cpu` (sent, not yet arrived)."""
    cpu: int
    vector: str


@dataclass(frozen=True)
class Local:
    """One CPU's own state: its hardware flags, pending interrupts and stack."""
    cpu: int


@dataclass(frozen=True)
class BitUpdate:
    """A blind `set_bit`/`clear_bit` of bit `nr` of the shared variable `name`
    (its result unused). Two of them commute unless they set and clear the same
    bit; against any read or write of the variable they conflict."""
    name: str
    nr: int
    set: bool


@dataclass(frozen=True)
class Ghost:
    """One fact of the ghost state (`"*"`: any of them)."""
    key: str


@dataclass(frozen=True)
class Device:
    """A device every CPU shares (the console)."""
    name: str


CONSOLE = Device("console")


@dataclass(frozen=True)
class Footprint:
    reads: frozenset = frozenset()
    writes: frozenset = frozenset()
    whole: bool = False          # touches the whole machine (a reset): conflicts with everything
    updates: frozenset = frozenset()    # BitUpdates: commuting writes (see `BitUpdate`)

    def __or__(self, other: "Footprint") -> "Footprint":
        return Footprint(self.reads | other.reads, self.writes | other.writes, self.whole or other.whole,
                         self.updates | other.updates)

    def conflicts(self, other: "Footprint") -> bool:
        if self.whole or other.whole:
            return True
        if self.writes & (other.reads | other.writes) or other.writes & self.reads:
            return True
        if self.updates or other.updates:
            return _updates_conflict(self, other) or _updates_conflict(other, self)
        return False


def _updates_conflict(a: Footprint, b: Footprint) -> bool:
    """`a`'s bit updates against everything `b` touches."""
    touched = {r.name for r in b.reads | b.writes if isinstance(r, Shared)}
    for u in a.updates:
        if u.name in touched:
            return True
        for v in b.updates:
            if v.name == u.name and v.nr == u.nr and v.set != u.set:
                return True
    return False


WHOLE_MACHINE = Footprint(whole=True)


# --- the operation objects ---------------------------------------------------------

class Op:
    """Base of every awaitable operation. `start(machine, cpu)` does its effect."""

    __slots__ = ()
    branch = True   # the explorer chooses the next CPU before this op
    delay = False   # a pure delay: time passes, nothing else (`ExplorerDriver(local_delays=...)`)

    def __await__(self):
        # A driver that can start an op where it is awaited (the simulator: see
        # `context.inline`) saves the trip out through every coroutine frame
        # above this one and back; it hands back a `Handover` when the CPU must
        # go back to the driver after all (to park, or to take an interrupt).
        runner = context.inline
        if runner is not None:
            value = runner(self, self.start(context.hardware, context._cpu))
            if not isinstance(value, Handover):
                return value
            return (yield value)
        return (yield self)

    def start(self, machine: "Hardware", cpu: int) -> Outcome:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:
        return type(self).__name__

    def footprint(self, machine: "Hardware", cpu: int) -> Footprint:
        """What starting this op on `cpu` now touches, besides `Local(cpu)`.
        Conservative by default: an op that declares nothing conflicts with
        every other."""
        return WHOLE_MACHINE


class Handover(Op):
    """What an inline runner (`context.inline`) gives back for the awaiting
    coroutine to yield to its driver in place of the op it already started:
    the driver's own token, never kernel code's, never started again."""

    __slots__ = ()


class Resolved(Handover):
    """The op is done with `result`, but an interrupt is deliverable first: the
    driver takes it, then resumes the coroutine with `result`."""

    __slots__ = ("result",)

    def __init__(self, result: Any) -> None:
        self.result = result


class _Rmw(Op):
    """A read-modify-write on one shared variable; `fn(old) -> (new, result)`.

    One class for every atomic keeps the driver small; the name says which kernel
    primitive it stands for in traces.
    """

    __slots__ = ("var", "fn", "name", "writes", "bit")

    def __init__(self, name: str, var: Var, fn: Callable[[Any], tuple[Any, Any]], writes: bool = True,
                 bit: BitUpdate | None = None):
        self.var, self.fn, self.name, self.writes, self.bit = var, fn, name, writes, bit

    def start(self, machine, cpu):
        # `_value`, not `value`: an op's own access is not a spinner condition's
        # read, and `Memory.traced()` never runs around `start()`.
        var = self.var
        old = var._value
        new, result = self.fn(old)
        if not self.writes:
            return Done(result)
        if new != old:
            var.memory.store(var, new)
        if result is None:
            return machine.done("atomic_op_ns")
        return Done(result, machine.cost_ns("atomic_op_ns"))

    def describe(self) -> str:
        return f"{self.name}({self.var.name})"

    def footprint(self, machine, cpu) -> Footprint:
        """A read; a write too when it would store (a failing cmpxchg only reads);
        a blind bit update is a `BitUpdate`, which commutes with others."""
        if self.bit is not None:
            return Footprint(updates=frozenset((self.bit,)))
        res = frozenset((Shared(self.var.name),))
        if self.writes:
            cur = self.var._value
            if self.fn(cur)[0] != cur:
                return Footprint(res, res)
        return Footprint(res)


def _read(old: Any) -> tuple[Any, Any]:
    return old, old


class _ReadOnce(_Rmw):
    """`READ_ONCE()`: an `_Rmw` that only reads, started without calling its
    `fn` (the commonest op there is: a flood run makes thousands)."""

    __slots__ = ()

    def __init__(self, var: Var) -> None:
        self.var, self.fn, self.name, self.writes, self.bit = var, _read, "READ_ONCE", False, None

    def start(self, machine, cpu):
        return Done(self.var._value)


class _WriteOnce(_Rmw):
    """`WRITE_ONCE()`: an `_Rmw` storing `value`, started without calling its `fn`."""

    __slots__ = ("value",)

    def __init__(self, var: Var, value: Any) -> None:
        self.var, self.name, self.writes, self.bit, self.value = var, "WRITE_ONCE", True, None, value
        self.fn = lambda old: (value, None)

    def start(self, machine, cpu):
        var, value = self.var, self.value
        if value != var._value:
            var.memory.store(var, value)
        return machine.done("atomic_op_ns")


def _atomic(name: str, var: Var, fn: Callable[[Any], tuple[Any, Any]]) -> Op:
    """An `_Rmw` that may write, or under the simulator its inline form."""
    if context.inline is not None:
        return _rmw_now(var, fn)                # see "Inline forms" below
    return _Rmw(name, var, fn)


def READ_ONCE(var: Var) -> Op:
    if context.inline is not None:
        return _read_once_now(var)      # see "Inline forms" below
    return _ReadOnce(var)


def WRITE_ONCE(var: Var, value: Any) -> Op:
    if context.inline is not None:
        return _write_once_now(var, value)      # see "Inline forms" below
    return _WriteOnce(var, value)


def xchg(var: Var, value: Any) -> Op:
    return _atomic("xchg", var, lambda old: (value, old))


def cmpxchg(var: Var, old: Any, new: Any) -> Op:
    """Returns the value found, as the kernel's `cmpxchg()`."""
    return _atomic("cmpxchg", var, lambda cur: (new if cur == old else cur, cur))


def atomic_try_cmpxchg(var: Var, old: Any, new: Any) -> Op:
    """Returns `(succeeded, value_found)`: the kernel writes the found value back
    through its `old` pointer; a tuple is the Python spelling of that."""
    return _atomic("atomic_try_cmpxchg", var, lambda cur: (new if cur == old else cur, (cur == old, cur)))


def atomic_add_return(var: Var, delta: int) -> Op:
    if context.inline is not None:
        return _add_now(var, delta)             # see "Inline forms" below
    return _atomic("atomic_add_return", var, lambda cur: (cur + delta, cur + delta))


def lockless_update(var: Var, fn: Callable[[Any], tuple[Any, Any]], what: str) -> Op:
    """One update of a lockless structure whose whole state is the value of
    `var` (printk's ring buffer): `fn(old) -> (new, result)`, applied at once.

    The structure's own code is a loop of cmpxchg()es whose effect takes place
    at one of them (its linearization point); modelling the whole update as one
    step at that point keeps every outcome the loop can have, since no other
    CPU can observe the structure between a failed attempt and the retry.
    Costs one atomic, as the successful cmpxchg does. `what` names the kernel
    function (`prb_reserve`) in traces."""
    return _atomic(what, var, fn)


class _SpinSection(Op):
    """The body of a raw spinlock section and its `raw_spin_unlock()`, as one step."""

    __slots__ = ("lock", "vars", "fn", "what")

    def __init__(self, lock: Var, vars: tuple, fn, what: str) -> None:
        self.lock, self.vars, self.fn, self.what = lock, vars, fn, what

    def start(self, machine, cpu):
        lock = self.lock
        if lock._value != cpu:
            raise RuntimeError(f"{self.what}: CPU{cpu} runs the section of {lock.name} without holding it "
                               f"(held by {lock._value})")
        updates, result = self.fn(*(v._value for v in self.vars))
        memory = lock.memory
        for var, value in updates:
            if var._value != value:
                memory.store(var, value)
        memory.store(lock, -1)
        return Done(result, machine.cost_ns("atomic_op_ns"))

    def describe(self) -> str:
        return f"{self.what}({self.lock.name})"

    def footprint(self, machine, cpu) -> Footprint:
        touched = frozenset(Shared(v.name) for v in (self.lock, *self.vars))
        return Footprint(touched, touched)


def raw_spin_section(lock: Var, vars: tuple, fn: Callable[..., tuple], what: str) -> Op:
    """What a CPU does between `raw_spin_lock(lock)` (which it holds, as its CPU
    number in `lock`) and `raw_spin_unlock(lock)`, in one step:
    `fn(*values of vars) -> (((var, new value), ...), result)`, then the unlock.

    One step is exact for the CPUs that take the lock: none of them can see
    the section's variables in between. It is exact for everything else as
    long as the section's variables are written only under the lock and at
    most one access in the section is to a variable some CPU touches without
    it (Lipton's reduction: the protected accesses commute with every other
    CPU's steps, and one unprotected access is one point either way); the
    caller says why that holds. The lock itself is taken by its own step
    before (`kernel.locking.raw_spin_lock`), so a CPU stopped by an NMI while
    holding it still leaves it held, as in the kernel."""
    return _SpinSection(lock, tuple(vars), fn, what)


def set_bit(nr: int, var: Var) -> Op:
    if context.inline is not None:
        return _bit_now(nr, var, True)          # see "Inline forms" below
    return _Rmw("set_bit", var, lambda cur: (cur | (1 << nr), None), bit=BitUpdate(var.name, nr, True))


def clear_bit(nr: int, var: Var) -> Op:
    if context.inline is not None:
        return _bit_now(nr, var, False)         # see "Inline forms" below
    return _Rmw("clear_bit", var, lambda cur: (cur & ~(1 << nr), None), bit=BitUpdate(var.name, nr, False))


def test_and_set_bit(nr: int, var: Var) -> Op:
    return _atomic("test_and_set_bit", var, lambda cur: (cur | (1 << nr), bool(cur >> nr & 1)))


class _SpinUntil(Op):
    __slots__ = ("cond", "timeout_ns", "what")

    def __init__(self, cond, timeout_ns, what):
        self.cond, self.timeout_ns, self.what = cond, timeout_ns, what

    def start(self, machine, cpu):
        if self.cond():
            return Done(True, machine.cost_ns("atomic_op_ns"))
        if self.timeout_ns == 0:
            return Done(False)
        return Wait(self.cond, _SPINNING, self.timeout_ns)

    def describe(self) -> str:
        return f"spin_until({self.what})"

    def footprint(self, machine, cpu) -> Footprint:
        return cond_footprint(machine.memory, self.cond)


def spin_until(cond: Callable[[], bool], *, timeout_ns: int | None = None, what: str = "") -> Op:
    """Stands for `while (!cond) cpu_relax();` (or, with a timeout, the kernel's
    `while (!cond && timeout--) udelay(1);`). Returns whether `cond` came true.

    One op instead of a loop of `cpu_relax()` keeps a spinning CPU from costing an
    event per iteration; `cond` may read shared variables directly (`var.value`)
    because the simulator re-evaluates it after a store to any variable it read
    last time, which is exactly when it can change. So `cond` must depend on
    `Var`s only, never on plain Python state that changes without a store.
    """
    if context.inline is not None:
        return _wait_now(cond, timeout_ns, _SPINNING)       # see "Inline forms" below
    return _SpinUntil(cond, timeout_ns, what)


class _SleepUntil(_SpinUntil):
    __slots__ = ()

    def start(self, machine, cpu):
        if self.cond():
            return Done(True, machine.cost_ns("atomic_op_ns"))
        if self.timeout_ns == 0:
            return Done(False)
        return Wait(self.cond, _HALTED, self.timeout_ns)

    def describe(self) -> str:
        return f"sleep_until({self.what})"


def sleep_until(cond: Callable[[], bool], *, timeout_ns: int | None = None, what: str = "") -> Op:
    """A task that sleeps until `cond` (a completion, `wait_event()`), or until a
    timer `timeout_ns` from now (`usleep_range()`, `schedule_timeout()`): the
    CPU has nothing else to run, so it idles in `wfi`/`hlt` meanwhile and still
    takes interrupts (HALTED, not SPINNING: it burns no host CPU and is not
    "executing"). Returns whether `cond` came true. `cond` follows
    `spin_until()`'s rule: it reads `Var`s only.

    Why not a scheduler: in the runs that sleep (kexec's CPU hotplug), no CPU
    ever has a second runnable task while one sleeps (kernel/sched.py says
    why), so "the CPU idles" is what the real scheduler would do."""
    if context.inline is not None:
        return _wait_now(cond, timeout_ns, _HALTED)         # see "Inline forms" below
    return _SleepUntil(cond, timeout_ns, what)


class _MwaitUntil(_SpinUntil):
    __slots__ = ()

    def start(self, machine, cpu):
        if self.cond():
            return Done(True, machine.cost_ns("atomic_op_ns"))
        return Wait(self.cond, _MWAIT, self.timeout_ns)

    def describe(self) -> str:
        return f"mwait_until({self.what})"


def mwait_until(cond: Callable[[], bool], *, what: str = "") -> Op:
    """`for (;;) { __monitor(word); if (cond) break; __mwait(hint); }`: the CPU
    sleeps in MWAIT (it burns no host CPU) until a store to a variable `cond`
    read (the monitored line) makes it true. The monitor is armed before the
    check, so no store is missed. What it costs to leave the C-state `hint`
    names is the caller's (the C-state's exit latency). `cond` follows
    `spin_until()`'s rule."""
    return _MwaitUntil(cond, None, what)


def cond_footprint(memory, cond) -> Footprint:
    """A wait's condition reads the variables it read when evaluated now (with
    the same values it reads the same ones again, `Memory.traced`)."""
    if cond is None:
        return Footprint()
    _, read = memory.traced(cond)
    return Footprint(frozenset(Shared(v.name) for v in read))


class _CpuRelax(Op):
    __slots__ = ()

    def footprint(self, machine, cpu) -> Footprint:
        return Footprint()

    def start(self, machine, cpu):
        return Done(None, machine.cost_ns("cpu_relax_ns"))


def cpu_relax() -> Op:
    """One spin-loop hint (`pause`); a scheduling point so spinners can be preempted."""
    return _CpuRelax()


class _Delay(Op):
    __slots__ = ("duration_ns", "name")
    delay = True

    def __init__(self, duration_ns: int, name: str):
        self.duration_ns, self.name = duration_ns, name

    def start(self, machine, cpu):
        return Busy(self.duration_ns)

    def footprint(self, machine, cpu) -> Footprint:
        return Footprint()          # untimed: only the CPU itself (por is off when timed)

    def describe(self) -> str:
        return f"{self.name}"


def mdelay(ms: int) -> Op:
    if context.inline is not None:
        return _delay_now(ms * NSEC_PER_MSEC)   # see "Inline forms" below
    return _Delay(ms * NSEC_PER_MSEC, f"mdelay({ms})")


def udelay(us: int) -> Op:
    if context.inline is not None:
        return _delay_now(us * NSEC_PER_USEC)
    return _Delay(us * NSEC_PER_USEC, f"udelay({us})")


def ndelay(ns: int) -> Op:
    if context.inline is not None:
        return _delay_now(ns)
    return _Delay(ns, f"ndelay({ns})")


# --- inline forms ----------------------------------------------------------------------
#
# Under a driver that starts ops where they are awaited (`context.inline`: the
# simulator without an `on_op` hook), the commonest ops are coroutines doing
# what their `start()` does and handing the outcome to the runner themselves,
# with no op object, `__await__` generator or f-string in between (a printk
# awaits a dozen of them, a CPU in `stop_machine()` twenty). Every op that a
# panic, a printk flood or a kexec shutdown awaits more than once per CPU has
# one: READ_ONCE, WRITE_ONCE, the atomics, the bit ops, the delays, the irq
# flag ops, `this_cpu_read`/`this_cpu_write`, `spin_until`/`sleep_until`,
# `safe_halt`, `set_cpu_state`, `irq_entry` and the IPI sends.
#
# Those that cost nothing (`READ_ONCE`, `this_cpu_read`, `this_cpu_write`,
# `local_irq_save`, `local_irq_disable`, `set_cpu_state`) skip the runner
# too. Exact, because the runner would do nothing else with them: a `Done` of
# cost 0 draws no tiebreak and queues no event, and it goes on at once unless
# an interrupt is deliverable (`Machine.irq_ready`). Kernel code only runs
# while none is (the runner takes one before every resume), pure code between
# two ops cannot raise one, and none of these ops can make one deliverable: a
# read changes nothing; a store may queue a spinner's wake-up (an event, at
# this nanosecond or later), never an interrupt; `cli` can only make fewer
# interrupts deliverable; arming or cancelling the tick queues or drops a
# timer event, and `irq_ready` reads neither the APIC's enable nor the tick.
# `local_irq_restore()` and `local_irq_enable()` can make one deliverable, and
# then yield to the driver as the runner does. Any other driver (the
# explorer, a subclass watching ops) gets the op objects, and
# tests/engine/test_fast_paths.py compares the two.


# The forms that may go back to the driver are generator-based coroutines
# (`types.coroutine`): they yield the runner's token (a `Handover`) to the
# driver loop themselves, which takes the deliverable interrupt or parks the
# CPU and later resumes them with the op's result. An `async def` would have
# to await a generator that yields it: one more object made and one more
# frame on the way out and back in.

@types.coroutine
def _write_once_now(var: Var, value: Any):
    """`_WriteOnce.start()`, inline."""
    if value != var._value:
        var.memory.store(var, value)
    value = context.inline(None, context.hardware.done("atomic_op_ns"))
    if isinstance(value, Handover):
        value = yield value
    return value


@types.coroutine
def _rmw_now(var: Var, fn: Callable[[Any], tuple[Any, Any]]):
    """`_Rmw.start()` of a writing `_Rmw`, inline."""
    old = var._value
    new, result = fn(old)
    if new != old:
        var.memory.store(var, new)
    machine = context.hardware
    outcome = machine.done("atomic_op_ns") if result is None else Done(result, machine.cost_ns("atomic_op_ns"))
    value = context.inline(None, outcome)
    if isinstance(value, Handover):
        value = yield value
    return value


@types.coroutine
def _add_now(var: Var, delta: int):
    """`atomic_add_return()`'s `_Rmw.start()`, inline, without its `fn`: the
    sum is the new value and the result (never None), so it always stores
    unless `delta` is 0, and its outcome is a `Done` with the atomic's cost."""
    old = var._value
    new = old + delta
    if new != old:
        var.memory.store(var, new)
    value = context.inline(None, Done(new, context.hardware.cost_ns("atomic_op_ns")))
    if isinstance(value, Handover):
        value = yield value
    return value


@types.coroutine
def _bit_now(nr: int, var: Var, set_: bool):
    """`set_bit()` / `clear_bit()`'s `_Rmw.start()`, inline."""
    old = var._value
    new = old | (1 << nr) if set_ else old & ~(1 << nr)
    if new != old:
        var.memory.store(var, new)
    value = context.inline(None, context.hardware.done("atomic_op_ns"))
    if isinstance(value, Handover):
        value = yield value
    return value


@types.coroutine
def _delay_now(duration_ns: int):
    """`_Delay.start()`, inline: busy for `duration_ns`."""
    value = context.inline(None, Busy(duration_ns))
    if isinstance(value, Handover):
        value = yield value
    return value


@types.coroutine
def _wait_now(cond: Callable[[], bool], timeout_ns: int | None, state: Activity):
    """`_SpinUntil.start()` (`state` SPINNING) or `_SleepUntil.start()`
    (HALTED), inline; a `Wait` goes back to the driver as the runner's token."""
    if cond():
        outcome = Done(True, context.hardware.cost_ns("atomic_op_ns"))
    elif timeout_ns == 0:
        outcome = Done(False)
    else:
        outcome = Wait(cond, state, timeout_ns)
    value = context.inline(None, outcome)
    if isinstance(value, Handover):
        value = yield value
    return value


@types.coroutine
def _safe_halt_now():
    """`_SafeHalt.start()`, inline: `sti; hlt`, a `Wait` for the driver."""
    machine, cpu = context.hardware, context._cpu
    machine.set_irq_flag(cpu, True)
    value = context.inline(None, machine.hlt(cpu))
    if isinstance(value, Handover):
        value = yield value
    return value


@types.coroutine
def _irq_entry_now():
    """`_IrqEntry.start()`, inline: the entry/exit cost."""
    value = context.inline(None, context.hardware.irq_entry(context._cpu))
    if isinstance(value, Handover):
        value = yield value
    return value


@types.coroutine
def _send_ipi_now(mask: int, vector: str):
    """`_SendIpiMask.start()`, inline."""
    value = context.inline(None, context.hardware.send_IPI_mask(context._cpu, mask, vector))
    if isinstance(value, Handover):
        value = yield value
    return value


async def _read_once_now(var: Var) -> Any:
    """`_ReadOnce.start()`, inline: the value, nothing else."""
    return var._value


async def _this_cpu_read_now(var: Var) -> Any:
    """`_ThisCpuRead.start()`, inline: as `READ_ONCE`, a `Done` of cost 0."""
    return var._value


async def _this_cpu_write_now(var: Var, value: Any) -> None:
    """`_ThisCpuWrite.start()`, inline: the store (which may queue a spinner's
    wake-up, never an interrupt) and `DONE`."""
    if value != var._value:
        var.memory.store(var, value)


async def _local_irq_save_now() -> bool:
    """`_LocalIrqSave.start()`, inline: `cli` leaves no interrupt deliverable."""
    return context.hardware.set_irq_flag(context._cpu, False)


async def _local_irq_disable_now() -> None:
    """`_LocalIrqDisable.start()`, inline: as `local_irq_save()`."""
    context.hardware.set_irq_flag(context._cpu, False)


@types.coroutine
def _local_irq_restore_now(flags: bool):
    """`_LocalIrqRestore.start()`, inline; restoring IF=1 with an interrupt
    pending hands the CPU to the driver first, as the runner would."""
    machine, cpu = context.hardware, context._cpu
    machine.set_irq_flag(cpu, flags)
    if machine.irq_ready[cpu]:
        yield Resolved(None)


async def _set_cpu_state_now(changes: tuple) -> None:
    """`_SetCpuState.start()`, inline: `DONE` (arming or cancelling the tick
    queues events, and changes nothing `irq_ready` depends on)."""
    context.hardware.set_cpu_state(context._cpu, changes)


# --- operations the machine carries out ----------------------------------------------
#
# One class per operation, each calling one method of `Hardware` by name, so that
# every operation kernel code can await is listed here and nowhere else.


class Hardware(Protocol):
    """What the operations ask of the machine (`haltlab.machine.machine.Machine`).

    Each method does the hardware's part of one operation on `cpu` and says what
    the CPU does meanwhile (`Done`, `Busy`, `Wait` or `Gone`); the engine never
    imports the machine, so this is the whole contract between them."""

    def cost_ns(self, key: str) -> int: ...
    def done(self, key: str) -> Done: ...
    def irq_entry(self, cpu: int) -> Outcome: ...
    def set_irq_flag(self, cpu: int, enabled: bool) -> bool: ...
    def hlt(self, cpu: int) -> Outcome: ...
    def set_cpu_state(self, cpu: int, changes: tuple) -> Outcome: ...
    def uart_write(self, cpu: int, line: str) -> Outcome: ...
    def send_IPI_mask(self, cpu: int, mask: int, vector: str) -> Outcome: ...
    def pvpanic_event(self, cpu: int, event: str) -> Outcome: ...
    def emergency_restart(self, cpu: int, reason: str) -> Outcome: ...
    def relocate_kernel(self, cpu: int, image: str) -> Outcome: ...
    def cpu_off(self, cpu: int) -> Outcome: ...
    def affinity_info(self, cpu: int, target: int) -> Outcome: ...


class _LocalOp(Op):
    """An op on the calling CPU's own hardware (its interrupt flag, its local
    APIC): it commutes with other CPUs' operations, so it is not a branch."""

    __slots__ = ()
    branch = False
    name = ""

    def describe(self) -> str:
        return self.name

    def footprint(self, machine, cpu) -> Footprint:
        return Footprint()


class _ThisCpuRead(_LocalOp):
    __slots__ = ("var",)
    name = "this_cpu_read"

    def __init__(self, var: Var) -> None:
        self.var = var

    def start(self, machine: Hardware, cpu: int):
        return Done(self.var._value, 0)


class _ThisCpuWrite(_LocalOp):
    __slots__ = ("var", "value")
    name = "this_cpu_write"

    def __init__(self, var: Var, value: Any) -> None:
        self.var, self.value = var, value

    def start(self, machine: Hardware, cpu: int):
        if self.value != self.var._value:
            self.var.memory.store(self.var, self.value)
        return DONE


def this_cpu_read(var: Var) -> Op:
    """`this_cpu_read()`: a per-CPU variable that only its own CPU reads and
    writes (`need_resched`, `current`), in task or interrupt context. No other
    CPU can observe the access, so it is local (not a branch, no footprint
    beyond the CPU) and costs nothing beyond the instructions around it. A
    variable another CPU writes is not per-CPU in this sense: use READ_ONCE."""
    if context.inline is not None:
        return _this_cpu_read_now(var)      # see "Inline forms" below
    return _ThisCpuRead(var)


def this_cpu_write(var: Var, value: Any) -> Op:
    """`this_cpu_write()`, with `this_cpu_read()`'s contract. The store still
    wakes a spinner of the same CPU (a task spinning on `need_resched` that an
    interrupt handler sets)."""
    if context.inline is not None:
        return _this_cpu_write_now(var, value)      # see "Inline forms" below
    return _ThisCpuWrite(var, value)


class _IrqEntry(_LocalOp):
    __slots__ = ()
    name = "irq_entry"

    def start(self, machine: Hardware, cpu: int):
        return machine.irq_entry(cpu)


def irq_entry() -> Op:
    """The entry/exit cost of an interrupt, the first op of every handler frame."""
    if context.inline is not None:
        return _irq_entry_now()             # see "Inline forms" below
    return _IrqEntry()


class _LocalIrqDisable(_LocalOp):
    __slots__ = ()
    name = "local_irq_disable"

    def start(self, machine: Hardware, cpu: int):
        machine.set_irq_flag(cpu, False)
        return DONE


def local_irq_disable() -> Op:
    if context.inline is not None:
        return _local_irq_disable_now()     # see "Inline forms" below
    return _LocalIrqDisable()


class _LocalIrqEnable(_LocalOp):
    __slots__ = ()
    name = "local_irq_enable"

    def start(self, machine: Hardware, cpu: int):
        machine.set_irq_flag(cpu, True)
        return DONE


def local_irq_enable() -> Op:
    """Enabling interrupts is where pending ones get delivered, so it is an op."""
    if context.inline is not None:
        return _local_irq_restore_now(True)     # `sti`: local_irq_restore(True), inline
    return _LocalIrqEnable()


class _LocalIrqSave(_LocalOp):
    __slots__ = ()
    name = "local_irq_save"

    def start(self, machine: Hardware, cpu: int):
        return Done(machine.set_irq_flag(cpu, False))


def local_irq_save() -> Op:
    """Disable interrupts; returns whether they were enabled (the saved flags)."""
    if context.inline is not None:
        return _local_irq_save_now()    # see "Inline forms" below
    return _LocalIrqSave()


class _LocalIrqRestore(_LocalOp):
    __slots__ = ("flags",)
    name = "local_irq_restore"

    def __init__(self, flags: bool) -> None:
        self.flags = flags

    def start(self, machine: Hardware, cpu: int):
        machine.set_irq_flag(cpu, self.flags)
        return DONE


def local_irq_restore(flags: bool) -> Op:
    if context.inline is not None:
        return _local_irq_restore_now(flags)    # see "Inline forms" below
    return _LocalIrqRestore(flags)


class _SafeHalt(_LocalOp):
    __slots__ = ()
    name = "safe_halt"

    def start(self, machine: Hardware, cpu: int):
        machine.set_irq_flag(cpu, True)      # `sti; hlt`
        return machine.hlt(cpu)


def safe_halt() -> Op:
    """`sti; hlt`: sleep with interrupts enabled; returns after one has been handled."""
    if context.inline is not None:
        return _safe_halt_now()             # see "Inline forms" below
    return _SafeHalt()


class _NativeHalt(_LocalOp):
    __slots__ = ()
    name = "native_halt"

    def start(self, machine: Hardware, cpu: int):
        return machine.hlt(cpu)


def native_halt() -> Op:
    """`hlt` with the interrupt flag as it is: with IF=0 only an NMI (or INIT)
    wakes the CPU, which is what `stop_this_cpu()` relies on."""
    return _NativeHalt()


class _SetCpuState(_LocalOp):
    __slots__ = ("changes",)
    name = "set_cpu_state"

    def __init__(self, changes: tuple) -> None:
        self.changes = changes

    def start(self, machine: Hardware, cpu: int):
        return machine.set_cpu_state(cpu, self.changes)


def set_cpu_state(**changes) -> Op:
    """A local hardware change (`disable_local_APIC`, stopping the tick, ...)."""
    if context.inline is not None:
        return _set_cpu_state_now(tuple(sorted(changes.items())))   # see "Inline forms" below
    return _SetCpuState(tuple(sorted(changes.items())))


class _UartWrite(Op):
    """Shared: the console is one device, and what it shows is seen by all."""

    __slots__ = ("line",)

    def __init__(self, line: str) -> None:
        self.line = line

    def start(self, machine: Hardware, cpu: int):
        return machine.uart_write(cpu, self.line)

    def describe(self) -> str:
        return "uart_write"

    def footprint(self, machine, cpu) -> Footprint:
        return Footprint(frozenset((CONSOLE,)), frozenset((CONSOLE,)))


def uart_write(line: str) -> Op:
    """Write one console line (the 8250 driver's `serial8250_console_write()`);
    busy for as long as the UART takes to send it."""
    return _UartWrite(line)


class _SendIpiMask(Op):
    __slots__ = ("mask", "vector")

    def __init__(self, mask: int, vector: str) -> None:
        self.mask, self.vector = mask, vector

    def start(self, machine: Hardware, cpu: int):
        return machine.send_IPI_mask(cpu, self.mask, self.vector)

    def describe(self) -> str:
        return "send_IPI_mask"

    def footprint(self, machine, cpu) -> Footprint:
        return Footprint(writes=frozenset(Inflight(t, self.vector) for t in for_each_cpu(self.mask)))


def send_IPI_mask(mask: int, vector: str) -> Op:
    if context.inline is not None:
        return _send_ipi_now(mask, vector)      # see "Inline forms" below
    return _SendIpiMask(mask, vector)


def send_NMI_mask(mask: int) -> Op:
    if context.inline is not None:
        return _send_ipi_now(mask, "NMI")
    return _SendIpiMask(mask, "NMI")


class _PvpanicEvent(Op):
    __slots__ = ("event",)

    def __init__(self, event: str) -> None:
        self.event = event

    def start(self, machine: Hardware, cpu: int):
        return machine.pvpanic_event(cpu, self.event)

    def describe(self) -> str:
        return "pvpanic_event"


def pvpanic_event(event: str) -> Op:
    """`pvpanic_send_event()`: the guest writes `event` (PVPANIC_PANICKED) to the
    pvpanic device's port; what follows is the VMM's `-action panic=` choice."""
    return _PvpanicEvent(event)


class _EmergencyRestart(Op):
    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def start(self, machine: Hardware, cpu: int):
        return machine.emergency_restart(cpu, self.reason)

    def describe(self) -> str:
        return "emergency_restart"


def emergency_restart(reason: str = "emergency_restart") -> Op:
    return _EmergencyRestart(reason)


class _RelocateKernel(Op):
    """Whole-machine: the jump into the loaded kernel ends this kernel's run
    (footprint `WHOLE_MACHINE`, the default, as for a reset)."""

    __slots__ = ("image",)

    def __init__(self, image: str) -> None:
        self.image = image

    def start(self, machine: Hardware, cpu: int):
        return machine.relocate_kernel(cpu, self.image)

    def describe(self) -> str:
        return f"relocate_kernel({self.image})"


def relocate_kernel(image: str = "kexec_crash_image") -> Op:
    """The last step of `machine_kexec()`: jump to the kernel `kexec` loaded
    (x86 `relocate_kernel()`, arm64 `cpu_soft_restart()` or `kernel_reloc()`).
    Never returns: the run of this kernel ends there."""
    return _RelocateKernel(image)


class _PsciCpuOff(Op):
    """This CPU leaves the machine. Conservative footprint (the default): an
    interrupt on its way to a CPU that is gone is dropped, so the op touches
    more than the CPU's own state."""

    __slots__ = ()

    def start(self, machine: Hardware, cpu: int):
        return machine.cpu_off(cpu)

    def describe(self) -> str:
        return "psci_cpu_off"


def psci_cpu_off() -> Op:
    """PSCI CPU_OFF (`psci_cpu_die()` -> `psci_ops.cpu_off()`): the firmware
    powers the calling CPU down. Never returns."""
    return _PsciCpuOff()


class _PsciAffinityInfo(Op):
    """Reads another CPU's power state from the firmware. Conservative
    footprint (the default): it observes whether that CPU has left."""

    __slots__ = ("target",)

    def __init__(self, target: int) -> None:
        self.target = target

    def start(self, machine: Hardware, cpu: int):
        return machine.affinity_info(cpu, self.target)

    def describe(self) -> str:
        return f"psci_affinity_info({self.target})"


PSCI_0_2_AFFINITY_LEVEL_ON = 0
PSCI_0_2_AFFINITY_LEVEL_OFF = 1


def psci_affinity_info(target: int) -> Op:
    """PSCI AFFINITY_INFO for `target`'s core (`psci_affinity_info()`,
    drivers/firmware/psci/psci.c): PSCI_0_2_AFFINITY_LEVEL_OFF (1) once the
    firmware has powered it down after its CPU_OFF, ON (0) before."""
    return _PsciAffinityInfo(target)
