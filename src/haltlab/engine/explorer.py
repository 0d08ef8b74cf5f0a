"""The interleaving driver: every order in which CPUs can take their shared steps.

The explorer holds each CPU at every branch operation (`Op.branch`: shared-memory
accesses, interrupts sent, delays) and chooses who goes next. It also chooses
when each interrupt in flight arrives, and when a bounded wait times out. A choice
is a short token: `c1` (CPU1 takes its step), `i1.NMI` (the NMI in flight to CPU1
arrives), `t0` (CPU0's bounded wait times out).

Coroutines cannot be copied, so a branch is reached again by rebuilding the run
and replaying its choice prefix (as loom and shuttle do). States are pruned by
fingerprint (`haltlab.engine.fingerprint`); the state graph is kept, edges and
all, so that a later pass can judge liveness on it (a fair cycle in which a CPU
never progresses) and so that a counterexample can be shrunk to the shortest
path from the initial state, by breadth-first search over that graph.

Time is abstract. A bounded wait may time out either only when nothing else can
happen (`timeouts="quiescent"`, the default: the kernel's one-second waits are
orders of magnitude longer than any IPI latency) or at any step
(`timeouts="any"`, which also finds orders that need an unusually slow IPI).
Replays are checked: a replayed prefix must reach the fingerprint it reached the
first time, or the run is not a function of its choices and the explorer stops
with the usual culprits named.
"""

from __future__ import annotations

import enum
import gc
import time
from array import array
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from haltlab.engine.core import PARKED, Driver, DriverError, Status, Strand, Timer
from haltlab.engine.fingerprint import coroutine_chain, stack_fingerprint, stack_fingerprint_cacheable
from haltlab.engine.por import PersistentSets, por_unavailable
from haltlab.engine.online_scc import OnlineScc
from haltlab.engine.reach import Reach
from haltlab.engine.run import Run
from haltlab.engine.store import (GOAL, TERMINAL, UNEXPANDED, Edges, Labels, StateStore, StoreError, digest_serialized,
                                  part_repr, tuple_repr)
from haltlab.engine.symmetry import canonical_and_plain, check_symmetric_root, concrete_choices
from haltlab.engine.timing import Clocks, Covering, Timing

# Members as module globals for the hot paths below: in Python 3.11 reading
# `Status.READY` is a class-attribute lookup of about 100 ns, a global about 10.
_READY = Status.READY
_WAITING = Status.WAITING

__all__ = ["Timeouts", "Timing", "Reduce", "ExplorerDriver", "Exploration", "Violation", "explore", "replay",
           "shrink",
           "state_digest", "check_determinism", "check_cycle", "parse_choices", "format_trace"]


class Timeouts(enum.StrEnum):
    """When a bounded wait may time out in an exploration."""

    QUIESCENT = "quiescent"  # only when no step and no interrupt arrival is left
    ANY = "any"              # at any step


_LOCAL_DELAYS_MAX = 64      # `local_delays`: delays a CPU may run in a row without a branch


