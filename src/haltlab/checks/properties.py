"""Properties in plain words, and the one call that checks them.

A scenario declares what must hold as a list of properties, each with a name
and a message, instead of loose callbacks:

* `always(pred)`: safety, in every reachable state;
* `at_end(pred)`: in every state where the run ends (nothing left to do) or
  reaches the scenario's goal (the question is answered there);
* `never_deadlock()`: no state where the run ends that is not a goal;
* `eventually(pred)`: liveness, on every maximal run: a finite one ends in, or
  passes, a state where `pred` holds, and so does every weakly fair infinite one
  (judged on the recorded graph by `haltlab.checks.liveness`).

A predicate returns True when the property holds there; False, or a string
saying what is wrong in that state, when it does not (the string replaces the
property's message, so a verdict can name CPUs and values).

`check()` runs the explorer once and gives one `Outcome`: `ok`, `bounded-ok`
(a bound was hit: it says which), `violation` (a safety or finite-run path),
`deadlock` (a path), or `livelock` (a lasso: prefix, then a cycle); timed
with exact zones, a livelock is one whose lasso replays as a time-divergent
run (`haltlab.checks.timed_lasso`), and a fair component whose lassos do not
is `undecided` (with the candidate lasso), never `ok`.
"""

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from haltlab.checks.lifting import edge_path, fair_cycle_lifted
from haltlab.checks.liveness import (
    Lasso, TimeDivergence, _reachable, component_lasso, fair_nonprogress_cycle, lasso_requirements,
)
from haltlab.checks.timed_lasso import timed_lasso_check
from haltlab.engine.explorer import Exploration, Reduce, explore
from haltlab.engine.por import observed_by
from haltlab.engine.run import Run
from haltlab.engine.timing import DELAY, Timing, discharged_by

__all__ = ["Kind", "Verdict", "Property", "Outcome", "always", "at_end", "never_deadlock",
           "eventually", "check", "time_divergence"]

Pred = Callable[[Run], "bool | str"]


class Kind(enum.StrEnum):
    ALWAYS = "always"
    AT_END = "at_end"
    NEVER_DEADLOCK = "never_deadlock"
    EVENTUALLY = "eventually"


class Verdict(enum.StrEnum):
    OK = "ok"
    BOUNDED_OK = "bounded-ok"
    UNDECIDED = "undecided"     # timed: a fair lasso of the zone graph that is not shown to be a run
    VIOLATION = "violation"
    DEADLOCK = "deadlock"
    LIVELOCK = "livelock"


@dataclass(frozen=True)
class Property:
    kind: Kind
    name: str
    message: str
    pred: Pred | None = None
    reads: frozenset | None = None      # what `pred` reads (`haltlab.engine.por`); None: unknown
    stable: bool = False                # eventually: once it holds it holds for good (por needs it)

    def failure(self, run: Run) -> str | None:
        """None where the property holds in `run`'s state, else what is wrong."""
        held = self.pred(run)
        if held is True:
            return None
        return held if isinstance(held, str) and held else self.message


def always(pred: Pred, *, name: str, message: str, reads=None) -> Property:
    return Property(Kind.ALWAYS, name, message, pred, None if reads is None else frozenset(reads))


def at_end(pred: Pred, *, name: str, message: str, reads=None) -> Property:
    return Property(Kind.AT_END, name, message, pred, None if reads is None else frozenset(reads))


def never_deadlock(*, name: str = "no deadlock",
                   message: str = "the run can go no further and has not reached its goal") -> Property:
    return Property(Kind.NEVER_DEADLOCK, name, message)


def eventually(pred: Pred, *, name: str, message: str, reads=None, stable: bool = False) -> Property:
    """`stable`: once `pred` holds on a run it holds for the rest of it (say so
    only when it is true, such as a predicate over grow-only ghost facts); the
    partial-order reduction judges liveness only on stable predicates."""
    return Property(Kind.EVENTUALLY, name, message, pred, None if reads is None else frozenset(reads), stable)


