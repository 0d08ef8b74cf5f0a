"""The result schema of the panic scenario: what `run_panic()` returns.

TypedDicts, as the lab's results are (`haltlab.lab.schema`): a result is JSON
(printed, written by `--trace`, swept into JSON Lines, read by field name
beside the lab's), and a TypedDict is that JSON's type. `conforms()`
(`haltlab.results`) checks a value against it; the scenario tests run it on
real results of every profile, so a field added, renamed or dropped without
its type fails there.

`schema_version` goes up when a field is renamed, removed or changes meaning
(adding one does not). Version 1 (2026-12-01) against the untyped results
before it: `stop_others_ns` became `panic_to_others_stopped_ns` and the stop
itself, `smp_send_stop_ns`, was added; `config.limit_ns` became the top-level
`limit_ns`, computed from the inputs. Added since (no version change): the
config's `kdump` and `crash_kexec_post_notifiers`, and `crash_kexec_after_ns`.

Field names carry their unit (`_ns`, `_s_per_s`); times are integer ns of
model time since power-on (`marks_ns`, `end_ns`) or between two marks.
"""

from typing import NotRequired, TypedDict

__all__ = ["SCHEMA_VERSION", "PanicConfigFields", "VcpuHostCost", "PanicResult"]

SCHEMA_VERSION = 1


class PanicConfigFields(TypedDict):
    """`PanicConfig` as JSON (enum members as their strings)."""

    profile: str
    cpus: int | None
    after_panic: str
    others: str
    observe_ns: int
    seed: int
    kernel: str
    panic_timeout_s: int
    panic_cpu: int
    trigger_ns: int
    timeline: bool
    pvpanic: str | None
    kdump: bool
    crash_kexec_post_notifiers: bool


class VcpuHostCost(TypedDict):
    """What one vCPU cost its host over the observation window."""

    cpu: int
    host_cpu_s_per_s: float
    host_cpu_ns: int
    perf_samples: int
    cycles: int
    exits: int
    wakeups: int


class PanicResult(TypedDict):
    schema_version: int
    scenario: str
    config: PanicConfigFields
    profile: str
    cpus: int
    kernel: str
    policies: dict[str, str]
    outcome: str                        # panicked-and-finished, rebooted, paused, crash-kexec, hung
    marks_ns: dict[str, int]
    time_to_end_ns: int | None          # panic() entry to "end Kernel panic"
    reboot_after_ns: int | None         # panic() entry to emergency_restart()
    crash_kexec_after_ns: int | None    # panic() entry to machine_kexec() into the kdump kernel
    pvpanic: str | None
    panic_to_others_stopped_ns: int | None
    smp_send_stop_ns: int | None        # the stop itself: smp_send_stop() to the last CPU parked
    state_ns: dict[str, dict[str, int]]  # CPU -> hardware state -> ns
    handlers_after_panic: dict[str, int]  # "CPU<n>:<vector>" -> count
    panic_loop_iterations: int
    blink_intervals_ns: list[int]
    events: int
    end_ns: int
    limit_ns: int
    # A guest's host view, over the observation window (absent on bare metal).
    window_ns: NotRequired[int]
    host_cpu_s_per_s: NotRequired[float]
    host_cpu_ns: NotRequired[int]
    vmm_background_ns: NotRequired[int]
    perf_samples: NotRequired[int]
    cycles: NotRequired[int]
    per_vcpu: NotRequired[list[VcpuHostCost]]