class ExplorerDriver(Driver):
    """Runs kernel code one chosen step at a time."""

    def __init__(self, machine, *, seed: int = 0, timeouts: Timeouts = Timeouts.QUIESCENT,
                 timing: Timing = Timing.UNTIMED, tolerance_pct: int | None = None,
                 local_delays: bool = False) -> None:
        """`timing=TIMED` lets durations bound the interleavings
        (`haltlab.engine.timing`), each cost widened by `tolerance_pct` either
        way; `timeouts` then does not apply (time decides when a wait times out).

        `local_delays` (untimed only) runs a pure delay (`mdelay`, `ndelay`)
        without a branch: untimed, a delay changes nothing but the CPU's own
        position, so it commutes with every other CPU's step and every arrival
        (an interrupt taken just before the delay or just after it leads to the
        same states), the invisible-operation reduction; docs/design.md says so.
        Off by default, so the race keeps the state counts its SPIN peer checks."""
        try:
            self.timeouts = Timeouts(timeouts)
        except ValueError:
            raise ValueError(f"timeouts={timeouts!r}: choose 'quiescent' or 'any'") from None
        self.timing = Timing(timing)
        if self.timing.timed and tolerance_pct is None:
            raise ValueError(f"timing={self.timing.value!r} needs tolerance_pct (the profile's timing_tolerance)")
        self.clocks = (Clocks(machine.ncpus, tolerance_pct, poll_ns=machine.cost_ns("cpu_relax_ns"))
                       if self.timing.timed else None)
        # `Timing.WIDENED`: called after every step with no argument; the `Run`
        # sets it, since the discrete state it widens at includes the ghost
        # state and the run's declared abstraction (`Run.__post_init__`).
        self.after_step = None
        self._local_delays = local_delays and self.clocks is None
        self._delays_in_a_row = [0] * machine.ncpus
        self._interrupted: set[int] = set()
        self.inflight: set[tuple[int, str]] = set()
        self.steps = 0
        self.trace: list[tuple[str, int, str]] = []   # (choice, cpu, what happened)
        self.tracing = True  # the search turns it off: only a counterexample's replay needs it
        self._choice = ""
        # Per CPU, while it has not run since: [its stack's fingerprint, that
        # fingerprint's serialization or None until asked]. A step runs one CPU
        # (two when an interrupt arrival runs the handler), so the other CPUs'
        # stacks, most of a state's fingerprint, are not walked again
        # (`stack_fingerprint_cacheable` says why that is exact).
        self._stacks: list[list | None] = [None] * machine.ncpus
        # Per CPU, each coroutine's part with what it awaited: after a step
        # only the coroutines that ran are walked (`stack_fingerprint_cacheable`).
        self._coros: list[dict] = [{} for _ in range(machine.ncpus)]
        self.check_cache = False   # `explore(debug=True)`: recompute every kept stack and compare
        # Shared memory's serialization, per variable (name -> that of `(name,
        # value)`) and whole; a store drops its variable's (`Memory.on_write`).
        self._mem_items: dict[str, str] = {}
        self._mem_names: list[str] = []
        self._mem_whole: str | None = None
        super().__init__(machine, seed=seed)
        if machine.memory.on_write is not None:
            raise DriverError("the explorer keeps shared memory's serialization up to date through "
                              "Memory.on_write, which something else already set")
        machine.memory.on_write = self._memory_written

    # --- the driver contract ---------------------------------------------------------

    def run_strand(self, s: Strand, value) -> None:
        """Every way kernel code runs on a CPU comes through here (the step, an
        interrupt taken at once, a task started): its kept stack is dropped."""
        self._stacks[s.cpu] = None
        Driver.run_strand(self, s, value)

    def _gate(self, s: Strand, op) -> bool:
        if not op.branch:
            return True
        if not self._local_delays:
            return False
        # A loop of nothing but delays (panic()'s final mdelay() loop) would
        # never come back to the driver: after _LOCAL_DELAYS_MAX in a row the
        # next one is a branch point again, a visible step of its own.
        row = self._delays_in_a_row
        if op.delay and row[s.cpu] < _LOCAL_DELAYS_MAX:
            row[s.cpu] += 1
            return True
        row[s.cpu] = 0
        return False

    def _after_done(self, s: Strand, done):
        if self.clocks is not None and done.cost_ns:
            self.clocks.charge(s.cpu, done.cost_ns)
        return done.result

    def _busy(self, s: Strand, frame):
        if self.clocks is not None:
            self.clocks.charge(s.cpu, frame.outcome.duration_ns)
        return self.finish(frame, None)

    def _wait(self, s: Strand, frame):
        s.status = _WAITING
        return PARKED

    def post_interrupt(self, target: int, vector: str, latency_ns: int) -> None:
        """In flight until the explorer chooses its arrival (`iN.VECTOR`); timed,
        the arrival is enabled within the latency's interval after the send."""
        if self.clocks is not None:
            self.clocks.sent(target, vector, latency_ns)
        self.inflight.add((target, vector))

    def interrupt_now(self, cpu: int) -> None:
        """Deliver a pending interrupt at once if the CPU can take it (a held or
        waiting CPU is at an operation boundary)."""
        s = self.strands[cpu]
        if s.status in (_READY, _WAITING) and self.machine.deliverable(cpu):
            self._interrupted.add(cpu)
            self.run_strand(s, None)

    def arm_timer(self, period_ns: int, fn, *args) -> Timer:
        """Never fires: time is abstract here, so explored runs have no tick (a
        periodic interrupt would add a choice at every step and a cycle to every
        state). Their bounded waits end by the explorer's timeout choices."""
        return Timer(period_ns, fn, args)

    def on_op(self, s: Strand, op) -> None:
        if self.clocks is not None:
            self.clocks.started(s.cpu, op)
        if self.tracing:
            self.trace.append((self._label(), s.cpu, f"{_where(s)}: {op.describe()}"))

    def on_interrupt(self, s: Strand, kind: str) -> None:
        if self.tracing:
            self.trace.append((self._label(), s.cpu, f"<{kind} entry>"))

    def _label(self) -> str:
        """The trace's label of the step running now: "N:choice", "" at boot."""
        return f"{self.steps}:{self._choice}" if self._choice else ""

    # --- choices ------------------------------------------------------------------------

    def choices(self) -> list[str]:
        if self.reset_reason is not None:
            return []
        if self.clocks is not None:
            return self._timed_choices()
        steps, timeouts = [], []
        for s in self.strands:
            if s.status is _READY:
                steps.append(f"c{s.cpu}")
            elif s.status is _WAITING:
                w = s.top.outcome
                if w.until is not None and w.until():
                    steps.append(f"c{s.cpu}")
                elif s.top.deadline_ns is not None:
                    timeouts.append(f"t{s.cpu}")
        irqs = [f"i{t}.{v}" for t, v in sorted(self.inflight)]
        if self.timeouts is Timeouts.ANY or not (steps or irqs):
            return steps + irqs + timeouts
        return steps + irqs

    def _timed_choices(self) -> list[str]:
        """The steps some assignment of durations allows (`haltlab.engine.timing`)."""
        clocks = self.clocks
        clocks.settle(self.strands)
        steps, timeouts = [], []
        for s in self.strands:
            if s.status is _READY:
                if clocks.may_step(s.cpu):
                    steps.append(f"c{s.cpu}")
            elif s.status is _WAITING:
                w = s.top.outcome
                if w.until is not None and w.until():
                    steps.append(f"c{s.cpu}")
                elif clocks.may_time_out(s.cpu):
                    timeouts.append(f"t{s.cpu}")
        irqs = [f"i{t}.{v}" for t, v in sorted(self.inflight) if clocks.may_arrive(t, v)]
        return steps + irqs + timeouts

    def step(self, choice: str) -> None:
        self.steps += 1
        self._choice = choice
        parsed = _PARSED.get(choice)
        if parsed is None:
            kind, rest = choice[0], choice[1:]
            if kind == "i":
                cpu_s, vector = rest.split(".", 1)
                parsed = (kind, int(cpu_s), vector)
            else:
                parsed = (kind, int(rest), None)
            _PARSED[choice] = parsed
        kind, cpu, vector = parsed
        if self.clocks is None:
            self._step(kind, cpu, vector)
            return
        self._interrupted.clear()
        self.clocks.begin_step(self.strands, kind, cpu, vector)
        self._step(kind, cpu, vector)
        self.clocks.end_step(self.strands, None if kind == "i" else cpu, self._interrupted)
        if self.after_step is not None:
            self.after_step()

    def _step(self, kind: str, cpu: int, vector: str | None) -> None:
        if kind == "i":
            self.inflight.discard((cpu, vector))
            self.machine.raise_interrupt(cpu, vector)
            self.interrupt_now(cpu)
            return
        s = self.strands[cpu]
        frame = s.top
        if kind == "t":
            self.run_strand(s, self.finish(frame, False))
        elif s.status is _WAITING:
            self.run_strand(s, self.finish(frame, True))
        else:
            self.run_strand(s, self.start_op(s, frame, frame.op))

    def fingerprint(self) -> tuple:
        """The driver's part of a state (`Run.fingerprint()` adds the ghost state);
        timed, its last element is the timing state (zone, segments, deadlines,
        latency bounds), else None."""
        clocks = self.clocks
        if clocks is not None:
            clocks.settle(self.strands)
        return (
            self.machine.memory.fingerprint(),
            self.machine.fingerprint(),
            tuple(sorted(self.inflight)),
            tuple([(s.status, self._stack(s)[0]) for s in self.strands]),
            self.reset_reason,
            clocks.__fingerprint__() if clocks is not None else None,
        )

    def serialized(self) -> list[str]:
        """`part_repr()` of each element of `fingerprint()`, the stacks' from
        what is kept (`Run.digest()` composes a state's digest from them)."""
        clocks = self.clocks
        if clocks is not None:
            clocks.settle(self.strands)
        stacks = []
        for s in self.strands:
            kept = self._stack(s, True)
            stacks.append("(" + _STATUS_REPR[s.status] + ", " + kept[1] + ")")
        return [
            self._memory_serialized(),
            part_repr(self.machine.fingerprint()),
            part_repr(tuple(sorted(self.inflight))),
            tuple_repr(stacks),
            repr(self.reset_reason),
            part_repr(clocks.__fingerprint__()) if clocks is not None else "None",
        ]

    def _memory_written(self, var) -> None:
        self._mem_items.pop(var.name, None)
        self._mem_whole = None

    def _memory_serialized(self) -> str:
        """`part_repr(memory.fingerprint())`, from the variables' kept serializations."""
        whole = self._mem_whole
        vars_ = self.machine.memory.vars
        if whole is not None and len(vars_) == len(self._mem_names) and not self.check_cache:
            return whole
        if len(vars_) != len(self._mem_names):
            self._mem_names = sorted(vars_)
            self._mem_items.clear()
        items = self._mem_items
        parts = []
        for name in self._mem_names:
            item = items.get(name)
            if item is None:
                value = vars_[name]._value
                t = type(value)
                if t in _EXACT:
                    key = (name, t, value)
                    item = _VAR_TEXT.get(key)
                    if item is None:
                        if len(_VAR_TEXT) >= _VAR_TEXT_MAX:
                            _VAR_TEXT.clear()
                        item = _VAR_TEXT[key] = part_repr((name, value))
                else:
                    item = part_repr((name, value))
                items[name] = item
            parts.append(item)
        whole = self._mem_whole = tuple_repr(parts)
        if self.check_cache and whole != part_repr(self.machine.memory.fingerprint()):
            raise StoreError("shared memory changed without a store (Memory.on_write): its kept "
                             "serialization is stale")
        return whole

    def _stack(self, s: Strand, serialize: bool = False) -> list:
        """[stack fingerprint, its serialization (or None unless `serialize`)]
        of CPU `s`, kept while it does not run."""
        kept = self._stacks[s.cpu]
        if kept is None or (serialize and kept[1] is None):
            fp, cacheable, text = stack_fingerprint_cacheable(s.stack, self._coros[s.cpu], serialize)
            kept = [fp, text]
            if cacheable:
                self._stacks[s.cpu] = kept
            if self.check_cache and (stack_fingerprint(s.stack) != fp
                                     or (serialize and text != part_repr(fp))):
                raise StoreError(f"CPU{s.cpu}'s coroutines changed while they did not run: a local's "
                                 "__fingerprint__() or a closure's cell changed under the explorer "
                                 "(engine.fingerprint)")
        elif self.check_cache and stack_fingerprint(s.stack) != kept[0]:
            raise StoreError(f"CPU{s.cpu}'s stack changed while it did not run: a local's "
                             "__fingerprint__() or a closure's cell changed under the explorer "
                             "(engine.fingerprint)")
        return kept


