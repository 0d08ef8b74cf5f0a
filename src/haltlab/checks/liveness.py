"""Liveness on a recorded state graph: is there a weakly fair run on which a
progress predicate never holds?

The explorer records every edge `(src, choice, dst)` it walks (`Exploration.edges`);
a choice token names what happened (`c1`: CPU1 stepped, `i1.NMI`: an NMI in
flight to CPU1 arrived, `t0`: CPU0's bounded wait timed out), so the same token
in two states is the same choice. This module judges that graph, as a pure
function of it, so it is tested against brute force on small graphs and knows
nothing of the kernel.

Weak fairness over every choice: a run is fair when no choice stays enabled
forever without being taken. An infinite run of a finite graph ends in a cycle
through some set S of states, strongly connected; it is fair iff every choice
enabled in all of S is taken on an edge inside S. A violation of
`eventually(p)` is a fair run whose states never satisfy p: a path from the
root through non-p states into such an S of non-p states (a lasso).

Why only the maximal strongly connected components of the non-p subgraph need
checking: if some S inside a component M is fair, so is M, since the choices
enabled throughout M are among those enabled throughout S (an intersection over
more states), which S takes inside S, hence inside M. And a fair M yields a fair
cycle: a closed walk through M that takes each of those choices once.

A state the search did not expand (a bound was hit) has unknown choices; a
component holding one is not judged fair or unfair, and the verdict says the
graph was truncated. The component search is Tarjan's, iterative (no recursion
limit on graphs with long paths).

Timed graphs (`TimeDivergence`): a cycle counts only if time can diverge
around it, since a real run lets every CPU's clock advance. Two more
conditions on a component S, both necessary for a time-divergent run that
stays in S, and both monotone like fairness (if a part of M meets them, so
does M), so judging maximal components still finds every such run:
* every obligation due in all of S (an agent bound by an invariant to act
  within a bounded time: a CPU in a segment or a bounded wait, an interrupt
  in flight) is discharged by a choice inside S (that agent acts);
* some state of S lets time pass (not every state is urgent: no Zeno cycle).
The lasso printed then also passes a discharging edge of each such
obligation and a state where time passes. Why these are the right conditions
is in docs/design.md, "Timed lassos: non-Zeno and fair in time".
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Accept", "Lasso", "Liveness", "TimeDivergence", "component_lasso", "fair_nonprogress_cycle",
           "lasso_requirements", "strongly_connected"]

Edge = tuple[int, str, int]


@dataclass(frozen=True)
class Lasso:
    """A fair run that never makes progress: `prefix` from the root, then `cycle`
    forever (both choice lists); `states` are the component's states."""

    prefix: tuple[str, ...]
    cycle: tuple[str, ...]
    states: frozenset[int]


@dataclass(frozen=True)
class TimeDivergence:
    """What a timed graph adds to the judge: `due(s)`, the obligations in state
    `s` (agents that an invariant makes act within a bounded time, each named
    as a string); `delays(s)`, whether time can pass in `s`; and
    `discharges(choice)`, the obligations a choice meets (its agent acted).
    For the explorer these come from `haltlab.engine.timing` (`Clocks.due`,
    `Clocks.can_delay`, `discharged_by`)."""

    due: Callable[[int], Iterable[str]]
    delays: Callable[[int], bool]
    discharges: Callable[[str], Iterable[str]]


@dataclass(frozen=True)
class Liveness:
    lasso: Lasso | None
    truncated: bool          # some reachable non-progress component holds an unexpanded state
    # A fair (and, timed, time-divergent) lasso that `accept` refused, and why:
    # the graph has one, but it was not shown to be a run (neither proof nor refutation).
    candidate: Lasso | None = None
    why: str | None = None


Accept = Callable[[Lasso], "Lasso | str"]
"""Asked of each lasso the judge finds: the lasso to report (it may be a
longer one for the same run) or, refusing it, why; the judge then goes on to
the next component. For a timed graph, `haltlab.checks.timed_lasso`."""


