"""Clock zones as difference-bound matrices: the explorer's notion of time.

A zone is a convex set of clock valuations written as bounds on differences,
`x_i - x_j <= d[i][j]`, with clock 0 the constant zero, so `d[i][0]` is an upper
bound on `x_i` and `-d[0][i]` a lower bound. It is the representation UPPAAL and
every timed-automata checker uses (Dill 1989; Bengtsson and Yi, "Timed Automata:
Semantics, Algorithms and Tools", 2004, whose operation names this follows):
the explorer keeps one zone per state instead of one valuation, so the infinitely
many instants at which a step can happen collapse into one symbolic state.

Bounds are integers (nanoseconds) and all non-strict: every duration the model
knows is a closed interval `[lo, hi]`, so the zones are closed and integer
bounds lose nothing. A zone here is kept *canonical* (every bound as tight as
the others imply, the all-pairs shortest-path closure) after every operation;
two canonical matrices are equal exactly when their zones are, which is what
lets a zone be part of a state fingerprint.

Hand-written rather than a library: the operations are a dozen lines each, the
matrices have at most 25 rows (8 CPUs, three clocks each: segment, interrupts in
flight, a spinner's notice), and the checkers that have DBM code (UPPAAL's UDBM, TChecker) are C/C++
libraries without Python bindings on PyPI; the tests check every operation
against brute force over integer valuations.
"""

from __future__ import annotations

__all__ = ["INF", "Zone"]

INF = 1 << 62
"""No bound. Sums of two bounds stay far below 2**63, so no overflow care is needed."""


class Zone:
    """A canonical difference-bound matrix over clocks 1..`clocks` (0 is zero).

    A new zone holds the single valuation with every clock at 0."""

    __slots__ = ("k", "d")

    def __init__(self, clocks: int) -> None:
        self.k = clocks + 1
        self.d = [0] * (self.k * self.k)

    def copy(self) -> "Zone":
        z = Zone.__new__(Zone)
        z.k, z.d = self.k, self.d[:]
        return z

    def __fingerprint__(self) -> tuple:
        return tuple(self.d)

    def upper(self, i: int) -> int:
        """The largest value clock `i` takes in the zone (INF: unbounded)."""
        return self.d[i * self.k]

    def lower(self, i: int) -> int:
        """The smallest value clock `i` takes in the zone."""
        return -self.d[i]

    def can_reach(self, i: int, lo: int) -> bool:
        """Is some valuation in the zone at `x_i >= lo`?"""
        return self.d[i * self.k] >= lo

    def constrain(self, i: int, j: int, c: int) -> bool:
        """Intersect with `x_i - x_j <= c`, keeping the matrix canonical
        (incremental closure through the one tightened entry, O(k^2)). Returns
        False, leaving the zone unchanged, when the intersection is empty."""
        k, d = self.k, self.d
        if d[j * k + i] + c < 0:
            return False
        if c >= d[i * k + j]:
            return True
        d[i * k + j] = c
        col_i = [d[a * k + i] for a in range(k)]        # x_a - x_i
        row_j = d[j * k: j * k + k]                     # x_j - x_b
        for a in range(k):
            via = col_i[a]
            if via >= INF:
                continue
            via += c
            base = a * k
            for b in range(k):
                rb = row_j[b]
                if rb < INF and via + rb < d[base + b]:
                    d[base + b] = via + rb
        return True

    def at_least(self, i: int, lo: int) -> bool:
        """Intersect with `x_i >= lo`."""
        return self.constrain(0, i, -lo)

    def at_most(self, i: int, hi: int) -> bool:
        """Intersect with `x_i <= hi`."""
        return self.constrain(i, 0, hi)

    def reset(self, i: int) -> None:
        """`x_i := 0`: clock i now equals the zero clock (stays canonical)."""
        k, d = self.k, self.d
        for j in range(k):
            d[i * k + j] = d[j]              # x_i - x_j <= x_0 - x_j
            d[j * k + i] = d[j * k]          # x_j - x_i <= x_j - x_0
        d[i * k + i] = 0

    def free(self, i: int) -> None:
        """Forget clock i (any value >= 0): for a clock nothing reads before it
        is next reset. Two states that differ only in such a clock have the same
        future, so freeing it is exact and keeps them one state."""
        k, d = self.k, self.d
        for j in range(k):
            if j != i:
                d[i * k + j] = INF
                d[j * k + i] = d[j * k]      # x_j - x_i <= x_j - 0
        d[i] = 0                             # x_0 - x_i <= 0: x_i >= 0
        d[i * k + i] = 0

    def up(self) -> None:
        """Let time pass: every clock may grow, all together (differences stay)."""
        k, d = self.k, self.d
        for i in range(1, k):
            d[i * k] = INF

    def widen(self, old) -> None:
        """`old ∇ self`, the widening of abstract interpretation (Cousot and
        Cousot 1977; for zones, Bengtsson and Yi 2004 §5.3's extrapolation is
        its bounded cousin): every bound `self` keeps within `old`'s stays
        `old`'s, every bound it loosened is dropped. The result contains both
        zones (each bound is at least both of theirs), and repeated widening
        stops: a bound can only be dropped once. Clocks stay `>= 0`.

        Why: when a run comes back to the same discrete state with a zone the
        earlier one does not include, the difference is usually a loop's
        accumulated time (a flooder's iterations inside one long console line),
        which only grows; dropping the bound it pushes makes the next visit
        included (`timing.Covering`) instead of one state per iteration."""
        k, d = self.k, self.d
        for x in range(k * k):
            d[x] = old[x] if d[x] <= old[x] else INF
        for i in range(k):
            d[i * k + i] = 0
            if d[i] > 0:
                d[i] = 0                     # x_0 - x_i <= 0: x_i >= 0
        self.close()

    def close(self) -> None:
        """Make the matrix canonical again (Floyd-Warshall over the bounds)."""
        k, d = self.k, self.d
        for m in range(k):
            row_m = d[m * k: m * k + k]
            for a in range(k):
                via = d[a * k + m]
                if via >= INF:
                    continue
                base = a * k
                for b in range(k):
                    rb = row_m[b]
                    if rb < INF and via + rb < d[base + b]:
                        d[base + b] = via + rb

    def contains(self, values: tuple[int, ...]) -> bool:
        """Is the valuation (x_1, ..., x_n) in the zone? For tests and traces."""
        x = (0, *values)
        k, d = self.k, self.d
        return all(x[i] - x[j] <= d[i * k + j] for i in range(k) for j in range(k))