@dataclass
class Outcome:
    verdict: Verdict
    exploration: Exploration
    property: Property | None = None    # the one that failed
    message: str | None = None
    choices: list[str] | None = None    # a path to the failure (safety, deadlock, finite run)
    lasso: Lasso | None = None          # livelock: a fair run that never makes progress
    bound: str | None = None            # bounded-ok: which bound
    candidate: Lasso | None = None      # undecided: the zone graph's lasso that did not replay as a run


def check(build: Callable[[], Run], properties: Sequence[Property], *,
          goal: Callable[[Run], bool] | None = None, max_states: int = 200_000,
          max_depth: int = 2_000, progress=None, reduce: Reduce | str = Reduce.NONE,
          debug: bool = False, reach: str = "ahead") -> Outcome:
    """Explore every interleaving of `build()` and judge `properties` on it.

    `reduce` picks the explorer's reductions; how each verdict stays sound under
    them is in docs/design.md ("Reductions"): symmetric graphs are lifted where
    a fair cycle is judged, and under the partial-order reduction fairness counts
    the choices a reduced state postponed as enabled there (the explorer's
    cycle and visibility provisos keep a fair lasso if there is one; docs/design.md,
    "Liveness under the partial-order reduction"). An `eventually` property that
    is not declared `stable` turns the partial-order reduction off. `reach` is
    `explore()`'s: how the plain search reaches states again (the same results
    either way)."""
    by_kind = {k: [p for p in properties if p.kind is k] for k in Kind}
    failed: dict[str, Property] = {}

    def first_failure(props, run) -> str | None:
        for p in props:
            msg = p.failure(run)
            if msg is not None:
                failed[msg] = p
                return msg
        return None

    def at_the_end(run: Run) -> str | None:
        msg = first_failure(by_kind[Kind.AT_END], run)
        if msg is None and by_kind[Kind.NEVER_DEADLOCK] and not (goal is not None and goal(run)):
            p = by_kind[Kind.NEVER_DEADLOCK][0]
            failed[p.message] = p
            return p.message
        return msg

    live = by_kind[Kind.EVENTUALLY]
    try:
        reduce = Reduce(reduce)
    except ValueError:
        pass                            # explore() names it
    observed = observed_by(properties, goal)
    unstable = (isinstance(reduce, Reduce) and reduce.por and observed is not None
                and any(not p.stable for p in live))
    if unstable:
        reduce = Reduce.SYMMETRY if reduce.symmetry else Reduce.NONE
    label = (lambda run: frozenset(p.name for p in live if p.failure(run) is None) | _time_facts(run)) if live else None
    # Exact zones: a lasso is reported only once it replays as a run (zone
    # inclusion can close cycles that no run goes round for ever).
    accept = (timed_lasso_check(build) if live and getattr(build().driver, "timing", None) is Timing.TIMED
              else None)

    def search(reduce):
        return explore(build, check=lambda run: first_failure(by_kind[Kind.ALWAYS], run), at_end=at_the_end,
                       goal=goal, label=label, max_states=max_states, max_depth=max_depth, progress=progress,
                       reduce=reduce, observed=observed, debug=debug, reach=reach,
                       on_component=(lambda ex, states, out: _fair_nonprogress(ex, states, out, live, accept))
                       if live else None)

    ex = search(reduce)
    if unstable:
        ex.reductions += ("por off: an eventually property is not declared stable",)
    if ex.violation is not None:
        prop = failed[ex.violation.message]
        verdict = Verdict.DEADLOCK if prop.kind is Kind.NEVER_DEADLOCK else Verdict.VIOLATION
        return Outcome(verdict, ex, prop, ex.violation.message, ex.violation.choices)
    expanded = set(range(ex.states)) - ex.unexpanded
    candidate = None
    for p in live:
        reached = ex.labels.with_fact(p.name)
        ends = _finite_run_without(ex, reached, expanded)
        if ends is not None:
            return Outcome(Verdict.VIOLATION, ex, p, p.message, ends)
        time = time_divergence(ex)
        res = (fair_cycle_lifted(ex, reached, expanded, time, accept) if ex.perms
               else fair_nonprogress_cycle(ex.edges, reached, expanded, postponed=ex.postponed, time=time,
                                           accept=accept))
        if res.lasso is not None:
            return Outcome(Verdict.LIVELOCK, ex, p, p.message, lasso=res.lasso)
        if res.candidate is not None and candidate is None:
            candidate = Outcome(Verdict.UNDECIDED, ex, p, res.why, candidate=res.candidate)
    if candidate is not None:
        return candidate
    if ex.truncated:
        return Outcome(Verdict.BOUNDED_OK, ex, bound=ex.bound)
    return Outcome(Verdict.OK, ex)


