"""The simulator's shortcuts change its speed, never its results.

`Simulator` starts ops where kernel code awaits them (`Simulator._inline`) and
runs a completion that is the very next event at once (`Simulator._then`);
`Machine` keeps `irq_ready` instead of re-deriving it at every op boundary.
`_Reference` below turns the first two off and drives every CPU through the
generic `Driver.run_strand()` (gate, `start_op()`, `_after_done()`, `_busy()`:
one heap event per completion), checking `irq_ready` against its definition at
every op. Both must give byte-identical results, timelines, interrupt logs,
consoles and event counts over a spread of panic configurations.
"""

import pytest

import haltlab.scenarios.panic as panic_scenario
from haltlab.engine.core import Driver
from haltlab.engine.simulator import Simulator
from haltlab.results import dumps
from haltlab.scenarios.panic import PanicConfig, simulate_panic


class _Reference(Simulator):
    """The simulator without its shortcuts: every op yielded to the generic
    step loop, every completion through the heap."""

    def run_strand(self, s, value, chain=False):
        Driver.run_strand(self, s, value)

    def _then(self, at_ns, chain, fn, args):
        return super()._then(at_ns, False, fn, args)

    def on_op(self, s, op):
        m = self.machine
        for c in m.cpus:
            expected = not c.in_nmi and (c.nmi_pending or (c.irqs_enabled and bool(c.pending)))
            assert m.irq_ready[c.index] is expected, (c.index, op.describe())


def _observed(cfg: PanicConfig) -> tuple:
    run = simulate_panic(cfg)
    m = run.machine
    return (dumps(run.result), m.intervals, m.irq_log, m.console, sorted(run.kernel.log.items()),
            run.driver.events_run, run.driver.rng.getstate())


CONFIGS = [
    dict(cpus=1),
    dict(cpus=2, others="busy", after_panic="safe_halt"),
    dict(cpus=4, others="irqsoff"),
    dict(cpus=4, others="irqsoff", kernel="v6.1", seed=3),
    dict(cpus=8, others="busy", seed=7),
    dict(cpus=8, panic_cpu=5, others="busy", after_panic="safe_halt", kernel="v6.6"),
    dict(cpus=3, panic_timeout_s=1, others="busy", after_panic="safe_halt", pvpanic="none"),
    dict(cpus=8, pvpanic="pause", others="irqsoff"),
    dict(cpus=24, profile="arm64-server-24", others="busy"),
    dict(cpus=24, profile="arm64-server-24", others="irqsoff", kernel="v6.1"),
    dict(cpus=4, profile="xeon-gold-6154", others="busy", after_panic="safe_halt"),
    dict(cpus=2, profile="qemu-tcg-x86", trigger_ns=3_999_999, others="busy"),
    dict(cpus=33, others="busy", seed=12345),
]