_STATUS_REPR = {status: repr(status) for status in Status}

_EXACT = frozenset({int, bool, str, type(None)})
_VAR_TEXT: dict[tuple, str] = {}
"""(name, type, value) -> the serialization of `(name, value)`, shared by every
run: a rebuilt run serializes all of memory once, and nearly every variable
holds an int, a bool, a string or None, the same few values run after run.
The value's exact type is in the key, since `1 == True` would otherwise find
`True`'s text for a 1."""
_VAR_TEXT_MAX = 1 << 16

_PARSED: dict[str, tuple[str, int, str | None]] = {}
"""Choice token -> (kind, CPU, vector): a search takes a few dozen distinct
tokens hundreds of thousands of times (every replayed step parses one)."""


def _where(s: Strand) -> str:
    """The innermost kernel function the CPU is in, as `function:line`."""
    name = "?"
    for coro in coroutine_chain(s.top.coro):
        if coro.cr_frame is not None:
            name = f"{coro.cr_code.co_name}:{coro.cr_frame.f_lineno}"
    return name


def parse_choices(text: str) -> list[str]:
    out = [c.strip() for c in text.replace(" ", ",").split(",") if c.strip()]
    for c in out:
        if not (c[0] in "cti" and len(c) > 1):
            raise ValueError(f"choice {c!r}: expected cN, tN or iN.VECTOR")
    return out


