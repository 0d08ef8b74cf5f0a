"""One CPU's hardware state: the part of a CPU that is not kernel memory.

Stands for the x86 RFLAGS.IF bit, the NMI-blocking latch, the local APIC (its
interrupt request register, software enable, LVT timer) and whether the CPU is
executing, halted, in mwait or powered off. The kernel's own view (the online
mask, `panic_cpu`) lives in shared memory, not here: a CPU can be "offline" in the
kernel's mask while still executing, which is exactly what S3 is about.
"""

from __future__ import annotations

import enum

from haltlab.engine.ops import Activity

__all__ = ["Cpu", "HwState", "HW_STATES", "WAITING_STATE"]


class HwState(enum.StrEnum):
    """What the hardware is doing, as accounted per CPU (`time_in_ns`)."""

    RUNNING = "running"      # executing with interrupts enabled
    IRQS_OFF = "irqs_off"    # executing with RFLAGS.IF (PSTATE.I) clear
    IN_NMI = "in_nmi"        # executing an NMI handler
    HALTED = "halted"        # hlt / wfi
    MWAIT = "mwait"
    OFFLINE = "offline"      # not executing: no task yet, or gone


HW_STATES = tuple(HwState)
"""Every hardware state, in the order reports list them."""

WAITING_STATE = {Activity.HALTED: HwState.HALTED, Activity.MWAIT: HwState.MWAIT}
"""The hardware state of a CPU waiting in each activity that releases it
(`hw_state()`; `Machine._restate()` inlines it)."""
# Members as module globals for hw_state(), run at every state change: in Python
# 3.11 reading `HwState.RUNNING` is a class-attribute lookup of about 100 ns.
_IDLE, _GONE = Activity.IDLE, Activity.GONE
_RUNNING, _IRQS_OFF, _IN_NMI, _OFFLINE = HwState.RUNNING, HwState.IRQS_OFF, HwState.IN_NMI, HwState.OFFLINE


class Cpu:
    __slots__ = ("index", "irqs_enabled", "in_nmi", "apic_enabled", "tick_enabled",
                 "pending", "nmi_pending", "state", "state_since_ns", "activity",
                 "time_in_ns", "tick_timer", "init_pending", "sipi_pending", "wait_for_sipi",
                 "init_in_flight", "sipi_deferred")

    def __init__(self, index: int) -> None:
        self.index = index
        self.irqs_enabled = True
        self.in_nmi = False
        self.apic_enabled = True   # software-enabled local APIC accepts fixed IPIs
        self.tick_enabled = False
        self.pending: set[str] = set()   # IRR: one bit per vector, so IPIs coalesce
        self.nmi_pending = False         # one NMI latched while another is blocked
        self.state = HwState.OFFLINE
        self.state_since_ns = 0
        self.activity = Activity.IDLE
        self.time_in_ns = dict.fromkeys(HW_STATES, 0)
        self.tick_timer = None           # the driver's Timer while the tick runs
        # S4's INIT/SIPI (machine.Machine.raise_interrupt): an INIT latched, a
        # STARTUP IPI latched, and the wait-for-SIPI state INIT leaves the CPU in.
        self.init_pending = False
        self.sipi_pending = False
        self.wait_for_sipi = False
        # One sender's INIT and SIPI reach the target in the order sent (the
        # ICR-idle waits and udelays between them guarantee it): a SIPI that
        # arrives while the INIT sent before it is still on its way waits for it.
        self.init_in_flight = 0
        self.sipi_deferred = False

    def hw_state(self) -> HwState:
        a = self.activity
        if a is _IDLE or a is _GONE:
            return _OFFLINE
        waiting = WAITING_STATE.get(a)
        if waiting is not None:
            return waiting
        if self.in_nmi:
            return _IN_NMI
        return _RUNNING if self.irqs_enabled else _IRQS_OFF

    def fingerprint(self) -> tuple:
        fp = (self.irqs_enabled, self.in_nmi, self.apic_enabled,
              tuple(sorted(self.pending)), self.nmi_pending)
        if self.init_pending or self.sipi_pending or self.wait_for_sipi or self.init_in_flight or self.sipi_deferred:
            # Only runs that send INIT/SIPI (S4) reach these, so every other
            # run's fingerprints stay what they were.
            fp += (self.init_pending, self.sipi_pending, self.wait_for_sipi, self.init_in_flight, self.sipi_deferred)
        return fp
