"""The interleaving driver: every order in which CPUs can take their shared steps.

The explorer holds each CPU at every branch operation (`Op.branch`: shared-memory
accesses, interrupts sent, delays) and chooses who goes next. It also chooses
when each interrupt in flight arrives, and when a bounded wait times out. A choice
is a short token: `c1` (CPU1 takes its step), `i1.NMI` (the NMI in flight to CPU1
arrives), `t0` (CPU0's bounded wait times out).

Coroutines cannot be copied, so a branch is reached again by replaying choices
(as loom and shuttle do): `haltlab.engine.reach` decides how, with as few
replayed steps as it can, and counts them. States are pruned by
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
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from haltlab.engine.core import PARKED, Driver, DriverError, Status, Strand, Timer
from haltlab.engine.fingerprint import coroutine_chain, stack_fingerprint
from haltlab.engine.reach import Reach
from haltlab.engine.run import Run

# Members as module globals for the hot paths below: in Python 3.11 reading
# `Status.READY` is a class-attribute lookup of about 100 ns, a global about 10.
_READY = Status.READY
_WAITING = Status.WAITING

__all__ = ["Timeouts", "ExplorerDriver", "Exploration", "Violation", "explore", "replay", "shrink",
           "check_determinism", "parse_choices", "format_trace"]


class Timeouts(enum.StrEnum):
    """When a bounded wait may time out in an exploration."""

    QUIESCENT = "quiescent"  # only when no step and no interrupt arrival is left
    ANY = "any"              # at any step


class ExplorerDriver(Driver):
    """Runs kernel code one chosen step at a time."""

    def __init__(self, machine, *, seed: int = 0, timeouts: Timeouts = Timeouts.QUIESCENT) -> None:
        try:
            self.timeouts = Timeouts(timeouts)
        except ValueError:
            raise ValueError(f"timeouts={timeouts!r}: choose 'quiescent' or 'any'") from None
        self.inflight: set[tuple[int, str]] = set()
        self.steps = 0
        self.trace: list[tuple[str, int, str]] = []   # (choice, cpu, what happened)
        self.tracing = True  # the search turns it off: only a counterexample's replay needs it
        self._choice = ""
        super().__init__(machine, seed=seed)

    # --- the driver contract ---------------------------------------------------------

    def _gate(self, s: Strand, op) -> bool:
        return not op.branch

    def _after_done(self, s: Strand, done):
        return done.result

    def _busy(self, s: Strand, frame):
        return self.finish(frame, None)

    def _wait(self, s: Strand, frame):
        s.status = _WAITING
        return PARKED

    def post_interrupt(self, target: int, vector: str, latency_ns: int) -> None:
        """In flight until the explorer chooses its arrival (`iN.VECTOR`); the
        latency is not used, as time is abstract here."""
        self.inflight.add((target, vector))

    def interrupt_now(self, cpu: int) -> None:
        """Deliver a pending interrupt at once if the CPU can take it (a held or
        waiting CPU is at an operation boundary)."""
        s = self.strands[cpu]
        if s.status in (_READY, _WAITING) and self.machine.deliverable(cpu):
            self.run_strand(s, None)

    def arm_timer(self, period_ns: int, fn, *args) -> Timer:
        """Never fires: time is abstract here, so explored runs have no tick (a
        periodic interrupt would add a choice at every step and a cycle to every
        state). Their bounded waits end by the explorer's timeout choices."""
        return Timer(period_ns, fn, args)

    def on_op(self, s: Strand, op) -> None:
        if self.tracing:
            self.trace.append((self._choice, s.cpu, f"{_where(s)}: {op.describe()}"))

    def on_interrupt(self, s: Strand, kind: str) -> None:
        if self.tracing:
            self.trace.append((self._choice, s.cpu, f"<{kind} entry>"))

    # --- choices ------------------------------------------------------------------------

    def choices(self) -> list[str]:
        if self.reset_reason is not None:
            return []
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

    def step(self, choice: str) -> None:
        self.steps += 1
        self._choice = f"{self.steps}:{choice}"
        kind, rest = choice[0], choice[1:]
        if kind == "i":
            cpu_s, vector = rest.split(".", 1)
            cpu = int(cpu_s)
            self.inflight.discard((cpu, vector))
            self.machine.raise_interrupt(cpu, vector)
            self.interrupt_now(cpu)
            return
        s = self.strands[int(rest)]
        frame = s.top
        if kind == "t":
            self.run_strand(s, self.finish(frame, False))
        elif s.status is _WAITING:
            self.run_strand(s, self.finish(frame, True))
        else:
            self.run_strand(s, self.start_op(s, frame, frame.op))

    def fingerprint(self) -> tuple:
        """The driver's part of a state (`Run.fingerprint()` adds the ghost state)."""
        return (
            self.machine.memory.fingerprint(),
            self.machine.fingerprint(),
            tuple(sorted(self.inflight)),
            tuple((s.status, stack_fingerprint(s.stack)) for s in self.strands),
            self.reset_reason,
        )


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


@dataclass
class Exploration:
    """What an exploration found, and the state graph it walked."""

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
    edges: list[tuple[int, str, int]] = field(default_factory=list)
    labels: dict[int, frozenset] = field(default_factory=dict)
    unexpanded: set[int] = field(default_factory=set)   # states a bound left unexplored
    bound: str | None = None                            # which bound was hit, in words

    @property
    def replayed_steps_per_transition(self) -> float:
        return self.replayed_steps / max(self.transitions, 1)

    @property
    def verdict(self) -> str:
        if self.violation is not None:
            return "violation"
        return "bounded-ok" if self.truncated else "ok"


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