@dataclass
class Violation:
    message: str
    choices: list[str]
    trace: list[tuple[str, int, str]]


class Reduce(enum.StrEnum):
    """Which state-space reductions an exploration applies (`--reduce`)."""

    NONE = "none"
    SYMMETRY = "symmetry"      # interchangeable CPUs: one state per orbit
    POR = "por"                # partial-order reduction: persistent sets
    ALL = "all"

    @property
    def symmetry(self) -> bool:
        return self in (Reduce.SYMMETRY, Reduce.ALL)

    @property
    def por(self) -> bool:
        return self in (Reduce.POR, Reduce.ALL)


@dataclass
class Exploration:
    """What an exploration found, and the state graph it walked.

    `edges` reads as a sequence of `(src, choice, dst)` triples and `labels` as
    a dict of state id -> facts (both compact underneath, `haltlab.engine.store`).
    With symmetry a state id stands for an orbit; its edges' choices are in the
    CPU names of the orbit's stored representative (the first state of the orbit
    reached), and `edges.perm[i]` indexes `perms`: the permutation (a tuple,
    representative CPU -> actual CPU) from the destination's representative to
    the state edge i actually reached. `concrete_path()` turns a path of edges
    into a choice list that replays."""

    states: int = 0
    transitions: int = 0
    terminal: int = 0
    max_depth: int = 0
    truncated: bool = False
    seconds: float = 0.0
    replays: int = 0            # states reached again by replaying choices: rebuilds + walks
    rebuilds: int = 0           # ... from a fresh run (the initial state)
    replayed_steps: int = 0     # choices replayed, in rebuilds and walks
    ahead: int = 0              # transitions computed before the search asked (haltlab.engine.reach)
    violation: Violation | None = None
    edges: Edges = field(default_factory=Edges)
    labels: Labels = field(default_factory=Labels)
    bound: str | None = None                            # which bound was hit, in words
    reduce: Reduce = Reduce.NONE                        # what was asked for
    reductions: tuple[str, ...] = ()                    # what was applied, and why not the rest
    store: StateStore = field(default_factory=StateStore)
    perms: list[tuple[int, ...]] = field(default_factory=list)
    # The partial-order reduction: state id -> the enabled choices its reduced
    # expansion left out (only states that stayed reduced). Liveness reads them:
    # weak fairness is about every enabled choice, taken in the graph or not.
    postponed: dict[int, tuple[str, ...]] = field(default_factory=dict)
    # The search stopped at a component `on_component` accepted (a livelock is
    # proved there); the states still on its stack are marked unexpanded.
    stopped_at_component: bool = False

    @property
    def replayed_steps_per_transition(self) -> float:
        return self.replayed_steps / max(self.transitions, 1)

    @property
    def verdict(self) -> str:
        if self.violation is not None:
            return "violation"
        return "bounded-ok" if self.truncated else "ok"

    @property
    def unexpanded(self) -> frozenset[int]:
        """States a bound left unexplored."""
        return self.store.with_flag(UNEXPANDED)

    def concrete_path(self, edge_ids: list[int]) -> list[str]:
        """The choices of a path of edges (indices into `edges`) from the root,
        renamed into the CPUs the run following them actually has."""
        if not self.perms:
            return [self.edges[i][1] for i in edge_ids]
        return concrete_choices(self.edges, self.perms, edge_ids)


Build = Callable[[], Run]           # a fresh run whose driver is an ExplorerDriver
Check = Callable[[Run], "str | None"]


