"""An interrupt that arrives while a handler runs is taken at its `iret`, even
when the interrupted code is in the middle of a delay (found by the 8192-CPU
benchmark: a REBOOT IPI that arrived during a tick handler waited for the next
tick, 4 ms later)."""

from haltlab.engine.ops import local_irq_enable, ndelay, send_IPI_mask
from haltlab.engine.simulator import Simulator
from haltlab.machine.machine import Machine
from haltlab.machine.profile import load_profile


def test_ipi_arriving_during_a_handler_is_taken_at_iret_not_at_the_delays_end():
    machine = Machine(load_profile("kvm-x86"), 2, record_timeline=False)
    taken: dict[str, int] = {}

    async def slow_handler(cpu):
        await ndelay(10_000)                 # 10 us in the first handler
        taken.setdefault("first_done", sim.now_ns)

    async def second_handler(cpu):
        taken["second"] = sim.now_ns

    machine.request_irq("FIRST", 1, slow_handler)
    machine.request_irq("SECOND", 2, second_handler)

    async def victim(k=None):
        await local_irq_enable()
        await ndelay(1_000_000_000)          # a long delay, interrupted twice

    async def sender(k=None):
        await send_IPI_mask(1, "FIRST")      # arrives after the IPI latency
        await ndelay(3_000)                  # lands inside the first handler
        await send_IPI_mask(1, "SECOND")

    sim = Simulator(machine, seed=1)
    sim.start_task(0, victim())
    sim.start_task(1, sender())
    sim.run(2_000_000_000)
    assert "second" in taken
    # Taken right after the first handler returned, not a second later.
    assert taken["second"] - taken["first_done"] < 5_000
