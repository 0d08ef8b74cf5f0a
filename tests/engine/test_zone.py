"""Zones against brute force: every operation of `haltlab.engine.zone` on random
sequences, compared point by point with the same operation on explicit sets of
integer clock valuations (inside a box large enough that nothing at its edge
matters)."""

import itertools
import random

import pytest

from haltlab.engine.zone import INF, Zone

BOX = 7          # valuations 0..BOX per clock; operations use constants below BOX // 2


def _points(z: Zone, clocks: int) -> set[tuple[int, ...]]:
    return {v for v in itertools.product(range(BOX + 1), repeat=clocks) if z.contains(v)}


def _up(points: set, clocks: int) -> set:
    out = set()
    for v in points:
        for t in range(BOX + 1):
            w = tuple(x + t for x in v)
            if max(w) <= BOX:
                out.add(w)
    return out


def _apply(op, points: set, clocks: int) -> set:
    kind, *args = op
    if kind == "up":
        return _up(points, clocks)
    if kind == "reset":
        (i,) = args
        return {v[:i - 1] + (0,) + v[i:] for v in points}
    if kind == "free":
        (i,) = args
        return {v[:i - 1] + (t,) + v[i:] for v in points for t in range(BOX + 1)}
    if kind == "constrain":
        i, j, c = args
        x = lambda v, n: 0 if n == 0 else v[n - 1]  # noqa: E731
        kept = {v for v in points if x(v, i) - x(v, j) <= c}
        return kept if kept else points
    raise AssertionError(kind)


def _random_op(rng: random.Random, clocks: int):
    kind = rng.choice(["up", "reset", "free", "constrain", "constrain"])
    if kind == "up":
        return ("up",)
    if kind in ("reset", "free"):
        return (kind, rng.randint(1, clocks))
    i, j = rng.sample(range(clocks + 1), 2)
    return ("constrain", i, j, rng.randint(-2, 3))


@pytest.mark.parametrize("seed", range(60))
def test_operations_match_brute_force(seed):
    rng = random.Random(seed)
    clocks = rng.choice([1, 2, 3])
    z = Zone(clocks)
    points = {(0,) * clocks}
    for _ in range(12):
        op = _random_op(rng, clocks)
        before = z.copy()
        if op[0] == "constrain":
            nonempty = z.constrain(*op[1:])
            i, j, c = op[1:]
            x = lambda v, n: 0 if n == 0 else v[n - 1]  # noqa: E731
            expected_nonempty = any(x(v, i) - x(v, j) <= c for v in points)
            assert nonempty == expected_nonempty, (seed, op)
            if not nonempty:
                assert z.d == before.d, "an empty intersection must leave the zone unchanged"
        else:
            getattr(z, op[0])(*op[1:])
        points = _apply(op, points, clocks)
        # Compare inside the part of the box that unbounded growth cannot leave
        # half-filled: points whose clocks all stay below BOX - 3 after the op.
        inner = lambda s: {v for v in s if max(v) <= BOX - 3}  # noqa: E731
        assert inner(_points(z, clocks)) == inner(points), (seed, op)


def test_canonical_matrices_are_equal_for_equal_zones():
    # Two ways to the same zone: {x1 = x2, both free to grow}.
    a = Zone(2)
    a.up()
    b = Zone(2)
    b.up()
    b.at_most(1, 5)
    b.reset(1)
    b.reset(2)
    b.up()
    assert a.__fingerprint__() == b.__fingerprint__()


def test_bounds_and_reachability():
    z = Zone(2)
    z.up()
    z.at_most(1, 10)
    assert z.upper(1) == 10 and z.upper(2) == 10     # x2 = x1 (both started together)
    assert z.can_reach(2, 10) and not z.can_reach(2, 11)
    z.reset(2)
    z.up()
    z.at_most(1, 10)
    assert z.lower(2) == 0 and z.upper(2) == 10
    z.at_least(2, 4)
    assert z.lower(1) == 4
    z.free(1)
    assert z.upper(1) == INF and z.lower(1) == 0


def _random_zone(rng: random.Random, clocks: int) -> Zone:
    z = Zone(clocks)
    for _ in range(rng.randint(0, 8)):
        op = _random_op(rng, clocks)
        if op[0] == "constrain":
            z.constrain(*op[1:])
        else:
            getattr(z, op[0])(*op[1:])
    return z


@pytest.mark.parametrize("seed", range(40))
def test_widening_contains_both_zones_and_stays_canonical(seed):
    rng = random.Random(1000 + seed)
    clocks = rng.choice([1, 2, 3])
    old, new = _random_zone(rng, clocks), _random_zone(rng, clocks)
    widened = new.copy()
    widened.widen(tuple(old.d))
    pts = _points(widened, clocks)
    assert _points(old, clocks) <= pts and _points(new, clocks) <= pts, seed
    # Canonical: closing it again changes nothing.
    again = widened.copy()
    again.close()
    assert again.d == widened.d
    # A bound `new` kept inside `old` is old's: widening an included zone gives the old one.
    inside = old.copy()
    inside.widen(tuple(old.d))
    assert inside.d == old.d


def test_widening_drops_the_bound_a_loop_pushes():
    # x1 - x2 in [k, 2k] after k iterations of a loop that resets x2 each time:
    # widening the first by the second keeps the lower bound and drops the upper one.
    one, two = Zone(2), Zone(2)
    for z, k in ((one, 1), (two, 2)):
        z.up()
        z.constrain(0, 1, -k)       # x1 >= k
        z.at_most(1, 2 * k)
        z.reset(2)
    two.widen(tuple(one.d))
    assert two.lower(1) == 1 and two.upper(1) >= INF
