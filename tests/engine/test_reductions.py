"""Each reduction against the unreduced search, on small configurations: the
same verdicts, the same end states up to symmetry, the same lasso existence;
symmetry's state count is the number of orbits (brute force over every
permutation); undeclared CPU data is refused loudly."""

import pytest

from haltlab.checks.lifting import edge_path
from haltlab.checks.properties import Verdict, check, eventually
from haltlab.engine.explorer import ExplorerDriver, explore, replay
from haltlab.engine.ops import READ_ONCE, WRITE_ONCE, Shared
from haltlab.engine.run import Run
from haltlab.engine.symmetry import (
    CPU, PLAIN, CpuSymmetry, SymmetryError, canonical, compose, cpu_locals, orbit_key,
)
from haltlab.engine.timing import permute_clocks
from haltlab.engine.context import smp_processor_id
from haltlab.machine.machine import Machine
from haltlab.machine.profile import load_profile
from haltlab.scenarios.panic_race import PanicRaceConfig, check_panic_race, make_run

REDUCED = ("symmetry", "por", "all")


def _orbit(run):
    run.symmetry = run.symmetry or CpuSymmetry(cpus=tuple(range(run.machine.ncpus)))
    return orbit_key(run)


def _end_orbits(build, ex) -> set:
    """The orbit of every end state of `ex`, replayed along a concrete path."""
    ends = {sid for sid, f in enumerate(ex.store.flags) if f & 2}
    out = set()
    for sid in ends:
        run = replay(build, ex.concrete_path(edge_path(ex.edges, 0, {sid})))
        out.add(_orbit(run))
    return out


@pytest.mark.parametrize("cpus", [2, 3])
@pytest.mark.parametrize("variant", ["cmpxchg", "load-store"])
def test_each_reduction_keeps_the_race_verdict_and_its_end_states(cpus, variant):
    base_cfg = PanicRaceConfig(cpus=cpus, variant=variant)
    base = check_panic_race(base_cfg)
    build = lambda: make_run(base_cfg)          # noqa: E731
    base_ends = _end_orbits(build, base.exploration) if variant == "cmpxchg" else None
    for reduce in REDUCED:
        out = check_panic_race(PanicRaceConfig(cpus=cpus, variant=variant, reduce=reduce))
        assert out.verdict == base.verdict, reduce
        assert reduce.replace("all", "symmetry") in " ".join(out.exploration.reductions)
        if variant == "cmpxchg":                  # a violation stops the search: counts differ anyway
            assert out.exploration.states < base.exploration.states, reduce
            assert _end_orbits(build, out.exploration) == base_ends, reduce
        else:
            assert out.property.name == base.property.name
            run = replay(build, out.choices)          # the path replays on the real run
            assert len(run.kernel.ghost["panic_owners"]) == 2


def test_at_four_cpus_every_reduction_proves_the_race_ok():
    verdicts = {r: check_panic_race(PanicRaceConfig(cpus=4, reduce=r)).verdict for r in REDUCED}
    assert set(verdicts.values()) == {Verdict.OK}


@pytest.mark.parametrize("cpus", [2, 3])
def test_symmetry_stores_one_state_per_orbit_of_the_unreduced_graph(cpus):
    cfg = PanicRaceConfig(cpus=cpus)
    build = lambda: make_run(cfg)               # noqa: E731
    full = check_panic_race(cfg).exploration
    orbits = set()
    for sid in range(full.states):
        orbits.add(orbit_key(replay(build, full.concrete_path(edge_path(full.edges, 0, {sid})))))
    sym = check_panic_race(PanicRaceConfig(cpus=cpus, reduce="symmetry")).exploration
    assert sym.states == len(orbits) < full.states


# --- tiny models ----------------------------------------------------------------------

class _Box:
    def __fingerprint__(self) -> str:
        return "box"


def _build(tasks, symmetric=True, **vars_):
    def make() -> Run:
        machine = Machine(load_profile("kvm-x86"), len(tasks), record_timeline=False)
        box = _Box()
        for name, (value, kind) in vars_.items():
            setattr(box, name, machine.memory.var(name, value, kind=kind))
        driver = ExplorerDriver(machine)
        for cpu, task in enumerate(tasks):
            driver.start_task(cpu, task(box))
        sym = CpuSymmetry(cpus=tuple(range(len(tasks)))) if symmetric else None
        return Run(machine, box, driver, ghost=None, symmetry=sym)
    return make


@cpu_locals(cpu=("me",))
async def claim_then_done(box):
    me = smp_processor_id()
    if await READ_ONCE(box.owner) == -1:
        await WRITE_ONCE(box.owner, me)
    await WRITE_ONCE(box.done, 1)


