"""The result schema of the kexec scenario (S3): what `run_kexec()` returns.

TypedDicts, as `scenarios.panic_result` (the reasons are the same). Version 1
(2026-12-01). Times are integer ns of model time since power-on (`marks_ns`,
`end_ns`) or between two events; field names carry their unit.
"""

from typing import TypedDict

__all__ = ["SCHEMA_VERSION", "KexecConfigFields", "CpuDown", "KexecResult"]

SCHEMA_VERSION = 1


class KexecConfigFields(TypedDict):
    profile: str
    cpus: int | None
    shutdown: str
    others: str
    kernel: str
    seed: int
    irqs: int | None
    managed_irqs: bool
    freeze: bool
    console_loglevel: int
    pseudo_nmi: bool
    timeline: bool


class CpuDown(TypedDict):
    """One secondary CPU's way down. `down_ns` is its `_cpu_down()` (hotplug)
    or None (the designs that take all at once); `cpu_off_at_ns` is when it
    executed CPU_OFF, from the start of `machine_shutdown()`; `phases_ns` its
    share of each phase (kernel/cpuhp.py's names)."""

    cpu: int
    down_ns: int | None
    cpu_off_at_ns: int | None
    phases_ns: dict[str, int]


class KexecResult(TypedDict):
    schema_version: int
    scenario: str
    config: KexecConfigFields
    profile: str
    cpus: int
    kernel: str
    policies: dict[str, str]
    outcome: str                    # "kexec" (jumped), "bug" (a BUG() stopped it), "hung"
    shutdown_ns: int | None         # "Starting new kernel" to machine_shutdown()'s return
    rcu_gp_ns: int                  # the model's grace period (kernel/rcu.py), an input-derived value
    per_cpu: list[CpuDown]
    phases_ns: dict[str, int]       # the control CPU's time in each phase, summed
    bugs: list[str]
    spis_routed_to_dead_cpus: list[str]
    cpus_running_at_jump: list[int]
    console: list[str]
    marks_ns: dict[str, int]
    state_ns: dict[str, dict[str, int]]
    events: int
    end_ns: int
    limit_ns: int
