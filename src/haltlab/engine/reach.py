"""How the explorer reaches a state again, with as few replayed steps as it can.

Coroutines cannot be copied, so a run can only move forward, one choice at a
time. The explorer's depth-first search asks for one transition at a time
(`take(state, choice)`); this module owns the runs that compute them, and gets
each one in the cheapest way it knows:

1. the live run is at that state already (it came back around a cycle, or a
   spinning CPU's step led to the same state);
2. a *walk*: the live run follows choices already taken elsewhere, forward
   along recorded transitions, to the state (a cycle that leads back to it);
3. a *rebuild*: a fresh run replays the shortest path known from the initial
   state (kept incrementally, as transitions are recorded), which in a looping
   model is often much shorter than the search's own path to the state.

And it runs ahead: once the live run has computed the transition asked for, it
goes on taking choices nobody has asked for yet (the last untaken one of each
state first), and walks to the nearest state that still has some, for up to
`AHEAD_STEPS` transitions; the search later finds them recorded and needs no run
for them at all. Every walk and rebuild is checked: the run must reach the
fingerprint recorded for the state, or the run is not a function of its choices
(or two states with equal fingerprints have different futures) and the search
stops with the usual culprits named.

A run whose successors depend on its own history, not only on its fingerprint
(`Run.path_dependent`: `--timing widened`), is reached only by the search's own
path (mode `"root"`, whatever was asked): that path is the history its state
was found with, and any other would widen differently.

Mode `"frontier"` computes transitions breadth first instead:
it expands states in the order they were found until the transition asked
for is recorded, and a run that reaches a state still waiting for its turn is
*parked* there (up to `PARKED_RUNS`) and later takes one of that state's
choices. A state reached by k edges before its turn then needs k fewer runs;
only the rest are rebuilt along the shortest path. Depth first, by contrast,
every edge into a state already expanded ends its run: on the race (acyclic,
about 2.4 edges into each state) that is most edges, and running ahead cannot
help (2,816 rebuilds for 5,232 transitions at 3 CPUs; breadth first 926). The
frontier stops at the bound and once a state with a violation is found (the
search stops there soon, and the rest of the graph would be computed for
nothing); from then on transitions are computed on demand. It is not the
default: on a looping graph, where runs do not arrive before a state's turn
but a walk usually leads on, running ahead needs fewer replayed steps (S2's
flood at v7.1: 5.6 per transition ahead, 7.7 frontier; the deep handoff model
far more), and a search that stops at an early violation would wait for the
whole frontier above it (the flood's kdump deadlock, 206 states: 1.4 s ahead,
19 s frontier, 2026-12-01). The race, acyclic, asks for it.

Why this leaves the search's results unchanged: the search still numbers states,
records edges and judges states in its own order; only where a transition is
computed changes. A transition's result (the next state's fingerprint, and what
`judge` says of it) depends only on the state it leaves, by the premise that
pruning already rests on (equal fingerprints, same future), and each replay
checks it. `mode="root"` is the search as it was before this module (rebuild and
replay the search's own path whenever the live run is elsewhere, nothing run
ahead); `tests/engine/test_reach.py` compares the three, result for result.

Checkpoints by `fork()` were measured and not built: a fork of the 16 MiB
explorer process, with the child stepping once and fingerprinting before it
answers, took 1.7 ms on 2026-12-01 (host of benchmarks/README.md), against
0.14 ms to rebuild the race's run, step and fingerprint in process: a fork pays
for itself only past about 230 replayed steps, deeper than any replay left here.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Hashable

from haltlab.engine.core import DriverError
from haltlab.engine.run import Run

__all__ = ["Reach", "MODES", "AHEAD_STEPS", "REBUILD_STEPS", "PARKED_RUNS"]

MODES = ("frontier", "ahead", "root")

PARKED_RUNS = 4096
"""Runs the frontier mode keeps parked at states still to expand: about 36 KB
each for the race at 4 CPUs (tracemalloc, 2026-12-01), so at most ~144 MiB. The
race's frontier needs 277 at 3 CPUs; at 4 CPUs 1,024 left 10.6 replayed steps
per transition, 2,048 left 7.0 (10,227 rebuilds), 4,096 5.77 (8,479 rebuilds,
as many as with no limit; peak RSS 143 MB against 115 MB), 2026-12-01. A run
arriving when the pool is full is dropped, not swapped
for a shallower one: simulated on the 3-CPU graph, evicting the shallowest
parked run costs more rebuilds, since breadth first the shallow ones are
needed soonest. Tried and not kept: parking runs beyond a state's choices and
sending the spare ones one step on to a successor short of runs when the
state is expanded (12 fewer rebuilds of 926 at 3 CPUs)."""

AHEAD_STEPS = 256
"""Transitions the live run may take ahead of the search per transition asked
for: it bounds the work spent on states a stopped search never asks about."""

REBUILD_STEPS = 16
"""What a rebuild costs beyond its replayed steps, in steps: building the run
(about 100 us for the race) over one replayed step (about 7 us), measured
2026-12-01. A walk longer than a rebuild's cost is not taken."""

