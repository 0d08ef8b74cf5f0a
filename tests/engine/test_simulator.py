"""The timed driver with tiny inline processes: how virtual time passes.

Every expected time below is computed from the rules the engine promises (a
delay ends at its deadline, a spinner wakes at the store that satisfies it) and
the profile's cost numbers, never read back from the engine itself.
"""

import asyncio
import types

import pytest

from haltlab.engine.context import ktime_get_ns
from haltlab.engine.core import DriverError
from haltlab.engine.ops import (
    WRITE_ONCE, mdelay, ndelay, safe_halt, send_IPI_mask, spin_until,
)
from haltlab.engine.simulator import Simulator
from haltlab.machine.machine import Machine

MS = 1_000_000


def _machine(kvm, ncpus=2):
    return Machine(kvm, ncpus, record_timeline=False)


def _run(machine, tasks, until_ns, *, seed=0):
    sim = Simulator(machine, seed=seed)
    for cpu, coro in tasks.items():
        sim.start_task(cpu, coro)
    sim.run(until_ns)
    return sim


# --- a delay interrupted by a handler -------------------------------------------------

def _delay_with_ipi(kvm, handler_ns):
    """CPU0 runs mdelay(10) from t=0; CPU1 sends it an IPI at t=1 ms; the handler
    is busy for `handler_ns`. Returns (when mdelay returned, handler start times,
    the time the IPI reaches CPU0)."""
    m = _machine(kvm)
    ended, handled = [], []

    async def handler(cpu):
        handled.append(ktime_get_ns())
        await ndelay(handler_ns)

    m.request_irq("X", 1, handler)

    async def victim():
        await mdelay(10)
        ended.append(ktime_get_ns())

    async def sender():
        await ndelay(1 * MS)
        await send_IPI_mask(0b01, "X")

    _run(m, {0: victim(), 1: sender()}, 100 * MS)
    arrival = 1 * MS + m.cost_ns("ipi_latency_ns")
    return ended, handled, arrival, m.cost_ns("irq_entry_exit_ns")


def test_mdelay_interrupted_by_a_short_handler_still_ends_at_its_deadline(kvm):
    ended, handled, arrival, entry = _delay_with_ipi(kvm, handler_ns=200_000)
    assert handled == [arrival + entry]          # the handler ran, in the middle
    assert ended == [10 * MS]                    # delay_tsc(): elapsed time, not loop count


def test_mdelay_ends_when_a_handler_that_outlasts_it_returns(kvm):
    ended, handled, arrival, entry = _delay_with_ipi(kvm, handler_ns=20 * MS)
    assert handled == [arrival + entry]
    # Not 10 ms (the handler cannot be cut short) and not 10 ms after it (the
    # delay does not restart): the deadline has passed, so it returns at iret.
    assert ended == [arrival + entry + 20 * MS]


# --- spinning ------------------------------------------------------------------------

def test_spin_until_wakes_at_the_nanosecond_of_the_satisfying_store(kvm):
    m = _machine(kvm)
    flag = m.memory.var("flag", 0)
    woke = []

    async def spinner():
        ok = await spin_until(lambda: flag.value == 2, what="flag == 2")
        woke.append((ktime_get_ns(), ok))

    async def writer():
        await ndelay(5_000)
        await WRITE_ONCE(flag, 1)        # a store that does not satisfy the spinner
        await ndelay(2_000)
        await WRITE_ONCE(flag, 2)

    _run(m, {0: spinner(), 1: writer()}, 1 * MS)
    atomic = m.cost_ns("atomic_op_ns")
    assert woke == [(5_000 + atomic + 2_000, True)]


def test_a_store_re_evaluates_only_the_spinners_whose_condition_read_it(kvm):
    m = _machine(kvm, ncpus=3)
    a, b, noise = (m.memory.var(n, 0) for n in ("a", "b", "noise"))
    evaluations = {1: 0, 2: 0}

    def watching(cpu, var):
        def cond():
            evaluations[cpu] += 1
            return var.value == 1
        return cond

    async def spinner(cpu, var):
        await spin_until(watching(cpu, var))

    async def writer():
        for _ in range(10):
            await WRITE_ONCE(noise, 1)   # read by nobody: wakes nobody
        await WRITE_ONCE(a, 1)

    _run(m, {0: writer(), 1: spinner(1, a), 2: spinner(2, b)}, 1 * MS)
    # Each CPU checks twice as its wait begins (the op's start, then the traced
    # check that notes what it read); CPU1 once more for the store to `a`, which
    # satisfies it; the ten stores to `noise` cost nobody a check.
    assert evaluations == {1: 3, 2: 2}


