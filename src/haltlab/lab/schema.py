"""The lab's result schema: what `run_panic`, `run_kexec` and `run_flood` return.

TypedDicts rather than dataclasses: a result is JSON (the CLI prints it, files
hold it, validation reads it by field name beside the model's), and a
TypedDict is that JSON's type. Every result carries `schema_version`; it goes
up when a field is renamed, removed or changes meaning (adding one does not).

Version 1 (2026-12-01), against the untyped results before it: `smp` became
`cpus`; the options `smp`, `kernel`, `panic_timeout` became `cpus`, `bzimage`,
`panic_timeout_s`, and `kernel_package` was added; every result names
`kernel_package` and `kernel_package_version`; a panic run always has its host
CPU fields (None, and `per_vcpu` empty, when nothing was measured) and a
`lab_timeline` (lab/timeline.py).

Added to version 1 (2026-12-01): a flood run reads printk's ring from the
console after the trigger (`trigger_marker`, the line it was found by):
`drop_notices_*` / `dropped_*` (how many "** N printk messages dropped **"
notices, and the sum of their N, before and after the trigger),
`guard_fired` (13fb0f74d702's "Too many dropped messages" line after the
trigger), `trigger_to_guard_ns` (host clock) and `trigger_to_guard_printk_ns`
(guest clock), `flood_lines_after_trigger`; the flood result summarises them
(`guard_fired_runs`, `drop_notices_after_trigger_all`, ...). The flood's
record counts are now split at the trigger line in console order (before:
at the moment the host saw the trigger), so before + after = total.

Added to version 1 (2026-12-01, issue 9): `kernel_build`, what a kernel built
from source is (the patch set and its digest, the source package and its
version, the config's sha256, the compiler; None for a Debian package or a
user's bzImage), and the option `build` (the patch set booted).

Added to version 1 (2026-12-01, issue 10): an arm64 kexec (`lab kexec --arch
arm64`) measures the old kernel's shutdown: per run `shutdown_ns` ("Starting
new kernel" to "Bye!", printk clock; `shutdown_host_ns` the host's), per CPU
in the order they died `killed_cpus`, `psci_polled_ms`, `per_cpu_shutdown_ns`
(between consecutive psci kill lines), `last_kill_to_bye_ns`, `unclean_cpus`,
and with `--cpuhp-trace` `cpuhp_phases`; the result adds `arch`, `others`,
the QEMU machine and CPU, the kernel parameters it added, and summaries
(`per_cpu_shutdown_ns` pools every CPU of every completed run;
`*_all` lists them). These fields are absent from an x86 kexec result. The
options of every lab result gain `arch` (and kexec's `others`, `cpuhp_trace`).

Added to version 1 (2026-12-02, issue 11): every kexec run records the host's
load (`host_busy_cpus`, `qemu_cpus`, `other_busy_cpus`, the 1-minute load
average at its start and end; lab/hostload.py) and the result summarises the
first three; an x86 kexec measures the reboot by phase (lab/parse_x86.py):
per run `phases` (parse_x86.PHASES, each on the clock `phase_clocks` names),
`phases_host` (all on the host's; they add up to `downtime_ns`, the host's
time from the marker to the second kernel's "Run /init"),
`decompressor_line`, and per kernel (`_first`, `_second`)
`smp_init_*_host_ns`, `per_ap_bringup_ns`, `ap_order`, `calibration` and
`cpuhp_up`; the result adds
`arch`, `others`, `lpj`, `kernel_params`, `phase_clocks` and summaries. The
option `lpj` (the kernel's `lpj=`) is new, and `cpuhp_trace` now serves x86.

Fields carry their unit (`_ns`, `_s_per_s`, `_hz`); `Summary` is a median and
min-max over runs (stats.py). `conforms()` checks a value against a type here,
keys and nesting (tests/lab/test_schema.py runs it on real results).
"""

from typing import Any, NotRequired, TypedDict

from haltlab.results import conforms

