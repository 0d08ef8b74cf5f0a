"""`haltlab lab kexec`: a kexec reboot into the same kernel, timed (S4's question).

The first kernel's /init loads the same kernel with `kexec -l`, prints a marker
and runs `kexec -e`; the second kernel's /init (told by `haltlab.stage=2`)
reports and exits through isa-debug-exit. Measured per run:
- `kexec_downtime_ns`: host time from the marker line (printed just before
  `kexec -e`) to the second kernel's first console line (`Linux version`,
  printed by earlycon), i.e. shutdown of the old kernel + the jump + early boot;
- `smp_init_first_ns` / `smp_init_second_ns`: each kernel's bring-up of the
  secondary CPUs, by its own printk clock ("Bringing up secondary CPUs" to
  "Brought up"), the quantity S4's 210 ms vs 80 ms is about.

`arch=arm64` (S3's question) boots Debian's arm64 kernel on QEMU's virt board
(lab/arch.py) and also measures the old kernel's shutdown, from the kernel's
own lines (parse.arm64_kexec_shutdown): `shutdown_ns` from kernel_kexec()'s
"Starting new kernel" to machine_kexec()'s "Bye!", and per secondary CPU,
taken down one at a time by smp_shutdown_nonboot_cpus(), the time between
consecutive "psci: CPUn killed (polled N ms)" lines (`per_cpu_shutdown_ns`)
and the polled ms. `others=busy` starts a spinning task pinned to each CPU
before `kexec -l`. `cpuhp_trace=True` adds `trace_event=cpuhp:* tp_printk`,
the cpuhp state machine's trace events on the console, whose cost the
docs/lab.md campaign measured.

`arch=x86_64` (S4's question) also measures the whole reboot by phase
(lab/parse_x86.py: the old kernel's shutdown, the jump and purgatory, the
decompression, the new kernel's boot to smp_init(), smp_init(), smp_init()
to init; `phases` on the best clock for each, `phases_host` all on the
host's, `downtime_ns` marker to the stage-2 "Run /init"), each kernel's
per-AP bring-up and what it printed about the delay loop. The guest boots
with `earlyprintk=serial` instead of `earlycon=` so the kexec'd kernel's
decompressor prints (the end of purgatory). `lpj=N` presets
loops_per_jiffy, which skips every AP's delay-loop calibration; with
`cpuhp_trace` the cpuhp trace events time each AP's `_cpu_up()`. Every run
records the host's load (lab/hostload.py): under TCG the guest's clocks
follow the host's, so a shared host stretches every phase.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from pathlib import Path

from haltlab.errors import ConfigError, UserError
from haltlab.lab import hostload, initramfs, userland
from haltlab.lab.arch import FACTS, Arch, parse_arch
from haltlab.lab.cache import cache_dir
from haltlab.lab.classify import COMPLETED, FAILED, classify
from haltlab.lab.experiments.common import (
    LabConfig, ProgressFn, check_seconds, elapsed_ns, guest_spec, header, outcome_counts, prepare, repeat,
)
from haltlab.lab.guest import kexec_init
from haltlab.lab.images import KernelImage
from haltlab.lab.parse import arm64_kexec_shutdown, boot_starts, exit_code, find, smp_init_spans
from haltlab.lab.parse_x86 import PHASE_CLOCKS, PHASES, x86_kexec_phases
from haltlab.lab.runner import Guest
from haltlab.lab.stats import summarize

__all__ = ["KexecConfig", "Others", "default_timeout_s", "run_kexec", "kexec_once", "kexec_timings", "KEXEC_MARKER", "ARM64_FIELDS",
           "load_shutdown", "X86_EARLY_CONSOLE", "X86_FIELDS", "load_reboot", "kernel_params", "x86_fields"]

KEXEC_MARKER = "haltlab: kexec -e"
STARTING = "Starting new kernel"
KEXEC_BINARY = Path("/usr/sbin/kexec")


class Others(enum.Enum):
    """What the CPUs do while the old kernel shuts down."""

    IDLE = "idle"
    BUSY = "busy"   # one `while :; do :; done` pinned to each CPU


def _others(value: str | Others) -> Others:
    try:
        return Others(value)
    except ValueError:
        raise ConfigError("others", value, "expected idle or busy") from None


# Kernel parameters of an arm64 run: every pr_info on the console (the psci
# kill lines and "Bye!" are pr_info; Debian's default console loglevel shows
# them, loglevel=8 makes sure), and with cpuhp_trace the cpuhp trace events.
ARM64_PARAMS = ("loglevel=8",)
CPUHP_TRACE_PARAMS = ("trace_event=cpuhp:*", "tp_printk")
# x86: the decompressor parses earlyprintk= (arch/x86/boot/early_serial_console.c)
# but not earlycon=, so with it the kexec'd kernel's extract_kernel() prints,
# which ends the jump-and-purgatory phase; one boot console, as earlycon was.
X86_EARLY_CONSOLE = "earlyprintk=serial,ttyS0,115200"
# x86: every pr_info on the console (the calibration lines), as on arm64.
X86_PARAMS = ("loglevel=8",)


@dataclass(frozen=True)
class KexecConfig(LabConfig):
    timeout_s: float = 120.0  # whole cycle: boot, kexec, second boot
    others: Others = Others.IDLE
    cpuhp_trace: bool = False  # cpuhp trace events on the console (arm64: per CPU down; x86: per AP up)
    lpj: int | None = None  # the kernel's lpj=: preset loops_per_jiffy, no delay-loop calibration

    ARCHES = (Arch.X86_64, Arch.ARM64)

    def validate(self) -> None:
        super().validate()
        _others(self.others)
        check_seconds("timeout_s", self.timeout_s)
        if self.memory_mb < 384:
            raise ConfigError("memory_mb", self.memory_mb, "kexec needs room for two kernels, at least 384")
        if self.cpuhp_trace not in (True, False):
            raise ConfigError("cpuhp_trace", self.cpuhp_trace, "expected true or false")
        if self.lpj is not None and (isinstance(self.lpj, bool) or not isinstance(self.lpj, int)
                                     or not 1 <= self.lpj < 2**63):
            raise ConfigError("lpj", self.lpj, "must be a positive integer (loops per jiffy, e.g. 8400000 "
                                               "for a 2100 MHz TSC at HZ=250)")


def default_timeout_s(arch: str | Arch) -> float:
    """The whole cycle's default bound: an arm64 guest under TCG boots in about
    20 s with 2 vCPUs and slower with more, twice per run (2026-12-01)."""
    try:
        return 600.0 if parse_arch(arch) is Arch.ARM64 else 120.0
    except ConfigError:
        return 120.0  # the config's validate() names the bad arch


def _entries_for(arch: Arch):
    return _entries if arch is Arch.X86_64 else _arm64_entries


def _arm64_entries(kernel) -> list[initramfs.Entry]:
    """The arm64 images: Debian's arm64 busybox and kexec-tools (lab/userland.py),
    and the virtio console's modules for the progress channel, in both."""
    ul = userland.fetch_userland(Arch.ARM64)
    if kernel.modules_dir is None:
        raise UserError("an arm64 guest needs the kernel's virtio_mmio and virtio_console modules (its progress "
                        "channel): give --modules DIR with --bzimage")
    base = (userland.busybox_entries(ul)
            + initramfs.module_entries(kernel.modules_dir, list(FACTS[Arch.ARM64].progress_modules))
            + initramfs.base_entries(kexec_init(Arch.ARM64), busybox=[]))
    inner = initramfs.build(base, cache_dir())
    return (
        base
        + userland.elf_entries(ul, ul.kexec, "/bin/kexec")
        + [
            initramfs.file("/boot/vmlinuz", kernel.vmlinuz.read_bytes()),
            initramfs.file("/boot/initrd.img", inner.read_bytes()),
        ]
    )


