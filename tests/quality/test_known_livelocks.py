"""A known livelock that only time rules out, and a real one time cannot.

The console hand-over in miniature (the shape of S2's fix, `console_owner` /
`console_waiter` in kernel/printk/printk.c): CPU0 owns the console and prints
one record per line; between `console_owner = CPU0` and `console_owner = none`
the line goes out at the console's speed. CPU1 floods: it stores a record (the
ring holds two; a full ring overwrites, so the count saturates) and looks at
`console_owner`; if it sees the owner inside the window it becomes the waiter,
and CPU0 hands the console over after its line and is free. CPU0 is also free
when the ring is empty.

* Untimed (pure interleaving under weak fairness), CPU1's look can always fall
  outside the window and its stores keep the ring from ever emptying: a fair
  livelock, which the checker must find as a lasso.
* Timed, a line (`console_ns_per_char` x 5) lasts far longer than a flood
  iteration (`printk_store_ns` + an atomic), so CPU1 must look inside some window:
  no livelock, and the verdict must say `ok`.
* Without the hand-over (CPU1 never becomes the waiter), time does not help:
  the flood outpaces the console and the livelock is real, timed or not.
"""

import pytest

from haltlab.checks.properties import Verdict, check, eventually
from haltlab.engine.explorer import ExplorerDriver, Timing, replay
from haltlab.engine.ops import READ_ONCE, WRITE_ONCE, Shared, atomic_add_return, ndelay, uart_write
from haltlab.engine.por import reads
from haltlab.engine.run import Run
from haltlab.machine.machine import Machine
from haltlab.machine.profile import load_profile

RING_RECORDS = 2
LINE = "x" * 4          # 5 characters with the newline: 25 us at kvm-x86's 5 us per character


class _Console:
    def __fingerprint__(self) -> str:
        return "console"


async def console_owner_cpu(con):
    """CPU0: print until the ring is empty or a waiter takes the console."""
    while await READ_ONCE(con.pending):
        await WRITE_ONCE(con.console_owner, 1)          # console_lock_spinning_enable()
        await uart_write(con.line)
        await WRITE_ONCE(con.console_owner, 0)          # console_lock_spinning_disable_and_check()
        if await READ_ONCE(con.console_waiter):
            break                                       # handed over
        await atomic_add_return(con.pending, -1)
    await WRITE_ONCE(con.free, 1)


async def flooder(con, hand_over: bool):
    """CPU1: store a record, look for an owner to wait for; forever."""
    store_ns = con.store_ns
    while True:
        await ndelay(store_ns)                          # vprintk_store()
        if await READ_ONCE(con.pending) < RING_RECORDS:
            await atomic_add_return(con.pending, 1)
        if hand_over and await READ_ONCE(con.console_owner):
            await WRITE_ONCE(con.console_waiter, 1)     # console_trylock_spinning()
            while True:
                await ndelay(store_ns)                  # the waiter now prints; CPU0 is free


def build(timing: Timing, hand_over: bool = True, tolerance_pct: int | None = None, line: str = LINE):
    profile = load_profile("kvm-x86")
    if tolerance_pct is None:
        tolerance_pct = round(profile.get("timing_tolerance") * 100)

    def make() -> Run:
        machine = Machine(profile, 2, record_timeline=False)
        con = _Console()
        mem = machine.memory
        con.pending = mem.var("pending", 1)
        con.console_owner = mem.var("console_owner", 0)
        con.console_waiter = mem.var("console_waiter", 0)
        con.free = mem.var("free", 0)
        con.store_ns = profile.cost_ns("printk_store_ns")
        con.line = line
        driver = ExplorerDriver(machine, timing=timing, tolerance_pct=tolerance_pct)
        driver.start_task(0, console_owner_cpu(con))
        driver.start_task(1, flooder(con, hand_over))
        return Run(machine, con, driver, ghost=None)
    return make


@reads(Shared("free"))
def cpu0_free(run: Run) -> bool:
    return run.kernel.free.value == 1