__all__ = ["SCHEMA_VERSION", "Summary", "CpuhpPhases", "Calibration", "CpuhpUp", "KernelBuild", "VcpuUsage",
           "TimelineCpu", "LabTimeline", "Tails", "Header",
           "PanicRun", "VcpuSummary", "PanicResult", "KexecRun", "KexecResult", "FloodRun", "FloodResult",
           "conforms"]

SCHEMA_VERSION = 1


class Summary(TypedDict):
    median: float | int
    min: float | int
    max: float | int
    n: int


class VcpuUsage(TypedDict):
    cpu_index: int
    thread_id: int
    host_cpu_s: float | None
    host_cpu_s_per_s: float | None
    perf_samples: int | None
    perf_samples_per_s: int | None
    host_runqueue_wait_s_per_s: float | None
    host_cpu_demand_s_per_s: float | None


class TimelineCpu(TypedDict):
    cpu: int
    intervals: list[list]  # [start_ns, end_ns, "running" | "halted"], ns from the trigger


class LabTimeline(TypedDict):
    cpus: list[TimelineCpu]
    marks_ns: dict[str, int]
    sample_interval_ns: int
    running_min_share: float
    run: NotRequired[int]  # in a result's own copy: which run it is


class Tails(TypedDict):
    """What a run that did not end as expected is judged by."""

    console_tail: list[str]
    progress_tail: list[str]
    qemu_stderr_tail: list[str]


class _RunTails(TypedDict, total=False):
    """A run's tails, kept only when it did not end as expected (`Tails`)."""

    console_tail: list[str]
    progress_tail: list[str]
    qemu_stderr_tail: list[str]


class KernelBuild(TypedDict):
    """A kernel lab/build.py built (lab/build.py's BuildInfo)."""

    patch_set: str
    patch_set_sha256: str
    source_package: str
    source_version: str
    kernel_version: str
    model_kernel: str
    model_policy: str | None
    fragment_sha256: str
    config_sha256: str
    gcc_version: str
    key: str


class Header(TypedDict):
    schema_version: int
    experiment: str
    source: str
    kernel_release: str
    kernel_package: str | None
    kernel_package_version: str | None
    kernel_source: str
    kernel_build: KernelBuild | None
    accelerator: str
    qemu_version: str
    cpus: int
    n_runs: int
    options: dict[str, Any]


class PanicRun(_RunTails):
    outcome: str
    qemu_pid: int
    triggered: bool
    window_ns: int | None
    host_cpu_s: float | None
    host_cpu_s_per_s: float | None
    perf_samples: int | None
    perf_samples_per_s: int | None
    vcpu_demand_s_per_s: float | None
    per_vcpu: list[VcpuUsage]
    panic_message: str | None
    pvpanic_event: str | None
    boot_to_trigger_ns: int | None
    panic_to_end_ns: int | None
    trigger_to_end_ns: int | None
    panic_to_end_host_ns: int | None
    panic_console_lines: int | None
    panic_console_chars: int | None
    panic_max_line_gap_ns: int | None
    trigger_to_pvpanic_ns: int | None
    panic_to_reset_ns: int | None
    lab_timeline: LabTimeline | None
    boot_retries: NotRequired[list["PanicRun"]]


class VcpuSummary(TypedDict):
    cpu_index: int
    host_cpu_s_per_s: Summary | None
    perf_samples_per_s: Summary | None
    host_cpu_demand_s_per_s: Summary | None


class PanicResult(Header):
    pvpanic: str
    panic_timeout_s: int
    window_ns: int
    settle_ns: int
    perf_freq_hz: int
    host_cpu_s_per_s: float | None
    host_cpu_s_per_s_stats: Summary | None
    perf_samples_per_s: Summary | None
    vcpu_demand_s_per_s: Summary | None
    per_vcpu: list[VcpuSummary]
    outcomes: dict[str, int]
    panicked_and_finished: int
    boot_to_trigger_ns: Summary | None
    panic_to_end_ns: Summary | None
    trigger_to_end_ns: Summary | None
    trigger_to_pvpanic_ns: Summary | None
    panic_to_reset_ns: Summary | None
    panic_to_end_host_ns: Summary | None
    panic_console_lines: Summary | None
    panic_console_chars: Summary | None
    panic_max_line_gap_ns: Summary | None
    lab_timeline: LabTimeline | None
    runs: list[PanicRun]


