"""`haltlab lab panic`: what a panicked guest costs the host (S1), measured.

Boot, panic with sysrq-c on CPU 0, wait until panic() is done (its end marker
on the console, or the host pausing the guest on pvpanic's GUEST_PANICKED), let
it settle, then read the host CPU time of the QEMU process and of each vCPU
thread over a window. A stock kernel ends panic() in a busy
`mdelay(PANIC_TIMER_STEP)` loop (kernel/panic.c), so one vCPU should burn about
one host CPU; `-action panic=pause` is the host-side remedy that stops the guest
instead of S1's guest-side `safe_halt()`.

With `panic_timeout_s` (kernel `panic=N`) the kernel resets after N seconds;
`-no-reboot` turns that reset into QEMU's exit, and the run reports the host
time from the panic line to that exit instead of a CPU window.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from haltlab.errors import ConfigError
from haltlab.lab import initramfs
from haltlab.lab.classify import PANICKED, classify
from haltlab.lab.experiments.common import (
    MAX_SECONDS, LabConfig, ProgressFn, check_seconds, elapsed_ns, guest_spec, header, outcome_counts, prepare, repeat,
)
from haltlab.lab.guest import panic_init
from haltlab.lab.images import KernelImage
from haltlab.lab.parse import PANIC_END, panic_facts
from haltlab.lab.runner import Guest
from haltlab.lab.sampler import CpuSample, cpu_usage, no_cpu_usage
from haltlab.lab.stats import summarize
from haltlab.lab.timeline import lab_timeline

__all__ = ["PanicConfig", "run_panic", "panic_once", "summarize_panic", "first_timeline"]

PVPANIC_MODULES = ["pvpanic", "pvpanic-pci"]


@dataclass(frozen=True)
class PanicConfig(LabConfig):
    pvpanic: str = "none"  # the `-action panic=` value: none (stock) or pause
    panic_timeout_s: int = 0  # kernel panic=N; 0 waits forever
    window_s: float = 3.0  # CPU sampling window
    settle_s: float = 0.5  # after the panic is done, before the window
    perf_freq_hz: int = 4000  # perf record's default sampling frequency
    timeout_s: float = 60.0  # trigger to the end of panic

    def validate(self) -> None:
        super().validate()
        if self.pvpanic not in ("none", "pause"):
            raise ConfigError("pvpanic", self.pvpanic, "expected none or pause")
        if not isinstance(self.panic_timeout_s, int) or not 0 <= self.panic_timeout_s <= MAX_SECONDS:
            raise ConfigError("panic_timeout_s", self.panic_timeout_s,
                              f"must be an integer from 0 (never reset) to {MAX_SECONDS} seconds (the lab "
                              "waits that long for the reset; the kernel's own limit is INT_MAX)")
        if self.panic_timeout_s != 0 and self.pvpanic == "pause":
            raise ConfigError("panic_timeout_s", self.panic_timeout_s,
                              "a paused guest never resets: use it with the stock pvpanic action, none")
        check_seconds("window_s", self.window_s)
        check_seconds("settle_s", self.settle_s, zero_ok=True)
        check_seconds("timeout_s", self.timeout_s)
        if not isinstance(self.perf_freq_hz, int) or self.perf_freq_hz <= 0:
            raise ConfigError("perf_freq_hz", self.perf_freq_hz, "must be a positive integer")


def _entries(kernel):
    mods = initramfs.module_entries(kernel.modules_dir, PVPANIC_MODULES) if kernel.modules_dir else []
    return initramfs.base_entries(panic_init()) + mods


def _panic_done(g: Guest, config: PanicConfig) -> bool:
    if config.panic_timeout_s != 0:
        return g.exited()  # the reset is the end
    ev = g.panic_event()
    return g.console.seen(PANIC_END) is not None or (ev is not None and config.pvpanic == "pause")


def panic_once(g: Guest, config: PanicConfig) -> dict:
    """One run on a started guest: wait for the trigger and the panic, then measure."""
    triggered = g.wait_until(lambda: g.trigger_ns() is not None, config.boot_timeout_s)
    limit = config.timeout_s + config.panic_timeout_s
    done = triggered and g.wait_until(lambda: _panic_done(g, config), limit)
    run = {"outcome": classify(g.observation(timed_out=not done)), "qemu_pid": g.pid, "triggered": triggered}
    if run["outcome"] != PANICKED:
        run.update(g.tails())
    window = (None, None)
    run.update(no_cpu_usage())
    if done and config.panic_timeout_s == 0:
        time.sleep(config.settle_s)
        before = CpuSample(g.pid, g.vcpus)
        time.sleep(config.window_s)
        after = CpuSample(g.pid, g.vcpus)
        run.update(cpu_usage(before, after, g.vcpus, config.perf_freq_hz))
        window = (before.ns, after.ns)
    facts = panic_facts(g.console.lines)
    ev = g.panic_event()
    trigger = g.trigger_ns()
    run["lab_timeline"] = _timeline(g, trigger, facts, ev, window)
    run.update({
        "panic_message": facts["panic_message"],
        "pvpanic_event": ev[1]["data"]["action"] if ev else None,
        "boot_to_trigger_ns": elapsed_ns(g.start_ns, trigger),
        "panic_to_end_ns": facts["panic_to_end_ns"],
        "trigger_to_end_ns": elapsed_ns(trigger, facts["end_host_ns"]),
        "panic_to_end_host_ns": elapsed_ns(facts["panic_host_ns"], facts["end_host_ns"]),
        "panic_console_lines": facts["panic_console_lines"],
        "panic_console_chars": facts["panic_console_chars"],
        "panic_max_line_gap_ns": facts["panic_max_line_gap_ns"],
        "trigger_to_pvpanic_ns": elapsed_ns(trigger, ev[0] if ev else None),
        "panic_to_reset_ns": elapsed_ns(facts["panic_host_ns"], g.exit_ns) if config.panic_timeout_s else None,
    })
    return run


def _timeline(g: Guest, trigger: int | None, facts: dict, ev, window: tuple) -> dict | None:
    """What the host saw of each vCPU around the panic (lab/timeline.py)."""
    if g.vcpu_trace is None:
        return None
    g.vcpu_trace.stop()
    marks = {"trigger": trigger, "panic_line": facts["panic_host_ns"], "end_line": facts["end_host_ns"],
             "pvpanic": ev[0] if ev else None, "window_start": window[0], "window_end": window[1]}
    return lab_timeline(g.vcpu_trace.readings, trigger, marks, g.vcpu_trace.interval_ns)


def first_timeline(runs: list[dict]) -> dict | None:
    """The result's own `lab_timeline`: the first run that finished its panic
    (`run` says which); every run keeps its own as well."""
    for i, r in enumerate(runs):
        if r["outcome"] == PANICKED and r.get("lab_timeline"):
            return {**r["lab_timeline"], "run": i}
    return None


def summarize_panic(runs: list[dict], cpus: int) -> dict:
    """Median and min-max over runs; `host_cpu_s_per_s` is the whole guest's median."""
    whole = summarize(r.get("host_cpu_s_per_s") for r in runs)
    per_vcpu = []
    for i in range(cpus):
        mine = [v for r in runs for v in r.get("per_vcpu", []) if v["cpu_index"] == i]
        per_vcpu.append({
            "cpu_index": i,
            "host_cpu_s_per_s": summarize(v["host_cpu_s_per_s"] for v in mine),
            "perf_samples_per_s": summarize(v["perf_samples_per_s"] for v in mine),
            "host_cpu_demand_s_per_s": summarize(v.get("host_cpu_demand_s_per_s") for v in mine),
        })
    out = {
        "host_cpu_s_per_s": whole["median"] if whole else None,
        "host_cpu_s_per_s_stats": whole,
        "perf_samples_per_s": summarize(r.get("perf_samples_per_s") for r in runs),
        "vcpu_demand_s_per_s": summarize(r.get("vcpu_demand_s_per_s") for r in runs),
        "per_vcpu": per_vcpu,
        "outcomes": outcome_counts(runs),
        "panicked_and_finished": sum(r["outcome"] == PANICKED for r in runs),
    }
    for key in ("boot_to_trigger_ns", "panic_to_end_ns", "trigger_to_end_ns", "trigger_to_pvpanic_ns",
                "panic_to_reset_ns", "panic_to_end_host_ns", "panic_console_lines", "panic_console_chars",
                "panic_max_line_gap_ns"):
        out[key] = summarize(r.get(key) for r in runs)
    return out


def run_panic(config: PanicConfig, progress: ProgressFn | None = None, *,
              kernel: KernelImage | None = None) -> dict:
    """Run the panic experiment `config.runs` times; a JSON-able result."""
    config.validate()
    prep = prepare(config, _entries, kernel)
    # The device is always there: with panic=none it only reports (GUEST_PANICKED
    # is a panic signal that needs no console); with pause the host stops the guest.
    spec = guest_spec(prep, config, panic_timeout_s=config.panic_timeout_s, pvpanic=config.pvpanic)
    runs = repeat(config.runs, spec, lambda g: panic_once(g, config), progress, trace_vcpus=True)
    result = header("panic", config, prep)
    result.update({
        "pvpanic": config.pvpanic,
        "panic_timeout_s": config.panic_timeout_s,
        "window_ns": round(config.window_s * 1e9),
        "settle_ns": round(config.settle_s * 1e9),
        "perf_freq_hz": config.perf_freq_hz,
    })
    result.update(summarize_panic(runs, config.cpus))
    result["lab_timeline"] = first_timeline(runs)
    result["runs"] = runs
    return result
