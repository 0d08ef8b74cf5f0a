"""The machine reaches its driver only through what `Driver` declares for it.

`engine.core.Driver` declares `post_interrupt`, `interrupt_now`, `arm_timer`,
`cancel_timer` (and `now_ns`); the simulator and the explorer each implement them.
Before, the machine read `getattr(driver, "timed")` and called the simulator's
own `schedule()` and `rng`, so another driver could not run it.
"""

import ast
import inspect

import haltlab.machine.machine as machine_module
from haltlab.engine.core import Driver
from haltlab.engine.explorer import ExplorerDriver
from haltlab.engine.ops import ndelay, set_cpu_state
from haltlab.engine.simulator import Simulator
from haltlab.machine.machine import Machine

DECLARED = {"now_ns", "post_interrupt", "interrupt_now", "arm_timer", "cancel_timer"}


def _driver_uses() -> set[str]:
    """Every attribute machine.py reads on `self.driver`, and any getattr on it."""
    tree = ast.parse(inspect.getsource(machine_module))
    used = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                and node.value.attr == "driver"):
            used.add(node.attr)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "getattr":
            if any(isinstance(a, ast.Attribute) and a.attr == "driver" for a in node.args):
                used.add("getattr")
    return used


def test_machine_uses_only_the_declared_driver_interface():
    used = _driver_uses()
    assert used and used <= DECLARED, used - DECLARED


def test_both_drivers_implement_every_declared_method():
    for name in DECLARED - {"now_ns"}:
        for cls in (Simulator, ExplorerDriver):
            assert getattr(cls, name) is not getattr(Driver, name) or name == "cancel_timer", (cls, name)


class _Recording(Simulator):
    def __init__(self, machine) -> None:
        self.armed, self.cancelled = [], []
        super().__init__(machine)

    def arm_timer(self, period_ns, fn, *args):
        timer = super().arm_timer(period_ns, fn, *args)
        self.armed.append((period_ns, timer))
        return timer

    def cancel_timer(self, timer):
        self.cancelled.append(timer)
        super().cancel_timer(timer)


def test_the_tick_is_a_periodic_timer_armed_and_cancelled_through_the_driver(kvm):
    m = Machine(kvm, 1, record_timeline=False)
    m.request_irq("LOCAL_TIMER", 1, lambda cpu: ndelay(1_000))
    sim = _Recording(m)

    async def task():
        await set_cpu_state(tick_enabled=True)
        await ndelay(100_000_000)                  # 100 ms with the tick running
        await set_cpu_state(tick_enabled=False)
        await ndelay(100_000_000)                  # 100 ms without

    sim.start_task(0, task())
    sim.run(300_000_000)
    period = 1_000_000_000 // int(kvm.get("hz"))
    assert [p for p, _ in sim.armed] == [period]
    assert sim.cancelled == [sim.armed[0][1]]
    ticks = [t for t, _, vector in m.irq_log if vector == "LOCAL_TIMER"]
    assert len(ticks) == 100_000_000 // period            # 25 at HZ=250, none after
    assert all(b - a == period for a, b in zip(ticks, ticks[1:]))
    assert ticks[-1] < 100_000_000


def test_the_explorer_arms_timers_that_never_fire(kvm):
    m = Machine(kvm, 1, record_timeline=False)
    run = ExplorerDriver(m)

    async def task():
        await set_cpu_state(tick_enabled=True)
        await ndelay(1_000)

    run.start_task(0, task())
    while run.choices():
        run.step(run.choices()[0])
    assert m.cpus[0].tick_timer is not None and m.irq_log == []
