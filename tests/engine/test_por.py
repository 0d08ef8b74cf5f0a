"""The partial-order reduction's parts against the unreduced search: commuting
bit updates, conditions no postponed move can change, interrupts that only
latch, grow-only ghost facts, and the futures handed from state to state. Each
model is small enough to explore in full, and each comparison is on the exact
end states (every fingerprint, not only the verdict)."""

import pytest

from haltlab.checks.lifting import edge_path
from haltlab.engine import por
from haltlab.engine.context import smp_processor_id
from haltlab.engine.explorer import ExplorerDriver, explore, replay
from haltlab.engine.ops import (
    READ_ONCE, WRITE_ONCE, BitUpdate, Footprint, Shared, clear_bit, local_irq_disable, local_irq_enable,
    send_IPI_mask, set_bit, spin_until,
)
from haltlab.engine.run import Run
from haltlab.engine.store import TERMINAL
from haltlab.engine.symmetry import cpu_locals
from haltlab.machine.machine import Machine
from haltlab.machine.profile import load_profile
from haltlab.scenarios.panic_race import PanicRaceConfig, check_panic_race, make_run


class _Box:
    def __fingerprint__(self) -> str:
        return "box"


def _build(tasks, irq=None, **vars_):
    """A run of `tasks` (one per CPU) over the shared variables `vars_`; `irq`
    installs a handler for the REBOOT vector."""
    def make() -> Run:
        machine = Machine(load_profile("kvm-x86"), len(tasks), record_timeline=False)
        box = _Box()
        for name, value in vars_.items():
            setattr(box, name, machine.memory.var(name, value))
        if irq is not None:
            machine.request_irq("REBOOT", 0xF8, lambda cpu: irq(box))
        driver = ExplorerDriver(machine)
        for cpu, task in enumerate(tasks):
            driver.start_task(cpu, task(box))
        return Run(machine, box, driver, ghost=None)
    return make


def _ends(build, ex) -> set:
    """Every end state's full fingerprint, replayed along a path to it."""
    out = set()
    for sid, flags in enumerate(ex.store.flags):
        if flags & TERMINAL:
            out.add(replay(build, ex.concrete_path(edge_path(ex.edges, 0, {sid}))).fingerprint())
    return out


def _same_ends(build, observed=frozenset()):
    full = explore(build)
    red = explore(build, reduce="por", observed=observed)
    assert "por" in red.reductions
    assert _ends(build, red) == _ends(build, full)
    return full, red


# --- footprints ----------------------------------------------------------------------------

def test_bit_updates_commute_unless_one_sets_and_one_clears_the_same_bit():
    def up(nr, set_):
        return Footprint(updates=frozenset((BitUpdate("mask", nr, set_),)))
    assert not up(1, False).conflicts(up(2, False))
    assert not up(1, False).conflicts(up(1, False))
    assert not up(1, True).conflicts(up(2, False))
    assert up(1, True).conflicts(up(1, False))
    assert up(1, False).conflicts(Footprint(reads=frozenset((Shared("mask"),))))
    assert Footprint(writes=frozenset((Shared("mask"),))).conflicts(up(3, True))
    assert not up(1, False).conflicts(Footprint(reads=frozenset((Shared("other"),))))


def test_only_grow_only_ghost_facts_count_as_commuting():
    assert por._ghost_writes((("a", frozenset({1})),), (("a", frozenset({1, 2})),)) == {por.Ghost("a")}
    assert por.Ghost("*") in por._ghost_writes((("a", frozenset({1, 2})),), (("a", frozenset({1})),))
    assert por.Ghost("*") in por._ghost_writes((("a", 1),), (("a", 2),))


# --- bit updates and conditions ---------------------------------------------------------------

@cpu_locals(cpu=("me",))
async def clears_its_bit(box):
    """Clears its bit of `mask`, then records in `late` whether the waiter had
    written `flag` by then: the end states tell the orders apart."""
    me = smp_processor_id()
    await READ_ONCE(box.flag)
    await clear_bit(me, box.mask)
    if await READ_ONCE(box.flag):
        await set_bit(me, box.late)


async def waits_for_the_mask(box):
    await spin_until(lambda: box.mask.value == 0, what="mask empty")
    await WRITE_ONCE(box.flag, 1)


async def sets_a_bit_back(box):
    await set_bit(1, box.mask)