def _entries(kernel) -> list[initramfs.Entry]:
    """Outer image: kexec-tools, the kernel, and an inner image for the second kernel."""
    base = initramfs.base_entries(kexec_init())
    inner = initramfs.build(base, cache_dir())
    if not KEXEC_BINARY.is_file():
        raise UserError(f"{KEXEC_BINARY} not found (Debian: apt-get install kexec-tools)")
    return (
        base
        + initramfs.binary_with_libs(KEXEC_BINARY, "/bin/kexec")
        + [
            initramfs.file("/boot/vmlinuz", kernel.vmlinuz.read_bytes()),
            initramfs.file("/boot/initrd.img", inner.read_bytes()),
        ]
    )


def kexec_timings(lines: list[tuple[int, str]], start_ns: int | None = None) -> dict:
    """Downtime and both kernels' smp_init from the console lines (pure).

    `start_ns` (host time QEMU was let run) adds the cold boot's time to its
    first line, the reference the kexec downtime compares with.
    """
    marker = find(lines, KEXEC_MARKER)
    second = next((b for b in boot_starts(lines) if marker is not None and b > marker), None)
    starting = find(lines, STARTING, marker) if marker is not None else None
    first_boot = find(lines, "Linux version")
    spans = smp_init_spans(lines)
    before = [s for s in spans if second is None or s["line"] < second]
    after = [s for s in spans if second is not None and s["line"] > second]

    def at(i: int | None) -> int | None:
        return lines[i][0] if i is not None else None

    return {
        "cold_boot_to_first_line_ns": elapsed_ns(start_ns, at(first_boot)),
        "kexec_downtime_ns": elapsed_ns(at(marker), at(second)),
        "marker_to_starting_ns": elapsed_ns(at(marker), at(starting)),
        "starting_to_first_line_ns": elapsed_ns(at(starting), at(second)),
        "smp_init_first_ns": before[0]["smp_init_ns"] if before else None,
        "smp_init_second_ns": after[0]["smp_init_ns"] if after else None,
        "cpus_first": before[0]["cpus"] if before else None,
        "cpus_second": after[0]["cpus"] if after else None,
    }


