"""Partial-order reduction: at each state, expand a persistent set of choices
instead of all of them.

Two steps of different agents (a CPU's step, an interrupt's arrival) commute
when their footprints do not conflict (`Op.footprint`: shared variables read or
written, blind bit updates, interrupts sent, each CPU's own state). The explorer
may then postpone some agents and expand only the others. A postponed agent
keeps running on the paths not explored first, so its *whole* future until it
must wait matters, and the model's coroutines cannot say what that future holds;
so it is looked at: the agent is run alone from this state (on a replay) until
it cannot go on, and what it touched over those steps is its `Future`.

A persistent set here is every enabled choice of the agents in `T`; the others
(`P`) are postponed. `T` is grown from each enabled agent in turn (a seed) to a
closure, and the smallest closure wins. An agent must join `T` unless

* its solo future is finite (at most `LOOKAHEAD` moves), one path, sends no
  interrupt, resets nothing and writes nothing the properties or the goal
  read (`observed`, declared by each property); ghost facts are grow-only sets
  of CPUs that kernel code never reads, so they commute with each other and
  count only against `observed`;
* its future conflicts with no `T` agent's next move nor another `P` agent's
  future;
* no condition it waits on or tests (a `spin_until`) can change its truth value
  by any combination of the other `P` agents' moves, and neither can a `T`
  agent's next condition nor a waiting CPU's (nothing postponed enables or
  disables anyone). Conditions are checked by evaluating them under every
  combination of the postponed bit updates (`BitUpdate`), at most `COMBOS`.

An interrupt's arrival is an agent: at a CPU that cannot take it now (interrupts
off, or an NMI in progress) it only latches (`Latch(cpu)`), which commutes with
every step of that CPU that neither consults nor changes its latches (measured
in the solo run: interrupts stay off, no flag changes); otherwise the CPU takes
it at once, and the arrival's future is the handler's solo run.

Futures are kept per state and handed to the successor along the chosen move
when that move conflicts with none of them (an agent's own move leaves the rest
of its future), so most states need no replay. The explorer adds the two
provisos: a reduced state whose chosen step closes a cycle through the search
stack, or reaches the goal, is expanded in full. docs/design.md ("Reductions")
argues why the verdicts are kept, and when they are not (a timed exploration:
por is off there).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from itertools import product

from haltlab.engine.core import Status
from haltlab.engine.ops import (
    BitUpdate, Footprint, Ghost, Inflight, Local, Shared, _SpinUntil, cond_footprint,
)

__all__ = ["PersistentSets", "Future", "Latch", "por_unavailable", "observed_by", "reads", "LOOKAHEAD",
           "COMBOS"]

LOOKAHEAD = 40          # solo moves a postponed agent may take before it must wait
COMBOS = 512            # combinations of postponed bit updates a condition is evaluated under

_READY, _WAITING, _GONE = Status.READY, Status.WAITING, Status.GONE


@dataclass(frozen=True)
class Latch:
    """A CPU's interrupt latches (IRR, the NMI latch) and the flags that gate
    them (IF, NMI in progress, APIC enabled): what an arrival that cannot be
    taken now writes, and what a step that could take one reads."""
    cpu: int


def reads(*resources):
    """Declare what a goal function reads (`explore(goal=...)`), for the
    partial-order reduction: `@reads(Ghost("in_panic_loop"))`."""
    def mark(fn):
        fn.__reads__ = frozenset(resources)
        return fn
    return mark


def observed_by(properties, goal) -> frozenset | None:
    """Everything the safety and liveness properties and the goal read; None
    when one of them does not say (the reduction is then off). At-end
    properties need nothing: the reduction keeps every end state."""
    out: set = set()
    for p in properties:
        if p.kind.value in ("always", "eventually"):
            if p.reads is None:
                return None
            out |= p.reads
    if goal is not None:
        r = getattr(goal, "__reads__", None)
        if r is None:
            return None
        out |= r
    return frozenset(out)


def por_unavailable(run, observed) -> str | None:
    """Why the reduction cannot be used on this run, or None."""
    if observed is None:
        return "a property or the goal does not declare what it reads"
    timing = getattr(run.driver, "timing", None)
    if timing not in (None, "untimed"):
        return f"timing {timing}: the reduction is argued for untimed interleavings only"
    return None


def _agent(choice: str):
    """`cN`/`tN` -> the CPU N; `iN.V` -> the arrival, by its token."""
    return choice if choice[0] == "i" else int(choice[1:])


@dataclass(frozen=True)
class Cond:
    """A condition some agent waits on or tests, with the variables' values
    where it was met (`snapshot`): `holds(values)` evaluates it there with some
    of them changed. The snapshot makes it independent of what later runs do to
    the memory it was met on (a solo run's replay is reused)."""
    fn: object
    memory: object
    names: frozenset
    snapshot: tuple

    def holds(self, values: dict) -> bool:
        vars_ = self.memory.vars
        saved = [(v, v._value) for v in vars_.values()]
        try:
            for n, v in self.snapshot:
                vars_[n]._value = v
            for n, v in values.items():
                vars_[n]._value = v
            value, read = self.memory.traced(self.fn)
        finally:
            for v, old in saved:
                v._value = old
        if {v.name for v in read} - self.names:
            return not bool(value)      # it read other variables than before: count it as changed
        return bool(value)


def _cond(memory, fn) -> Cond:
    return Cond(fn, memory, frozenset(r.name for r in cond_footprint(memory, fn).reads),
                tuple((n, v._value) for n, v in memory.vars.items()))


@dataclass
class Step:
    """One move: what it touches (conditions apart) and the conditions whose
    truth value it depends on."""
    choice: str
    fp: Footprint
    conds: tuple = ()


@dataclass
class Future:
    """An agent's solo run from a state: its moves, and whether it may be
    postponed on its own terms (`why` says why not)."""
    steps: list = field(default_factory=list)
    why: str | None = None
    end: tuple = ()                 # conditions of the wait it ends in

    @property
    def ok(self) -> bool:
        return self.why is None

    @cached_property
    def fp(self) -> Footprint:
        out = Footprint()
        for s in self.steps:
            out = out | s.fp
        return out

    @cached_property
    def conds(self) -> tuple:
        return tuple(c for s in self.steps for c in s.conds) + self.end

    @cached_property
    def touched(self) -> Footprint:
        """Everything, conditions read as plain reads (for invalidation)."""
        names = frozenset(Shared(n) for c in self.conds for n in c.names)
        return self.fp | Footprint(reads=names)

    @cached_property
    def updates(self) -> list:
        return [u for s in self.steps for u in sorted(s.fp.updates, key=_ukey)]


def _ukey(u: BitUpdate):
    return (u.name, u.nr, u.set)


def _apply(value: int, u: BitUpdate) -> int:
    return value | (1 << u.nr) if u.set else value & ~(1 << u.nr)


class PersistentSets:
    """Chooses what to expand at each state (see the module docstring)."""

    def __init__(self, build, observed: frozenset) -> None:
        self.build = build
        self.observed = observed
        self.lookaheads = 0         # solo runs computed
        self.replays = 0            # replays they needed
        self.inherited = 0          # futures handed on from the parent state
        self.kept: dict[int, tuple] = {}    # state id -> (futures, next moves), while on the stack
        self.why_kept: dict[str, int] = {}  # instrumentation: why agents joined T

    def forget(self, sid: int) -> None:
        self.kept.pop(sid, None)

    # --- the choice -------------------------------------------------------------------

    def choose(self, run, prefix: tuple, enabled: list[str], sid: int | None = None,
               parent: int | None = None, move: str | None = None) -> list[str]:
        by_agent: dict = {}
        for c in enabled:
            by_agent.setdefault(_agent(c), []).append(c)
        agents = list(by_agent)
        nxt = {a: self._next_move(run, a, by_agent[a]) for a in agents}
        waits = self._disabled_conds(run, by_agent)
        inherited = self._inherit(parent, move, agents)
        shared = _Shared(self, prefix)
        futures = {}
        # Arrivals first: their handlers' runs commute with each other more often
        # than a CPU's run commutes with them, so the shared replay stays valid.
        for a in sorted(agents, key=lambda a: (not isinstance(a, str), str(a))):
            f = inherited.get(a)
            if f is None:
                f = self._future(run, a, by_agent[a], nxt[a], shared)
            futures[a] = f
        if sid is not None:
            self.kept[sid] = (futures, nxt)
        best = None
        for seed in agents:
            t = self._closure(seed, agents, futures, nxt, waits, run)
            size = sum(len(by_agent[a]) for a in t)
            if best is None or size < best[0]:
                best = (size, t)
            if size == 1:
                break
        t = best[1]
        return [c for c in enabled if _agent(c) in t]

    def _closure(self, seed, agents, futures, nxt, waits, run) -> set:
        t = {seed}
        p = [a for a in agents if a != seed]
        while True:
            moved = None
            for a in p:
                f = futures[a]
                if not f.ok:
                    moved = (a, f.why)
                    break
                # Its conditions count as reads here: a chosen move may not change them.
                fp = f.touched
                if any(fp.conflicts(nxt[b][0]) for b in t):
                    moved = (a, "conflicts with a chosen move")
                    break
            if moved is None:
                moved = self._mutual(p, futures)
            if moved is None:
                moved = self._conds(p, t, futures, nxt, waits, run)
            if moved is None:
                return t
            a, why = moved
            self.why_kept[why] = self.why_kept.get(why, 0) + 1
            p.remove(a)
            t.add(a)

    def _mutual(self, p, futures):
        fps = [(a, futures[a].fp) for a in p]
        for i, (a, fa) in enumerate(fps):
            for b, fb in fps[i + 1:]:
                if fa.conflicts(fb):
                    return b, "conflicts with another postponed future"
        return None

    def _conds(self, p, t, futures, nxt, waits, run):
        """Every condition must keep its truth value under the postponed agents'
        moves (other than its own agent's): the first agent whose updates can
        change one joins T, or the condition's own agent if no update does."""
        checks = [(None, c) for b in t for c in nxt[b][1]] + [(None, c) for c in waits]
        checks += [(a, c) for a in p for c in futures[a].conds]
        for owner, cond in checks:
            movers = [a for a in p if a != owner]
            bad = self._changeable(cond, movers, futures, run)
            if bad is not None:
                return (bad if bad in p else owner), "a postponed move may change a condition"
        return None

    def _changeable(self, cond: Cond, movers, futures, run):
        """None if no combination of `movers`' moves changes `cond`; else the
        agent to move into T (the last one that touches it)."""
        touching = []
        for a in movers:
            fp = futures[a].fp
            if any(isinstance(r, Shared) and r.name in cond.names for r in fp.writes) or fp.whole:
                return a
            ups = [u for u in futures[a].updates if u.name in cond.names]
            if ups:
                touching.append((a, ups))
        if not touching:
            return None
        n = 1
        for _a, ups in touching:
            n *= len(ups) + 1
        if n > COMBOS:
            return touching[-1][0]
        live = run.machine.memory.vars
        base = {name: live[name]._value for name in {u.name for _a, ups in touching for u in ups}}
        want = cond.holds({})
        for combo in product(*(range(len(ups) + 1) for _a, ups in touching)):
            if not any(combo):
                continue
            values = dict(base)
            for (_a, ups), k in zip(touching, combo):
                for u in ups[:k]:
                    values[u.name] = _apply(values[u.name], u)
            if cond.holds(values) != want:
                return touching[-1][0]
        return None

    # --- footprints of the next moves --------------------------------------------------

    def _next_move(self, run, agent, choices) -> tuple:
        """(footprint, conditions) of `agent`'s next move, conservatively."""
        d = run.driver
        mem = run.machine.memory
        if isinstance(agent, str):
            t, _, v = agent[1:].partition(".")
            return _arrival_fp(run, int(t), v), ()
        s = d.strands[agent]
        own = Footprint(writes=frozenset((Local(agent), Latch(agent))))
        if s.status is _WAITING:
            until = s.top.outcome.until
            return own, ((_cond(mem, until),) if until is not None else ())
        op = s.top.op if s.stack else None
        if op is None:
            return own, ()
        if isinstance(op, _SpinUntil):
            return own, (_cond(mem, op.cond),)
        return own | op.footprint(run.machine, agent), ()

    def _disabled_conds(self, run, by_agent) -> list:
        """The conditions of waiting CPUs with no choice now (nothing postponed
        may make them true)."""
        out = []
        mem = run.machine.memory
        for s in run.driver.strands:
            if s.cpu in by_agent or s.status is not _WAITING:
                continue
            until = s.top.outcome.until
            if until is not None:
                out.append(_cond(mem, until))
        return out

    # --- futures ------------------------------------------------------------------------

    def _inherit(self, parent, move, agents) -> dict:
        """The parent's futures that the move taken there leaves as they were."""
        if parent is None or parent not in self.kept:
            return {}
        futures, nxt = self.kept[parent]
        mover = _agent(move)
        fp, conds = nxt[mover]
        moved = fp | Footprint(reads=frozenset(Shared(n) for c in conds for n in c.names))
        out = {}
        for a in agents:
            f = futures.get(a)
            if f is None:
                continue
            if a == mover:
                if isinstance(a, str) or not f.steps or f.steps[0].choice != move or len(f.steps) == 1 \
                        and not f.ok:
                    continue
                out[a] = Future(f.steps[1:], f.why, f.end)
            elif not moved.conflicts(f.touched):
                out[a] = f
            else:
                continue
            self.inherited += 1
        return out

    def _future(self, run, agent, choices, nxt, shared) -> Future:
        fp, conds = nxt
        if fp.whole:
            return Future(why="resets the machine")
        if any(isinstance(r, Inflight) for r in fp.writes) and not isinstance(agent, str):
            return Future(why="sends an interrupt")
        if fp.writes & self.observed:
            return Future(why="writes what a property reads")
        if len(choices) > 1:
            return Future(why="more than one choice")
        if isinstance(agent, str):
            t, _, v = agent[1:].partition(".")
            if Local(int(t)) not in fp.writes:          # it only latches (or its CPU is gone)
                return Future([Step(agent, fp)])
        self.lookaheads += 1
        return shared.solo(agent, choices[0])


class _Shared:
    """One replay to the state, on which solo runs are taken one after another;
    a run whose moves conflict with an earlier one's on it is taken again on a
    fresh replay (it may have seen that earlier run's writes)."""

    def __init__(self, por: PersistentSets, prefix: tuple) -> None:
        self.por, self.prefix = por, prefix
        self.run = None
        self.done: list[Future] = []

    def _fresh(self):
        from haltlab.engine.explorer import replay
        self.por.replays += 1
        run = replay(self.por.build, list(self.prefix), check=False)
        _watch(run)
        return run

    def solo(self, agent, first: str) -> Future:
        if self.run is None:
            self.run, self.done = self._fresh(), []
        f = _solo(self.por, self.run, agent, first)
        touched = f.touched
        if any(touched.conflicts(g.touched) for g in self.done):
            run = self._fresh()
            f = _solo(self.por, run, agent, first)
            self.run, self.done = run, [f]
            return f
        self.done.append(f)
        return f


def _watch(run) -> None:
    """Record, per CPU, whether a step consults or changes its interrupt latches
    (`Latch`): the machine's methods on this replay are wrapped."""
    m = run.machine
    m._latch_touched = set()
    take, deliverable, set_flag, set_state = m.take_interrupt, m.deliverable, m.set_irq_flag, m.set_cpu_state

    def accepting(cpu):
        c = m.cpus[cpu]
        if not c.in_nmi and c.irqs_enabled:
            m._latch_touched.add(cpu)

    def take_interrupt(cpu):
        accepting(cpu)
        out = take(cpu)
        if out is not None:
            m._latch_touched.add(cpu)
        return out

    def deliverable_(cpu):
        accepting(cpu)
        return deliverable(cpu)

    def set_irq_flag(cpu, enabled):
        if m.cpus[cpu].irqs_enabled != enabled:
            m._latch_touched.add(cpu)
        return set_flag(cpu, enabled)

    def set_cpu_state(cpu, changes):
        m._latch_touched.add(cpu)
        return set_state(cpu, changes)

    m.take_interrupt, m.deliverable, m.set_irq_flag, m.set_cpu_state = \
        take_interrupt, deliverable_, set_irq_flag, set_cpu_state


def _arrival_fp(run, target: int, vector: str) -> Footprint:
    """An arrival writes its in-flight token; it latches unless its CPU can
    take it now, when it also runs the CPU (`Local`)."""
    w = {Inflight(target, vector), Latch(target)}
    c = run.machine.cpus[target]
    s = run.driver.strands[target]
    if s.status is not _GONE and not c.in_nmi and (vector == "NMI" or c.irqs_enabled):
        w.add(Local(target))
    return Footprint(writes=frozenset(w))


def _solo(por: PersistentSets, run, agent, first: str) -> Future:
    """Run `agent` alone on `run` (which is at the state) until it must wait."""
    d = run.driver
    m = run.machine
    cpu = int(agent[1:].partition(".")[0]) if isinstance(agent, str) else agent
    steps: list[Step] = []
    inflight = set(d.inflight)
    choice = first
    for _ in range(LOOKAHEAD):
        if isinstance(agent, str) and not steps:
            t, _, v = agent[1:].partition(".")
            fp, conds = _arrival_fp(run, int(t), v), ()
        else:
            fp, conds = _cpu_move(run, cpu)
        ghost = run.ghost() if run.ghost is not None else None
        m._latch_touched.discard(cpu)
        d.step(choice)
        if agent == choice:             # the arrival itself: its in-flight token is gone
            inflight.discard((cpu, choice.partition(".")[2]))
        gw = _ghost_writes(ghost, run.ghost() if run.ghost is not None else None)
        if cpu in m._latch_touched or d.strands[cpu].status is _GONE:
            fp = fp | Footprint(writes=frozenset((Latch(cpu),)))
        steps.append(Step(choice, fp, conds))
        if fp.whole or d.reset_reason is not None:
            return Future(steps, "resets the machine")
        if set(d.inflight) != inflight or any(isinstance(r, Inflight) for r in fp.writes
                                              if not (isinstance(agent, str) and len(steps) == 1)):
            return Future(steps, "sends an interrupt")
        if Ghost("*") in gw:
            return Future(steps, "changes a ghost fact other than by adding to it")
        if (fp.writes | gw) & por.observed:
            return Future(steps, "writes what a property reads")
        own = [c for c in d.choices() if c[0] != "i" and int(c[1:]) == cpu]
        if not own:
            s = d.strands[cpu]
            end = ()
            if s.status is _WAITING and s.top.outcome.until is not None:
                end = (_cond(m.memory, s.top.outcome.until),)
            return _own_conds(Future(steps, None, end))
        if len(own) > 1:
            return Future(steps, "more than one choice")
        choice = own[0]
    return Future(steps, "runs alone longer than the lookahead")


def _cpu_move(run, cpu: int) -> tuple:
    """A CPU's next move on a solo run: what its op touches, its condition."""
    s = run.driver.strands[cpu]
    mem = run.machine.memory
    own = Footprint(writes=frozenset((Local(cpu),)))
    if s.status is _WAITING:
        until = s.top.outcome.until
        return own, ((_cond(mem, until),) if until is not None else ())
    op = s.top.op
    if isinstance(op, _SpinUntil):
        return own, (_cond(mem, op.cond),)
    return own | op.footprint(run.machine, cpu), ()


def _own_conds(f: Future) -> Future:
    """A condition over what the agent itself writes is not judged by
    combinations (its own writes come in its order): count it as plain reads."""
    fp = f.fp
    mine = {r.name for r in fp.writes if isinstance(r, Shared)} | {u.name for u in fp.updates}
    if not any(c.names & mine for c in f.conds):
        return f
    return Future(f.steps, "waits on what it writes itself", f.end)


def _ghost_writes(before, after) -> frozenset:
    """The ghost facts a step changed; `Ghost("*")` unless every fact only grew
    (grow-only sets commute with each other; anything else is not assumed to)."""
    if before == after:
        return frozenset()
    try:
        b, a = dict(before or ()), dict(after or ())
    except (TypeError, ValueError):
        return frozenset((Ghost("*"),))
    out = set()
    for k in set(b) | set(a):
        if b.get(k) != a.get(k):
            out.add(Ghost(k))
            try:
                if not frozenset(b.get(k, ())) <= frozenset(a.get(k, ())):
                    out.add(Ghost("*"))
            except TypeError:
                out.add(Ghost("*"))
    return frozenset(out)