PROPERTIES = [eventually(cpu0_free, name="the owner is freed",
                         message="a run on which CPU0 never gets away from the console",
                         reads={Shared("free")}, stable=True)]    # `free` is only ever set

# The two CPUs run different programs, so symmetry has nothing to fold (it runs
# all the same and must keep the verdict); the partial-order reduction applies
# untimed (and says it is off when timed).
REDUCTIONS = ["none", "symmetry", "por", "all"]


@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_untimed_the_flooder_can_always_look_outside_the_window(reduce):
    out = check(build(Timing.UNTIMED), PROPERTIES, goal=cpu0_free, reduce=reduce)
    assert out.verdict is Verdict.LIVELOCK
    if reduce in ("por", "all"):    # found on the reduced graph itself
        assert "por" in out.exploration.reductions
    lasso = out.lasso
    assert lasso.cycle and {"c0", "c1"} <= set(lasso.cycle)   # fair: both CPUs step in the cycle
    # The lasso is a real run: replaying prefix + cycle twice returns to the same state.
    make = build(Timing.UNTIMED)
    once = replay(make, list(lasso.prefix) + list(lasso.cycle)).fingerprint()
    twice = replay(make, list(lasso.prefix) + list(lasso.cycle) * 2).fingerprint()
    assert once == twice
    assert not cpu0_free(replay(make, list(lasso.prefix) + list(lasso.cycle)))


TIMED = [Timing.TIMED, Timing.WIDENED]


@pytest.mark.parametrize("timing", TIMED)
@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_timed_a_line_outlasts_the_flood_so_the_hand_over_happens(reduce, timing):
    out = check(build(timing), PROPERTIES, goal=cpu0_free, reduce=reduce)
    assert out.verdict is Verdict.OK, out.message
    if reduce in ("por", "all"):
        assert any(r.startswith(f"por off: timing {timing.value}") for r in out.exploration.reductions)


@pytest.mark.parametrize("timing", TIMED)
@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_timed_without_the_hand_over_the_flood_outpaces_the_console(reduce, timing):
    out = check(build(timing, hand_over=False), PROPERTIES, goal=cpu0_free, reduce=reduce)
    assert out.verdict is Verdict.LIVELOCK


# A line of 400 characters (2 ms at kvm-x86's 5 us per character) against a flood
# iteration of about 1 us: about 2,000 iterations fit in one line. Timed, each
# is its own zone; widened, the loop's accumulated time is one bound dropped once.
LONG_LINE = "x" * 399


def test_widening_decides_a_line_that_outlasts_thousands_of_flood_iterations():
    out = check(build(Timing.WIDENED, line=LONG_LINE), PROPERTIES, goal=cpu0_free, reduce="all")
    assert out.verdict is Verdict.OK, out.message
    assert out.exploration.states < 200
    # Exact zones cannot get there in a bound that widening needs a fraction of.
    exact = check(build(Timing.TIMED, line=LONG_LINE), PROPERTIES, goal=cpu0_free, reduce="all",
                  max_states=20 * out.exploration.states)
    assert exact.verdict is Verdict.BOUNDED_OK


def test_widened_the_flood_without_a_hand_over_still_outpaces_a_long_line():
    out = check(build(Timing.WIDENED, hand_over=False, line=LONG_LINE), PROPERTIES, goal=cpu0_free)
    assert out.verdict is Verdict.LIVELOCK


@pytest.mark.parametrize("tolerance_pct", [0, 50, 90])
def test_the_timed_verdict_holds_across_tolerances_that_keep_a_line_longer(tolerance_pct):
    # lines of 5 x 5 us = 25 us against a flood iteration of about 1 us: any
    # tolerance below 100 % keeps the shortest line longer than the longest iteration.
    profile = load_profile("kvm-x86")
    assert profile.cost_ns("console_ns_per_char") * len(LINE + "\n") > 2 * profile.cost_ns("printk_store_ns")
    out = check(build(Timing.TIMED, tolerance_pct=tolerance_pct), PROPERTIES, goal=cpu0_free)
    assert out.verdict is Verdict.OK
