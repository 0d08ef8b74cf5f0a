"""The machine: CPUs, interrupt delivery, the timer tick, a serial console, and
(for a guest) the hypervisor's accounting.

Semantics kept from the hardware, because the threads turn on them:

* a fixed IPI waits in the target's IRR while its interrupts are off and is taken
  when it enables them; an NMI is taken at once unless an NMI handler is already
  running (then one NMI stays latched), whatever the interrupt flag;
* a CPU whose local APIC is software-disabled (`disable_local_APIC()` in
  `stop_this_cpu()`) accepts no new fixed interrupts but still takes NMIs
  (Intel SDM vol. 3A, "Local APIC State After It Has Been Software Disabled");
* `hlt` with IF=1 wakes on any deliverable interrupt; with IF=0 only on an NMI;
* the periodic tick fires every 1/HZ on CPUs whose tick is running; the kernel
  stops it in NO_HZ idle and `stop_this_cpu()` stops it by disabling the APIC.

The machine is driver-agnostic: under the simulator it schedules ticks and
delivers interrupts after their latency; under the explorer there is no time, no
tick, and every interrupt in flight is a choice the explorer makes.
"""

from __future__ import annotations

import enum
from typing import Callable, Coroutine

from haltlab.engine.core import Driver
from haltlab.engine.memory import Memory, for_each_cpu
from haltlab.engine.ops import DONE, Activity, Busy, Done, Gone, Wait, irq_entry
from haltlab.engine.symmetry import cpu_locals
from haltlab.machine.cpu import WAITING_STATE, Cpu, HwState
from haltlab.machine.hypervisor import Hypervisor

__all__ = ["Machine", "Pvpanic", "BUSY_STATES"]

BUSY_STATES = frozenset((HwState.RUNNING, HwState.IRQS_OFF, HwState.IN_NMI))
"""States in which a vCPU executes and so burns its host CPU."""

_HALTED_STATES = frozenset((HwState.HALTED, HwState.MWAIT))
_GONE, _HALTED = Activity.GONE, Activity.HALTED   # globals: a member lookup costs ~100 ns in 3.11
_IDLE, _A_RUNNING, _SPINNING = Activity.IDLE, Activity.RUNNING, Activity.SPINNING
_OFFLINE, _IN_NMI, _HW_RUNNING, _IRQS_OFF = HwState.OFFLINE, HwState.IN_NMI, HwState.RUNNING, HwState.IRQS_OFF


class Pvpanic(enum.StrEnum):
    """QEMU's `-action panic=` for a guest with a pvpanic device."""

    NONE = "none"            # report the event (QMP GUEST_PANICKED), run on
    PAUSE = "pause"          # stop every vCPU: the host-side remedy to S1

Handler = Callable[[int], Coroutine]