def kexec_once(g: Guest, config: KexecConfig) -> dict:
    """One kexec cycle on a started guest."""
    arm64 = parse_arch(config.arch) is Arch.ARM64
    load_start = hostload.snapshot()
    done = g.wait_until(lambda: g.progress.seen("STAGE2") is not None and g.exited(), config.timeout_s)
    load = hostload.host_load(load_start, hostload.snapshot())
    outcome = classify(g.observation(timed_out=not done))
    if arm64 and outcome == COMPLETED and exit_code(g.progress.lines) != 0:
        outcome = FAILED  # powered off, but init said why (EXIT 4: kexec -l failed)
    run = {"outcome": outcome, "qemu_pid": g.pid}
    if run["outcome"] != COMPLETED:
        run.update(g.tails())
    run.update(kexec_timings(g.console.lines, g.start_ns))
    if arm64:
        marker = find(g.console.lines, KEXEC_MARKER)
        run.update(_arm64_fields(arm64_kexec_shutdown(g.console.lines, marker if marker is not None else 0)))
    else:
        run.update(x86_fields(g.console.lines))
    prog = g.progress.lines
    ke, s2 = g.progress.seen("KEXEC-E"), g.progress.seen("STAGE2")
    run["kexec_to_second_init_ns"] = elapsed_ns(prog[ke][0] if ke is not None else None,
                                                prog[s2][0] if s2 is not None else None)
    run["boot_to_kexec_ns"] = elapsed_ns(g.start_ns, prog[ke][0] if ke is not None else None)
    run.update(load)
    return run


# The per-run fields an x86 run adds (x86_fields).
X86_FIELDS = ("phases", "phases_host", "downtime_ns", "decompressor_line", "smp_init_first_host_ns",
              "smp_init_second_host_ns", "per_ap_bringup_ns_first", "per_ap_bringup_ns_second",
              "ap_order_first", "ap_order_second",
              "calibration_first", "calibration_second", "cpuhp_up_first", "cpuhp_up_second")


def x86_fields(lines: list[tuple[int, str]]) -> dict:
    """An x86 run's reboot by phase and each kernel's bring-up (pure)."""
    r = x86_kexec_phases(lines, find(lines, KEXEC_MARKER))
    out = {"phases": r["phases"], "phases_host": r["phases_host"], "downtime_ns": r["downtime_ns"],
           "decompressor_line": r["decompressor_line"]}
    for kernel in ("first", "second"):
        b = r[kernel] or {"smp_init_host_ns": None, "per_ap_bringup_ns": [], "ap_order": [], "calibration": None,
                          "cpuhp_up": []}
        out[f"smp_init_{kernel}_host_ns"] = b["smp_init_host_ns"]
        out[f"per_ap_bringup_ns_{kernel}"] = b["per_ap_bringup_ns"]
        out[f"ap_order_{kernel}"] = b["ap_order"]
        out[f"calibration_{kernel}"] = b["calibration"]
        out[f"cpuhp_up_{kernel}"] = b["cpuhp_up"]
    return out


# The per-run fields an arm64 run adds (parse.arm64_kexec_shutdown's, less its
# two flags, which the outcome and the None values already say).
ARM64_FIELDS = ("shutdown_ns", "shutdown_host_ns", "killed_cpus", "psci_polled_ms", "per_cpu_shutdown_ns",
                "per_cpu_shutdown_host_ns", "last_kill_to_bye_ns", "unclean_cpus", "cpuhp_events", "cpuhp_phases")