def replay(build: Build, choices: list[str], *, check: bool = True) -> Run:
    """Run `build()` along `choices`. With `check`, every choice must be enabled
    where it is taken; the explorer's own replays skip that (it compares the
    fingerprint at the end instead, which catches any divergence)."""
    run = build()
    driver = run.driver
    for i, c in enumerate(choices):
        if check and c not in driver.choices():
            raise DriverError(f"replay diverged at step {i}: {c!r} is not among {driver.choices()}")
        driver.step(c)
    return run


def check_cycle(run: Run, cycle: list[str]) -> None:
    """Step `run` along `cycle` (a livelock's, from `haltlab.checks`); raise
    `DriverError` unless every choice is enabled where it is taken and the run
    comes back to the fingerprint it started from, so the cycle can repeat
    forever. Timed, the zone must come back too: a cycle that needs ever less
    time is not a run."""
    if not cycle:
        raise DriverError("an empty cycle: a livelock's cycle takes at least one step")
    start = run.fingerprint()
    for i, c in enumerate(cycle):
        if c not in run.driver.choices():
            raise DriverError(f"cycle step {i}: {c!r} is not among {run.driver.choices()}")
        run.driver.step(c)
    if run.fingerprint() != start:
        raise DriverError(f"the {len(cycle)} cycle choices do not come back to the state they started from")


def check_determinism(build: Build, choices: list[str]) -> None:
    """Replay `choices` on two fresh runs side by side; raise `DriverError` at
    the first step where they are not in the same state (or a choice does not
    apply)."""
    a, b = build(), build()
    for i, c in enumerate(choices):
        for run in (a, b):
            if c not in run.driver.choices():
                raise DriverError(f"step {i}: {c!r} is not among {run.driver.choices()}")
            run.driver.step(c)
        if a.fingerprint() != b.fingerprint():
            raise DriverError(f"step {i} ({c}): two replays reached different states; the run depends "
                              "on more than its choices (a set or dict iteration order, id(), a module "
                              "global, a random draw outside the run's generator)")


class _Keys:
    """A state's key in the store: the digest of its fingerprint, or with
    symmetry of its canonical form; and the permutation that canonicalized it."""

    def __init__(self, store: StateStore, symmetric: bool) -> None:
        self.store = store
        self.symmetric = symmetric
        self.keep_fp = False
        self.perms: list[tuple[int, ...]] = []
        self._perm_ids: dict[tuple[int, ...], int] = {}
        self.rep_perm = array("I")          # per state: the permutation that canonicalized its representative

    def key(self, run: Run) -> tuple[bytes, int]:
        """Also leaves the fingerprint it hashed in `last_fp` when `keep_fp` is
        set (zone inclusion reads it)."""
        if not self.symmetric:
            if not self.keep_fp:
                return state_digest(run, self.store), 0
            self.last_fp = run.fingerprint()
            return self.store.key(self.last_fp), 0
        canon, perm, plain = canonical_and_plain(run)
        self.last_fp = canon
        key = self.store.key(canon)
        # The concrete state's digest, which a replay to it must reach: the
        # key itself when the canonical form is the state (identity permutation).
        self.last_exact = key if canon is plain else self.store.key(plain)
        return key, self._perm_id(perm)

    def _perm_id(self, perm: tuple[int, ...]) -> int:
        pid = self._perm_ids.get(perm)
        if pid is None:
            pid = self._perm_ids[perm] = len(self.perms)
            self.perms.append(perm)
        return pid

    def edge_perm(self, dst: int, arrived: int) -> int:
        """The permutation from `dst`'s representative to the arrived state:
        rep CPU r sits at canonical position p_r[r]; the arrived state's CPU a
        sits at p_a[a]; so r maps to p_a^-1[p_r[r]]."""
        if not self.symmetric:
            return 0
        p_rep, p_arr = self.perms[self.rep_perm[dst]], self.perms[arrived]
        inv = [0] * len(p_arr)
        for a, pos in enumerate(p_arr):
            inv[pos] = a
        return self._perm_id(tuple(inv[p_rep[r]] for r in range(len(p_rep))))


