"""The named variants from the threads, selectable per run.

A policy is a point in the kernel where a thread proposed (or a test needs) a
different behaviour. Each entry names the thread or commit it comes from; a policy
that never merged says so. Scenarios select them by name from the CLI.

Each point's choices are an enum (`AfterPanic`, `PanicStart`) whose values are the
names runs and results carry, so kernel code compares members, never strings.
`POLICIES` is keyed by those values as plain `str` (option parsers such as click
8.2+ match Enum choices by member *name*, `SAFE_HALT`, not by value).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from haltlab.errors import ConfigError

__all__ = ["AfterPanic", "PanicStart", "ConsoleSpin", "KexecShutdown", "Bringup", "Policy", "POLICIES", "Policies", "choose"]


class AfterPanic(enum.StrEnum):
    """What panic()'s final loop does each pass (`cpu_halt_after_panic()`)."""

    MDELAY = "mdelay"
    SAFE_HALT = "safe_halt"


class PanicStart(enum.StrEnum):
    """How panic() claims `panic_cpu`."""

    CMPXCHG = "cmpxchg"
    LOAD_STORE = "load-store"


class ConsoleSpin(enum.StrEnum):
    """Which CPUs `console_trylock_spinning()` forbids to spin during a panic."""

    STOCK = "stock"
    PANIC_CPU_ONLY = "panic-cpu-only"


class KexecShutdown(enum.StrEnum):
    """How arm64's `machine_shutdown()` takes the secondary CPUs down for kexec (S3)."""

    HOTPLUG = "hotplug"
    SMP_SEND_STOP = "smp-send-stop"
    PARALLEL_HOTPLUG = "parallel-hotplug"
    PARALLEL_HOTPLUG_NAIVE = "parallel-hotplug-naive"


class Bringup(enum.StrEnum):
    """How the new kernel's `smp_init()` brings the x86 APs up after kexec (S4)."""

    INIT_SIPI = "init-sipi"
    PARALLEL = "parallel"
    PARK_SPIN = "park-spin"
    PARK_MWAIT = "park-mwait"


@dataclass(frozen=True)
class Policy:
    point: str
    name: str
    origin: str
    merged: bool


_POINTS: dict[str, type[enum.StrEnum]] = {"after_panic": AfterPanic, "panic_start": PanicStart,
                                          "console_spin": ConsoleSpin, "kexec_shutdown": KexecShutdown,
                                          "bringup": Bringup}

