"""The liveness judge on recorded graphs: hand-made cases, then every small
random graph against brute force (every set of states, not only the maximal
components the judge looks at), and every lasso it prints walked on the graph."""

import itertools
import random

import pytest

from haltlab.checks.liveness import fair_nonprogress_cycle, strongly_connected


def judge(edges, progress=(), expanded=None):
    states = {s for s, _c, _d in edges} | {d for _s, _c, d in edges} | {0}
    return fair_nonprogress_cycle(edges, set(progress), set(states) if expanded is None else set(expanded))


def test_a_spin_that_another_cpu_can_always_end_is_not_fair():
    # CPU0 spins (c0 loops) while CPU1's store (c1) would end it: c1 is enabled
    # throughout the loop and never taken, so the loop is no fair run.
    edges = [(0, "c0", 0), (0, "c1", 1)]
    assert judge(edges, progress={1}).lasso is None


def test_a_step_taken_only_outside_its_window_is_a_fair_livelock():
    # CPU0 could reach the goal (2) from state 1 but only ever steps in state 0;
    # c0 is taken inside the loop, so the loop is weakly fair: the livelock that
    # pure interleaving shows for printk's hand-over (issue 7), which only time
    # (how long state 1 lasts) rules out.
    edges = [(0, "c0", 1), (1, "c1", 0), (1, "c0", 2)]
    lasso = judge(edges, progress={2}).lasso
    assert lasso is not None and lasso.states == {0, 1} and lasso.prefix == ()
    _walks(edges, lasso)


def test_a_fair_cycle_is_found_and_walks_on_the_graph():
    edges = [(0, "c0", 1), (1, "c1", 0), (0, "c1", 0), (1, "c0", 1)]
    res = judge(edges, progress={9})
    assert res.lasso is not None and res.lasso.states == {0, 1}
    assert set(res.lasso.cycle) == {"c0", "c1"}
    _walks(edges, res.lasso)


def test_a_cycle_through_a_progress_state_is_progress():
    edges = [(0, "c0", 1), (1, "c0", 0)]
    assert judge(edges, progress={1}).lasso is None
    assert judge(edges, progress=set()).lasso is not None


def test_an_unexpanded_state_makes_the_verdict_truncated():
    edges = [(0, "c0", 1), (1, "c0", 0)]
    res = judge(edges, expanded={0})
    assert res.lasso is None and res.truncated


def test_tarjan_needs_no_recursion_on_a_long_path():
    n = 50_000
    succ = {i: [i + 1] for i in range(n)}
    succ[n] = [0]
    (component,) = strongly_connected(range(n + 1), succ)
    assert len(component) == n + 1


def _walks(edges, lasso):
    step = {(s, c): d for s, c, d in edges}
    at = 0
    for c in lasso.prefix:
        at = step[(at, c)]
    entry = at
    assert entry in lasso.states
    for c in lasso.cycle:
        at = step[(at, c)]
        assert at in lasso.states
    assert at == entry                  # the cycle returns to where it began


def _brute_force(edges, progress, n, due=None, delays=None):
    """A fair non-progress run exists iff some set S of non-progress states,
    reachable from 0 through non-progress states, is strongly connected by its
    own edges and takes inside every choice enabled in all of S. With `due`
    and `delays` (timed), also: every obligation due in all of S is met by a
    choice inside S, and time passes in some state of S."""
    step = {(s, c): d for s, c, d in edges}
    enabled = {s: {c for (s2, c) in step if s2 == s} for s in range(n)}
    reach, todo = {0}, [0]
    while todo:
        v = todo.pop()
        for (s, c), d in step.items():
            if s == v and d not in reach and d not in progress:
                reach.add(d)
                todo.append(d)
    if 0 in progress:
        return False
    for k in range(1, len(reach) + 1):
        for subset in itertools.combinations(sorted(reach), k):
            S = set(subset)
            inside = [(s, c, d) for (s, c), d in step.items() if s in S and d in S]
            if not inside or not _connected(S, inside):
                continue
            taken = {c for _s, c, _d in inside}
            if not set.intersection(*(enabled[s] for s in S)) <= taken:
                continue
            if due is None:
                return True
            met = {o for c in taken for o in _discharges(c)}
            if set.intersection(*(due[s] for s in S)) <= met and S & delays:
                return True
    return False


def _connected(S, inside):
    for a in S:
        seen, todo = {a}, [a]
        while todo:
            v = todo.pop()
            for s, _c, d in inside:
                if s == v and d not in seen:
                    seen.add(d)
                    todo.append(d)
        if seen != S:
            return False
    return True


@pytest.mark.parametrize("seed", range(300))
def test_the_judge_agrees_with_brute_force_on_small_graphs(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 6)
    choices = ["c0", "c1", "i1.NMI", "t0"][: rng.randint(1, 4)]
    edges = [(s, c, rng.randrange(n)) for s in range(n) for c in choices if rng.random() < 0.6]
    progress = {s for s in range(1, n) if rng.random() < 0.25}
    res = fair_nonprogress_cycle(edges, progress, set(range(n)))
    assert (res.lasso is not None) == _brute_force(edges, progress, n)
    if res.lasso is not None:
        _walks(edges, res.lasso)
        # A fair component can hold an unfair cycle (one that passes only states
        # where some choice is enabled, and never takes it); the printed one is not.
        assert _cycle_is_fair(edges, res.lasso)
        assert not (res.lasso.states & progress)