def _done(run):
    return run.kernel.done.value == 1


_DONE = eventually(_done, name="done", message="never done", reads={Shared("done")}, stable=True)


@cpu_locals(cpu=("me", "o"))
async def take_and_pass(box):
    """Takes `owner` if nobody has it, passes it to the other CPU if it has it,
    forever: `done` never holds, and each round of the quotient's cycle renames
    the CPUs (the lasso must be found on the lifted graph)."""
    me = smp_processor_id()
    while True:
        o = await READ_ONCE(box.owner)
        if o == -1:
            await WRITE_ONCE(box.owner, me)
        elif o == me:
            await WRITE_ONCE(box.owner, me ^ 1)


@pytest.mark.parametrize("reduce", REDUCED)
def test_lasso_existence_is_the_same_with_each_reduction(reduce):
    build = _build([take_and_pass, take_and_pass], owner=(-1, CPU), done=(0, PLAIN))
    base = check(build, [_DONE])
    out = check(build, [_DONE], reduce=reduce)
    assert base.verdict is out.verdict is Verdict.LIVELOCK
    run = replay(build, [*out.lasso.prefix])
    fp = run.fingerprint()
    for c in out.lasso.cycle:
        assert c in run.driver.choices()
        run.driver.step(c)
    assert run.fingerprint() == fp              # the cycle returns to the real state, not just its orbit


@pytest.mark.parametrize("reduce", REDUCED)
def test_a_finishing_model_is_ok_with_each_reduction(reduce):
    build = _build([claim_then_done, claim_then_done], owner=(-1, CPU), done=(0, PLAIN))
    base = check(build, [_DONE], goal=None)
    assert check(build, [_DONE], reduce=reduce).verdict is base.verdict is Verdict.OK


# --- what symmetry refuses ----------------------------------------------------------------

async def keeps_an_undeclared_int(box):
    seen = await READ_ONCE(box.owner)          # an int local with no declared kind
    await WRITE_ONCE(box.done, seen + 2)


def test_an_undeclared_int_local_is_refused_by_name():
    build = _build([keeps_an_undeclared_int, keeps_an_undeclared_int], owner=(-1, CPU), done=(0, PLAIN))
    explore(build)                                # fine without symmetry
    with pytest.raises(SymmetryError, match=r"keeps_an_undeclared_int\(\): local 'seen'"):
        explore(build, reduce="symmetry")


def test_an_undeclared_int_variable_is_refused_by_name():
    build = _build([claim_then_done, claim_then_done], owner=(-1, CPU), done=(0, None))
    with pytest.raises(SymmetryError, match="shared variable 'done'"):
        explore(build, reduce="symmetry")


def test_without_a_declaration_symmetry_is_off_and_says_so():
    build = _build([claim_then_done, claim_then_done], symmetric=False, owner=(-1, CPU), done=(0, PLAIN))
    ex = explore(build, reduce="symmetry")
    assert ex.reductions == ("symmetry off: the scenario declares no interchangeable CPUs",)
    assert ex.states == explore(build).states


def test_por_is_off_when_a_property_does_not_say_what_it_reads():
    build = _build([claim_then_done, claim_then_done], owner=(-1, CPU), done=(0, PLAIN))
    out = check(build, [eventually(_done, name="done", message="never")], reduce="por")
    assert out.exploration.reductions == ("por off: a property or the goal does not declare what it reads",)


# --- the clocks of a timed state --------------------------------------------------------

def _clocks(n):
    k = 3 * n + 1
    zone = tuple(100 * i + j for i in range(k) for j in range(k))
    return (zone, tuple((i, 10 * i) for i in range(n)), tuple(None for _ in range(n)),
            (((0, "NMI"), (1, 2)),), tuple(() for _ in range(n)), (7, None, None))


def test_the_timing_state_moves_with_its_cpus():
    n = 3
    k = 3 * n + 1
    fp = _clocks(n)
    swapped = permute_clocks(fp, (1, 0, 2))       # CPU0 <-> CPU1: clocks 1 <-> 2, 4 <-> 5 and 7 <-> 8
    move = {1: 2, 2: 1, 4: 5, 5: 4, 7: 8, 8: 7}
    for i in range(k):
        for j in range(k):
            assert swapped[0][move.get(i, i) * k + move.get(j, j)] == fp[0][i * k + j]
    assert swapped[1] == ((1, 10), (0, 0), (2, 20))
    assert swapped[3] == (((1, "NMI"), (1, 2)),)
    assert swapped[5] == (None, 7, None)          # CPU0's notice bound is CPU1's now
    assert permute_clocks(fp, (0, 1, 2)) == fp and permute_clocks(None, (1, 0)) is None
    p, q = (1, 2, 0), (2, 0, 1)
    assert permute_clocks(permute_clocks(fp, p), q) == permute_clocks(fp, compose(q, p))
    with pytest.raises(ValueError):
        permute_clocks(fp, (0, 1))