def explore(build: Build, *, check: Check | None = None, at_end: Check | None = None,
            goal: Callable[[Run], bool] | None = None, label=None,
            max_states: int = 200_000, max_depth: int = 2_000, stop_on_violation: bool = True,
            progress: Callable[[int, int], None] | None = None, reduce: Reduce | str = Reduce.NONE,
            observed: frozenset | None = None, debug: bool = False,
            subsumption: bool = True, reach: str = "ahead",
            on_component: Callable[["Exploration", list, dict], bool] | None = None) -> Exploration:
    """Depth-first search over every interleaving of the runs `build()` makes.

    `check(run)` is a safety property evaluated in every state (a message means a
    violation); `at_end(run)` is evaluated in terminal states (no choice left) and
    in goal states; `goal(run)` marks states not to expand further (the question
    is answered there). `label(run)` may attach a frozenset of atomic facts to
    each state for later liveness checks. `progress(states, stack_depth)` is
    called every 1000 new states with the depth of the search stack (the
    frontier still to expand). In a timed run, `subsumption` lets a state whose
    zone is included in a visited one's be that state (`timing.Covering`);
    without it states are equal only when their zones are.

    `reduce` picks the reductions (`Reduce`); symmetry needs the run to declare
    its interchangeable CPUs (`Run.symmetry`), and the partial-order reduction
    needs `observed`: every resource that `check`, `goal` and `label` read
    (`haltlab.engine.por`; None means unknown, which turns it off). What was
    applied, and why anything asked for was not, is `Exploration.reductions`.
    `debug` keeps full fingerprints beside their digests and checks them.

    `on_component(ex, states, out)` is called with each strongly connected
    component as soon as it is complete (`haltlab.engine.online_scc`; `out`:
    each member's out-edges as (choice, destination)); if it returns True the
    search stops there, as at a violation. Not under symmetry, where a
    component of orbits must be lifted before it can be judged.

    `reach` says how states are reached again (`haltlab.engine.reach`:
    "ahead", "frontier" for an acyclic graph whose states are reached by many
    edges, such as the race's, or "root" as before both, for comparison; zone
    inclusion, which asks for few of the transitions a frontier would compute,
    runs "frontier" as "ahead"). Walks along recorded transitions
    and running ahead need a state's key to be its exact fingerprint, so they
    apply only without symmetry and the partial-order reduction; with those the
    search rebuilds and replays its own path.
    """
    t0 = time.perf_counter()
    try:
        reduce = Reduce(reduce)
    except ValueError:
        raise ValueError(f"reduce={reduce!r}: choose one of {', '.join(r.value for r in Reduce)}") from None
    ex = Exploration(reduce=reduce, store=StateStore(debug=debug))
    traced_build = build

    def build() -> Run:
        # The search never reads traces; only the counterexample's final replay does
        # (with `traced_build`). Walking coroutine frames for each op's line was
        # about a tenth of the search's time.
        run = traced_build()
        run.driver.tracing = False
        run.driver.check_cache = debug
        return run

    run = build()
    symmetric, applied = _plan(run, reduce, observed)
    ex.reductions = applied
    por = PersistentSets(build, observed) if "por" in applied else None
    store = ex.store
    keys = _Keys(store, symmetric)
    subsume = subsumption and getattr(run.driver, "clocks", None) is not None
    keys.keep_fp = subsume
    covering = Covering()
    runs = None
    timed_fps: dict[bytes, tuple] = {}      # zone inclusion reads a state's fingerprint, not only its digest

    def exact_key(r: Run) -> bytes:
        if not subsume:
            return state_digest(r, store)
        fp = r.fingerprint()
        d = store.key(fp)
        timed_fps[d] = fp
        return d

    if not symmetric and por is None:
        # The plain search: `Reach` owns the runs from here on (its own first
        # build is the root, so a build that depends on anything but its
        # inputs is caught by its replay checks like any other divergence). With zone
        # inclusion it still computes exact transitions of exact states: the
        # search asks only for transitions of the states it added, and maps
        # where they lead onto a covering state itself.
        mode = "ahead" if subsume and reach == "frontier" else reach
        runs = Reach(build, lambda r: _judge(r, check, at_end, goal, label), mode=mode,
                     max_states=max_states, max_depth=max_depth, state=exact_key,
                     ahead_steps=0 if subsume else None)
        root_key, root_facts = runs.root()
        root_perm = 0
        if subsume:
            covering.add(timed_fps[root_key], 0)
    else:
        root_key, root_perm = keys.key(run)
        if subsume:
            covering.add(keys.last_fp, 0)
        root_facts = _judge(run, check, at_end, goal, label)
    store.add(root_key)
    keys.rep_perm.append(root_perm)
    bad: dict[int, str] = {}
    on_stack: set[int] = {0}

    def concrete(r: Run, key: bytes) -> bytes:
        """The digest a replay to this state must reach: its key, except under
        symmetry, where the key is the orbit's (`keys.key()` has just digested
        the concrete state too)."""
        return key if runs is not None or not symmetric else keys.last_exact

    scc = OnlineScc() if on_component is not None and not symmetric else None
    if scc is not None:
        scc.found(0)
    stack = [_node(ex, root_facts, run, (), 0, root_key, por, bad) + [concrete(run, root_key)]]
    live: tuple = ()
    # The plain search drops every run it lets go apart (`reach._dispose`), so
    # nothing it makes needs the cyclic collector, whose full collections
    # would rescan every parked run again and again (a third of the race's
    # time at 4 CPUs): it is paused over the search, with a young collection
    # now and then for whatever cycles kernel code makes (none in the race).
    paused = runs is not None and gc.isenabled()
    if paused:
        gc.disable()
    try:
        while stack:
            node = stack[-1]
            prefix, src, key, choices, nxt, enabled, exact = node
            if nxt >= len(choices) or (bad and stop_on_violation) or ex.stopped_at_component:
                stack.pop()
                on_stack.discard(src)
                if por is not None:
                    por.forget(src)
                    if enabled is not None:
                        ex.postponed[src] = tuple(e for e in enabled if e not in choices)
                if ex.stopped_at_component:
                    if nxt < len(choices):
                        store.mark(src, UNEXPANDED)     # left half expanded: its choices are not all known
                elif scc is not None and not bad:
                    comp = scc.finished(src, stack[-1][1] if stack else None)
                    if comp is not None and on_component(ex, *comp):
                        ex.stopped_at_component = True
                continue
            node[4] += 1
            c = choices[nxt]
            if runs is not None:
                new_key, facts = runs.take(key, c, prefix)
                if paused and not len(ex.edges) & 4095:
                    gc.collect(1)
                live, arrived = prefix + (c,), 0
                if subsume:
                    keys.last_fp = timed_fps[new_key]
            else:
                if live != prefix:
                    run = _replay_checked(build, prefix, exact, store)
                    ex.replays += 1
                    ex.rebuilds += 1
                    ex.replayed_steps += len(prefix)
                run.driver.step(c)
                live = prefix + (c,)
                new_key, arrived = keys.key(run)
                facts = None
            covered = None
            if subsume and new_key not in store.ids:
                covered = covering.find(keys.last_fp)
            if covered is not None:
                dst, new = covered, False
            else:
                dst, new = store.add(new_key)
            if new:
                keys.rep_perm.append(arrived)
                if subsume:
                    covering.add(keys.last_fp, dst)
            ex.edges.append((src, c, dst), keys.edge_perm(dst, arrived))
            if scc is not None:
                if new:
                    scc.found(dst)
                scc.edge(src, c, dst)
            child = None
            if new:
                if progress is not None and dst % 1000 == 0:
                    progress(dst, len(stack))
                ex.max_depth = max(ex.max_depth, len(live))
                if len(store) >= max_states or len(live) >= max_depth:
                    _visit(ex, facts if facts is not None else _judge(run, check, at_end, goal, label), dst, bad)
                    ex.truncated = True
                    store.mark(dst, UNEXPANDED)
                    if scc is not None:
                        scc.finished(dst, src)          # no edges out: a component of its own
                    ex.bound = (f"max_states {max_states}" if len(store) >= max_states
                                else f"max_depth {max_depth}")
                else:
                    if facts is None:
                        facts = _judge(run, check, at_end, goal, label)
                    child = _node(ex, facts, run, live, dst, new_key, por, bad, src, c) + [concrete(run, new_key)]
            if enabled is not None and (dst in on_stack or store.flags[dst] & GOAL
                                        or ex.labels.mask(dst) != ex.labels.mask(src)):
                # A reduced expansion may not close a cycle (the cycle proviso: in
                # depth-first order every cycle has an edge back into the stack, so
                # every cycle of the reduced graph passes a fully expanded state and
                # no choice is postponed forever), nor take a visible step: one that
                # reaches the goal (which cuts off every choice postponed here) or
                # changes what an `eventually` property sees (its label). Expand
                # this state in full; docs/design.md ("Liveness under the
                # partial-order reduction") says why that keeps fair lassos.
                node[3] = choices + [e for e in enabled if e not in choices]
                node[5] = None
            if child is not None:
                stack.append(child)
                on_stack.add(dst)
    finally:
        if paused:
            gc.enable()

    ex.states, ex.transitions = len(store), len(ex.edges)
    if runs is not None:
        ex.replays, ex.rebuilds = runs.rebuilds + runs.walks, runs.rebuilds
        ex.replayed_steps, ex.ahead = runs.replayed_steps, runs.ahead
    ex.perms = keys.perms if symmetric else []
    if bad:
        ex.violation = _shortest(build, traced_build, ex, bad, check, at_end, goal)
    ex.seconds = time.perf_counter() - t0
    return ex


