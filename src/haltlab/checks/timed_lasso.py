"""Is a lasso of the timed zone graph a real run? Replay it with exact zones.

The judge (`haltlab.checks.liveness`) finds a fair non-progress component that
meets the time conditions (every CPU bound to act does, time can pass); those
are necessary for a real time-divergent run, not sufficient, because zone
inclusion (`timing.Covering`) closes cycles at a state whose zone merely
includes the one a run arrives with. A real run round such a cycle arrives each
time with a zone no larger than the last (the step is monotone in the zone), so
either the zone stops shrinking, and the cycle repeats forever from there, or
it empties, and no run goes round it for ever (a flooder's iterations counted
up to the end of a console line). This module goes round until the state
recurs exactly, and then asks that each time round lasts at least some time:

* **Recurrence.** After `k` rounds the run is back at the fingerprint it had a
  round before, zone included: from there the cycle repeats forever (every
  valuation of the zone is reached from one in it, and the zones are closed
  and bounded where they bound anything, so an infinite run exists). The
  lasso reported is the prefix, the cycle `k` times, then the cycle.
* **Time diverges** (strong non-Zenoness, Tripakis 1999): some step of the
  cycle is a CPU's step or timeout whose guard needs its clock at `lo > 0`;
  that clock is reset at that same step each round, so rounds last at least
  `lo` each and time goes to infinity along the run. A cycle of steps that all
  may happen at once is not shown to let time pass, and is refused.

Both hold, the lasso is a time-divergent run of the exact timed semantics
with its weak fairness (the exact zones are inside the graph's, so the choices
enabled along it are among those the judge counted): a livelock proved.
"""

from __future__ import annotations

from collections.abc import Callable

from haltlab.checks.liveness import Lasso
from haltlab.engine.core import DriverError
from haltlab.engine.explorer import replay
from haltlab.engine.run import Run

__all__ = ["MAX_ROUNDS", "settle", "timed_lasso_check"]

MAX_ROUNDS = 2_000
"""Rounds tried before a shrinking zone is given up on. A console line of 5 ms
holds about 1,600 iterations of a 3 us flood loop (kvm-x86), the longest
count-down the flood has; a cycle still shrinking after that is refused."""


def settle(run: Run, cycle: list[str], max_rounds: int = MAX_ROUNDS) -> int:
    """Go round `cycle` from `run`'s state until the state recurs exactly; the
    number of rounds before the recurring one. Raises `DriverError` if a choice
    is not enabled where the cycle takes it (the zone shrank below it), if the
    state has not recurred after `max_rounds`, or if no step of the cycle needs
    time to pass (`least_round_ns` is 0)."""
    if not cycle:
        raise DriverError("an empty cycle: a livelock's cycle takes at least one step")
    before = run.fingerprint()
    for k in range(max_rounds):
        least = _round(run, cycle, k)
        now = run.fingerprint()
        if now == before:
            if least == 0:
                raise DriverError("every step of the cycle may happen at one instant: not shown to let time "
                                  "pass (a Zeno cycle)")
            return k
        before = now
    raise DriverError(f"the cycle's state has not recurred after {max_rounds} rounds (its zone keeps shrinking)")


def _round(run: Run, cycle: list[str], k: int) -> int:
    """One round; the largest guard lower bound among its CPU steps and
    timeouts (each round lasts at least that)."""
    clocks = run.driver.clocks
    least = 0
    for i, c in enumerate(cycle):
        choices = run.driver.choices()
        if c not in choices:
            raise DriverError(f"round {k + 1}, cycle step {i}: {c!r} is not among {choices}")
        cpu = int(c[1:].partition(".")[0])
        bound = (clocks.deadline[cpu] if c[0] == "t" else clocks.segment[cpu] if c[0] == "c" else None)
        if bound is not None:
            least = max(least, bound[0])
        run.driver.step(c)
    return least


def timed_lasso_check(build: Callable[[], Run], max_rounds: int = MAX_ROUNDS) -> Callable[[Lasso], "Lasso | str"]:
    """The judge's `accept` for an exact timed graph: a lasso that `settle`s
    (its prefix then extended by the rounds it took), or why it does not."""
    def accept(lasso: Lasso) -> "Lasso | str":
        try:
            run = replay(build, list(lasso.prefix))
            k = settle(run, list(lasso.cycle), max_rounds)
        except DriverError as e:
            return f"found in the zone graph, where inclusion merges states, and not a run when replayed: {e}"
        return Lasso(lasso.prefix + lasso.cycle * k, lasso.cycle, lasso.states)
    return accept
