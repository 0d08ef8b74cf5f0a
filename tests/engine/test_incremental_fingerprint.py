"""The explorer's kept parts of a state (issue 7, the explorer's speed): each CPU's
stack kept until it runs, each coroutine's part kept while it waits in the same
await, shared memory's serialization kept per variable, and the digest composed
from them. Each is compared with the state computed from scratch, along walks
through the race (interrupts, NMIs, stops), the flood (ring records, the console
hand-over, timed) and the deep handoff model; and the searches built on them
explore the same graphs as with every kept part checked (`debug=True`)."""

import random
import types

import pytest

from haltlab.engine.explorer import ExplorerDriver, explore, state_digest
from haltlab.engine.fingerprint import stack_fingerprint, stack_fingerprint_cacheable
from haltlab.engine.ops import READ_ONCE, WRITE_ONCE
from haltlab.engine.run import Run
from haltlab.engine.store import StateStore, StoreError, digest, part_repr
from haltlab.machine.machine import Machine
from haltlab.scenarios import handoff
from haltlab.scenarios import panic_race as race
from haltlab.scenarios import printk_flood_check as flood
from haltlab.scenarios.explore_timing import profile_of


def _from_scratch(run: Run) -> tuple:
    """`Run.fingerprint()` as it was before anything was kept: every stack walked."""
    d = run.driver
    clocks = d.clocks
    if clocks is not None:
        clocks.settle(d.strands)
    fp = (d.machine.memory.fingerprint(), d.machine.fingerprint(), tuple(sorted(d.inflight)),
          tuple((s.status, stack_fingerprint(s.stack)) for s in d.strands), d.reset_reason,
          clocks.__fingerprint__() if clocks is not None else None,
          run.ghost() if run.ghost is not None else None)
    return fp if run.abstraction is None else run.abstraction(fp)


def _walk(build, seed: int, steps: int) -> int:
    """A seeded random walk; at every state the kept fingerprint and digest
    equal the ones from scratch. Returns the steps taken."""
    rng = random.Random(seed)
    run = build()
    store = StateStore()
    taken = 0
    for _ in range(steps):
        want = _from_scratch(run)
        assert run.fingerprint() == want
        assert state_digest(run, store) == digest(want)
        choices = run.driver.choices()
        if not choices:
            break
        run.driver.step(rng.choice(choices))
        taken += 1
    return taken


_MODELS = {
    "race-3": lambda: race.make_run(race.PanicRaceConfig(cpus=3)),
    "race-4-any": lambda: race.make_run(race.PanicRaceConfig(cpus=4, timeouts="any")),
    "race-3-load-store": lambda: race.make_run(race.PanicRaceConfig(cpus=3, variant="load-store")),
    "race-2-timed": lambda: race.make_run(race.PanicRaceConfig(cpus=2, timing="timed")),
    "flood-2": lambda: flood.make_run(flood.PrintkFloodCheckConfig()),
    "flood-3-v7.1": lambda: flood.make_run(flood.PrintkFloodCheckConfig(cpus=3, kernel="v7.1")),
    "flood-2-kdump": lambda: flood.make_run(flood.PrintkFloodCheckConfig(kernel="v5.17", kdump=True,
                                                                           post_notifiers=True)),
    "flood-2-timed": lambda: flood.make_run(flood.PrintkFloodCheckConfig(timing="timed")),
    "handoff": lambda: handoff.make_run(handoff.HandoffConfig(rounds=5)),
}


@pytest.mark.parametrize("name", sorted(_MODELS))
def test_kept_parts_equal_the_state_from_scratch_along_walks(name):
    taken = sum(_walk(_MODELS[name], seed, 150) for seed in range(6))
    assert taken > 100          # the walks went somewhere


@pytest.mark.parametrize("cfg", [race.PanicRaceConfig(cpus=3), race.PanicRaceConfig(cpus=3, reduce="all"),
                                 race.PanicRaceConfig(cpus=2, variant="load-store")],
                         ids=["none", "all", "load-store"])
def test_race_search_is_the_same_with_every_kept_part_checked(cfg):
    plain = race.explore_panic_race(cfg)
    checked = race.explore_panic_race(cfg, debug=True)
    assert (plain.states, plain.transitions, plain.verdict) == (checked.states, checked.transitions,
                                                                 checked.verdict)
    assert list(plain.edges) == list(checked.edges)


def test_flood_search_is_the_same_with_every_kept_part_checked():
    cfg = flood.PrintkFloodCheckConfig(kernel="v7.1", max_states=1500)
    plain = flood.check_printk_flood(cfg).exploration
    checked = flood.check_printk_flood(cfg, debug=True).exploration
    assert list(plain.edges) == list(checked.edges) and plain.states == checked.states


# --- what the kept parts rest on, shown failing ---------------------------------------


class _Leaky:
    """A local whose `__fingerprint__()` changes while its coroutine waits: what
    `engine.fingerprint` forbids, and what `debug=True` must catch."""

    def __init__(self, machine) -> None:
        self.flag = machine.memory.var("flag", 0)
        self.n = 0

    def __fingerprint__(self):
        return ("leaky", self.n)


async def _waiter(sh: _Leaky):
    await READ_ONCE(sh.flag)
    await READ_ONCE(sh.flag)


async def _bumper(sh: _Leaky):
    sh.n += 1
    await WRITE_ONCE(sh.flag, 1)
    sh.n += 1
    await WRITE_ONCE(sh.flag, 2)


def _leaky_run() -> Run:
    machine = Machine(profile_of("kvm-x86"), 2, record_timeline=False)
    sh = _Leaky(machine)
    driver = ExplorerDriver(machine)
    driver.start_task(0, _waiter(sh))
    driver.start_task(1, _bumper(sh))
    return Run(machine, sh, driver, ghost=None)


def test_debug_catches_a_local_that_changes_while_its_cpu_waits():
    with pytest.raises(StoreError, match="did not run"):
        explore(_leaky_run, debug=True)


def test_a_closure_on_the_stack_is_never_kept():
    box = 0

    async def inner():
        nonlocal box
        box += 1
        await READ_ONCE(machine.memory.vars["x"])

    machine = Machine(profile_of("kvm-x86"), 1, record_timeline=False)
    machine.memory.var("x", 0)
    driver = ExplorerDriver(machine)
    driver.start_task(0, inner())
    kept: dict = {}
    fp, cacheable, text = stack_fingerprint_cacheable(driver.strands[0].stack, kept, True)
    assert not cacheable and kept == {}
    assert fp == stack_fingerprint(driver.strands[0].stack) and text == part_repr(fp)
    assert isinstance(driver.strands[0].stack[0].coro, types.CoroutineType)


def test_kept_memory_text_tells_true_from_one():
    """The serializations shared between runs are keyed by the value's exact
    type: a variable holding True and one holding 1 stay two states."""
    digests = []
    for value in (1, True, 1, True):
        machine = Machine(profile_of("kvm-x86"), 1, record_timeline=False)
        machine.memory.var("x", value)
        driver = ExplorerDriver(machine)
        run = Run(machine, None, driver, ghost=None)
        d = state_digest(run, StateStore())
        assert d == digest(_from_scratch(run))
        digests.append(d)
    assert digests[0] == digests[2] != digests[1] == digests[3]