def _plan(run: Run, reduce: Reduce, observed) -> tuple[bool, tuple[str, ...]]:
    """Which of the reductions asked for apply to this run, each with its reason
    when it does not."""
    applied = []
    symmetric = False
    if reduce.symmetry:
        if getattr(run, "symmetry", None) is None:
            applied.append("symmetry off: the scenario declares no interchangeable CPUs")
        elif len(run.symmetry.cpus) < 2:
            # One orbit per state: the same graph, without the canonical form's
            # cost, and searched by the plain search's cheaper ways of reaching
            # states again.
            applied.append("symmetry off: fewer than two interchangeable CPUs, nothing to fold")
        else:
            check_symmetric_root(run)
            symmetric = True
            applied.append("symmetry")
    if reduce.por:
        why = por_unavailable(run, observed)
        applied.append("por" if why is None else f"por off: {why}")
    return symmetric, tuple(applied)


def _node(ex, facts, run, prefix, sid, key, por, bad, parent=None, move=None) -> list:
    """A search-stack entry for a new state: [prefix, id, key, choices to take,
    next index, all enabled choices when `choices` is a reduced subset, else None];
    the caller appends the digest of the concrete state (the key is its orbit's
    under symmetry), which a replay to it must reach.
    `run` is at the state when `por` is on (it chooses from the live run, and
    hands on what it learnt there along `move`, the choice from `parent`)."""
    enabled = _visit(ex, facts, sid, bad)
    if por is None or len(enabled) < 2:
        return [prefix, sid, key, enabled, 0, None]
    chosen = por.choose(run, prefix, enabled, sid=sid, parent=parent, move=move)
    return [prefix, sid, key, chosen, 0, None if len(chosen) == len(enabled) else enabled]


def _expandable(run: Run, goal) -> list[str]:
    if goal is not None and goal(run):
        return []
    return run.driver.choices()


