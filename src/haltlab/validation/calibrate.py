"""`haltlab lab calibrate`: measure what the QEMU/TCG profile needs, write it back.

Measured on the real kernel (the lab's `panic` experiment, stock, 2 vCPUs):

* `panic_console_lines`, `panic_console_chars`: what the kernel prints from the
  panic line through the end line (the lab counts them on the serial console);
* `console_ns_per_char`: the panic's host-clock duration, less its longest silence
  (the stop gap below), divided by the characters printed;
* `ipi_latency_ns`: solved so that the model's longest silence during the panic
  (`smp_send_stop()` waiting for the other CPU) equals the lab's. The model is
  run once with the latency at zero; what the lab's gap exceeds that by is the
  latency (the gap is linear in it: one IPI, one wait);
* `nmi_latency_ns`: not measurable here (an idle vCPU takes the REBOOT IPI, so
  the lab's panics never reach the NMI stage); QEMU delivers an NMI the way it
  delivers the IPI, so it is set to the solved IPI latency;
* `vmm_background_cpu_s_per_s`: the QEMU process's host CPU minus its vCPU
  threads' in the post-panic window, the VMM's own work;
* `host_cpu_hz`: this host's clock (`/proc/cpuinfo`), to turn CPU time into cycles.

Every value is the median over runs and is written with its provenance: the
command, the date, the kernel release, the QEMU version and the accelerator.
Validation (`haltlab validate`) then checks the calibrated model on cases that
were not used here (more CPUs, the pvpanic pause, panic_timeout_s).
"""

from __future__ import annotations

import datetime
import statistics
from dataclasses import replace

from haltlab.errors import ConfigError, UserError
from haltlab.lab.experiments import PanicConfig as LabPanic
from haltlab.lab.experiments import run_panic as lab_panic
from haltlab.machine.profile import Param, Profile, load_profile
from haltlab.scenarios.panic import PanicConfig, simulate_panic
from haltlab.lab.sampler import host_cpu_hz
from haltlab.lab.stats import summarize
from haltlab.validation.lab_kernel import LAB_KERNEL_PRESET, preset_match, resolve_lab_kernel
from haltlab.validation.measures import model_panic_facts
from haltlab.validation.save import check_rewritable, write_or_keep

__all__ = ["calibrate", "model_max_line_gap_ns", "CALIBRATED_KEYS"]

CALIBRATED_KEYS = ("panic_console_lines", "panic_console_chars", "console_ns_per_char",
                   "ipi_latency_ns", "nmi_latency_ns", "vmm_background_cpu_s_per_s", "host_cpu_hz")


def calibrate(profile_name: str = "qemu-tcg-x86", *, runs: int = 3, cpus: int = 2, write: bool = True,
              progress=None, kernel_package: str | None = None) -> dict:
    """Measure, solve, and (with `write`) rewrite the profile file in place.

    The kernel booted is `kernel_package` (default: what linux-image-amd64
    depends on); the result says whether the model's preset for the lab's
    kernel describes it. With `write`, the profile's place is checked before
    anything boots, and a write that fails at the end keeps the measurement
    (validation/save.py: MeasurementNotWritten)."""
    if not isinstance(cpus, int) or cpus < 2:
        raise ConfigError("cpus", cpus, "calibration needs at least 2 vCPUs (the stop gap needs another CPU)")
    if not isinstance(runs, int) or runs < 1:
        raise ConfigError("runs", runs, "must be an integer >= 1")
    profile = load_profile(profile_name)
    if not profile.is_guest:
        raise ConfigError("profile", profile_name, "calibration measures a guest; this profile is bare metal")
    config = LabPanic(cpus=cpus, runs=runs, accel="tcg", kernel_package=kernel_package)
    config.validate()
    if write:
        check_rewritable(profile.path)
    kernel = resolve_lab_kernel(kernel_package)
    lab = lab_panic(config, progress=progress, kernel=kernel)
    if lab.get("panicked_and_finished", 0) == 0:
        raise UserError(f"calibration: no lab run finished its panic ({lab.get('outcomes')})")
    values, lab_gap_ns = _measure(lab)
    values["ipi_latency_ns"] = _solve_ipi_latency(profile, cpus, values, lab_gap_ns)
    values["nmi_latency_ns"] = values["ipi_latency_ns"]
    provenance = (f"lab measurement: haltlab lab calibrate --profile {profile_name} --runs {runs} --cpus {cpus} "
                  f"({datetime.date.today().isoformat()}; kernel {lab['kernel_release']} "
                  f"({lab['kernel_package']} {lab['kernel_package_version']}), QEMU "
                  f"{lab['qemu_version']}, {lab['accelerator']}; median of {lab['panicked_and_finished']} runs)")
    calibrated = _with_values(profile, values, provenance)
    result = {"profile": profile_name, "path": str(profile.path), "written": write, "values": values,
              "previous": {k: profile.get(k) for k in values}, "provenance": provenance, "lab": _lab_summary(lab),
              **preset_match(LAB_KERNEL_PRESET, kernel)}
    if write:
        write_or_keep(calibrated, profile.path, result)
    return result


