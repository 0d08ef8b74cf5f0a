"""Timed lassos: a cycle of the zone graph counts as a livelock only if time can
diverge around it (docs/design.md, "Timed lassos: non-Zeno and fair in time").

Two tiny inline programs, each checked timed and widened against the same one
untimed, and the verdict each must give:

* a Zeno cycle: CPU1 spins on `READ_ONCE` (no cost: every iteration at the same
  instant) while CPU0 prints a line and then sets `done`. The zone graph has a
  cycle of CPU1's steps in which CPU0's line is never due (time cannot pass
  while CPU1 must step at once), weakly fair because CPU0's step is never
  enabled in it. No real run stays there: time must pass, and CPU0 must step
  by its line's high end. Refused: `ok`.
* a divergent cycle: CPU1's loop costs 1 us, and CPU0 waits for a flag nobody
  sets (a wait with no timeout: no clock bounds it). Time passes every
  iteration and no CPU is bound to act: a real livelock, accepted.
"""

import pytest

from haltlab.checks.properties import Verdict, check, eventually, time_divergence
from haltlab.engine.explorer import ExplorerDriver, Timing, replay
from haltlab.engine.ops import READ_ONCE, WRITE_ONCE, Shared, ndelay, spin_until, uart_write
from haltlab.engine.run import Run
from haltlab.machine.machine import Machine
from haltlab.machine.profile import load_profile


class _Flags:
    def __fingerprint__(self) -> str:
        return "flags"


async def printer(f):
    """CPU0: one console line, then done."""
    await uart_write("xxxx")
    await WRITE_ONCE(f.done, 1)


async def waiter(f):
    """CPU0: wait (no timeout) for a flag nobody sets, then done."""
    await spin_until(lambda: f.never.value == 1, what="never")
    await WRITE_ONCE(f.done, 1)


async def zeno_spinner(f):
    """CPU1: a loop of nothing but a read, which costs nothing."""
    while True:
        await READ_ONCE(f.never)


async def paced_loop(f):
    """CPU1: a loop that spends 1 us each time round."""
    while True:
        await ndelay(1000)
        await READ_ONCE(f.never)


def build(timing: Timing, cpu0, cpu1):
    profile = load_profile("kvm-x86")

    def make() -> Run:
        machine = Machine(profile, 2, record_timeline=False)
        f = _Flags()
        f.done = machine.memory.var("done", 0)
        f.never = machine.memory.var("never", 0)
        driver = ExplorerDriver(machine, timing=timing, tolerance_pct=50)
        driver.start_task(0, cpu0(f))
        driver.start_task(1, cpu1(f))
        return Run(machine, f, driver, ghost=None)
    return make


def done(run: Run) -> bool:
    return run.kernel.done.value == 1


PROPERTIES = [eventually(done, name="done", message="CPU0 never finishes", reads={Shared("done")},
                         stable=True)]
TIMED = [Timing.TIMED, Timing.WIDENED]


def test_untimed_the_zeno_spinner_cannot_starve_cpu0_under_weak_fairness():
    # Untimed, CPU0's step is enabled throughout CPU1's loop: weak fairness alone refuses it.
    assert check(build(Timing.UNTIMED, printer, zeno_spinner), PROPERTIES, goal=done).verdict is Verdict.OK


@pytest.mark.parametrize("timing", TIMED)
def test_a_zeno_cycle_is_refused(timing):
    make = build(timing, printer, zeno_spinner)
    out = check(make, PROPERTIES, goal=done, reduce="none")
    assert out.verdict is Verdict.OK, out.lasso
    # The refused cycle is there: once CPU0 has started its line (c0), CPU1's
    # step comes back to the same state, and CPU0 cannot step there (its line
    # is not due yet, and time cannot pass).
    run = replay(make, ["c0", "c1"])
    fp = run.fingerprint()
    assert "c0" not in run.driver.choices()
    run.driver.step("c1")
    assert run.fingerprint() == fp
    clocks = run.driver.clocks
    assert not clocks.can_delay() and "c0" in clocks.due() and "c1" in clocks.due()


@pytest.mark.parametrize("timing", TIMED)
def test_the_judge_refuses_it_on_the_graph_and_the_old_judge_did_not(timing):
    # The same graph judged without the time conditions has a fair lasso: the
    # check is what decides, not a change in the graph.
    from haltlab.checks.liveness import fair_nonprogress_cycle
    make = build(timing, printer, zeno_spinner)
    out = check(make, PROPERTIES, goal=done, reduce="none")
    ex = out.exploration
    reached = ex.labels.with_fact("done")
    expanded = set(range(ex.states)) - ex.unexpanded
    assert fair_nonprogress_cycle(ex.edges, reached, expanded).lasso is not None
    assert fair_nonprogress_cycle(ex.edges, reached, expanded, time=time_divergence(ex)).lasso is None


@pytest.mark.parametrize("timing", TIMED)
@pytest.mark.parametrize("reduce", ["none", "all"])
def test_a_divergent_cycle_is_accepted_and_replays(timing, reduce):
    make = build(timing, waiter, paced_loop)
    out = check(make, PROPERTIES, goal=done, reduce=reduce)
    assert out.verdict is Verdict.LIVELOCK
    lasso = out.lasso
    run = replay(make, list(lasso.prefix))
    entry = run.fingerprint()
    delays = []
    for c in lasso.cycle:
        delays.append(run.driver.clocks.can_delay())
        run.driver.step(c)
    assert run.fingerprint() == entry and any(delays) and "c1" in lasso.cycle


def test_untimed_the_divergent_cycle_is_a_livelock_too():
    assert check(build(Timing.UNTIMED, waiter, paced_loop), PROPERTIES, goal=done).verdict is Verdict.LIVELOCK