def test_a_cpu_mask_naming_a_frozen_cpu_has_a_canonical_form():
    """S2's flood at 3 CPUs: CPU0 (the panic CPU) is frozen, CPUs 1 and 2 flood.
    A CPU mask naming CPU0 beside a flooder mixes a frozen CPU's colour with
    the others' (this raised a TypeError once); CPU1's first step and CPU2's
    lead to one orbit."""
    from haltlab.scenarios.printk_flood_check import PrintkFloodCheckConfig, make_run as flood_run

    cfg = PrintkFloodCheckConfig(cpus=3, kernel="v7.1")
    build = lambda: flood_run(cfg)                  # noqa: E731
    one, two = replay(build, ["c1"]), replay(build, ["c2"])
    assert one.fingerprint() != two.fingerprint()
    assert canonical(one)[0] == canonical(two)[0]
    assert orbit_key(one) == orbit_key(two)


# --- liveness on the reduced graph: postponed choices count as enabled ----------------

async def loops_until_c(box):
    """Writes its own variables, then looks at `c`; done once `c` is set."""
    while True:
        await WRITE_ONCE(box.a, 1)
        await WRITE_ONCE(box.b, 1)
        if await READ_ONCE(box.c):
            await WRITE_ONCE(box.done, 1)
            return


async def sets_c(box):
    await WRITE_ONCE(box.c, 1)


def test_a_cycle_that_postpones_a_cpu_forever_is_not_fair():
    """Where CPU0 writes `a` or `b`, CPU1's write of `c` commutes with it and is
    postponed; where CPU0 reads `c` it is not. CPU0 going round alone is a
    non-progress cycle of the reduced graph, unfair because CPU1 is enabled all
    along: judged with the postponed choice, OK as unreduced; judged on the
    graph's edges alone, a false livelock (what this test guards against)."""
    from haltlab.checks.liveness import fair_nonprogress_cycle

    build = _build([loops_until_c, sets_c], symmetric=False, a=(0, PLAIN), b=(0, PLAIN), c=(0, PLAIN),
                   done=(0, PLAIN))
    base = check(build, [_DONE])
    out = check(build, [_DONE], reduce="por")
    assert base.verdict is out.verdict is Verdict.OK
    ex = out.exploration
    assert ex.reductions == ("por",)
    cycle = [s for s in ex.postponed if s != 0]
    assert cycle and all(ex.postponed[s] == ("c1",) for s in cycle)     # CPU1 postponed on the cycle
    reached = ex.labels.with_fact("done")
    assert fair_nonprogress_cycle(ex.edges, reached, set(range(ex.states))).lasso is not None


def test_one_interchangeable_cpu_folds_nothing_and_symmetry_says_it_is_off():
    plain = _build([claim_then_done, claim_then_done], symmetric=False, owner=(-1, CPU), done=(0, PLAIN))

    def one_cpu():
        run = plain()
        run.symmetry = CpuSymmetry(cpus=(1,), frozen=(0,))
        return run
    ex = explore(one_cpu, reduce="symmetry")
    assert ex.reductions == ("symmetry off: fewer than two interchangeable CPUs, nothing to fold",)
    base = explore(plain)
    assert (ex.states, list(ex.edges)) == (base.states, list(base.edges))


def test_the_identity_shortcut_gives_the_canonical_form_renaming_would():
    """Where the canonical permutation is the identity, `canonical_and_plain`
    returns the fingerprint itself: it must equal the renamed typed state, on
    states of the race and of the flood (frozen CPU0, masks, sets of CPUs)."""
    import random

    from haltlab.engine.symmetry import _typed_state, canonical_and_plain, permuted
    from haltlab.scenarios.printk_flood_check import PrintkFloodCheckConfig, make_run as flood_run

    rng = random.Random(7)
    builds = [lambda: make_run(PanicRaceConfig(cpus=3)), lambda: flood_run(PrintkFloodCheckConfig(cpus=3))]
    identities = renamed = 0
    for build in builds:
        for _walk in range(12):
            run = build()
            for _ in range(rng.randrange(0, 40)):
                choices = run.driver.choices()
                if not choices:
                    break
                run.driver.step(rng.choice(choices))
            canon, perm, plain = canonical_and_plain(run)
            assert plain == run.fingerprint()
            assert canon == permuted(_typed_state(run, run.symmetry), perm)
            if canon is plain:
                identities += 1
            else:
                renamed += 1
    assert identities and renamed