class Machine:
    """CPUs, memory, interrupts and console of one run."""

    def __init__(self, profile, ncpus: int, *, record_timeline: bool = True,
                 pvpanic: str | None = None, jitter=None) -> None:
        if ncpus < 1:
            raise ValueError("a machine needs at least one CPU")
        self.profile = profile
        self.ncpus = ncpus
        self.memory = Memory()
        self.cpus = [Cpu(i) for i in range(ncpus)]
        # irq_ready[cpu]: whether take_interrupt(cpu) would enter an interrupt now
        # (an NMI is pending and none runs, or IF=1 with a fixed IPI pending).
        # Kept up to date by _ready() wherever those four fields change, so a
        # driver can test it at every op boundary for the price of a list index.
        self.irq_ready = [False] * ncpus
        self.hyp = Hypervisor(profile, ncpus) if profile.is_guest else None
        self.tick_period_ns = 1_000_000_000 // int(profile.get("hz"))
        self._costs: dict[str, int] = {}
        self._done: dict[str, Done] = {}
        self._jittered: dict[str, int] = {}     # a jittered key -> the profile's cost
        # `machine.jitter.Jitter`: its keys are drawn afresh at each use
        # (campaigns); every other cost is the profile's, cached.
        self.jitter = jitter
        self._vectors: dict[str, tuple[int, Handler]] = {}
        self._nmi_handler: Handler | None = None
        self._init_handler: Handler | None = None
        self._sipi_handler: Handler | None = None
        self.record_timeline = record_timeline
        self.intervals: list[tuple[int, str, int, int]] = []   # cpu, state, start, end
        self.irq_log: list[tuple[int, int, str]] = []          # time, cpu, vector
        self.console: list[tuple[int, int, int, str]] = []     # start, end, cpu, text
        self.driver: Driver | None = None
        if pvpanic is not None:
            try:
                pvpanic = Pvpanic(pvpanic)
            except ValueError:
                raise ValueError(f"pvpanic={pvpanic!r}: choose None (no device), 'none' or 'pause'") from None
        self.pvpanic: Pvpanic | None = pvpanic   # QEMU's pvpanic device and its `-action panic=`
        self.paused_at_ns: int | None = None

    def __fingerprint__(self) -> str:
        return "machine"

    # --- set-up ------------------------------------------------------------------------

    def attach(self, driver: Driver) -> None:
        """The driver that runs this machine; reached only through the methods
        `Driver` declares for the machine (interrupts in flight, timers)."""
        self.driver = driver

    def request_irq(self, vector: str, priority: int, handler: Handler) -> None:
        """Install `handler(cpu)` for `vector`; a higher priority is taken first,
        as a higher x86 vector number is."""
        self._vectors[vector] = (priority, handler)

    def register_nmi_handler(self, handler: Handler) -> None:
        self._nmi_handler = handler

    def register_reset_handlers(self, init: Handler, sipi: Handler) -> None:
        """What a CPU runs after an INIT (`init(cpu)`: the wait-for-SIPI state)
        and after the STARTUP IPI that ends it (`sipi(cpu)`: the real-mode
        trampoline at the SIPI's vector). Neither returns: INIT resets the CPU,
        so the frames below (a halt loop of the old kernel) are never resumed,
        as on hardware."""
        self._init_handler, self._sipi_handler = init, sipi

    def cost_ns(self, key: str) -> int:
        """The cost of `key`: the profile's, cached, or, for a jittered key, a
        fresh draw around it (the base cached in `_jittered`, so that a
        jittered key costs a dict look-up and a draw, never a KeyError)."""
        v = self._costs.get(key)
        if v is not None:
            return v
        base = self._jittered.get(key)
        if base is not None:
            return self.jitter.draw(base)
        v = self.profile.cost_ns(key)
        if self.jitter is not None and key in self.jitter.keys:
            self._jittered[key] = v
            return self.jitter.draw(v)
        self._costs[key] = v
        return v

    def done(self, key: str) -> Done:
        """`Done(None, cost_ns(key))`, one shared instance per key (`Done`)."""
        d = self._done.get(key)
        if d is not None:
            return d
        base = self._jittered.get(key)
        if base is not None:
            return Done(None, self.jitter.draw(base))
        if self.jitter is not None and key in self.jitter.keys:
            return Done(None, self.cost_ns(key))
        d = self._done[key] = Done(None, self.cost_ns(key))
        return d

    # --- interrupts ---------------------------------------------------------------

    def raise_interrupt(self, cpu: int, vector: str) -> None:
        """An interrupt reaches `cpu`'s local APIC."""
        c = self.cpus[cpu]
        if c.activity is _GONE:
            return
        if vector == "NMI":
            if not c.wait_for_sipi:          # a CPU waiting for SIPI takes only INIT and SIPI
                c.nmi_pending = True
        elif vector == "INIT":               # accepted with the APIC soft-disabled too
            c.init_in_flight = max(0, c.init_in_flight - 1)
            c.init_pending = True
        elif vector == "SIPI":
            if c.wait_for_sipi:              # a SIPI to a CPU not waiting for one is ignored
                c.sipi_pending = True
            elif c.init_in_flight or c.init_pending:
                c.sipi_deferred = True       # it was sent after an INIT still on its way
        elif c.apic_enabled and not c.wait_for_sipi:
            c.pending.add(vector)
        self._ready(c)

    def deliverable(self, cpu: int) -> bool:
        return self.irq_ready[cpu]

    def _ready(self, c: Cpu) -> None:
        """Recompute `irq_ready` for `c`: after any change to its NMI latch, its
        NMI-in-progress flag, its IRR or its interrupt flag."""
        self.irq_ready[c.index] = (c.init_pending or c.sipi_pending
                                   or not c.in_nmi and (c.nmi_pending or (c.irqs_enabled and bool(c.pending))))

    def take_interrupt(self, cpu: int):
        """Enter the highest-priority deliverable interrupt: (coroutine, kind, iret)."""
        if not self.irq_ready[cpu]:
            return None
        c = self.cpus[cpu]
        if c.init_pending or c.sipi_pending:
            return self._take_reset(c)
        if c.nmi_pending:
            c.nmi_pending = False
            c.in_nmi = True
            vector, handler, kind = "NMI", self._nmi_handler, "nmi"

            def iret() -> None:
                c.in_nmi = False
                self._ready(c)
                self._restate(c)
        else:
            if len(c.pending) == 1:
                (vector,) = c.pending        # the usual case: no priorities to weigh
            else:
                vector = max(c.pending, key=lambda v: self._vectors[v][0])
            c.pending.discard(vector)
            c.irqs_enabled = False
            handler, kind = self._vectors[vector][1], "irq"

            def iret() -> None:
                c.irqs_enabled = True
                self._ready(c)
                self._restate(c)
        if handler is None:
            raise RuntimeError(f"CPU{cpu}: {vector} arrived and no handler is installed")
        self._ready(c)
        self._restate(c)
        self.irq_log.append((self._now(), cpu, vector))
        return self._entry(cpu, vector, handler), kind, iret

    def _take_reset(self, c: Cpu):
        """INIT: the CPU resets into wait-for-SIPI (IF clear, no NMI in progress,
        the local APIC back to its reset state, soft-disabled, its IRR empty);
        SIPI: it leaves that state for the trampoline. Neither returns."""
        if c.init_pending:
            c.init_pending = c.sipi_pending = c.nmi_pending = c.in_nmi = False
            c.irqs_enabled = c.apic_enabled = c.tick_enabled = False
            c.pending.clear()
            c.wait_for_sipi = True
            if c.tick_timer is not None:
                self.driver.cancel_timer(c.tick_timer)
                c.tick_timer = None
            wait = self._reset_entry(c, "INIT", self._init_handler)
            if not c.sipi_deferred:
                return wait, "init", None
            # The SIPI that came behind it is taken at once: the wait-for-SIPI
            # frame would never run, so it is not pushed (closed unstarted).
            wait.close()
            c.sipi_deferred = False
        c.sipi_pending = c.wait_for_sipi = False
        return self._reset_entry(c, "SIPI", self._sipi_handler), "sipi", None

    def _reset_entry(self, c: Cpu, vector: str, handler):
        if handler is None:
            raise RuntimeError(f"CPU{c.index}: {vector} arrived and no handler is installed")
        self._ready(c)
        self._restate(c)
        self.irq_log.append((self._now(), c.index, vector))
        return handler(c.index)

    @cpu_locals(cpu=("cpu",))
    async def _entry(self, cpu: int, vector: str, handler: Handler):
        await irq_entry()
        return await handler(cpu)

    def irq_entry(self, cpu: int):
        return self.done("irq_entry_exit_ns")

    # --- what the operations ask of the hardware (haltlab.engine.ops.Hardware) ---------

    def set_irq_flag(self, cpu: int, enabled: bool) -> bool:
        """Set RFLAGS.IF (`cli`/`sti`); returns the previous one (the saved flags)."""
        c = self.cpus[cpu]
        previous = c.irqs_enabled
        if previous is enabled:
            # Nothing changes: `irq_ready` and the accounted state are kept up
            # to date at every change of their inputs, so recomputing them
            # would give what they are (`local_irq_save()` with IF already
            # clear, as in every printk of a panic).
            return previous
        c.irqs_enabled = enabled
        # `_ready(c)`, inlined (the idle loop flips IF at every wake-up).
        self.irq_ready[cpu] = not c.in_nmi and (c.nmi_pending or (enabled and bool(c.pending)))
        self._restate(c)
        return previous

    def hlt(self, cpu: int):
        """`hlt`: sleep until an interrupt is taken (with IF=0, only an NMI)."""
        return Wait(None, _HALTED, wake_on_irq=True)

    def set_cpu_state(self, cpu: int, changes: tuple):
        c = self.cpus[cpu]
        for name, value in changes:
            if name not in ("apic_enabled", "tick_enabled"):
                raise AttributeError(f"set_cpu_state: no hardware state {name!r}")
            setattr(c, name, value)
        if not c.apic_enabled:
            c.tick_enabled = False      # the LVT timer is masked with the APIC
        if c.tick_timer is not None:
            self.driver.cancel_timer(c.tick_timer)
            c.tick_timer = None
        if c.tick_enabled:
            c.tick_timer = self.driver.arm_timer(self.tick_period_ns, self._tick, cpu)
        return DONE

    def uart_write(self, cpu: int, line: str):
        """Write one console line: busy for its length at the console's speed.

        In a guest each character is port I/O to an emulated 16550 (a read of LSR
        and a write of THR, two exits), which `console_ns_per_char` already prices.
        """
        nchars = len(line) + 1
        now = self._now()
        duration = nchars * self.cost_ns("console_ns_per_char")
        self.console.append((now, now + duration, cpu, line))
        if self.hyp is not None:
            self.hyp.vcpus[cpu].exits += 2 * nchars
        return Busy(duration)

    def send_IPI_mask(self, cpu: int, mask: int, vector: str):
        latency = self.cost_ns("nmi_latency_ns" if vector == "NMI" else "ipi_latency_ns")
        if vector == "INIT":
            for target in for_each_cpu(mask):
                self.cpus[target].init_in_flight += 1
        for target in for_each_cpu(mask):
            self.driver.post_interrupt(target, vector, latency)
        if self.hyp is not None:
            self.hyp.vm_exit(cpu)       # the ICR write traps
        return self.done("atomic_op_ns")

    def pvpanic_event(self, cpu: int, event: str):
        """The guest wrote PVPANIC_PANICKED: the VMM reports it and, with
        `-action panic=pause`, stops every vCPU (the host-side remedy to S1)."""
        if self.pvpanic is Pvpanic.PAUSE:
            self.paused_at_ns = self._now()
            return Gone("pvpanic-pause", whole_machine=True)
        return Done(None, self.cost_ns("vm_exit_roundtrip_ns") if self.hyp else 0)

    def emergency_restart(self, cpu: int, reason: str):
        return Gone(reason, whole_machine=True)

    def relocate_kernel(self, cpu: int, image: str):
        """The jump into the loaded (crash) kernel: this kernel's run is over, on
        every CPU (the new kernel is another run; its boot is not modelled)."""
        return Gone("crash_kexec" if image == "kexec_crash_image" else "kexec", whole_machine=True)

    def cpu_off(self, cpu: int):
        """PSCI CPU_OFF: the CPU is powered down; interrupts to it are dropped
        (`raise_interrupt()` ignores a gone CPU)."""
        return Gone("cpu_off")

    def affinity_info(self, cpu: int, target: int):
        """PSCI AFFINITY_INFO: OFF (1) once `target` has executed CPU_OFF, ON
        (0) before; one firmware call (`psci_call_ns`)."""
        off = self.cpus[target].activity is _GONE
        return Done(1 if off else 0, self.cost_ns("psci_call_ns"))

    # --- the tick ------------------------------------------------------------------

    def _tick(self, cpu: int) -> None:
        """The CPU's timer fired (every 1/HZ while its tick runs)."""
        c = self.cpus[cpu]
        if c.activity is Activity.GONE:
            self.driver.cancel_timer(c.tick_timer)
            c.tick_timer = None
            return
        if self.hyp is not None and c.state in BUSY_STATES:
            self.hyp.vm_exit(cpu)       # the timer fires while the guest runs: an exit
        self.raise_interrupt(cpu, "LOCAL_TIMER")
        self.driver.interrupt_now(cpu)

    # --- accounting --------------------------------------------------------------------

    def account(self, cpu: int, activity: Activity, now_ns: int) -> None:
        c = self.cpus[cpu]
        old = c.activity
        c.activity = activity
        if (old is _A_RUNNING or old is _SPINNING) and (activity is _A_RUNNING or activity is _SPINNING):
            # Executing before and after (a spin begins or ends): `hw_state()`
            # then reads only IF and the NMI flag, which did not change, so
            # `_restate()` would find the state as it is.
            return
        self._restate(c, now_ns)

    def _restate(self, c: Cpu, now_ns: int | None = None) -> None:
        """Called at every change that may change `c`'s hardware state; accounts
        the state it leaves (`_close_interval()`, inlined: this runs at most op
        boundaries of a run; `Cpu.hw_state()` too)."""
        a = c.activity
        if a is _IDLE or a is _GONE:
            new = _OFFLINE
        else:
            new = WAITING_STATE.get(a)
            if new is None:
                new = _IN_NMI if c.in_nmi else _HW_RUNNING if c.irqs_enabled else _IRQS_OFF
        old = c.state
        if new is old:
            return
        now = (self.driver.now_ns if self.driver is not None else 0) if now_ns is None else now_ns
        since = c.state_since_ns
        dt = now - since
        c.time_in_ns[old] += dt
        if dt and self.record_timeline:
            self.intervals.append((c.index, old, since, now))
        c.state_since_ns = now
        hyp = self.hyp
        if hyp is not None:
            if old in BUSY_STATES:
                hyp.vcpus[c.index].guest_ns += dt       # Hypervisor.guest_ran()
            if new in _HALTED_STATES:
                hyp.halt(c.index, now)
            elif old in _HALTED_STATES:
                hyp.wake(c.index, now)
        c.state = new

    def _close_interval(self, c: Cpu, now_ns: int) -> None:
        """Account the CPU's current state from `state_since_ns` to `now_ns`."""
        dt = now_ns - c.state_since_ns
        c.time_in_ns[c.state] += dt
        if self.record_timeline and dt:
            self.intervals.append((c.index, c.state, c.state_since_ns, now_ns))
        if self.hyp is not None and c.state in BUSY_STATES:
            self.hyp.guest_ran(c.index, dt)
        c.state_since_ns = now_ns

    def close(self, now_ns: int) -> None:
        """Account every CPU's current state up to `now_ns` (end of a run)."""
        for c in self.cpus:
            self._close_interval(c, now_ns)

    def host_ns(self, cpu: int, now_ns: int) -> int:
        """Host CPU spent on vCPU `cpu` up to `now_ns`, counting the state it is
        in now; nothing after a pvpanic pause (the VMM stopped the vCPUs)."""
        c = self.cpus[cpu]
        if self.paused_at_ns is not None:
            now_ns = min(now_ns, self.paused_at_ns)
        open_ns = max(0, now_ns - c.state_since_ns) if c.state in BUSY_STATES else 0
        return self.hyp.vcpus[cpu].host_ns + open_ns

    def _now(self) -> int:
        return self.driver.now_ns if self.driver is not None else 0

    def fingerprint(self) -> tuple:
        return tuple(c.fingerprint() for c in self.cpus)