_WALK_NODES = 16
"""States a walk search looks at before giving up. In the race's graph a walk
almost never exists (14 found in 4,300 searches at 3 CPUs), so a failing search
must be cheap; the deep model's walks are all found within 8 states."""


def _dispose(run: Run | None) -> None:
    """Take apart a run this module drops, so that reference counting frees it
    at once. A run is a knot of reference cycles (its coroutines hold the
    kernel, the kernel the machine, the machine its driver, the driver the
    coroutines; each shared variable its memory), which only the cyclic
    collector frees, and each of its full collections also walks every run
    still parked: on the race at 4 CPUs (24,000 runs dropped, 2,048 parked)
    that was 6.5 s of an 18 s search, 2026-12-01. Only for a run nobody else
    holds: the ones `Reach` built and lets go (its own, never the caller's).
    The driver's stacks go first, each coroutine closed (as the collector
    would close it) while the kernel it points to is intact, from the top
    frame down; a frame that never started (an INIT's handler under the
    SIPI taken at once after it, which never returns to it) is closed too,
    where the collector would warn that it was never awaited."""
    if run is None:
        return
    driver, machine = run.driver, run.machine
    for s in getattr(driver, "strands", ()):
        for frame in reversed(s.stack):
            frame.coro.close()
        s.stack.clear()
    memory = getattr(machine, "memory", None)
    for obj in (driver, machine, run.kernel, memory):
        d = getattr(obj, "__dict__", None)
        if d is not None:
            d.clear()
    if memory is not None and hasattr(memory, "vars"):
        memory.vars.clear()


