"""Fair cycles of a symmetry-reduced graph, judged on the graph it stands for.

Under symmetry the explorer stores one state per orbit, and an edge records the
permutation between the state it reached and that orbit's stored
representative (`Exploration.edges.perm`). A cycle of the quotient graph need
not be a cycle of the real one: going round it may rename the CPUs, and a
choice taken "every time round" may be a different CPU's each time. Weak
fairness is about real choices, so a non-progress component of the quotient is
lifted before it is judged: its states paired with the renaming in force,
`(state, g)` standing for the representative renamed by g, reached from each
`(state, identity)` along the component's own edges (every choice renamed by
g). Only the component is lifted, never the whole graph; its size is bounded
by the component's states times the renamings its cycles generate (the
identity alone when no cycle renames anything).

Why that suffices: the real graph over the component's orbits is mapped onto
itself by every permutation, so each of its strongly connected components is
the image of one that holds some `(x, identity)`; an image of a fair component
is fair (choices are renamed consistently), so none is missed. A lifted node's
edges leaving the component are kept (to sinks), so the choices enabled in it
are all there, and so are the choices a reduced state postponed (the
partial-order reduction's `Exploration.postponed`, renamed with the node). The lasso found is renamed into the run that reaches it from
the root: the quotient path to its first state, concretized
(`haltlab.engine.symmetry.concrete_walk`), fixes which renaming that is.
"""

from __future__ import annotations

from collections import deque

from haltlab.checks.liveness import (
    Lasso, Liveness, TimeDivergence, _reachable, fair_nonprogress_cycle, strongly_connected,
)
from haltlab.engine.symmetry import compose, concrete_walk, invert, rename_choice

__all__ = ["edge_path", "fair_cycle_lifted"]


def edge_path(edges, start: int, targets: set[int], avoid: set[int] = frozenset(),
              within: set[int] | None = None) -> list[int]:
    """The shortest path (edge indices) from `start` to a state in `targets`,
    through no state of `avoid` and, with `within`, only states of it."""
    if start in targets:
        return []
    out: dict[int, list[int]] = {}
    for i, s in enumerate(edges.src):
        out.setdefault(s, []).append(i)
    back: dict[int, int] = {}
    seen, todo = {start}, deque([start])
    while todo:
        v = todo.popleft()
        for i in out.get(v, ()):
            w = edges.dst[i]
            if w in seen or w in avoid or (within is not None and w not in within):
                continue
            seen.add(w)
            back[w] = i
            if w in targets:
                path = []
                while w != start:
                    path.append(back[w])
                    w = edges.src[back[w]]
                return path[::-1]
            todo.append(w)
    raise ValueError("no path")


def fair_cycle_lifted(ex, progress: set[int], expanded: set[int], time: TimeDivergence | None = None,
                      accept=None) -> Liveness:
    """`fair_nonprogress_cycle` for a symmetry-reduced exploration (`time`: its
    timing facts, in each representative's CPU names; renamed with the nodes;
    `accept`: asked of each lasso once it is renamed into the run from the root)."""
    edges, perms = ex.edges, ex.perms
    succ: dict[int, list[int]] = {}
    out: dict[int, list[int]] = {}
    for i, s in enumerate(edges.src):
        succ.setdefault(s, []).append(edges.dst[i])
        out.setdefault(s, []).append(i)
    if 0 in progress:
        return Liveness(None, False)
    reach = _reachable(0, succ, progress)
    truncated = False
    refused: list[tuple[Lasso, str]] = []
    for comp in strongly_connected(sorted(reach), succ):
        states = set(comp)
        if not any(edges.dst[i] in states for s in comp for i in out.get(s, ())):
            continue                                    # one state, no self-loop
        if not states <= expanded:
            truncated = True
            continue
        lasso = _judge_lifted(ex, states, out, progress, time, accept, refused)
        if lasso is not None:
            return Liveness(lasso, truncated, *(refused[0] if refused else (None, None)))
    return Liveness(None, truncated, *(refused[0] if refused else (None, None)))


def _judge_lifted(ex, states: set[int], out, progress, time=None, accept=None, refused=None) -> Lasso | None:
    edges, perms = ex.edges, ex.perms
    n = len(perms[0])
    ident = tuple(range(n))
    ids: dict[tuple, int] = {}
    lifted: list[tuple[int, str, int]] = []

    def node(s, g):
        key = (s, g)
        nid = ids.get(key)
        if nid is None:
            nid = ids[key] = len(ids) + 1           # 0 is the synthetic root
        return nid

    postponed: dict[int, list[str]] = {}
    due: dict[int, set[str]] = {}
    delays: set[int] = set()
    todo = []
    for s in sorted(states):
        node(s, ident)
        todo.append((s, ident))
        lifted.append((0, f"enter{s}", ids[(s, ident)]))
    inside = set()
    done = set()
    while todo:
        s, g = todo.pop()
        if (s, g) in done:
            continue
        done.add((s, g))
        inside.add(ids[(s, g)])
        if s in ex.postponed:
            postponed[ids[(s, g)]] = [rename_choice(c, g) for c in ex.postponed[s]]
        if time is not None:
            due[ids[(s, g)]] = {rename_choice(o, g) for o in time.due(s)}
            if time.delays(s):
                delays.add(ids[(s, g)])
        for i in out.get(s, ()):
            d = edges.dst[i]
            h = compose(g, perms[edges.perm[i]])
            token = rename_choice(edges.tokens[edges.tok[i]], g)
            lifted.append((ids[(s, g)], token, node(d, h) if d in states else node(-1 - i, h)))
            if d in states and (d, h) not in done:
                todo.append((d, h))
    lifted_time = None if time is None else TimeDivergence(
        due=lambda v: due.get(v, ()), delays=delays.__contains__, discharges=time.discharges)
    step = {(a, c): b for a, c, b in lifted}
    by_id = {v: k for k, v in ids.items()}

    def concrete(lasso: Lasso) -> Lasso:
        at = 0
        for c in lasso.prefix:
            at = step[(at, c)]
        entry, h = by_id[at]
        path = edge_path(edges, 0, {entry}, progress)
        prefix, g_path = concrete_walk(edges, perms, path)
        phi = compose(g_path or ident, invert(h))
        return Lasso(tuple(prefix), tuple(rename_choice(c, phi) for c in lasso.cycle), frozenset(states))

    def judge(lasso: Lasso):
        real = concrete(lasso)
        verdict = real if accept is None else accept(real)
        if not isinstance(verdict, Lasso) and refused is not None:
            refused.append((real, verdict))
        return verdict

    res = fair_nonprogress_cycle(lifted, set(), inside | {0}, postponed=postponed, time=lifted_time, accept=judge)
    return res.lasso