def _median(runs: list[dict], key: str) -> float:
    """By summarize(), like the lab result's own `key` median: a run has every
    panic_* figure or none, so over the same runs the profile gets exactly the
    figure the lab reports, rounded the same way (integer ns stay integers)."""
    stats = summarize(r.get(key) for r in runs)
    if stats is None:
        raise UserError(f"calibration: the lab runs reported no {key}")
    return stats["median"]


def _measure(lab: dict) -> tuple[dict, float]:
    runs = [r for r in lab["runs"] if r.get("panic_console_chars")]
    chars = _median(runs, "panic_console_chars")
    busy = _median(runs, "panic_to_end_host_ns") - _median(runs, "panic_max_line_gap_ns")
    background = [r["host_cpu_s_per_s"] - sum(v["host_cpu_s_per_s"] for v in r["per_vcpu"])
                  for r in runs if r.get("per_vcpu")]
    values = {
        "panic_console_lines": int(_median(runs, "panic_console_lines")),
        "panic_console_chars": int(chars),
        "console_ns_per_char": max(1, round(busy / chars)),
        "vmm_background_cpu_s_per_s": max(0.0, statistics.median(background)) if background else 0.0,
        "host_cpu_hz": _host_cpu_hz(),
    }
    return values, _median(runs, "panic_max_line_gap_ns")


def model_max_line_gap_ns(profile: Profile, cpus: int) -> int:
    """The model's longest silence between console lines during the panic, as the
    lab measures it on the host: from one line's arrival to the next one's, by the
    lab's own parser (measures.py)."""
    run = simulate_panic(PanicConfig(profile=profile.path, cpus=cpus, kernel=LAB_KERNEL_PRESET, pvpanic="none",
                                     observe_ns=10_000_000, timeline=False), profile)
    return model_panic_facts(run)["panic_max_line_gap_ns"] or 0


def _solve_ipi_latency(profile: Profile, cpus: int, measured: dict, lab_gap_ns: float) -> int:
    base = _with_values(profile, measured | {"ipi_latency_ns": 0}, "calibration trial")
    return max(0, round(lab_gap_ns - model_max_line_gap_ns(base, cpus)))


def _with_values(profile: Profile, values: dict, source: str) -> Profile:
    params = dict(profile.params)
    for key, value in values.items():
        params[key] = Param(value, f"{source}: {_what(key)}", profile.params[key].unit)
    return replace(profile, params=params)


def _what(key: str) -> str:
    return {
        "panic_console_lines": "lines from the panic line through the end line",
        "panic_console_chars": "characters of those lines (printk prefix and newline included)",
        "console_ns_per_char": "(panic-to-end host time - longest silence) / characters",
        "ipi_latency_ns": "solved so the model's stop gap equals the lab's longest silence in the panic",
        "nmi_latency_ns": ("not measurable (the lab's panics never reach the NMI stage); QEMU delivers "
                           "an NMI like the IPI (cpu_interrupt(), CPU_INTERRUPT_NMI), so set to ipi_latency_ns"),
        "vmm_background_cpu_s_per_s": "QEMU process host CPU minus its vCPU threads after the panic",
        "host_cpu_hz": "this host's clock, /proc/cpuinfo 'cpu MHz'",
        "devkmsg_user_ns": "the flood loop outside vprintk_emit() (calibrate_flood.py)",
    }[key]


def _host_cpu_hz() -> int:
    hz = host_cpu_hz()
    if not hz:
        raise UserError("calibration: /proc/cpuinfo has no 'cpu MHz' line")
    return hz


def _lab_summary(lab: dict) -> dict:
    keep = ("kernel_release", "kernel_package", "kernel_package_version", "qemu_version", "accelerator",
            "cpus", "n_runs", "outcomes",
            "host_cpu_s_per_s", "panic_to_end_host_ns", "panic_max_line_gap_ns", "panic_console_chars")
    return {k: lab.get(k) for k in keep}
