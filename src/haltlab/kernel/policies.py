"""The named variants from the threads, selectable per run.

A policy is a point in the kernel where a thread proposed (or a test needs) a
different behaviour. Each entry names the thread or commit it comes from; a policy
that never merged says so. Scenarios select them by name from the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from haltlab.errors import UserError

__all__ = ["Policy", "POLICIES", "Policies", "choose"]


@dataclass(frozen=True)
class Policy:
    point: str
    name: str
    origin: str
    merged: bool


POLICIES: dict[str, dict[str, Policy]] = {
    "after_panic": {
        "mdelay": Policy("after_panic", "mdelay",
                         "stock kernel/panic.c final loop: mdelay(PANIC_TIMER_STEP), a busy wait", True),
        "safe_halt": Policy("after_panic", "safe_halt",
                            'S1: "[PATCH 0/2] Reduce CPU usage when finished handling panic" (2025): '
                            "x86 cpu_halt_after_panic() = safe_halt(); not merged", False),
    },
    "panic_start": {
        "cmpxchg": Policy("panic_start", "cmpxchg",
                          "stock: atomic_try_cmpxchg(&panic_cpu, PANIC_CPU_INVALID, this_cpu)", True),
        "load-store": Policy("panic_start", "load-store",
                             "deliberately broken: atomic_read() then atomic_set(), a check-then-act "
                             "race, to show the explorer finds it", False),
    },
}


@dataclass(frozen=True)
class Policies:
    after_panic: str = "mdelay"
    panic_start: str = "cmpxchg"
    extra: tuple = field(default=())

    def __post_init__(self) -> None:
        for point in ("after_panic", "panic_start"):
            choose(point, getattr(self, point))

    def describe(self) -> dict[str, str]:
        return {"after_panic": self.after_panic, "panic_start": self.panic_start}


def choose(point: str, name: str) -> Policy:
    try:
        return POLICIES[point][name]
    except KeyError:
        raise UserError(f"{point}: unknown policy {name!r} (choose from {', '.join(POLICIES[point])})") from None
