"""Interrupt delivery semantics, each pinned with a two-CPU inline program.

The rules are the hardware's (Intel SDM vol. 3A, ch. 6 and 11): a fixed interrupt
waits in the IRR while IF=0 and is taken when IF is set; an NMI ignores IF, and a
second NMI during an NMI handler is latched (one) until the handler's IRET; a
software-disabled local APIC accepts no fixed interrupts (nor its LVT timer) but
still delivers NMIs; HLT with IF=0 is ended only by an NMI (or INIT/SMI).
Expected times are computed from the profile's latencies.
"""

from haltlab.engine.context import ktime_get_ns
from haltlab.engine.ops import (
    local_irq_disable, local_irq_enable, native_halt, ndelay, safe_halt, send_IPI_mask,
    send_NMI_mask, set_cpu_state, spin_until,
)
from haltlab.engine.simulator import Simulator
from haltlab.machine.machine import Machine

MS = 1_000_000
US = 1_000


class Rig:
    """A two-CPU kvm-x86 machine; handlers record when their body starts."""

    def __init__(self, profile, ncpus: int = 2, *, handler_ns: int = 10 * US) -> None:
        self.m = Machine(profile, ncpus, record_timeline=False)
        self.ran: dict[str, list[int]] = {}
        self.handler_ns = handler_ns
        for vector, prio in (("X", 0x40), ("Y", 0x50), ("LOCAL_TIMER", 0xEC)):
            self.m.request_irq(vector, prio, self._handler(vector))
        self.m.register_nmi_handler(self._handler("NMI"))
        self.sim: Simulator | None = None
        self.snapshots: list = []

    def _handler(self, vector):
        async def handler(cpu):
            self.ran.setdefault(vector, []).append(ktime_get_ns())
            await ndelay(self.handler_ns)
        return handler

    def at(self, t_ns: int, fn) -> None:
        """Call `fn()` at `t_ns` and keep what it returns."""
        self.sim.schedule(t_ns, lambda: self.snapshots.append(fn()))

    def start(self, tasks: dict, *, seed: int = 0) -> Simulator:
        self.sim = Simulator(self.m, seed=seed)
        for cpu, coro in tasks.items():
            self.sim.start_task(cpu, coro)
        return self.sim

    @property
    def ipi(self) -> int:
        return self.m.cost_ns("ipi_latency_ns")

    @property
    def nmi(self) -> int:
        return self.m.cost_ns("nmi_latency_ns")

    @property
    def entry(self) -> int:
        return self.m.cost_ns("irq_entry_exit_ns")

    @property
    def atomic(self) -> int:
        return self.m.cost_ns("atomic_op_ns")


async def _send_at(t_ns: int, sends):
    """CPU1's program: wait until `t_ns`, then for each (gap_ns, vector) of
    `sends` wait `gap_ns` and send `vector` to CPU0."""
    await ndelay(t_ns)
    for gap, vector in sends:
        if gap:
            await ndelay(gap)
        if vector == "NMI":
            await send_NMI_mask(0b01)
        else:
            await send_IPI_mask(0b01, vector)


def test_fixed_ipi_with_irqs_off_stays_pending_until_local_irq_enable(kvm):
    r = Rig(kvm)
    enabled = []

    async def cpu0():
        await local_irq_disable()
        await ndelay(1 * MS)
        enabled.append(ktime_get_ns())
        await local_irq_enable()
        await ndelay(1 * MS)

    r.start({0: cpu0(), 1: _send_at(100 * US, [(0, "X")])})
    r.at(500 * US, lambda: (set(r.m.cpus[0].pending), list(r.ran)))
    r.sim.run(5 * MS)
    assert r.snapshots == [({"X"}, [])]                 # in the IRR, not run
    assert enabled == [1 * MS]
    assert r.ran["X"] == [1 * MS + r.entry]             # taken at the sti, not later
    assert r.m.cpus[0].pending == set()


def test_nmi_is_taken_with_irqs_off_and_the_delay_keeps_its_deadline(kvm):
    r = Rig(kvm)
    ended = []

    async def cpu0():
        await local_irq_disable()
        await ndelay(10 * MS)
        ended.append(ktime_get_ns())

    r.start({0: cpu0(), 1: _send_at(1 * MS, [(0, "NMI")])})
    r.sim.run(20 * MS)
    assert r.ran["NMI"] == [1 * MS + r.nmi + r.entry]
    assert ended == [10 * MS]
    assert r.m.cpus[0].irqs_enabled is False            # the NMI's iret kept IF=0


def _three_nmis(kvm, victim):
    """Three NMIs 10 us apart into a 100 us NMI handler."""
    r = Rig(kvm, handler_ns=100 * US)
    r.start({0: victim(), 1: _send_at(1 * MS, [(0, "NMI"), (10 * US, "NMI"), (10 * US, "NMI")])})
    r.sim.run(20 * MS)
    first = 1 * MS + r.nmi + r.entry
    return r, first