def _cycle_is_fair(edges, lasso, time=None):
    """The printed cycle itself, repeated forever, is a fair run: every choice
    enabled in all the states it passes is taken in it (and, timed, every
    obligation due in all of them is met, and time passes in one of them)."""
    step = {(s, c): d for s, c, d in edges}
    enabled: dict[int, set] = {}
    for s, c, _d in edges:
        enabled.setdefault(s, set()).add(c)
    at = 0
    for c in lasso.prefix:
        at = step[(at, c)]
    visited = []
    for c in lasso.cycle:
        visited.append(at)
        at = step[(at, c)]
    taken = set(lasso.cycle)
    if not set.intersection(*(enabled.get(v, set()) for v in visited)) <= taken:
        return False
    if time is None:
        return True
    met = {o for c in taken for o in time.discharges(c)}
    due = set.intersection(*(set(time.due(v)) for v in visited))
    return due <= met and any(time.delays(v) for v in visited)


def _discharges(choice):
    cpu = choice[1:].partition(".")[0]
    return (f"c{cpu}", f"i{cpu}") if choice[0] == "i" else (f"c{cpu}",)


@pytest.mark.parametrize("seed", range(300))
def test_the_timed_judge_agrees_with_brute_force_on_small_graphs(seed):
    # Random graphs with random obligations and urgent states: the judge, which
    # looks at maximal components only, against every strongly connected set.
    from haltlab.checks.liveness import TimeDivergence
    rng = random.Random(1000 + seed)
    n = rng.randint(1, 6)
    choices = ["c0", "c1", "i1.NMI", "t0"][: rng.randint(1, 4)]
    edges = [(s, c, rng.randrange(n)) for s in range(n) for c in choices if rng.random() < 0.6]
    progress = {s for s in range(1, n) if rng.random() < 0.25}
    due = {s: {o for o in ("c0", "c1", "i1") if rng.random() < 0.4} for s in range(n)}
    delays = {s for s in range(n) if rng.random() < 0.7}
    time = TimeDivergence(due=lambda s: due.get(s, ()), delays=delays.__contains__, discharges=_discharges)
    res = fair_nonprogress_cycle(edges, progress, set(range(n)), time=time)
    assert (res.lasso is not None) == _brute_force(edges, progress, n, due, delays)
    if res.lasso is not None:
        _walks(edges, res.lasso)
        assert _cycle_is_fair(edges, res.lasso, time)


def test_a_cycle_that_keeps_a_cpu_waiting_past_its_bound_is_refused():
    # CPU0 is in a segment in both states (due "c0") and never steps: CPU1's
    # loop is weakly fair (c0 is not enabled in state 0: the line is not due
    # yet), but no time-divergent run stays here.
    from haltlab.checks.liveness import TimeDivergence
    edges = [(0, "c1", 1), (1, "c1", 0), (1, "c0", 2)]
    due = {0: {"c0", "c1"}, 1: {"c0", "c1"}}
    time = TimeDivergence(due=lambda s: due.get(s, ()), delays=lambda s: True, discharges=_discharges)
    assert fair_nonprogress_cycle(edges, {2}, {0, 1, 2}).lasso is not None
    assert fair_nonprogress_cycle(edges, {2}, {0, 1, 2}, time=time).lasso is None
    # Where CPU0 is not bound (an unbounded wait), the same loop is a livelock.
    due = {0: {"c1"}, 1: {"c1"}}
    assert fair_nonprogress_cycle(edges, {2}, {0, 1, 2}, time=time).lasso is not None


def test_a_zeno_cycle_is_refused_and_a_divergent_one_accepted():
    from haltlab.checks.liveness import TimeDivergence
    edges = [(0, "c1", 1), (1, "c1", 0)]
    due = {0: {"c1"}, 1: {"c1"}}
    for delays, found in ((set(), False), ({1}, True)):
        time = TimeDivergence(due=lambda s: due.get(s, ()), delays=delays.__contains__, discharges=_discharges)
        lasso = fair_nonprogress_cycle(edges, set(), {0, 1}, time=time).lasso
        assert (lasso is not None) == found
        if found:
            assert _cycle_is_fair(edges, lasso, time)


def test_a_refused_lasso_sends_the_judge_on_to_the_next_component():
    # Two fair loops, {1} and {2}, reached from 0. Refusing the first one found
    # makes the judge go on and report the other; refusing both leaves none,
    # with the first refused kept as the candidate and the reason.
    edges = [(0, "c0", 1), (0, "c1", 2), (1, "c0", 1), (2, "c1", 2)]
    first = fair_nonprogress_cycle(edges, set(), {0, 1, 2}).lasso
    other = fair_nonprogress_cycle(edges, set(), {0, 1, 2},
                                   accept=lambda l: "no" if l.states == first.states else l)
    assert other.lasso is not None and other.lasso.states != first.states
    assert other.candidate is not None and other.candidate.states == first.states and other.why == "no"
    none = fair_nonprogress_cycle(edges, set(), {0, 1, 2}, accept=lambda l: "never")
    assert none.lasso is None and none.candidate == first and none.why == "never"