def _time_facts(run: Run) -> frozenset:
    """A timed run's facts for the liveness judge (`Clocks.facts`); none untimed."""
    clocks = getattr(run.driver, "clocks", None)
    return clocks.facts() if clocks is not None else frozenset()


def time_divergence(ex: Exploration) -> TimeDivergence | None:
    """What the judge needs to refuse a cycle in which time cannot diverge
    (`haltlab.checks.liveness.TimeDivergence`), read from the timing facts
    the label carries; None for an untimed exploration (every timed state has
    a fact: an obligation, or time that can pass)."""
    if not any(isinstance(f, tuple) for f in ex.labels.facts):
        return None
    labels = ex.labels
    return TimeDivergence(due=lambda s: (f[1] for f in labels.get(s, ()) if isinstance(f, tuple) and f[0] == "due"),
                          delays=lambda s: DELAY in labels.get(s, ()), discharges=discharged_by)


def _fair_nonprogress(ex: Exploration, states: list[int], out: dict, live, accept=None) -> bool:
    """Whether a component the search has just completed proves a livelock of
    one of the `live` properties: it has a cycle, none of its states makes that
    property's progress, every choice enabled throughout it (taken or
    postponed) is taken inside it, time can diverge in it (timed: every CPU
    bound to act does, and not every state is urgent), and the search reached
    it through states without progress, and (exact zones, `accept`) its
    lasso replays as a run. The search then stops
    (`explore(on_component=...)`); the liveness pass below finds this
    component, or another complete one, on the graph recorded so far."""
    members = set(states)
    inside = {t for s in states for t, d in out[s] if d in members}
    if not inside:
        return False                                # one state, no self-loop
    time = time_divergence(ex)
    for p in live:
        if any(p.name in ex.labels.get(s, ()) for s in states):
            continue
        if lasso_requirements(states, out, ex.postponed, time) is None:
            continue
        reached = ex.labels.with_fact(p.name)
        succ: dict[int, list[int]] = {}
        for s, _c, d in ex.edges:
            succ.setdefault(s, []).append(d)
        if 0 in reached or not members & _reachable(0, succ, reached):
            continue
        if accept is None:
            return True
        lasso = component_lasso(ex.edges, 0, states, out, reached, ex.postponed, time)
        if lasso is not None and isinstance(accept(lasso), Lasso):
            return True
    return False


def _finite_run_without(ex: Exploration, reached: set[int], expanded: set[int]) -> list[str] | None:
    """A path from the root to an end state (expanded, no way on) that passes no
    state in `reached`, or None."""
    if 0 in reached:
        return None
    succ: dict[int, list[int]] = {}
    for s, _c, d in ex.edges:
        succ.setdefault(s, []).append(d)
    ends = {s for s in _reachable(0, succ, reached) if s not in succ and s in expanded and s not in reached}
    if not ends:
        return None
    return ex.concrete_path(edge_path(ex.edges, 0, ends, reached))
