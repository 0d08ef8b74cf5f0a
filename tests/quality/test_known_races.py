"""Known races the explorer must find, and fixed versions it must pass.

In the style of Hypothesis' `tests/quality/`: the checker is only as good as the
bugs it is shown to catch. Result: Never (two panic CPUs) holds for the kernel's
`atomic_try_cmpxchg(&panic_cpu, ...)` and fails for a load-then-store claim; the
counterexample must be the minimal one (both CPUs read, then both write) and
must replay.
"""

import pytest

from haltlab.engine.core import DriverError
from haltlab.engine.explorer import ExplorerDriver, explore, replay
from haltlab.engine.fingerprint import FingerprintError
from haltlab.engine.ops import READ_ONCE
from haltlab.machine.machine import Machine
from haltlab.scenarios.panic_race import (
    PanicRaceConfig, at_most_one_owner, explore_panic_race, make_run, replay_panic_race,
    settled, winner_in_final_loop,
)


def _explore_labelled(cfg: PanicRaceConfig):
    """explore_panic_race(), labelling each state with the set of CPUs that
    passed the claim, so terminal states can be told apart by winner."""
    return explore(lambda: make_run(cfg), check=at_most_one_owner, at_end=settled,
                   goal=winner_in_final_loop, max_states=cfg.max_states,
                   label=lambda run: frozenset(run.kernel.ghost.get("panic_owners", ())))


def _terminal_labels(ex) -> list[frozenset]:
    has_succ = {src for src, _, dst in ex.edges if src != dst}
    return [label for sid, label in ex.labels.items() if sid not in has_succ]


# --- the fixed version passes ---------------------------------------------------------

def test_cmpxchg_two_cpus_is_ok_with_one_terminal_state_per_winner():
    ex = explore_panic_race(PanicRaceConfig(cpus=2))
    assert ex.verdict == "ok" and not ex.truncated
    assert ex.states > 100
    assert ex.terminal == 2


def test_cmpxchg_three_cpus_is_ok_and_every_cpu_can_win():
    ex = _explore_labelled(PanicRaceConfig(cpus=3))
    assert ex.verdict == "ok" and not ex.truncated
    assert ex.states > 100
    assert ex.terminal == 3
    assert sorted(_terminal_labels(ex), key=sorted) == [
        frozenset({0}), frozenset({1}), frozenset({2})]


def test_cmpxchg_is_ok_even_when_timeouts_may_fire_at_any_step():
    ex = explore_panic_race(PanicRaceConfig(cpus=2, timeouts="any"))
    assert ex.verdict == "ok"


# --- the known bug is found -------------------------------------------------------------

@pytest.mark.parametrize("cpus", [2, 3])
def test_load_store_claim_is_found_shrunk_to_four_choices_and_replays(cpus):
    cfg = PanicRaceConfig(cpus=cpus, variant="load-store")
    ex = explore_panic_race(cfg)
    assert ex.verdict == "violation"
    v = ex.violation
    assert "two panic CPUs" in v.message
    # Minimal: A reads, B reads, then both write (or the mirror image).
    assert len(v.choices) == 4
    assert len(set(v.choices)) == 2
    _, msg = replay_panic_race(cfg, v.choices)
    assert msg == v.message


def test_a_choice_list_that_does_not_apply_is_refused_with_its_step():
    cfg = PanicRaceConfig(cpus=2)
    with pytest.raises(DriverError, match=r"replay diverged at step 0: 'c7'"):
        replay_panic_race(cfg, ["c7"])


# --- determinism and fingerprints -----------------------------------------------------

def _fingerprints_along(cfg, choices) -> list:
    run = make_run(cfg)
    fps = [run.fingerprint()]
    for c in choices:
        run.driver.step(c)
        fps.append(run.fingerprint())
    return fps


def _some_path(cfg, length=60) -> list[str]:
    """Alternate between CPUs where possible, so the path interleaves."""
    run, path = make_run(cfg), []
    while len(path) < length and run.driver.choices() and not winner_in_final_loop(run):
        options = run.driver.choices()
        c = options[len(path) % len(options)]
        run.driver.step(c)
        path.append(c)
    return path


