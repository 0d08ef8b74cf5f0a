"""Seeded jitter on a machine's costs, for stress campaigns.

A real machine never takes the same time twice: S2's hang rate comes from where
in its cycle the flooding CPU happens to be when the panic starts, and a
campaign of identical runs would find one answer 1,409 times. `Jitter` draws
each use of a cost uniformly from [c - f*c, c + f*c], `f` the profile's
`timing_tolerance`: the same labelled estimate of spread that the explorer's
timed mode proves its verdicts over (so a campaign never samples a duration
the explorer did not cover). Uniform, because nothing measured says more about
the shape; bounded, so the livelock rule of `scenarios.printk_flood` can rest
on the extremes.

Its generator is `random.Random(seed)`, separate from the simulator's
tie-break stream, so the same seed gives the same durations whatever else the
run schedules.
"""

from __future__ import annotations

import random

__all__ = ["Jitter"]


class Jitter:
    def __init__(self, seed: int, fraction: float, keys: frozenset[str]) -> None:
        if not 0 <= fraction < 1:
            raise ValueError(f"jitter fraction {fraction}: must be in [0, 1)")
        self.fraction = fraction
        self.keys = frozenset(keys)
        self._rng = random.Random(seed)
        self._random = self._rng.random     # bound once: a campaign run draws thousands of times

    def draw(self, base_ns: int) -> int:
        fraction = self.fraction
        if base_ns == 0 or fraction == 0:
            return base_ns
        return round(base_ns * (1 + fraction * (2 * self._random() - 1)))

    def bounds(self, base_ns: int) -> tuple[int, int]:
        """The least and most `draw(base_ns)` can return."""
        return (round(base_ns * (1 - self.fraction)), round(base_ns * (1 + self.fraction)))
