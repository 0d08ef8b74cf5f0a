"""Partial-order reduction: at each state, expand a persistent set of choices
instead of all of them.

Two steps of different CPUs that touch nothing in common (different shared
variables, reads of one variable, each CPU's own hardware) commute; an
interleaving that only reorders them reaches the same state. The explorer can
then postpone a CPU and explore one order. Which steps are safe to postpone
needs more than the next operation's footprint (`Op.footprint`): a postponed
CPU keeps running on the paths that are not explored first, so its *whole*
future until it must wait matters, and the model's coroutines cannot say what
that future holds. So it is looked at: the CPU is run alone from this state (a
replay, then its steps only) until it cannot go on, and its footprint over
those steps is what is compared.

A persistent set here is every enabled choice except those of the postponed
agents, where an agent is postponed only when

* it is a CPU with no interrupt on its way to it, whose solo run is finite
  (at most `LOOKAHEAD` steps), sends no interrupt, resets nothing, and touches
  nothing that any other agent's next step touches (read against write), nor
  what another postponed agent's solo run touches; or an interrupt in flight
  to a CPU that has no step to take and cannot take it (interrupts off, APIC
  off, an NMI already running: its arrival only latches it), which no other
  agent's next step sends again;
* and nothing it does is observed: it writes no ghost fact and no variable the
  properties and the goal read (`observed`, declared by each property).

When every enabled agent could be postponed, one of them is expanded alone.
The explorer adds the two provisos: a reduced state whose chosen step closes a
cycle through the search stack, or reaches the goal, is expanded in full.
docs/design.md ("Reductions") argues why the verdicts are kept, and when they
are not (a timed exploration: por is off there).
"""

from __future__ import annotations

from haltlab.engine.core import Status
from haltlab.engine.ops import Footprint, Ghost, Inflight, Local, cond_footprint

__all__ = ["PersistentSets", "por_unavailable", "observed_by", "reads", "LOOKAHEAD"]

LOOKAHEAD = 40          # solo steps a postponed CPU may take before it must wait

_READY, _WAITING = Status.READY, Status.WAITING


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


def _cpu_of(choice: str) -> int:
    return int(choice[1:].partition(".")[0])


def next_footprint(run, cpu: int) -> Footprint:
    """What CPU `cpu`'s next step touches (its own state included)."""
    s = run.driver.strands[cpu]
    own = Footprint(writes=frozenset((Local(cpu),)))
    if s.status is _READY and s.stack and s.top.op is not None:
        return own | s.top.op.footprint(run.machine, cpu)
    if s.status is _WAITING:
        return own | cond_footprint(run.machine.memory, s.top.outcome.until)
    return own


def _enabling(run, cpu: int) -> Footprint:
    s = run.driver.strands[cpu]
    if s.status is _WAITING:
        return cond_footprint(run.machine.memory, s.top.outcome.until)
    return Footprint()


def _arrival_footprint(target: int, vector: str) -> Footprint:
    return Footprint(writes=frozenset((Inflight(target, vector), Local(target))))


def _silent(run, target: int, vector: str, cpu_steps: dict) -> bool:
    """An arrival that only latches: its CPU has no step, and cannot take it."""
    if cpu_steps.get(target):
        return False
    c = run.machine.cpus[target]
    if run.driver.strands[target].status is Status.GONE:
        return True
    if vector == "NMI":
        return c.in_nmi
    return not (c.irqs_enabled and c.apic_enabled)


class PersistentSets:
    """Chooses what to expand at each state (see the module docstring)."""

    def __init__(self, build, observed: frozenset) -> None:
        self.build = build
        self.observed = observed
        self.lookaheads = 0

    def choose(self, run, prefix: tuple, enabled: list[str]) -> list[str]:
        steps: dict[int, list[str]] = {}
        arrivals = []
        for c in enabled:
            if c[0] == "i":
                t, _, v = c[1:].partition(".")
                arrivals.append((c, int(t), v))
            else:
                steps.setdefault(_cpu_of(c), []).append(c)
        ncpus = run.machine.ncpus
        # A CPU with no step counts by what could enable it (its wait's reads).
        nxt = {cpu: next_footprint(run, cpu) if cpu in steps else _enabling(run, cpu) for cpu in range(ncpus)}
        arrive = {c: _arrival_footprint(t, v) for c, t, v in arrivals}
        targeted = {t for _c, t, _v in arrivals}
        # Candidates, and the footprint of everything each would do if postponed.
        future: dict = {}
        for c, t, v in arrivals:
            if _silent(run, t, v, steps) and not (arrive[c].writes & self.observed):
                future[c] = arrive[c]
        for cpu in sorted(steps):
            if cpu in targeted:
                continue
            f = self._solo_future(prefix, cpu, nxt, arrive)
            if f is not None:
                future[cpu] = f
        postponed: dict = {}
        for agent, f in future.items():
            others = [nxt[c] for c in range(ncpus) if c != agent and c not in postponed] + \
                     [arrive[a] for a in arrive if a != agent and a not in postponed] + list(postponed.values())
            if not any(f.conflicts(o) for o in others):
                postponed[agent] = f
        if not postponed:
            return enabled
        keep = [c for c in enabled if (c if c[0] == "i" else _cpu_of(c)) not in postponed]
        if keep:
            return keep
        first = next(iter(postponed))
        return [c for c in enabled if (c if c[0] == "i" else _cpu_of(c)) == first]

    def _solo_future(self, prefix: tuple, cpu: int, nxt: dict, arrive: dict) -> Footprint | None:
        """The footprint of `cpu` running alone until it must wait, or None if
        it may not be postponed (see the module docstring)."""
        first = nxt[cpu]
        if first.whole or any(isinstance(r, Inflight) for r in first.writes) or first.writes & self.observed:
            return None
        if any(first.conflicts(nxt[c]) for c in nxt if c != cpu) or any(first.conflicts(a) for a in arrive.values()):
            return None                         # its very next step already conflicts
        from haltlab.engine.explorer import replay
        self.lookaheads += 1
        run = replay(self.build, list(prefix), check=False)
        total = Footprint()
        inflight = set(run.driver.inflight)
        for _ in range(LOOKAHEAD):
            mine = [c for c in run.driver.choices() if c[0] != "i" and _cpu_of(c) == cpu]
            if not mine:
                return total
            if len(mine) > 1:
                return None                     # not a single path alone
            f = next_footprint(run, cpu)
            if f.whole or any(isinstance(r, Inflight) for r in f.writes):
                return None
            ghost = run.ghost() if run.ghost is not None else None
            run.driver.step(mine[0])
            f = f | Footprint(writes=_ghost_writes(ghost, run.ghost() if run.ghost is not None else None))
            if f.writes & self.observed or any(isinstance(r, Ghost) and r.key == "*" for r in f.writes) \
                    and any(isinstance(r, Ghost) for r in self.observed):
                return None
            if set(run.driver.inflight) != inflight or run.driver.reset_reason is not None:
                return None
            total = total | f
        return None                             # too long a run alone: not postponed


def _ghost_writes(before, after) -> frozenset:
    if before == after:
        return frozenset()
    try:
        b, a = dict(before or ()), dict(after or ())
    except (TypeError, ValueError):
        return frozenset((Ghost("*"),))
    return frozenset(Ghost(k) for k in set(b) | set(a) if b.get(k) != a.get(k))