def test_second_nmi_during_an_nmi_handler_is_latched_once_and_taken_at_its_iret(kvm):
    async def victim():
        await local_irq_disable()
        await ndelay(10 * MS)

    r, first = _three_nmis(kvm, victim)
    # Two handler runs, not three (one latch) and not one (the latch is not lost);
    # the second starts as soon as the first returns, not when the delay ends.
    assert r.ran["NMI"] == [first, first + 100 * US + r.entry]


def test_latched_nmi_is_taken_at_iret_when_the_cpu_spins(kvm):
    async def victim():
        await local_irq_disable()
        await spin_until(lambda: False, timeout_ns=10 * MS, what="never")

    r, first = _three_nmis(kvm, victim)
    assert r.ran["NMI"] == [first, first + 100 * US + r.entry]


def test_disabled_apic_drops_fixed_ipis_stops_the_tick_but_takes_nmis(kvm):
    r = Rig(kvm)

    async def cpu0():
        await set_cpu_state(tick_enabled=True)
        await ndelay(20 * MS)
        await set_cpu_state(apic_enabled=False)        # disable_local_APIC()
        await ndelay(40 * MS)

    r.start({0: cpu0(), 1: _send_at(30 * MS, [(0, "X"), (10 * MS, "NMI")])})
    r.sim.run(100 * MS)
    ticks = r.ran["LOCAL_TIMER"]
    assert len(ticks) in (4, 5, 6) and max(ticks) < 20 * MS     # 20 ms at HZ=250, then none
    assert "X" not in r.ran and r.m.cpus[0].pending == set()   # dropped, not held in the IRR
    nmi_sent = 30 * MS + r.atomic + 10 * MS
    assert r.ran["NMI"] == [nmi_sent + r.nmi + r.entry]


def test_native_halt_with_irqs_off_ignores_ipis_wakes_on_nmi_and_rehalts(kvm):
    r = Rig(kvm)
    wakes = []

    async def cpu0():                       # stop_this_cpu(): for (;;) native_halt();
        await local_irq_disable()
        while True:
            await native_halt()
            wakes.append(ktime_get_ns())

    r.start({0: cpu0(), 1: _send_at(1 * MS, [(0, "X"), (1 * MS, "NMI")])})
    r.at(1500 * US, lambda: (r.m.cpus[0].state, set(r.m.cpus[0].pending)))
    r.at(5 * MS, lambda: r.m.cpus[0].state)
    r.sim.run(10 * MS)
    nmi_at = 1 * MS + r.atomic + 1 * MS + r.nmi
    assert r.snapshots[0] == ("halted", {"X"})          # still asleep, X in the IRR
    assert "X" not in r.ran
    assert r.ran["NMI"] == [nmi_at + r.entry]
    assert wakes == [nmi_at + r.entry + r.handler_ns]   # hlt ends after the NMI's iret
    assert r.snapshots[1] == "halted"                   # and the loop halts again


def test_safe_halt_wakes_on_an_ipi_and_returns_after_the_handler(kvm):
    r = Rig(kvm, handler_ns=50 * US)
    woke = []

    async def cpu0():
        await local_irq_disable()
        await safe_halt()                    # sti; hlt
        woke.append((ktime_get_ns(), list(r.ran.get("X", ()))))

    r.start({0: cpu0(), 1: _send_at(1 * MS, [(0, "X")])})
    r.at(500 * US, lambda: r.m.cpus[0].state)
    r.sim.run(5 * MS)
    taken = 1 * MS + r.ipi + r.entry
    assert r.snapshots == ["halted"]
    assert woke == [(taken + 50 * US, [taken])]


def test_ipis_to_one_vector_coalesce_while_pending_but_not_across_vectors(kvm):
    r = Rig(kvm)

    async def cpu0():
        await local_irq_disable()
        await ndelay(1 * MS)
        await local_irq_enable()
        await ndelay(2 * MS)

    sends = [(0, "X"), (100 * US, "X"), (100 * US, "Y"), (100 * US, "X"), (1500 * US, "X")]
    r.start({0: cpu0(), 1: _send_at(100 * US, sends)})
    r.sim.run(5 * MS)
    # Three X while IF=0 are one IRR bit: one handler run at the sti, plus one for
    # the X sent after; Y is its own bit and, higher priority, goes first.
    assert len(r.ran["X"]) == 2 and len(r.ran["Y"]) == 1
    assert r.ran["Y"][0] == 1 * MS + r.entry
    assert r.ran["Y"][0] < r.ran["X"][0] < 1100 * US < r.ran["X"][1]


def test_tick_fires_every_1_over_hz_only_where_enabled(kvm):
    r = Rig(kvm, handler_ns=3 * US)

    async def ticking():
        await set_cpu_state(tick_enabled=True)
        await ndelay(1_000 * MS)

    async def tickless():
        await ndelay(1_000 * MS)

    r.start({0: ticking(), 1: tickless()})
    r.sim.run(1_000 * MS)
    period = 1_000_000_000 // int(kvm.get("hz"))
    starts = [t for t, cpu, v in r.m.irq_log if v == "LOCAL_TIMER" and cpu == 0]
    assert abs(len(starts) - 250) <= 1
    assert {b - a for a, b in zip(starts, starts[1:])} == {period}
    assert not [1 for _, cpu, _ in r.m.irq_log if cpu == 1]