class CpuhpPhases(TypedDict):
    """One CPU's `_cpu_down()` from the cpuhp trace events (parse.cpuhp_phases)."""

    cpu: int
    ap_teardown_ns: int | None
    sched_cpu_deactivate_ns: int | None
    takedown_cpu_ns: int | None
    bp_dead_ns: int | None
    cpu_down_ns: int
    # what the trace costs inside each phase (since 2026-12-02; older results lack them)
    ap_wake_ns: NotRequired[int | None]
    ap_wake_trace_chars: NotRequired[int | None]
    ap_teardown_trace_chars: NotRequired[int | None]
    sched_cpu_deactivate_trace_chars: NotRequired[int | None]
    takedown_cpu_trace_chars: NotRequired[int | None]
    bp_dead_trace_chars: NotRequired[int | None]
    trace_ns_per_char: NotRequired[float | None]


class Calibration(TypedDict):
    """What one x86 boot printed about its delay loop (parse_x86.delay_calibration)."""

    bsp_line: str | None
    ap_direct_failures: int
    tsc_unstable_reason: str | None


class CpuhpUp(TypedDict):
    """One AP's `_cpu_up()` from the cpuhp trace events (parse_x86.cpuhp_up_phases)."""

    cpu: int
    prepare_ns: int | None
    bringup_cpu_ns: int | None
    cpu_up_ns: int


class KexecRun(_RunTails):
    outcome: str
    qemu_pid: int
    cold_boot_to_first_line_ns: int | None
    kexec_downtime_ns: int | None
    marker_to_starting_ns: int | None
    starting_to_first_line_ns: int | None
    smp_init_first_ns: int | None
    smp_init_second_ns: int | None
    cpus_first: int | None
    cpus_second: int | None
    kexec_to_second_init_ns: int | None
    boot_to_kexec_ns: int | None
    boot_retries: NotRequired[list["KexecRun"]]
    # arm64 only
    shutdown_ns: NotRequired[int | None]
    shutdown_host_ns: NotRequired[int | None]
    killed_cpus: NotRequired[list[int]]
    psci_polled_ms: NotRequired[list[int]]
    per_cpu_shutdown_ns: NotRequired[list[int | None]]
    per_cpu_shutdown_host_ns: NotRequired[list[int]]
    last_kill_to_bye_ns: NotRequired[int | None]
    unclean_cpus: NotRequired[list[int]]
    cpuhp_events: NotRequired[int]
    cpuhp_phases: NotRequired[list[CpuhpPhases]]
    # both arches, from 2026-12-02
    host_busy_cpus: NotRequired[float | None]
    qemu_cpus: NotRequired[float | None]
    other_busy_cpus: NotRequired[float | None]
    host_loadavg_1m_start: NotRequired[float | None]
    host_loadavg_1m_end: NotRequired[float | None]
    host_cpus: NotRequired[int | None]
    # x86 only, from 2026-12-02
    phases: NotRequired[dict[str, int | None]]
    phases_host: NotRequired[dict[str, int | None]]
    downtime_ns: NotRequired[int | None]
    decompressor_line: NotRequired[str | None]
    smp_init_first_host_ns: NotRequired[int | None]
    smp_init_second_host_ns: NotRequired[int | None]
    per_ap_bringup_ns_first: NotRequired[list[int | None]]
    per_ap_bringup_ns_second: NotRequired[list[int | None]]
    ap_order_first: NotRequired[list[int]]
    ap_order_second: NotRequired[list[int]]
    calibration_first: NotRequired[Calibration | None]
    calibration_second: NotRequired[Calibration | None]
    cpuhp_up_first: NotRequired[list[CpuhpUp]]
    cpuhp_up_second: NotRequired[list[CpuhpUp]]