def explore(build: Build, *, check: Check | None = None, at_end: Check | None = None,
            goal: Callable[[Run], bool] | None = None, label=None,
            max_states: int = 200_000, max_depth: int = 2_000, stop_on_violation: bool = True,
            progress: Callable[[int, int], None] | None = None, reach: str = "ahead") -> Exploration:
    """Depth-first search over every interleaving of the runs `build()` makes.

    `check(run)` is a safety property evaluated in every state (a message means a
    violation); `at_end(run)` is evaluated in terminal states (no choice left) and
    in goal states; `goal(run)` marks states not to expand further (the question
    is answered there). `label(run)` may attach a frozenset of atomic facts to
    each state for later liveness checks. `progress(states, stack_depth)` is
    called every 1000 new states with the depth of the search stack (the
    frontier still to expand). `reach` says how states are reached again
    (`haltlab.engine.reach`: "ahead", or "root" as before it, for comparison).
    """
    t0 = time.perf_counter()
    ex = Exploration()
    traced_build = build

    def build() -> Run:
        # The search never reads traces; only the counterexample's final replay does
        # (with `traced_build`). Walking coroutine frames for each op's line was
        # about a tenth of the search's time.
        run = traced_build()
        run.driver.tracing = False
        return run

    runs = Reach(build, lambda run: _judge(run, check, at_end, goal, label), mode=reach,
                 max_states=max_states, max_depth=max_depth)
    ids: dict[tuple, int] = {}
    root, facts = runs.root()
    ids[root] = 0
    bad: dict[int, str] = {}
    stack = [[(), root, _visit(ex, facts, 0, label, bad), 0]]
    while stack:
        node = stack[-1]
        prefix, fp, choices, nxt = node
        if nxt >= len(choices) or (bad and stop_on_violation):
            stack.pop()
            continue
        node[3] += 1
        c = choices[nxt]
        new, facts = runs.take(fp, c, prefix)
        live = prefix + (c,)
        src, dst = ids[fp], ids.get(new)
        seen = dst is not None
        if not seen:
            dst = ids[new] = len(ids)
        ex.edges.append((src, c, dst))
        if seen:
            continue
        if progress is not None and dst % 1000 == 0:
            progress(dst, len(stack))
        choices = _visit(ex, facts, dst, label, bad)
        ex.max_depth = max(ex.max_depth, len(live))
        if len(ids) >= max_states or len(live) >= max_depth:
            ex.truncated = True
            ex.unexpanded.add(dst)
            ex.bound = (f"max_states {max_states}" if len(ids) >= max_states
                        else f"max_depth {max_depth}")
            continue
        stack.append([live, new, choices, 0])
    ex.states, ex.transitions = len(ids), len(ex.edges)
    ex.replays, ex.rebuilds = runs.rebuilds + runs.walks, runs.rebuilds
    ex.replayed_steps, ex.ahead = runs.replayed_steps, runs.ahead
    if bad:
        ex.violation = _shortest(build, traced_build, ex.edges, bad, check, at_end, goal)
    ex.seconds = time.perf_counter() - t0
    return ex


def _expandable(run: Run, goal) -> list[str]:
    if goal is not None and goal(run):
        return []
    return run.driver.choices()


def _judge(run, check, at_end, goal, label) -> tuple:
    """What the search needs to know of a state: (message, choices, label). It
    may be asked where the state is first reached, before the search gets
    there (`haltlab.engine.reach`), so it only reads the run."""
    msg = check(run) if check is not None else None
    choices = _expandable(run, goal)
    if not choices and msg is None and at_end is not None:
        msg = at_end(run)
    return msg, choices, (label(run) if label is not None else None)


def _visit(ex, facts, sid, label, bad) -> list[str]:
    """Record a new state's judgement; its choices, to expand it with."""
    msg, choices, facts_label = facts
    if not choices:
        ex.terminal += 1
    if msg is not None:
        bad[sid] = msg
    if label is not None:
        ex.labels[sid] = facts_label
    return choices


def _shortest(build: Build, traced_build: Build, edges, bad: dict[int, str], check, at_end, goal) -> Violation:
    """Breadth-first search from the initial state to the nearest violating state
    of the explored graph, then delta-debugging on the choice list (the graph may
    be partial when the search stopped early or hit a bound)."""
    succ: dict[int, list[tuple[str, int]]] = {}
    for src, c, dst in edges:
        succ.setdefault(src, []).append((c, dst))
    parent: dict[int, tuple[int, str] | None] = {0: None}
    queue = deque([0])
    target = 0 if 0 in bad else None
    while queue and target is None:
        sid = queue.popleft()
        for c, dst in succ.get(sid, ()):
            if dst not in parent:
                parent[dst] = (sid, c)
                if dst in bad:
                    target = dst
                    break
                queue.append(dst)
    path: list[str] = []
    node = target
    while parent[node] is not None:
        node, c = parent[node]
        path.append(c)
    path.reverse()
    path = shrink(build, path, lambda run: _violates(run, check, at_end, goal))
    run = replay(traced_build, path)
    return Violation(_violates(run, check, at_end, goal) or bad[target], path, run.driver.trace)


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
