"""One CPU's hardware state: the part of a CPU that is not kernel memory.

Stands for the x86 RFLAGS.IF bit, the NMI-blocking latch, the local APIC (its
interrupt request register, software enable, LVT timer) and whether the CPU is
executing, halted, in mwait or powered off. The kernel's own view (the online
mask, `panic_cpu`) lives in shared memory, not here: a CPU can be "offline" in the
kernel's mask while still executing, which is exactly what S3 is about.
"""

from __future__ import annotations

__all__ = ["Cpu", "HW_STATES"]

HW_STATES = ("running", "irqs_off", "in_nmi", "halted", "mwait", "offline")


class Cpu:
    __slots__ = ("index", "irqs_enabled", "in_nmi", "apic_enabled", "tick_enabled",
                 "pending", "nmi_pending", "state", "state_since_ns", "activity",
                 "time_in_ns", "tick_timer")

    def __init__(self, index: int) -> None:
        self.index = index
        self.irqs_enabled = True
        self.in_nmi = False
        self.apic_enabled = True   # software-enabled local APIC accepts fixed IPIs
        self.tick_enabled = False
        self.pending: set[str] = set()   # IRR: one bit per vector, so IPIs coalesce
        self.nmi_pending = False         # one NMI latched while another is blocked
        self.state = "offline"
        self.state_since_ns = 0
        self.activity = "idle"
        self.time_in_ns = dict.fromkeys(HW_STATES, 0)
        self.tick_timer = None           # the driver's Timer while the tick runs

    def hw_state(self) -> str:
        a = self.activity
        if a in ("idle", "gone"):
            return "offline"
        if a in ("halted", "mwait"):
            return a
        if self.in_nmi:
            return "in_nmi"
        return "running" if self.irqs_enabled else "irqs_off"

    def fingerprint(self) -> tuple:
        return (self.irqs_enabled, self.in_nmi, self.apic_enabled,
                tuple(sorted(self.pending)), self.nmi_pending)