@pytest.mark.parametrize("kw", CONFIGS, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_the_shortcuts_give_the_reference_run_byte_for_byte(kw, monkeypatch):
    cfg = PanicConfig(observe_ns=300_000_000, **kw)
    fast = _observed(cfg)
    monkeypatch.setattr(panic_scenario, "Simulator", _Reference)
    reference = _observed(cfg)
    assert fast[0] == reference[0]          # the result, as JSON
    assert fast == reference


def test_the_reference_takes_the_slow_path_and_the_simulator_the_fast_one(monkeypatch):
    """Guards the test above against comparing a path with itself: the
    reference pushes every completion through the heap, the simulator chains
    most of the panicking CPU's and runs its zero-cost ops without yielding."""
    cfg = PanicConfig(cpus=2, observe_ns=300_000_000)
    pops = {}
    for name, cls in (("fast", Simulator), ("reference", _Reference)):
        monkeypatch.setattr(panic_scenario, "Simulator", cls)
        seen = []
        original = cls.run_strand

        def counting(self, s, value, chain=False, _original=original, _seen=seen):
            _seen.append(1)
            return _original(self, s, value, chain)

        monkeypatch.setattr(cls, "run_strand", counting)
        run = simulate_panic(cfg)
        pops[name] = (len(seen), run.driver.events_run)
        monkeypatch.undo()
    assert pops["fast"][1] == pops["reference"][1]             # the same events counted
    assert pops["fast"][0] * 3 < pops["reference"][0]          # far fewer returns to the loop


def test_each_cpus_accounted_time_adds_up_to_the_run_and_to_its_timeline():
    """The state accounting inlined in `Machine._restate()`: every ns of every
    CPU in exactly one state, and the timeline's intervals say the same."""
    run = simulate_panic(PanicConfig(cpus=8, others="busy", after_panic="safe_halt", observe_ns=300_000_000))
    m, end_ns = run.machine, run.driver.now_ns
    for c in m.cpus:
        assert sum(c.time_in_ns.values()) == end_ns
        from_timeline: dict = {}
        for cpu, state, start, stop in m.intervals:
            if cpu == c.index:
                from_timeline[state] = from_timeline.get(state, 0) + stop - start
        assert from_timeline == {s: ns for s, ns in c.time_in_ns.items() if ns}


def _storm(driver_cls, seed: int) -> tuple:
    """Four CPUs trading IPIs and NMIs while they delay, spin, store and flip
    their interrupt flag: interrupts pending at `iret`, nested in NMIs, cutting
    delays and waits short; what each CPU saw, and when."""
    import random

    from haltlab.engine.ops import (READ_ONCE, WRITE_ONCE, clear_bit, cpu_relax, local_irq_disable,
                                    local_irq_enable, local_irq_restore, local_irq_save, ndelay, send_IPI_mask,
                                    send_NMI_mask, set_bit, spin_until, udelay)
    from haltlab.machine.machine import Machine
    from haltlab.machine.profile import load_profile

    machine = Machine(load_profile("kvm-x86"), 4)
    flag = machine.memory.var("flag", 0)
    mask = machine.memory.var("mask", 0)
    seen: list = []

    def handler(name):
        async def run(cpu):
            seen.append((sim.now_ns, cpu, name, await READ_ONCE(flag)))
            await ndelay(2_000 + 500 * cpu)
        return run

    machine.request_irq("A", 1, handler("A"))
    machine.request_irq("B", 2, handler("B"))
    machine.register_nmi_handler(handler("NMI"))

    async def task(cpu: int):
        rnd = random.Random(seed * 10 + cpu)
        for step in range(60):
            pick = rnd.randrange(11)
            if pick == 0:
                await send_IPI_mask(rnd.randrange(1, 16) & ~(1 << cpu), rnd.choice("AB"))
            elif pick == 1:
                await send_NMI_mask(1 << rnd.randrange(4))
            elif pick == 2:
                await local_irq_disable()
            elif pick == 3:
                await local_irq_enable()
            elif pick == 4:
                await WRITE_ONCE(flag, step)
            elif pick == 5:
                got = await spin_until(lambda: flag.value % 3 == cpu % 3, timeout_ns=rnd.randrange(1, 20_000))
                seen.append((sim.now_ns, cpu, "spun", got))
            elif pick == 6:
                await cpu_relax()
            elif pick == 7:
                flags = await local_irq_save()      # interrupts arriving meanwhile wait for the restore
                await udelay(rnd.randrange(0, 20))
                await local_irq_restore(flags)
            elif pick == 8:
                bit = rnd.randrange(4)
                await (set_bit if rnd.randrange(2) else clear_bit)(bit, mask)
                seen.append((sim.now_ns, cpu, "mask", await READ_ONCE(mask)))
            else:
                await ndelay(rnd.randrange(0, 30_000))
        seen.append((sim.now_ns, cpu, "done", None))

    sim = driver_cls(machine, seed=seed)
    for cpu in range(4):
        sim.start_task(cpu, task(cpu))
    sim.run(50_000_000)
    return seen, machine.intervals, machine.irq_log, sim.events_run, sim.now_ns, sim.rng.getstate()


@pytest.mark.parametrize("seed", range(6))
def test_an_interrupt_storm_runs_the_same_with_and_without_the_shortcuts(seed):
    fast = _storm(Simulator, seed)
    assert any(name == "NMI" for _, _, name, _ in fast[0]) and any(name == "done" for _, _, name, _ in fast[0])
    assert fast == _storm(_Reference, seed)


def _observed_kexec(cfg) -> tuple:
    from haltlab.scenarios.kexec import simulate_kexec

    run = simulate_kexec(cfg)
    m = run.machine
    return (dumps(run.result), m.intervals, m.irq_log, m.console, run.driver.events_run, run.driver.now_ns,
            run.driver.rng.getstate(), sorted(run.kernel.marks.items()))


KEXEC_CONFIGS = [
    dict(cpus=6),
    dict(cpus=6, others="busy", seed=3),
    dict(cpus=5, others="irqsoff"),
    dict(cpus=8, shutdown="parallel-hotplug", others="busy"),
    dict(cpus=8, shutdown="parallel-hotplug-naive", seed=2),
    dict(cpus=8, shutdown="smp-send-stop", others="irqsoff"),
    dict(cpus=6, freeze=True, managed_irqs=True, others="busy"),
    dict(cpus=6, kernel="v6.1", pseudo_nmi=True, seed=5),
    dict(cpus=6, shutdown="smp-send-stop", others="irqsoff", pseudo_nmi=True),
]


@pytest.mark.parametrize("kw", KEXEC_CONFIGS, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_a_kexec_shutdown_runs_the_same_with_and_without_the_shortcuts(kw, monkeypatch):
    """S3's CPU hotplug (`stop_machine()` on every online CPU for each CPU
    taken down: sleeps, wake-ups, per-CPU reads and writes, the idle loop's
    irq flag flips) through both paths."""
    import haltlab.scenarios.kexec as kexec_scenario
    from haltlab.scenarios.kexec import KexecConfig

    cfg = KexecConfig(**kw)
    fast = _observed_kexec(cfg)
    monkeypatch.setattr(kexec_scenario, "Simulator", _Reference)
    reference = _observed_kexec(cfg)
    assert fast[0] == reference[0]
    assert fast == reference


def test_the_simulator_runs_the_commonest_ops_in_their_inline_forms(monkeypatch):
    """Guards the comparisons above: under the simulator READ_ONCE, WRITE_ONCE,
    the atomics, the irq save/restore pair, the bit ops and the delays make no
    op object (`ops`' inline forms), under the reference every one of them does."""
    from haltlab.engine import ops

    made: dict = {}
    for cls in (ops._ReadOnce, ops._WriteOnce, ops._LocalIrqSave, ops._LocalIrqRestore, ops._Delay, ops._Rmw):
        original = cls.__init__

        def counting(self, *args, _original=original, _name=cls.__name__, **kwargs):
            made[_name] = made.get(_name, 0) + 1
            _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", counting)
    cfg = PanicConfig(cpus=4, others="busy", observe_ns=300_000_000)
    _observed(cfg)
    assert made == {}
    monkeypatch.setattr(panic_scenario, "Simulator", _Reference)
    _observed(cfg)
    assert set(made) == {"_ReadOnce", "_WriteOnce", "_LocalIrqSave", "_LocalIrqRestore", "_Delay", "_Rmw"}


def test_two_simulations_in_threads_of_one_process_give_their_own_results():
    """`engine.context` is one per process; simulations in threads (a thread
    pool's sweep, a Dask worker's threads) take turns per `Simulator.run()` call
    (`simulator._RUNNING_A_CPU`). Thread switches forced at every few
    bytecodes would otherwise let one run's ops read the other's CPU."""
    import sys
    from concurrent.futures import ThreadPoolExecutor

    cfgs = [PanicConfig(cpus=4, observe_ns=50_000_000, seed=s, others=o)
            for s, o in ((1, "busy"), (2, "idle"), (3, "irqsoff"), (4, "busy"))]
    alone = [dumps(simulate_panic(c).result) for c in cfgs]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        with ThreadPoolExecutor(4) as pool:
            together = list(pool.map(lambda c: dumps(simulate_panic(c).result), cfgs))
    finally:
        sys.setswitchinterval(interval)
    assert together == alone


def test_a_kexec_shutdown_runs_its_ops_in_their_inline_forms(monkeypatch):
    """Guards the kexec comparison above as the panic one is guarded: the ops
    the hotplug path awaits per CPU make no op object under the simulator,
    and every one of them does under the reference."""
    import haltlab.scenarios.kexec as kexec_scenario
    from haltlab.engine import ops
    from haltlab.scenarios.kexec import KexecConfig

    classes = (ops._ThisCpuRead, ops._ThisCpuWrite, ops._LocalIrqDisable, ops._LocalIrqEnable, ops._SpinUntil,
               ops._SleepUntil, ops._SafeHalt, ops._SetCpuState, ops._IrqEntry, ops._SendIpiMask, ops._Rmw)
    made: dict = {}
    for cls in classes:
        original = cls.__init__

        def counting(self, *args, _original=original, _name=cls.__name__, **kwargs):
            made[_name] = made.get(_name, 0) + 1
            _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", counting)
    cfgs = [KexecConfig(cpus=4, others="busy"), KexecConfig(cpus=4)]
    for cfg in cfgs:
        _observed_kexec(cfg)
    assert made == {}
    monkeypatch.setattr(kexec_scenario, "Simulator", _Reference)
    for cfg in cfgs:
        _observed_kexec(cfg)
    assert set(made) == {cls.__name__ for cls in classes}
