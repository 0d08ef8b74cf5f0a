"""A run is a record (`engine.run.Run`: machine, kernel, driver, ghost), not
attributes stuck onto the driver.

`make_run()` used to return the ExplorerDriver with `.kernel` and `.ghost` set on
it from outside, and `build_panic()` a bare tuple.
"""

import itertools

import pytest

from haltlab.engine.core import DriverError
from haltlab.engine.explorer import ExplorerDriver, check_determinism, replay
from haltlab.engine.run import Run
from haltlab.engine.simulator import Simulator
from haltlab.machine.machine import Machine
from haltlab.scenarios.panic import PanicConfig, PanicRun, build_panic, simulate_panic
from haltlab.scenarios.panic_race import PanicRaceConfig, make_run


def _own_attributes(driver_cls, machine) -> set[str]:
    """What a driver of that class has after its own __init__, and nothing else."""
    return set(vars(driver_cls(machine)))


def test_the_race_is_a_run_and_its_driver_carries_only_its_own_state(kvm):
    run = make_run(PanicRaceConfig(cpus=2))
    assert isinstance(run, Run) and isinstance(run.driver, ExplorerDriver)
    assert run.kernel.machine is run.machine is run.driver.machine
    assert set(vars(run.driver)) == _own_attributes(ExplorerDriver, Machine(kvm, 2))
    assert run.ghost() == run.kernel.ghost_fingerprint()
    assert run.fingerprint()[-1] == run.ghost()        # the ghost state is part of the state


def test_a_panic_build_is_a_run_and_the_finished_run_extends_it(kvm):
    run = build_panic(PanicConfig(cpus=2, observe_ns=1_000_000))
    assert isinstance(run, Run) and isinstance(run.driver, Simulator) and run.ghost is None
    assert set(vars(run.driver)) == _own_attributes(Simulator, Machine(kvm, 2))
    done = simulate_panic(PanicConfig(cpus=2, observe_ns=1_000_000))
    assert isinstance(done, PanicRun) and isinstance(done, Run)
    assert done.result["outcome"] == "panicked-and-finished" and done.config.cpus == 2


def test_check_determinism_passes_a_deterministic_run_and_names_a_diverging_one():
    cfg = PanicRaceConfig(cpus=2)
    path = ["c0", "c1", "c0", "c1", "c0"]
    check_determinism(lambda: make_run(cfg), path)
    counter = itertools.count()

    def leaky():
        run = make_run(cfg)
        n = next(counter)                  # state kept between runs: a module global's kind
        return Run(run.machine, run.kernel, run.driver, ghost=lambda: n)

    with pytest.raises(DriverError, match=r"step 0 \(c0\): two replays reached different states"):
        check_determinism(leaky, path)
    with pytest.raises(DriverError, match=r"step 0: 'c9' is not among"):
        check_determinism(lambda: make_run(cfg), ["c9"])


def test_replay_returns_the_run_with_its_trace_on_the_driver():
    run = replay(lambda: make_run(PanicRaceConfig(cpus=2)), ["c0", "c1"])
    assert isinstance(run, Run)
    assert [choice for choice, _, _ in run.driver.trace][-1].endswith(":c1")