def test_replaying_a_choice_list_twice_gives_equal_fingerprints_at_every_step():
    cfg = PanicRaceConfig(cpus=3)
    path = _some_path(cfg)
    assert len(path) >= 30 and len({c for c in path if c.startswith("c")}) >= 2
    first, second = _fingerprints_along(cfg, path), _fingerprints_along(cfg, path)
    assert first == second
    assert len(set(first)) > len(first) // 2      # the fingerprint does track the state


def test_replaying_the_counterexample_reaches_the_violation_with_its_trace():
    cfg = PanicRaceConfig(cpus=2, variant="load-store")
    v = explore_panic_race(cfg).violation
    a = replay(lambda: make_run(cfg), v.choices)
    assert a.kernel.ghost["panic_owners"] == frozenset({0, 1})   # both passed the claim
    assert a.kernel.panic_cpu.value in (0, 1)
    # The search ran untraced; the counterexample carries the trace of this replay,
    # one line per operation, with both CPUs' claim steps in it.
    assert v.trace and a.driver.trace == v.trace
    claims = [(cpu, what) for _, cpu, what in v.trace if "panic_try_start" in what]
    assert {cpu for cpu, _ in claims} == {0, 1}


def test_fingerprinter_refuses_a_list_local_naming_function_and_variable(kvm):
    machine = Machine(kvm, 1, record_timeline=False)
    flag = machine.memory.var("flag", 0)

    async def keeps_a_list():
        pending = [1, 2]                  # mutable: would break pruning silently
        await READ_ONCE(flag)
        return pending

    run = ExplorerDriver(machine)
    run.start_task(0, keeps_a_list())
    with pytest.raises(FingerprintError, match=r"keeps_a_list\(\): local 'pending'.*list"):
        run.fingerprint()


def test_fingerprinter_accepts_immutable_locals(kvm):
    machine = Machine(kvm, 1, record_timeline=False)
    flag = machine.memory.var("flag", 0)

    async def keeps_values():
        pending = (1, frozenset({2}), "x", None)
        await READ_ONCE(flag)
        return pending

    run = ExplorerDriver(machine)
    run.start_task(0, keeps_values())
    fp = run.fingerprint()
    assert "keeps_values" in repr(fp)
    run.step("c0")
    assert run.fingerprint() != fp


@pytest.mark.parametrize("cpus", [2, 3])
def test_every_fair_run_of_the_race_reaches_the_winners_final_loop(cpus):
    """eventually(winner in panic()'s final loop), judged on the race's recorded
    graph by the liveness judge (haltlab.checks): no fair run avoids it. The
    search is not truncated here, so every state counts as expanded."""
    from haltlab.checks import fair_nonprogress_cycle
    from haltlab.engine.explorer import explore
    from haltlab.scenarios.panic_race import settled, winner_in_final_loop
    cfg = PanicRaceConfig(cpus=cpus)
    ex = explore(lambda: make_run(cfg), check=at_most_one_owner, at_end=settled,
                 goal=winner_in_final_loop, label=lambda run: frozenset({"won"} if winner_in_final_loop(run) else ()))
    assert not ex.truncated and ex.violation is None
    progress = {sid for sid, facts in ex.labels.items() if "won" in facts}
    assert progress
    res = fair_nonprogress_cycle(ex.edges, progress, set(range(ex.states)))
    assert res.lasso is None and not res.truncated          # no infinite fair run avoids it
    ends = set(range(ex.states)) - {src for src, _c, _d in ex.edges}
    assert ends <= progress                                  # and every finite run ends in it


# --- with reductions on and off -----------------------------------------------------------

@pytest.mark.parametrize("reduce", ["none", "symmetry", "por", "all"])
@pytest.mark.parametrize("cpus", [2, 3])
def test_the_race_bug_is_found_and_the_fix_passes_with_each_reduction(cpus, reduce):
    bad = PanicRaceConfig(cpus=cpus, variant="load-store", reduce=reduce)
    v = explore_panic_race(bad).violation
    assert v is not None and "two panic CPUs" in v.message
    assert len(v.choices) == 4 and len(set(v.choices)) == 2
    _, msg = replay_panic_race(bad, v.choices)
    assert msg == v.message
    assert explore_panic_race(PanicRaceConfig(cpus=cpus, reduce=reduce)).verdict == "ok"