def test_clearing_bits_a_waiter_reads_keeps_every_end_state_and_explores_less():
    build = _build([waits_for_the_mask, clears_its_bit, clears_its_bit, clears_its_bit], mask=0b1110, flag=0, late=0)
    full, red = _same_ends(build)
    assert red.states < full.states / 3


def test_a_set_and_a_clear_of_one_bit_do_not_commute():
    build = _build([waits_for_the_mask, clears_its_bit, sets_a_bit_back], mask=0b0110, flag=0, late=0)
    full, red = _same_ends(build)
    assert len(_ends(build, full)) > 1              # the order matters, and both ends are kept


async def writes_the_mask(box):
    await WRITE_ONCE(box.mask, 0)


def test_a_plain_write_to_what_a_waiter_reads_is_never_postponed_past_it():
    build = _build([waits_for_the_mask, clears_its_bit, writes_the_mask], mask=0b0010, flag=0, late=0)
    _same_ends(build)


# --- interrupts that only latch ---------------------------------------------------------------

async def sends_a_reboot(box):
    await WRITE_ONCE(box.sent, 1)
    await send_IPI_mask(0b10, "REBOOT")


async def works_with_irqs_off_then_on(box):
    await local_irq_disable()
    await READ_ONCE(box.flag)
    await READ_ONCE(box.flag)
    await local_irq_enable()
    await READ_ONCE(box.flag)


async def reboot_handler(box):
    await WRITE_ONCE(box.flag, await READ_ONCE(box.sent) + 1)


def test_an_interrupt_that_only_latches_keeps_every_end_state():
    build = _build([sends_a_reboot, works_with_irqs_off_then_on], irq=reboot_handler, sent=0, flag=0)
    full, red = _same_ends(build)
    assert red.states < full.states


# --- the race, against the unreduced search --------------------------------------------------

def _race_ends(cfg, ex) -> set:
    from haltlab.engine.symmetry import orbit_key
    build = lambda: make_run(PanicRaceConfig(cpus=cfg.cpus, kernel=cfg.kernel, profile=cfg.profile,  # noqa: E731
                                             timeouts=cfg.timeouts))
    out = set()
    for sid, flags in enumerate(ex.store.flags):
        if flags & TERMINAL:
            out.add(orbit_key(replay(build, ex.concrete_path(edge_path(ex.edges, 0, {sid})))))
    return out


@pytest.mark.parametrize("cpus,kernel,profile,timeouts", [
    (2, k, p, "quiescent") for k in ("v7.1", "v6.6", "v6.1") for p in ("kvm-x86", "arm64-server-24")
] + [(2, "v7.1", "kvm-x86", "any"), (2, "v6.1", "arm64-server-24", "any"),
     (3, "v7.1", "kvm-x86", "quiescent"), (3, "v6.1", "kvm-x86", "quiescent"),
     (3, "v7.1", "arm64-server-24", "quiescent"), (3, "v6.1", "arm64-server-24", "quiescent")])
def test_the_race_keeps_its_verdict_and_end_states_under_por_and_all(cpus, kernel, profile, timeouts):
    cfg = PanicRaceConfig(cpus=cpus, kernel=kernel, profile=profile, timeouts=timeouts)
    base = check_panic_race(cfg)
    ends = _race_ends(cfg, base.exploration)
    for reduce in ("por", "all"):
        out = check_panic_race(PanicRaceConfig(cpus=cpus, kernel=kernel, profile=profile, timeouts=timeouts,
                                               reduce=reduce))
        assert out.verdict == base.verdict, reduce
        assert _race_ends(cfg, out.exploration) == ends, reduce
        assert out.exploration.states < base.exploration.states, reduce


def _edges(ex) -> list:
    return [ex.edges[i] for i in range(len(ex.edges))]


def test_handed_on_futures_and_the_shared_replay_choose_what_fresh_solo_runs_choose(monkeypatch):
    cfg = PanicRaceConfig(cpus=4, reduce="por")
    cached = check_panic_race(cfg).exploration

    shared_solo = por._Shared.solo

    def fresh(self, agent, first):          # a new replay for every solo run
        self.run = None
        return shared_solo(self, agent, first)
    monkeypatch.setattr(por.PersistentSets, "_inherit", lambda self, parent, move, agents: {})
    monkeypatch.setattr(por._Shared, "solo", fresh)
    uncached = check_panic_race(cfg).exploration
    assert _edges(cached) == _edges(uncached)
    assert cached.states == uncached.states