class Reach:
    """The runs behind one exploration, and the transitions they computed.

    `judge(run)` is evaluated once in every state when it is first reached, and
    its result returned with each transition into it; its second item must be
    the state's choices to expand (an empty list for none). `state(run)` is
    the key a state is known by (the fingerprint, or a digest of it)."""

    def __init__(self, build: Callable[[], Run], judge: Callable[[Run], tuple], *, mode: str = "ahead",
                 ahead_steps: int | None = None,
                 max_states: int, max_depth: int, state: Callable[[Run], Hashable] = Run.fingerprint) -> None:
        if mode not in MODES:
            raise ValueError(f"reach={mode!r}: choose one of {', '.join(MODES)}")
        self.build, self.judge, self.mode, self.state = build, judge, mode, state
        self.max_states, self.max_depth = max_states, max_depth
        # None: AHEAD_STEPS, read when running ahead (tests patch it); 0: walks
        # and shortest rebuilds only, for a search that will not ask for most
        # of what running ahead would compute (zone inclusion maps many states
        # onto others, whose transitions it never asks for).
        self.ahead_steps = ahead_steps
        self.rebuilds = self.walks = self.replayed_steps = self.ahead = 0
        self._index: dict[Hashable, int] = {}
        self._fps: list[Hashable] = []
        self._facts: list[tuple] = []
        self._todo: list[list[str]] = []          # choices not yet taken, per state
        self._succ: list[dict[str, int]] = []     # the transitions taken, per state
        self._parent: list[int] = []              # the shortest known path, as a tree
        self._via: list[str] = []
        self._dist: list[int] = []
        self._queue: deque[int] = deque()       # mode "frontier": states to expand, in the order found
        self.run = build()
        if getattr(self.run, "path_dependent", False):
            # A run whose successors depend on its history (`Run.path_dependent`)
            # is only ever replayed by the search's own path to a state.
            self.mode = "root"
        self._live = self._add(state(self.run), -1, "", 0)
        self._live_prefix: tuple = ()             # mode "root": the choices the live run took
        # Mode "frontier": runs parked at states still to expand; off once a violation is seen (the search stops soon after,
        # so the rest of the graph is not computed for nothing) or at the bound.
        self._parked: dict[int, list[Run]] = {}
        self._n_parked = 0
        self._frontier = self.mode == "frontier" and ahead_steps != 0

    def root(self) -> tuple[Hashable, tuple]:
        return self._fps[0], self._facts[0]

    def take(self, fp: Hashable, choice: str, prefix: tuple) -> tuple[Hashable, tuple]:
        """The state `choice` leads to from state `fp` (which the search reached
        by `prefix`), and what `judge` said of it."""
        src = self._index[fp]
        if self.mode == "frontier":
            return self._take_frontier(src, choice)
        if self.mode == "root":
            if self._live_prefix != prefix:
                self._rebuild(list(prefix), src)
            dst = self._step(src, choice)
            self._live_prefix = prefix + (choice,)
            return self._fps[dst], self._facts[dst]
        dst = self._succ[src].get(choice)
        if dst is None:
            self._go(src)
            dst = self._step(src, choice)
            self._run_ahead()
        return self._fps[dst], self._facts[dst]

    # --- mode "frontier": breadth first, with runs parked where they arrive -------------

    def _take_frontier(self, src: int, choice: str) -> tuple[Hashable, tuple]:
        """Expand states in the order they were found until `choice` from `src`
        is recorded. A run that reaches a state still to expand is parked there
        and later takes one of its choices, so a state reached by k edges
        before its turn needs k fewer runs; only the rest are rebuilt (along
        the shortest path). Once the frontier is off, on demand."""
        succ = self._succ[src]
        while choice not in succ and self._frontier and self._queue:
            self._expand(self._queue.popleft(), (src, choice))
        dst = succ.get(choice)
        if dst is None:
            self._run_at(src)
            dst = self._step(src, choice)
        return self._fps[dst], self._facts[dst]

    def _expand(self, u: int, asked: tuple[int, str]) -> None:
        for c in list(self._todo[u]):
            if len(self._fps) >= self.max_states:
                self._frontier = False
                break
            self._run_at(u)
            found = len(self._fps)
            dst = self._step(u, c)
            if (u, c) != asked:
                self.ahead += 1
            if dst == found and self._facts[dst][0] is not None:
                self._frontier = False              # a violation: the search will stop there
            self._park(dst)
        self._drop_parked(u)

    def _run_at(self, u: int) -> None:
        """The live run at `u`: a run parked there, else the live run (there
        already, or a walk away: in a looping model the next state in line is
        often a few recorded steps on), else a rebuild."""
        runs = self._parked.get(u)
        if runs and not (self.run is not None and self._live == u):
            _dispose(self.run)
            self.run = runs.pop()
            self._n_parked -= 1
            self._live = u
        elif self.run is not None:
            self._go(u)
        else:
            self._rebuild(self._root_path(u), u)

    def _park(self, v: int) -> None:
        """Keep the live run at `v` if `v` still has choices a run could take."""
        runs = self._parked.setdefault(v, [])
        if self._n_parked < PARKED_RUNS and len(runs) < len(self._todo[v]):
            runs.append(self.run)
            self._n_parked += 1
            self.run, self._live = None, -1

    def _drop_parked(self, u: int) -> None:
        runs = self._parked.pop(u, ())
        self._n_parked -= len(runs)
        for run in runs:
            _dispose(run)

    # --- recording -------------------------------------------------------------------

    def _add(self, fp: Hashable, parent: int, via: str, dist: int) -> int:
        sid = self._index[fp] = len(self._fps)
        if self.mode == "frontier":
            self._queue.append(sid)             # every state found, however, takes its turn
        facts = self.judge(self.run)
        self._fps.append(fp)
        self._facts.append(facts)
        self._todo.append(list(facts[1]) if dist < self.max_depth else [])
        self._succ.append({})
        self._parent.append(parent)
        self._via.append(via)
        self._dist.append(dist)
        return sid

    def _step(self, src: int, choice: str) -> int:
        """Take `choice` with the live run, which is at `src`."""
        self.run.driver.step(choice)
        fp = self.state(self.run)
        dst = self._index.get(fp)
        if dst is None:
            dst = self._add(fp, src, choice, self._dist[src] + 1)
        elif self._dist[src] + 1 < self._dist[dst]:
            self._shorten(src, choice, dst)
        self._succ[src][choice] = dst
        todo = self._todo[src]
        if choice in todo:
            todo.remove(choice)
        self._live = dst
        return dst

    def _shorten(self, src: int, choice: str, dst: int) -> None:
        """A shorter path to `dst` (through `src`): pass it on to every
        recorded state beyond it that it shortens too."""
        self._parent[dst], self._via[dst], self._dist[dst] = src, choice, self._dist[src] + 1
        queue = deque([dst])
        while queue:
            u = queue.popleft()
            for c, v in self._succ[u].items():
                if self._dist[u] + 1 < self._dist[v]:
                    self._parent[v], self._via[v], self._dist[v] = u, c, self._dist[u] + 1
                    queue.append(v)

    # --- getting the live run somewhere ------------------------------------------------

    def _go(self, target: int) -> None:
        if self._live == target:
            return
        path = self._walk_path(lambda sid: sid == target, REBUILD_STEPS + self._dist[target])
        if path is not None:
            self._walk(path, target)
        else:
            self._rebuild(self._root_path(target), target)

    def _root_path(self, target: int) -> list[str]:
        path = []
        while target > 0:
            path.append(self._via[target])
            target = self._parent[target]
        path.reverse()
        return path

    def _rebuild(self, path: list[str], target: int) -> None:
        _dispose(self.run)
        self.run = self.build()
        self._live = 0
        self.rebuilds += 1
        self._replay(path, target)

    def _walk(self, path: list[str], target: int) -> None:
        self.walks += 1
        self._replay(path, target)

    def _replay(self, path: list[str], target: int) -> None:
        driver = self.run.driver
        for c in path:
            driver.step(c)
        self.replayed_steps += len(path)
        if self.state(self.run) != self._fps[target]:
            raise DriverError(
                f"replay of {len(path)} choices reached a different state: the run is not a "
                "function of its choices (usual culprits: iterating a set or dict whose order "
                "varies, id()-based ordering, a random draw outside the run's generator, "
                "state kept in a module global between runs), or two states with equal "
                "fingerprints have different futures (state the fingerprint leaves out)")
        self._live = target

    def _walk_path(self, wanted: Callable[[int], bool], limit: int) -> list[str] | None:
        """The shortest recorded path of fewer than `limit` choices from the
        live state to a state that is `wanted`, looking at no more than
        `_WALK_NODES` states."""
        start = self._live
        back: dict[int, Any] = {start: None}
        queue = deque([(start, 0)])
        while queue and len(back) <= _WALK_NODES:
            u, k = queue.popleft()
            if k + 1 >= limit:
                continue
            for c, v in self._succ[u].items():
                if v in back:
                    continue
                back[v] = (u, c)
                if wanted(v):
                    path = []
                    while v != start:
                        v, c = back[v]
                        path.append(c)
                    path.reverse()
                    return path
                queue.append((v, k + 1))
        return None

    def _run_ahead(self) -> None:
        """Take choices nobody asked for yet while the live run is at hand."""
        todo = self._todo
        budget = AHEAD_STEPS if self.ahead_steps is None else self.ahead_steps
        while budget > 0 and len(self._fps) < self.max_states:
            u = self._live
            if todo[u]:
                self._step(u, todo[u][-1])
                self.ahead += 1
                budget -= 1
                continue
            path = self._walk_path(lambda sid: bool(todo[sid]), REBUILD_STEPS)
            if path is None:
                return
            target = u
            for c in path:
                target = self._succ[target][c]
            self._walk(path, target)
