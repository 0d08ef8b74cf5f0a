"""Reaching states again (`haltlab.engine.reach`): the search's results do not
depend on how its states are reached, replays are still checked, and the deep
looping model needs far fewer replayed steps than replaying from the root."""

import pytest

from haltlab.engine import reach
from haltlab.engine.core import DriverError
from haltlab.engine.explorer import ExplorerDriver, explore
from haltlab.engine.ops import WRITE_ONCE
from haltlab.engine.run import Run
from haltlab.errors import ConfigError
from haltlab.machine.machine import Machine
from haltlab.machine.profile import load_profile
from haltlab.scenarios import handoff, panic_race


def _race(cpus, variant):
    cfg = panic_race.PanicRaceConfig(cpus=cpus, variant=variant)
    return (lambda: panic_race.make_run(cfg)), dict(
        check=panic_race.at_most_one_owner, at_end=panic_race.settled, goal=panic_race.winner_in_final_loop,
        label=lambda run: frozenset({"winner"} if panic_race.winner_in_final_loop(run) else ()))


def _handoff(rounds, **bounds):
    cfg = handoff.HandoffConfig(rounds=rounds)
    return (lambda: handoff.make_run(cfg)), dict(
        at_end=lambda run: None if handoff.all_rounds_done(run) else "rounds not done", **bounds)


def _result(ex):
    v = ex.violation
    return (ex.states, ex.transitions, ex.terminal, ex.max_depth, ex.truncated, ex.bound, list(ex.edges),
            dict(ex.labels),
            ex.unexpanded, None if v is None else (v.message, v.choices, v.trace))


@pytest.mark.parametrize("model", [
    ("race", 2, "cmpxchg"), ("race", 2, "load-store"), ("race", 3, "cmpxchg"), ("race", 3, "load-store"),
    ("handoff", 12, {}), ("handoff", 30, {"max_states": 200}), ("handoff", 30, {"max_depth": 150}),
])
def test_running_ahead_gives_the_same_exploration_as_replaying_from_the_root(model):
    kind, size, extra = model
    build, kw = _race(size, extra) if kind == "race" else _handoff(size, **extra)
    root = explore(build, reach="root", **kw)
    ahead = explore(build, reach="ahead", **kw)
    frontier = explore(build, reach="frontier", **kw)
    assert _result(ahead) == _result(root)
    assert _result(frontier) == _result(root)


def test_the_deep_model_is_deep_and_needs_few_replayed_steps():
    build, kw = _handoff(40)
    root = explore(build, reach="root", **kw)
    ahead = explore(build, reach="ahead", **kw)
    assert root.verdict == "ok" and root.max_depth > 400
    assert root.replayed_steps_per_transition > 50           # what replaying from the root costs here
    assert ahead.replayed_steps_per_transition * 5 < root.replayed_steps_per_transition
    assert ahead.rebuilds * 5 < root.rebuilds
    assert ahead.ahead > 0 and ahead.replays > ahead.rebuilds          # it walked, too


def test_replaying_from_the_root_counts_every_replayed_choice():
    build, kw = _race(2, "cmpxchg")
    ex = explore(build, reach="root", **kw)
    assert ex.replays == ex.rebuilds > 0 and ex.ahead == 0
    assert ex.replayed_steps >= ex.rebuilds                  # every replay from the root replays a choice


class _Box:
    def __fingerprint__(self) -> str:
        return "box"


async def _write_once(box, cpu):
    await WRITE_ONCE(box.slot[cpu], 1)


_BUILDS = []


def _build_that_counts() -> Run:
    """A run whose memory says how often it was built (a module global): not a
    function of its choices."""
    _BUILDS.append(None)
    machine = Machine(load_profile("kvm-x86"), 2, record_timeline=False)
    box = _Box()
    box.builds = machine.memory.var("builds", len(_BUILDS))
    box.slot = [machine.memory.var(f"slot{cpu}", 0) for cpu in range(2)]
    driver = ExplorerDriver(machine)
    for cpu in range(2):
        driver.start_task(cpu, _write_once(box, cpu))
    return Run(machine, box, driver, ghost=None)


@pytest.mark.parametrize("mode", ["root", "ahead", "frontier"])
def test_a_rebuild_that_reaches_another_state_names_the_culprits(mode):
    with pytest.raises(DriverError, match="not a function of its choices"):
        explore(_build_that_counts, reach=mode)


class _CycleWithAMemory:
    """A run stand-in on a cycle 0 -a-> 1 -a-> 2 -a-> 0 whose fourth `a` goes
    elsewhere: state its key (`pos`) leaves out, so two visits of state 0 have
    different futures."""

    def __init__(self) -> None:
        self.pos, self.taken, self.driver = 0, 0, self

    def step(self, choice: str) -> None:
        if choice == "a":
            self.taken += 1
            self.pos = (self.pos + 1) % 3 if self.taken <= 3 else 5
        else:
            self.pos += 10


def test_a_walk_around_a_cycle_is_checked_too(monkeypatch):
    monkeypatch.setattr(reach, "AHEAD_STEPS", 0)       # only what is asked for: the walk below is needed
    runs = reach.Reach(_CycleWithAMemory, lambda run: (None, ["a", "b"], None), max_states=100, max_depth=100,
                       state=lambda run: run.pos)
    for pos in (0, 1, 2):
        runs.take(pos, "a", ())                        # around the cycle: the live run is back at 0
    with pytest.raises(DriverError, match="equal fingerprints have different futures"):
        runs.take(1, "b", ())                          # walks 0 -a-> 1, and the fourth `a` goes to 5
    assert runs.walks == 1 and runs.rebuilds == 0


def test_the_frontier_parks_runs_and_needs_fewer_replayed_steps_on_the_race():
    """Breadth first, a run that reaches a state still to expand takes one of
    its choices later: the race at 3 CPUs needs far fewer rebuilds than
    running ahead depth first (2,816 there on 2026-12-01)."""
    build, kw = _race(3, "cmpxchg")
    ahead = explore(build, reach="ahead", **kw)
    frontier = explore(build, reach="frontier", **kw)
    assert frontier.rebuilds * 2 < ahead.rebuilds
    assert frontier.replayed_steps_per_transition * 2 < ahead.replayed_steps_per_transition


def test_reach_modes_are_checked():
    build, kw = _handoff(2)
    with pytest.raises(ValueError, match="reach"):
        explore(build, reach="fork", **kw)


def test_the_handoff_model_refuses_no_rounds():
    with pytest.raises(ConfigError, match="rounds"):
        handoff.HandoffConfig(rounds=0).validate()