def strongly_connected(nodes: Iterable[int], succ: dict[int, list[int]]) -> list[list[int]]:
    """Tarjan's strongly connected components of the graph `succ` restricted to
    `nodes`, iteratively; each component a list of its states.

    State ids are small non-negative ints (the explorer numbers states in the
    order it finds them), so the per-state bookkeeping is in lists indexed by
    id rather than dicts: about twice as fast on a 150,000-state graph."""
    nodes = list(nodes)
    if not nodes:
        return []
    size = max(nodes) + 1
    allowed = bytearray(size)
    for v in nodes:
        allowed[v] = 1
    index = [-1] * size
    low = [0] * size
    on_stack = bytearray(size)
    stack: list[int] = []
    out: list[list[int]] = []
    counter = 0
    empty: list[int] = []
    for start in nodes:
        if index[start] >= 0:
            continue
        work = [(start, iter(succ.get(start, empty)))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack[start] = 1
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w >= size or not allowed[w]:
                    continue
                if index[w] < 0:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack[w] = 1
                    work.append((w, iter(succ.get(w, empty))))
                    advanced = True
                    break
                if on_stack[w] and index[w] < low[v]:
                    low[v] = index[w]
            if advanced:
                continue
            work.pop()
            if work:
                u = work[-1][0]
                if low[v] < low[u]:
                    low[u] = low[v]
            if low[v] == index[v]:
                w = stack.pop()
                on_stack[w] = 0
                if w == v:
                    out.append([v])
                    continue
                component = [w]
                while w != v:
                    w = stack.pop()
                    on_stack[w] = 0
                    component.append(w)
                out.append(component)
    return out


def lasso_requirements(states: Iterable[int], out: Mapping[int, Iterable[tuple[str, int]]],
                       postponed: Mapping[int, Iterable[str]] | None = None,
                       time: TimeDivergence | None = None) -> list[tuple[str, str]] | None:
    """Whether the strongly connected set `states` (each member's out-edges in
    `out`, as (choice, destination)) holds a fair run, time-divergent when
    `time` is given: None if not; else what a cycle through it must pass, in
    order, as (kind, what) pairs: ("choice", c) for each choice enabled
    throughout (taken or `postponed`), ("due", o) for each obligation due
    throughout, ("delay", "") for a state where time passes."""
    states = list(states)
    members = set(states)
    inside = [(c, d) for s in states for c, d in out.get(s, ()) if d in members]
    extra = postponed or {}
    always = set.intersection(*({c for c, _d in out.get(s, ())} | set(extra.get(s, ())) for s in states))
    taken = {c for c, _d in inside}
    if not always <= taken:
        return None
    needs = [("choice", c) for c in sorted(always)]
    if time is None:
        return needs
    due = set.intersection(*(set(time.due(s)) for s in states))
    met = {o for c in taken for o in time.discharges(c)}
    if not due <= met or not any(time.delays(s) for s in states):
        return None
    return needs + [("due", o) for o in sorted(due)] + [("delay", "")]


def fair_nonprogress_cycle(edges: Sequence[Edge], progress: set[int], expanded: set[int],
                           root: int = 0, postponed: Mapping[int, Iterable[str]] | None = None,
                           time: TimeDivergence | None = None, accept: Accept | None = None) -> Liveness:
    """A weakly fair lasso from `root` whose states are never in `progress`, if
    the graph has one (see the module docstring). `expanded` holds the states
    whose choices the search took: all of them, or (the partial-order
    reduction) all but `postponed[state]`, which are enabled there too and
    count as enabled when fairness is judged, though no edge takes them.
    `time`: the graph is timed, and the lasso must be time-divergent too.
    `accept`: each lasso found is put to it, and a refused one makes the
    judge go on to the next component (the first refused is kept as the
    result's `candidate`)."""
    out: dict[int, list[tuple[str, int]]] = {}
    for src, choice, dst in edges:
        out.setdefault(src, []).append((choice, dst))
    succ = {s: [d for _c, d in moves] for s, moves in out.items()}
    if root in progress:
        return Liveness(None, False)
    reach = _reachable(root, succ, progress)
    truncated = False
    candidate = why = None
    for component in strongly_connected(sorted(reach), succ):
        if len(component) == 1 and component[0] not in succ.get(component[0], ()):
            continue                    # a single state without a self-loop: no cycle
        states = set(component)
        # Only the component's own out-edges: scanning every edge per component
        # made this pass quadratic (0.5 s of 0.9 s on a 1,630-state graph).
        inside = [(s, c, d) for s in component for c, d in out.get(s, ()) if d in states]
        if not inside:
            continue                    # a single state without a self-loop: no cycle
        if not states <= expanded:
            truncated = True
            continue
        lasso = component_lasso(edges, root, component, out, progress, postponed, time)
        if lasso is None:
            continue
        verdict = lasso if accept is None else accept(lasso)
        if isinstance(verdict, Lasso):
            return Liveness(verdict, truncated, candidate, why)
        if candidate is None:
            candidate, why = lasso, verdict
    return Liveness(None, truncated, candidate, why)


def component_lasso(edges: Sequence[Edge], root: int, component: Sequence[int],
                    out: Mapping[int, Sequence[tuple[str, int]]], progress: set[int],
                    postponed: Mapping[int, Iterable[str]] | None = None,
                    time: TimeDivergence | None = None) -> Lasso | None:
    """The lasso into one strongly connected set of non-progress states, all
    expanded and reached from `root` through non-progress states, if it is
    fair (and time-divergent, with `time`); else None."""
    needs = lasso_requirements(component, out, postponed, time)
    if needs is None:
        return None
    states = set(component)
    inside = [(s, c, d) for s in component for c, d in out.get(s, ()) if d in states]
    extra = postponed or {}

    def enabled(s):
        return {c for c, _d in out.get(s, ())} | set(extra.get(s, ()))
    return _lasso(edges, root, states, needs, progress, inside, enabled, time)


def _reachable(root: int, succ: dict[int, list[int]], progress: set[int]) -> set[int]:
    seen, todo = {root}, [root]
    while todo:
        v = todo.pop()
        for w in succ.get(v, ()):
            if w not in seen and w not in progress:
                seen.add(w)
                todo.append(w)
    return seen


def _path(edges: Sequence[Edge], start: int, targets: set[int], within: set[int] | None,
          avoid: set[int] = frozenset()) -> tuple[list[str], int]:
    """Shortest choice list from `start` to a state in `targets` (breadth first),
    staying in `within` when given and out of `avoid`; and the state reached."""
    if start in targets:
        return [], start
    out: dict[int, list[tuple[str, int]]] = {}
    for s, c, d in edges:
        if (within is None or (s in within and d in within)) and d not in avoid:
            out.setdefault(s, []).append((c, d))
    back: dict[int, tuple[int, str]] = {}
    todo = deque([start])
    seen = {start}
    while todo:
        v = todo.popleft()
        for c, w in out.get(v, ()):
            if w in seen:
                continue
            seen.add(w)
            back[w] = (v, c)
            if w in targets:
                reached, path = w, []
                while w != start:
                    w, c2 = back[w]
                    path.append(c2)
                return path[::-1], reached
            todo.append(w)
    raise ValueError("no path")         # unreachable: callers pass connected targets


def _meets(need: tuple[str, str], edge: Edge, time: TimeDivergence | None, enabled) -> bool:
    kind, what = need
    if kind == "choice":
        return edge[1] == what
    if kind == "due":
        return what in time.discharges(edge[1])
    if kind == "escape":                # take the choice, or pass a state where it is not enabled
        return edge[1] == what or what not in enabled(edge[0])
    if kind == "release":               # meet the obligation, or pass a state where it is not due
        return what in time.discharges(edge[1]) or what not in set(time.due(edge[0]))
    return time.delays(edge[0])         # "delay": time passes in the edge's source, before it


def _unmet(cycle_edges: list[Edge], enabled, time: TimeDivergence | None) -> list[tuple[str, str]]:
    """What the cycle along `cycle_edges`, repeated forever, would leave unfair:
    a choice enabled in every state it passes and never taken in it, an
    obligation due in every state it passes and never met in it."""
    visited = [s for s, _c, _d in cycle_edges]
    taken = {c for _s, c, _d in cycle_edges}
    out = [("escape", c) for c in sorted(set.intersection(*(set(enabled(v)) for v in visited)) - taken)]
    if time is not None:
        met = {o for c in taken for o in time.discharges(c)}
        due = set.intersection(*(set(time.due(v)) for v in visited))
        out += [("release", o) for o in sorted(due - met)]
    return out


def _lasso(edges, root, states, needs, progress, inside, enabled, time=None) -> Lasso:
    """A lasso into the fair component `states`: the prefix, then a cycle that
    meets each of `needs` (`lasso_requirements`) and is itself fair: the
    component is, but a cycle through part of it might leave a choice enabled
    in every state it passes, though not in every state of the component; so
    each such choice is then taken, or a state where it is not enabled is
    passed (likewise for a timed obligation), until none is left."""
    prefix, entry = _path(edges, root, states, None, progress)
    step = {(s, c): d for s, c, d in inside}
    cycle: list[str] = []
    while True:
        at = entry
        for need in needs:              # walk to an edge that meets it, take that edge
            meeting = [e for e in inside if _meets(need, e, time, enabled)]
            walk, at = _path(inside, at, {s for s, _c, _d in meeting}, states)
            cycle += walk
            _s, c, at = next(e for e in meeting if e[0] == at)
            cycle.append(c)
        if not cycle:                   # a cycle takes at least one step
            s, c, d = next(e for e in inside if e[0] == entry)
            cycle.append(c)
            at = d
        walk, at = _path(inside, at, {entry}, states)
        cycle += walk                   # closed: back at the entry
        walked, at = [], entry
        for c in cycle:
            walked.append((at, c, step[(at, c)]))
            at = step[(at, c)]
        unmet = _unmet(walked, enabled, time)
        if not unmet:
            return Lasso(tuple(prefix), tuple(cycle), frozenset(states))
        needs = unmet                   # go round again from the entry, meeting those too