POLICIES: dict[str, dict[str, Policy]] = {
    "after_panic": {
        AfterPanic.MDELAY.value: Policy(
            "after_panic", AfterPanic.MDELAY.value,
            "stock kernel/panic.c final loop: mdelay(PANIC_TIMER_STEP), a busy wait", True),
        AfterPanic.SAFE_HALT.value: Policy(
            "after_panic", AfterPanic.SAFE_HALT.value,
            'S1: "[PATCH 0/2] Reduce CPU usage when finished handling panic" (2025): '
            "x86 cpu_halt_after_panic() = safe_halt(); not merged", False),
    },
    "panic_start": {
        PanicStart.CMPXCHG.value: Policy(
            "panic_start", PanicStart.CMPXCHG.value,
            "stock: atomic_try_cmpxchg(&panic_cpu, PANIC_CPU_INVALID, this_cpu)", True),
        PanicStart.LOAD_STORE.value: Policy(
            "panic_start", PanicStart.LOAD_STORE.value,
            "deliberately broken: atomic_read() then atomic_set(), a check-then-act "
            "race, to show the explorer finds it", False),
    },
    "console_spin": {
        ConsoleSpin.STOCK.value: Policy(
            "console_spin", ConsoleSpin.STOCK.value,
            "whatever the kernel's commits say: with d51507098ff9 no CPU spins while a panic is in "
            "progress (panic_in_progress()), without it every CPU may", True),
        ConsoleSpin.PANIC_CPU_ONLY.value: Policy(
            "console_spin", ConsoleSpin.PANIC_CPU_ONLY.value,
            'S2: Stephen Brennan, "Re: [PATCH] panic: disable optimistic spin after halting CPUs" '
            "(2022-01-18): only the panic CPU refuses to spin (atomic_read(&panic_cpu) == this_cpu), "
            "so a flooding CPU still waits for the hand-over; replaces d51507098ff9's check; not merged "
            "(5.18 merged d51507098ff9 with 13fb0f74d702 and 8ebc476fd51e instead)", False),
    },
    "kexec_shutdown": {
        KexecShutdown.HOTPLUG.value: Policy(
            "kexec_shutdown", KexecShutdown.HOTPLUG.value,
            "stock arm64 machine_shutdown(): smp_shutdown_nonboot_cpus(), one CPU after the other "
            "through CPU hotplug (arch/arm64/kernel/process.c, 5.10 to 7.1)", True),
        KexecShutdown.SMP_SEND_STOP.value: Policy(
            "kexec_shutdown", KexecShutdown.SMP_SEND_STOP.value,
            'S3: Henry Willard, "[PATCH] arm64: kexec: Use smp_send_stop in machine_shutdown" (2020-11-06): '
            "smp_send_stop(), local_cpu_stop() calls cpu_die() when kexec_in_progress, then up to 1 s of "
            "udelay(1) on num_online_cpus(); not merged", False),
        KexecShutdown.PARALLEL_HOTPLUG.value: Policy(
            "kexec_shutdown", KexecShutdown.PARALLEL_HOTPLUG.value,
            "the direction S3's review suggests (James Morse, 2020-11-11: make cpuhp itself faster); no "
            "kernel has it: every cpuhp/N at once, one stop_machine() for all, the targets agree they are "
            "offline before migrating interrupts (kernel/cpuhp.py)", False),
        KexecShutdown.PARALLEL_HOTPLUG_NAIVE.value: Policy(
            "kexec_shutdown", KexecShutdown.PARALLEL_HOTPLUG_NAIVE.value,
            "deliberately broken: parallel-hotplug without the barrier, so a dying CPU may hand its "
            "interrupts to another dying CPU still marked online; to show the explorer finds it", False),
    },
    "bringup": {
        Bringup.INIT_SIPI.value: Policy(
            "bringup", Bringup.INIT_SIPI.value,
            "stock serial bring-up: bringup_nonboot_cpus() wakes one AP at a time with "
            "wakeup_secondary_cpu_via_init() (INIT, two SIPIs) and waits for it to come online "
            "(arch/x86/kernel/smpboot.c, 5.10 to 7.1 with cpuhp.parallel=0)", True),
        Bringup.PARALLEL.value: Policy(
            "bringup", Bringup.PARALLEL.value,
            "6.5's parallel bring-up (0c7ffa32dbd6, 7e75178a0950): every AP kicked to CPUHP_BP_KICK_AP "
            "first, primary threads before their siblings, then onlined one by one", True),
        Bringup.PARK_SPIN.value: Policy(
            "bringup", Bringup.PARK_SPIN.value,
            'S4: shenkai, "[PATCH] use x86 cpu park to speedup smp_init in kexec situation" (2020-12-15): '
            "APs spin in reserved memory on a per-CPU exit word across kexec; the new kernel writes the "
            "entry instead of INIT/SIPI; the CPU bootcoresibling= names (default 0) halts instead; not merged "
            "(kernel/arch/x86_park.py)", False),
        Bringup.PARK_MWAIT.value: Policy(
            "bringup", Bringup.PARK_MWAIT.value,
            "S4's review (Andy Lutomirski, 2020-12-15): one wake word for all parked CPUs, a count of parked CPUs, "
            "MWAIT on the word instead of a busy spin; no kernel has it; the model's reading: counted in before "
            "the stopping CPU goes on, woken before smp_init() with 6.5's STARTUP_READ_APICID, the boot CPU's "
            "sibling left out (kernel/arch/x86_park.py)", False),
    },
}


@dataclass(frozen=True)
class Policies:
    """The policy chosen at each point; names are accepted and kept as members."""

    after_panic: AfterPanic = AfterPanic.MDELAY
    panic_start: PanicStart = PanicStart.CMPXCHG
    console_spin: ConsoleSpin = ConsoleSpin.STOCK
    kexec_shutdown: KexecShutdown = KexecShutdown.HOTPLUG
    bringup: Bringup = Bringup.INIT_SIPI
    extra: tuple = field(default=())

    def __post_init__(self) -> None:
        for point in _POINTS:
            choose(point, getattr(self, point))
            object.__setattr__(self, point, _POINTS[point](getattr(self, point)))

    def describe(self) -> dict[str, str]:
        return {"after_panic": self.after_panic, "panic_start": self.panic_start,
                "console_spin": self.console_spin}


def choose(point: str, name: str, field: str | None = None) -> Policy:
    """The policy `name` at `point`; an unknown one is a `ConfigError` naming
    `field` (the point itself unless a config calls it otherwise, as the race's
    `variant` is the `panic_start` point)."""
    try:
        return POLICIES[point][name]
    except (KeyError, TypeError):
        raise ConfigError(field or point, name,
                          f"unknown policy (choose from {', '.join(POLICIES[point])})") from None
