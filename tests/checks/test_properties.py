"""Properties in plain words, on tiny models driven by the real explorer: each
verdict (ok, violation, deadlock, livelock, bounded-ok) from a model built to
give it, and the race on `PROPERTIES` as before."""

from haltlab.checks.properties import Verdict, always, at_end, check, eventually, never_deadlock
from haltlab.engine.explorer import ExplorerDriver, replay
from haltlab.engine.ops import READ_ONCE, WRITE_ONCE, ndelay, spin_until
from haltlab.engine.run import Run
from haltlab.machine.machine import Machine
from haltlab.machine.profile import load_profile
from haltlab.scenarios.panic_race import PanicRaceConfig, check_panic_race


class _Box:
    """What the tiny models share: their variables (in memory, which the
    fingerprint holds; the box itself is a fixed name, as the kernel is)."""

    def __fingerprint__(self) -> str:
        return "box"


def build(tasks):
    def make() -> Run:
        machine = Machine(load_profile("kvm-x86"), len(tasks), record_timeline=False)
        box = _Box()
        box.flag = machine.memory.var("flag", 0)
        box.done = machine.memory.var("done", 0)
        driver = ExplorerDriver(machine)
        for cpu, task in enumerate(tasks):
            driver.start_task(cpu, task(box))
        return Run(machine, box, driver, ghost=None)
    return make


def done(run: Run) -> bool:
    return run.kernel.done.value == 1


async def toggler(box):
    """Sets the flag and clears it again, forever: the window is always closing."""
    while True:
        await WRITE_ONCE(box.flag, 1)
        await WRITE_ONCE(box.flag, 0)


async def watcher(box):
    """Looks at the flag until it sees it set; then it is done."""
    while True:
        if await READ_ONCE(box.flag):
            await WRITE_ONCE(box.done, 1)
            return


async def setter(box):
    await WRITE_ONCE(box.flag, 1)


async def waiter(box):
    await spin_until(lambda: box.flag.value == 2, what="flag == 2")


def test_a_watcher_that_always_looks_too_late_is_a_livelock():
    out = check(build([toggler, watcher]), [eventually(done, name="watcher done", message="never done")])
    assert out.verdict is Verdict.LIVELOCK and out.property.name == "watcher done"
    run = replay(build([toggler, watcher]), [*out.lasso.prefix, *out.lasso.cycle])
    assert not done(run)                       # the lasso replays, and is still not done


def test_a_watcher_of_a_flag_that_stays_set_is_ok():
    out = check(build([setter, watcher]), [eventually(done, name="watcher done", message="never done"),
                                           never_deadlock()], goal=done)
    assert out.verdict is Verdict.OK, out


def test_a_wait_nobody_ends_is_a_deadlock_with_a_path():
    out = check(build([setter, waiter]), [never_deadlock()], goal=done)
    assert out.verdict is Verdict.DEADLOCK and out.choices is not None
    run = replay(build([setter, waiter]), out.choices)
    assert not run.driver.choices()            # the path ends where nothing can go on


def test_a_finite_run_that_never_reaches_the_goal_violates_eventually():
    out = check(build([setter, waiter]), [eventually(done, name="done", message="never done")])
    assert out.verdict is Verdict.VIOLATION and out.property.name == "done"


def test_always_names_what_is_wrong_in_the_state():
    out = check(build([setter]), [always(lambda run: run.kernel.flag.value == 0 or f"flag is {run.kernel.flag.value}",
                                         name="flag clear", message="flag set")])
    assert out.verdict is Verdict.VIOLATION and out.message == "flag is 1"


def test_at_end_is_judged_where_the_run_ends():
    out = check(build([setter]), [at_end(lambda run: run.kernel.flag.value == 2, name="flag 2", message="not 2")])
    assert out.verdict is Verdict.VIOLATION and out.message == "not 2"


def test_a_bound_says_which():
    out = check(build([toggler, watcher]), [always(lambda run: True, name="t", message="t")], max_states=5)
    assert out.verdict is Verdict.BOUNDED_OK and out.bound == "max_states 5"


def test_the_race_on_its_properties():
    assert check_panic_race(PanicRaceConfig(cpus=2)).verdict is Verdict.OK
    bad = check_panic_race(PanicRaceConfig(cpus=2, variant="load-store"))
    assert bad.verdict is Verdict.VIOLATION and bad.property.name == "one panic CPU"
    # The shortest path: both CPUs read PANIC_CPU_INVALID, then both write.
    assert len(bad.choices) == 4 and sorted(bad.choices) == ["c0", "c0", "c1", "c1"]


def test_the_livelock_is_found_with_the_partial_order_reduction_too():
    """Judged on the reduced graph itself, with the choices it postponed counted
    as enabled: the same verdict, and a lasso that replays."""
    from haltlab.engine.ops import Shared
    prop = eventually(done, name="watcher done", message="never done", reads={Shared("done")}, stable=True)
    out = check(build([toggler, watcher]), [prop], reduce="por")
    assert out.verdict is Verdict.LIVELOCK
    assert out.exploration.reductions == ("por",)
    run = replay(build([toggler, watcher]), [*out.lasso.prefix, *out.lasso.cycle])
    assert not done(run)


def test_an_eventually_property_not_declared_stable_turns_the_reduction_off():
    from haltlab.engine.ops import Shared
    prop = eventually(done, name="watcher done", message="never done", reads={Shared("done")})
    out = check(build([toggler, watcher]), [prop], reduce="por")
    assert out.verdict is Verdict.LIVELOCK
    assert out.exploration.reductions == ("por off: an eventually property is not declared stable",)


async def counts_down(box):
    """Twenty steps of its own, then done: CPU2's interleavings make the graph
    big, and only once it is done can a cycle of the other two be fair."""
    for _ in range(20):
        await ndelay(10)


def test_the_search_stops_at_the_first_fair_component_with_the_same_verdict():
    """`check()` stops once a complete component proves the livelock: the
    whole graph (the explorer without that callback) has more transitions,
    the same verdict when judged, and the lasso found early replays."""
    from haltlab.checks.liveness import fair_nonprogress_cycle
    from haltlab.engine.explorer import explore

    make = build([toggler, watcher, counts_down])
    prop = eventually(done, name="watcher done", message="never done")
    early = check(make, [prop])
    whole = explore(make, label=lambda run: frozenset({"watcher done"} if done(run) else ()))
    reached = whole.labels.with_fact("watcher done")
    assert fair_nonprogress_cycle(whole.edges, reached, set(range(whole.states))).lasso is not None
    assert early.verdict is Verdict.LIVELOCK and early.exploration.stopped_at_component
    assert not whole.stopped_at_component and early.exploration.transitions < whole.transitions
    run = replay(make, [*early.lasso.prefix, *early.lasso.cycle])
    assert not done(run)