@pytest.mark.parametrize("first", ["a", "b"])
def test_a_short_circuit_condition_wakes_whichever_store_comes_last(kvm, first):
    """`a and b` reads only `a` while `a` is 0; the read set follows the path the
    condition took, so the spinner wakes at the second store in either order."""
    m = _machine(kvm)
    vars_ = {"a": m.memory.var("a", 0), "b": m.memory.var("b", 0)}
    second = "b" if first == "a" else "a"
    woke = []

    async def spinner():
        await spin_until(lambda: vars_["a"].value and vars_["b"].value)
        woke.append(ktime_get_ns())

    async def writer():
        await WRITE_ONCE(vars_[first], 1)
        await ndelay(3_000)
        await WRITE_ONCE(vars_[second], 1)

    _run(m, {0: spinner(), 1: writer()}, 1 * MS)
    atomic = m.cost_ns("atomic_op_ns")
    assert woke == [atomic + 3_000]       # a store is visible when its op starts


def test_spin_until_with_a_timeout_returns_false_exactly_at_the_deadline(kvm):
    m = _machine(kvm)
    flag = m.memory.var("flag", 0)
    out = []

    async def spinner():
        await ndelay(123)
        ok = await spin_until(lambda: flag.value == 1, timeout_ns=7_000, what="flag")
        out.append((ktime_get_ns(), ok))

    async def late_writer():
        await ndelay(50_000)             # long after the deadline
        await WRITE_ONCE(flag, 1)

    _run(m, {0: spinner(), 1: late_writer()}, 1 * MS)
    assert out == [(123 + 7_000, False)]


def test_spin_until_with_a_timeout_returns_true_if_the_store_comes_first(kvm):
    m = _machine(kvm)
    flag = m.memory.var("flag", 0)
    out = []

    async def spinner():
        ok = await spin_until(lambda: flag.value == 1, timeout_ns=7_000, what="flag")
        out.append((ktime_get_ns(), ok))

    async def writer():
        await ndelay(3_000)
        await WRITE_ONCE(flag, 1)

    _run(m, {0: spinner(), 1: writer()}, 1 * MS)
    assert out == [(3_000, True)]


# --- kernel code may only await engine ops --------------------------------------------

def test_awaiting_asyncio_sleep_raises_driver_error_naming_the_cpu(kvm):
    sim = Simulator(_machine(kvm))

    async def confused():
        await asyncio.sleep(0)

    with pytest.raises(DriverError, match=r"CPU1 yielded None"):
        sim.start_task(1, confused())


@types.coroutine
def _bare_generator():
    yield "tick"


def test_a_bare_generator_yielding_a_non_op_is_refused_mid_run(kvm):
    sim = Simulator(_machine(kvm))

    async def confused():
        await ndelay(1_000)                      # fine, then a foreign yield
        await _bare_generator()

    sim.start_task(0, confused())
    with pytest.raises(DriverError, match=r"CPU0 yielded 'tick'"):
        sim.run(1 * MS)


# --- the clock and the event queue -------------------------------------------------------

def test_run_advances_time_to_until_when_every_cpu_waits(kvm):
    m = _machine(kvm)

    async def sleeper():
        await safe_halt()                        # no tick, no IPI: halted for good

    sim = _run(m, {0: sleeper(), 1: sleeper()}, 5 * MS)
    assert sim.now_ns == 5 * MS
    assert [c.state for c in m.cpus] == ["halted", "halted"]


def test_run_stops_before_later_events_and_runs_them_on_the_next_call(kvm):
    sim = Simulator(_machine(kvm))
    seen = []
    sim.schedule(10 * MS, lambda: seen.append(sim.now_ns))
    sim.run(7 * MS)
    assert (seen, sim.now_ns) == ([], 7 * MS)
    sim.run(20 * MS)
    assert (seen, sim.now_ns) == ([10 * MS], 20 * MS)


def test_an_event_scheduled_in_the_past_raises(kvm):
    sim = Simulator(_machine(kvm))
    sim.run(1_000)
    sim.schedule(1_000, lambda: None)            # "now" is allowed
    with pytest.raises(ValueError, match="in the past"):
        sim.schedule(999, lambda: None)
