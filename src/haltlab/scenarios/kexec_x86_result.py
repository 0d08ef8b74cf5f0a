"""The result schema of the x86 kexec reboot (S4): what `run_kexec_x86()` returns.

TypedDicts, as `scenarios.kexec_result`. Version 1 (2026-12-02). Times are
integer ns; `marks_ns` and `end_ns` from power-on, `phases` between two
marks, each AP's `*_ns` from the new kernel's `smp_init()` entry.
"""

from typing import TypedDict

__all__ = ["SCHEMA_VERSION", "PHASES", "ApUp", "X86KexecResult"]

SCHEMA_VERSION = 1

PHASES = ("old_kernel_shutdown", "image_copy_and_purgatory", "boot_to_smp_init", "smp_init", "smp_init_to_init")
"""The reboot by phase, between the marks machine_shutdown, machine_kexec,
new_kernel, smp_init, smp_init_done and init."""


class ApUp(TypedDict):
    """One AP's way up: when `do_boot_cpu()` started on it (`kicked_ns`), when
    it reported alive (6.5+: SYNC_STATE_ALIVE; 5.17: `cpu_initialized_mask`),
    set itself online, and when its `cpu_up()` returned (`up_ns`); its TSC
    sync check and delay calibration if it ran them; whether it was parked
    and what woke it ("init-sipi", "park", or None if it never came up)."""

    cpu: int
    package: int
    thread: int
    kicked_ns: int | None
    alive_ns: int | None
    online_ns: int | None
    up_ns: int | None
    tsc_sync_ns: int | None
    calibrate_ns: int | None
    parked: bool
    woken_by: str | None


class X86KexecResult(TypedDict):
    schema_version: int
    scenario: str
    arch: str
    config: dict
    profile: str
    cpus: int
    kernel: str
    policies: dict[str, str]
    outcome: str                    # "init" (reached), "reset" (a triple fault), "hung"
    reset_reason: str | None
    downtime_ns: int | None         # "Starting new kernel" to the new kernel's init
    smp_init_ns: int | None
    phases: dict[str, int | None]
    init_udelay_us: int
    cpus_online: int
    per_ap: list[ApUp]
    park_violations: list[str]
    console: list[str]
    marks_ns: dict[str, int]
    state_ns: dict[str, dict[str, int]]
    events: int
    end_ns: int
    limit_ns: int