class KexecResult(Header):
    outcomes: dict[str, int]
    completed: int
    cold_boot_to_first_line_ns: Summary | None
    kexec_downtime_ns: Summary | None
    marker_to_starting_ns: Summary | None
    starting_to_first_line_ns: Summary | None
    smp_init_first_ns: Summary | None
    smp_init_second_ns: Summary | None
    kexec_to_second_init_ns: Summary | None
    boot_to_kexec_ns: Summary | None
    runs: list[KexecRun]
    # arm64 only
    arch: NotRequired[str]
    others: NotRequired[str]
    qemu_machine: NotRequired[str]
    qemu_cpu: NotRequired[str]
    kernel_params: NotRequired[list[str]]
    shutdown_ns: NotRequired[Summary | None]
    shutdown_host_ns: NotRequired[Summary | None]
    per_cpu_shutdown_ns: NotRequired[Summary | None]
    per_cpu_shutdown_ns_all: NotRequired[list[int]]
    psci_polled_ms: NotRequired[Summary | None]
    psci_polled_ms_all: NotRequired[list[int]]
    last_kill_to_bye_ns: NotRequired[Summary | None]
    runs_all_cpus_killed: NotRequired[int]
    # both arches, from 2026-12-02
    host_busy_cpus: NotRequired[Summary | None]
    other_busy_cpus: NotRequired[Summary | None]
    qemu_cpus: NotRequired[Summary | None]
    # x86 only, from 2026-12-02
    lpj: NotRequired[int | None]
    phase_clocks: NotRequired[dict[str, str]]
    downtime_ns: NotRequired[Summary | None]
    phases: NotRequired[dict[str, Summary | None]]
    phases_host: NotRequired[dict[str, Summary | None]]
    per_ap_bringup_ns_first: NotRequired[Summary | None]
    per_ap_bringup_ns_first_all: NotRequired[list[int]]
    per_ap_bringup_ns_second: NotRequired[Summary | None]
    per_ap_bringup_ns_second_all: NotRequired[list[int]]
    smp_init_first_host_ns: NotRequired[Summary | None]
    smp_init_second_host_ns: NotRequired[Summary | None]


class FloodRun(_RunTails):
    outcome: str
    qemu_pid: int
    triggered: bool
    trigger_marker: str | None  # "sysrq" | "panic": the console line the trigger was found at
    flood_lines_before_trigger: int
    flood_lines_after_trigger: int
    flood_lines_total: int
    console_bytes: int
    dropped_messages: int  # the whole run's
    drop_notices_before_trigger: int
    dropped_before_trigger: int
    drop_notices_after_trigger: int
    dropped_after_trigger: int
    guard_fired: bool
    trigger_to_guard_ns: int | None
    trigger_to_guard_printk_ns: int | None
    panic_to_end_ns: int | None
    trigger_to_end_ns: int | None
    trigger_to_pvpanic_ns: int | None
    delay_s: float
    boot_retries: NotRequired[list["FloodRun"]]


class FloodResult(Header):
    seed: int
    timeout_ns: int
    hangs: int
    never_triggered: int
    hang_rate: float | None
    outcomes: dict[str, int]
    trigger_to_end_ns: Summary | None
    trigger_to_end_ns_all: list[int]
    panic_to_end_ns: Summary | None
    flood_lines_before_trigger: Summary | None
    dropped_messages: Summary | None
    guard_fired_runs: int  # among the runs that triggered, as the *_after_trigger figures
    drop_notices_before_trigger: Summary | None
    dropped_before_trigger: Summary | None
    drop_notices_after_trigger: Summary | None
    drop_notices_after_trigger_all: list[int]
    dropped_after_trigger: Summary | None
    flood_lines_after_trigger: Summary | None
    trigger_to_guard_ns: Summary | None
    trigger_to_guard_printk_ns: Summary | None
    runs: list[FloodRun]