def _arm64_fields(facts: dict) -> dict:
    return {k: facts[k] for k in ARM64_FIELDS}


def kernel_params(config: KexecConfig) -> tuple[str, ...]:
    """The kernel parameters the experiment adds to kernel_cmdline()'s."""
    base = X86_PARAMS if parse_arch(config.arch) is Arch.X86_64 else ARM64_PARAMS
    return (base + ((f"lpj={config.lpj}",) if config.lpj is not None else ())
            + (CPUHP_TRACE_PARAMS if config.cpuhp_trace else ()))


def _spec(prep, config: KexecConfig):
    arch = parse_arch(config.arch)
    busy = {"others": Others.BUSY.value} if _others(config.others) is Others.BUSY else None
    early = X86_EARLY_CONSOLE if arch is Arch.X86_64 else None
    return guest_spec(prep, config, params=busy, extra=kernel_params(config), early_console=early)


def _flat(runs: list[dict], key: str) -> list[int]:
    """Every value of a per-CPU list field over the completed runs."""
    return [v for r in runs if r["outcome"] == COMPLETED for v in (r.get(key) or []) if v is not None]


def run_kexec(config: KexecConfig, progress: ProgressFn | None = None, *,
              kernel: KernelImage | None = None) -> dict:
    """Run the kexec cycle `config.runs` times; a JSON-able result."""
    config.validate()
    arch = parse_arch(config.arch)
    prep = prepare(config, _entries_for(arch), kernel)
    spec = _spec(prep, config)
    runs = repeat(config.runs, spec, lambda g: kexec_once(g, config), progress)
    result = header("kexec", config, prep)
    result["outcomes"] = outcome_counts(runs)
    result["completed"] = sum(r["outcome"] == COMPLETED for r in runs)
    for key in ("cold_boot_to_first_line_ns", "kexec_downtime_ns", "marker_to_starting_ns", "starting_to_first_line_ns",
                "smp_init_first_ns", "smp_init_second_ns", "kexec_to_second_init_ns", "boot_to_kexec_ns"):
        result[key] = summarize(r.get(key) for r in runs)
    for key in ("host_busy_cpus", "other_busy_cpus", "qemu_cpus"):
        result[key] = summarize(r.get(key) for r in runs)
    if arch is Arch.ARM64:
        result.update(_arm64_summary(runs, config))
    else:
        result.update(_x86_summary(runs, config))
    result["runs"] = runs
    return result


def _arm64_summary(runs: list[dict], config: KexecConfig) -> dict:
    """The shutdown over the runs: totals, and every CPU's time pooled."""
    ok = [r for r in runs if r["outcome"] == COMPLETED]
    return {
        "arch": Arch.ARM64.value,
        "others": _others(config.others).value,
        "qemu_machine": FACTS[Arch.ARM64].machine,
        "qemu_cpu": FACTS[Arch.ARM64].tcg_cpu,
        "kernel_params": list(kernel_params(config)),
        "shutdown_ns": summarize(r.get("shutdown_ns") for r in ok),
        "shutdown_host_ns": summarize(r.get("shutdown_host_ns") for r in ok),
        "per_cpu_shutdown_ns": summarize(_flat(runs, "per_cpu_shutdown_ns")),
        "per_cpu_shutdown_ns_all": _flat(runs, "per_cpu_shutdown_ns"),
        "psci_polled_ms": summarize(_flat(runs, "psci_polled_ms")),
        "psci_polled_ms_all": _flat(runs, "psci_polled_ms"),
        "last_kill_to_bye_ns": summarize(r.get("last_kill_to_bye_ns") for r in ok),
        "runs_all_cpus_killed": sum(len(r.get("killed_cpus") or []) == config.cpus - 1 for r in ok),
    }