def _judge(run, check, at_end, goal, label) -> tuple:
    """What the search needs to know of a state: (message, choices, label, at
    goal). It may be asked where the state is first reached, before the search
    gets there (`haltlab.engine.reach`), so it only reads the run."""
    msg = check(run) if check is not None else None
    at_goal = goal is not None and goal(run)
    choices = [] if at_goal else run.driver.choices()
    if not choices and msg is None and at_end is not None:
        msg = at_end(run)
    return msg, choices, (label(run) if label is not None else None), at_goal


def _visit(ex, facts, sid, bad) -> list[str]:
    """Record a new state's judgement; its choices, to expand it with."""
    msg, choices, facts_label, at_goal = facts
    if at_goal:
        ex.store.mark(sid, GOAL)
    if not choices:
        ex.terminal += 1
        ex.store.mark(sid, TERMINAL)
    if msg is not None:
        bad[sid] = msg
    if facts_label is not None:
        ex.labels.set(sid, facts_label)
    return choices


def state_digest(run: Run, store: StateStore) -> bytes:
    """`store.key(run.fingerprint())`, composed from the serializations the
    driver keeps for the CPUs that did not run (`ExplorerDriver.serialized`):
    the same bytes, so the same digest, without walking and serializing every
    CPU's stack again. A run with a declared abstraction (which rewrites the
    whole fingerprint) is digested the long way. In debug mode both ways are
    computed and must agree."""
    if run.abstraction is not None or not hasattr(run.driver, "serialized"):
        return store.key(run.fingerprint())
    parts = run.driver.serialized()
    parts.append(part_repr(run.ghost()) if run.ghost is not None else "None")
    d = digest_serialized("(" + ", ".join(parts) + ")")
    if store.debug and store.key(run.fingerprint()) != d:
        raise StoreError("a state's digest composed from the kept stacks differs from its full "
                         "fingerprint's: a CPU's stack changed while it did not run (engine.fingerprint)")
    return d


def _replay_checked(build: Build, prefix: tuple, exact: bytes, store: StateStore) -> Run:
    """Replay `prefix`; it must reach the state whose fingerprint digest is
    `exact` (the concrete state, not its orbit: comparing digests costs a
    fraction of a canonical form, which a replay would otherwise compute)."""
    run = replay(build, list(prefix), check=False)
    if state_digest(run, store) != exact:
        raise DriverError(
            f"replay of {len(prefix)} choices reached a different state: the run is not a "
            "function of its choices (usual culprits: iterating a set or dict whose order "
            "varies, id()-based ordering, a random draw outside the run's generator, "
            "state kept in a module global between runs)")
    return run


def _shortest(build: Build, traced_build: Build, ex: Exploration, bad: dict[int, str], check, at_end,
              goal) -> Violation:
    """Breadth-first search from the initial state to the nearest violating state
    of the explored graph, then delta-debugging on the choice list (the graph may
    be partial when the search stopped early or hit a bound)."""
    edges = ex.edges
    succ: dict[int, list[int]] = {}
    for i, s in enumerate(edges.src):
        succ.setdefault(s, []).append(i)
    parent: dict[int, int | None] = {0: None}      # state -> the edge that reached it first
    queue = deque([0])
    target = 0 if 0 in bad else None
    while queue and target is None:
        sid = queue.popleft()
        for i in succ.get(sid, ()):
            dst = edges.dst[i]
            if dst not in parent:
                parent[dst] = i
                if dst in bad:
                    target = dst
                    break
                queue.append(dst)
    path: list[int] = []
    node = target
    while parent[node] is not None:
        path.append(parent[node])
        node = edges.src[parent[node]]
    path.reverse()
    choices = shrink(build, ex.concrete_path(path), lambda run: _violates(run, check, at_end, goal))
    run = replay(traced_build, choices)
    return Violation(_violates(run, check, at_end, goal) or bad[target], choices, run.driver.trace)


def _violates(run: Run, check, at_end, goal) -> str | None:
    msg = check(run) if check is not None else None
    if msg is None and at_end is not None and not _expandable(run, goal):
        msg = at_end(run)
    return msg


def shrink(build: Build, choices: list[str], bad: Callable[[Run], "str | None"]) -> list[str]:
    """Remove chunks of choices, halving the chunk size, while the shorter list
    still replays and still ends in a violating state (ddmin, greedy)."""
    chunk = max(1, len(choices) // 2)
    while chunk >= 1:
        i, changed = 0, False
        while i < len(choices):
            candidate = choices[:i] + choices[i + chunk:]
            try:
                ok = bad(replay(build, candidate)) is not None
            except DriverError:
                ok = False
            if ok:
                choices, changed = candidate, True
            else:
                i += chunk
        if not changed:
            chunk //= 2
    return choices


def format_trace(v: Violation) -> str:
    """One line per operation, grouped under the choice that ran it."""
    lines, last = [], None
    for choice, cpu, what in v.trace:
        if choice != last:
            step, _, token = choice.partition(":")
            lines.append(f"step {step} [{token}]" if token else "boot")
            last = choice
        lines.append(f"    CPU{cpu} {what}")
    return "\n".join(lines)