def _x86_summary(runs: list[dict], config: KexecConfig) -> dict:
    """The reboot's phases over the completed runs, and every AP's time pooled."""
    ok = [r for r in runs if r["outcome"] == COMPLETED]
    out = {
        "arch": Arch.X86_64.value,
        "others": _others(config.others).value,
        "lpj": config.lpj,
        "kernel_params": [X86_EARLY_CONSOLE, *kernel_params(config)],
        "phase_clocks": dict(PHASE_CLOCKS),
        "downtime_ns": summarize(r.get("downtime_ns") for r in ok),
        "phases": {k: summarize((r.get("phases") or {}).get(k) for r in ok) for k in PHASES},
        "phases_host": {k: summarize((r.get("phases_host") or {}).get(k) for r in ok) for k in PHASES},
    }
    for kernel in ("first", "second"):
        out[f"smp_init_{kernel}_host_ns"] = summarize(r.get(f"smp_init_{kernel}_host_ns") for r in ok)
        key = f"per_ap_bringup_ns_{kernel}"
        out[key] = summarize(_flat(runs, key))
        out[f"{key}_all"] = _flat(runs, key)
    return out


def _results(path: str | Path, wanted, refusal: str) -> list[tuple[dict, list[dict]]]:
    """Each kexec result in the file at `path` (one or a list) with its
    completed runs; a result `wanted` refuses is a UserError saying `refusal`."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot read a lab kexec result ({e})") from None
    out = []
    for r in data if isinstance(data, list) else [data]:
        if not isinstance(r, dict) or r.get("experiment") != "kexec" or not wanted(r):
            raise UserError(f"{path}: {refusal}")
        out.append((r, [run for run in r["runs"] if run["outcome"] == COMPLETED]))
    return out


def load_reboot(path: str | Path) -> list[dict]:
    """An x86 `lab kexec` result file, for validation: one dict per result
    (`path` holds one or a list, `--cpus 2,4,8 --output FILE`) with `cpus`,
    `lpj`, `cpuhp_trace`, `kernel_release`, `qemu_version`, `accelerator`,
    `phase_clocks`, and each completed run's values in run order:
    `smp_init_first_ns`, `smp_init_second_ns` (the guest's printk clock,
    which under TCG counts ticks, parse_x86), `smp_init_first_host_ns`,
    `smp_init_second_host_ns` (the host's; None in a file from before they
    were recorded: there `phases_host["smp_init_ns"]` is the second kernel's),
    `downtime_ns`, `phases` and `phases_host` (dicts keyed by
    parse_x86.PHASES; `phases` on the file's `phase_clocks`),
    `per_ap_bringup_ns_first` / `_second` (lists, None where the console did
    not time an AP), `cpuhp_up_first` / `_second` (per AP, with
    `cpuhp_trace`; else empty lists) and the host's `other_busy_cpus`. An arm64 result, or an
    x86 result from before the phases were measured, is a UserError.
    """
    out = []
    for r, ok in _results(path, lambda r: r.get("arch") == Arch.X86_64.value and "phases" in r,
                          "not an x86 lab kexec result with phases"):
        out.append({
            "cpus": r["cpus"], "lpj": r["lpj"], "cpuhp_trace": r["options"]["cpuhp_trace"],
            "kernel_release": r["kernel_release"], "qemu_version": r["qemu_version"],
            "accelerator": r["accelerator"], "phase_clocks": r["phase_clocks"],
            **{k: [run[k] for run in ok] for k in (
                "smp_init_first_ns", "smp_init_second_ns", "downtime_ns", "phases", "phases_host",
                "per_ap_bringup_ns_first", "per_ap_bringup_ns_second", "cpuhp_up_first", "cpuhp_up_second",
                "other_busy_cpus")},
            **{k: [run.get(k) for run in ok] for k in ("smp_init_first_host_ns", "smp_init_second_host_ns")},
        })
    return out


def load_shutdown(path: str | Path) -> list[dict]:
    """Per-CPU shutdown times of an arm64 `lab kexec` result file, for calibration.

    `path` holds one result or a list of them (`--cpus 2,4,8 --output FILE`).
    One dict per result: `cpus`, `others`, `kernel_release`, `shutdown_ns` and
    `per_cpu_shutdown_ns` (each completed run's values, in run order; per CPU
    in the order the CPUs died) and `psci_polled_ms` likewise. An x86 result,
    which has no such times, is a UserError.
    """
    out = []
    for r, ok in _results(path, lambda r: r.get("arch") == Arch.ARM64.value, "not an arm64 lab kexec result"):
        out.append({
            "cpus": r["cpus"], "others": r["others"], "kernel_release": r["kernel_release"],
            "shutdown_ns": [run["shutdown_ns"] for run in ok],
            "per_cpu_shutdown_ns": [run["per_cpu_shutdown_ns"] for run in ok],
            "psci_polled_ms": [run["psci_polled_ms"] for run in ok],
        })
    return out
