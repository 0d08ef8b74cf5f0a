"""Scenario: one CPU panics (sysrq-c) while the others idle, compute, or spin
with interrupts off; what does the machine, and the host under a guest, see?

Answers S1's question (host CPU burned after a guest panics, stock busy loop vs
`safe_halt()`) and the ones S1 leaves open: which interrupts still reach the
panicked CPU, how often the halted vCPU wakes (each wake-up is an exit and an
entry), and whether the blink and `panic_timeout` timing still hold.

The observation window starts when the "end Kernel panic" line has left the
console, as a person watching the console would start `perf record`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from haltlab.engine.run import Run
from haltlab.engine.simulator import Simulator, paused_gc
from haltlab.errors import ConfigError
from haltlab.kernel.commits import commit_set
from haltlab.kernel.idle import OTHERS, Others
from haltlab.kernel.kernel import Kernel, KernelConfig
from haltlab.kernel.panic import panic
from haltlab.kernel.policies import AfterPanic, Policies, choose
from haltlab.kernel.printk import printk
from haltlab.machine.machine import Machine, Pvpanic
from haltlab.machine.profile import Profile, load_profile
from haltlab.scenarios.panic_bounds import MAX_OBSERVE_NS, PANIC_TIMEOUT_MAX_S, run_limit_ns
from haltlab.scenarios.panic_result import SCHEMA_VERSION, PanicResult

__all__ = ["PanicConfig", "PanicRun", "run_panic", "simulate_panic", "build_panic", "PANIC_MSG"]

NSEC_PER_SEC = 1_000_000_000
PANIC_MSG = "sysrq triggered crash"      # sysrq_handle_crash()'s panic() message


@dataclass(frozen=True)
class PanicConfig:
    """One panic run. `after_panic`, `others` and `pvpanic` accept their names
    and hold enum members (equal to those names, and written as them in JSON)."""

    profile: str = "kvm-x86"
    cpus: int | None = None             # None: the profile's CPU count
    after_panic: AfterPanic = AfterPanic.MDELAY
    others: Others = Others.IDLE
    observe_ns: int = 10 * NSEC_PER_SEC
    seed: int = 0
    kernel: str = "v7.1"
    panic_timeout_s: int = 0
    panic_cpu: int = 0
    trigger_ns: int = 10_000_000        # when the shell writes 'c' to /proc/sysrq-trigger
    timeline: bool = True
    pvpanic: Pvpanic | None = None      # QEMU pvpanic device: None (absent), "none" or "pause"
    kdump: bool = False                 # a crash kernel is loaded (`kexec -p`)
    crash_kexec_post_notifiers: bool = False   # the boot option

    def __post_init__(self) -> None:
        for name, kind in (("after_panic", AfterPanic), ("others", Others), ("pvpanic", Pvpanic)):
            value = getattr(self, name)
            if value is None and name == "pvpanic":
                continue
            try:
                object.__setattr__(self, name, kind(value))
            except ValueError:
                pass            # left as given: validate() names it

    def validate(self, ncpus: int) -> None:
        """Refuse what the model cannot run, as `ConfigError`s naming the field
        (`ncpus` is `cpus`, or the profile's count when `cpus` is None)."""
        if ncpus < 1:
            raise ConfigError("cpus", ncpus, "need at least 1 CPU")
        if ncpus > 8192:
            raise ConfigError("cpus", ncpus, "at most 8192 (x86_64 CONFIG_NR_CPUS with MAXSMP)")
        if not 0 <= self.panic_cpu < ncpus:
            raise ConfigError("panic_cpu", self.panic_cpu, f"not a CPU of a {ncpus}-CPU machine")
        choose("after_panic", self.after_panic)
        if not isinstance(self.others, Others):
            raise ConfigError("others", self.others, f"choose from {', '.join(OTHERS)}")
        commit_set(self.kernel)
        if self.observe_ns <= 0:
            raise ConfigError("observe_ns", self.observe_ns, "must be positive")
        if self.observe_ns > MAX_OBSERVE_NS:
            raise ConfigError("observe_ns", self.observe_ns,
                              f"at most {MAX_OBSERVE_NS // NSEC_PER_SEC} s (one day; the run's "
                              "cost grows with its window)")
        if self.pvpanic is not None and not isinstance(self.pvpanic, Pvpanic):
            raise ConfigError("pvpanic", self.pvpanic, "choose none or pause")
        if self.panic_timeout_s < 0:
            raise ConfigError("panic_timeout_s", self.panic_timeout_s,
                              "negative means 'reboot at once' in the kernel; not modelled")
        if self.panic_timeout_s > PANIC_TIMEOUT_MAX_S:
            raise ConfigError("panic_timeout_s", self.panic_timeout_s,
                              f"at most {PANIC_TIMEOUT_MAX_S} s: panic() counts to panic_timeout * 1000, "
                              "an int product that overflows beyond that (kernel/panic.c)")
        if self.trigger_ns < 0:
            raise ConfigError("trigger_ns", self.trigger_ns, "must not be negative")
        for name in ("kdump", "crash_kexec_post_notifiers"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(name, getattr(self, name), "must be true or false")

    def limit_ns(self, profile: Profile) -> int:
        """When the simulator gives up on this run (`panic_bounds`)."""
        return run_limit_ns(profile, PANIC_MSG, trigger_ns=self.trigger_ns,
                            panic_timeout_s=self.panic_timeout_s, observe_ns=self.observe_ns)


async def sysrq_crash(k, trigger_ns: int) -> None:
    """The shell on the panic CPU: runs, then `echo c > /proc/sysrq-trigger`."""
    from haltlab.engine.ops import ndelay, set_cpu_state
    await set_cpu_state(tick_enabled=True)
    await ndelay(trigger_ns)
    await printk(k, "sysrq: Trigger a crash")
    await panic(k, PANIC_MSG)


def build_panic(cfg: PanicConfig, profile: Profile | None = None) -> Run:
    """The run's machine, kernel and simulator, booted and ready to run. `profile`,
    when given, is used instead of loading `cfg.profile` (calibration tries values)."""
    profile = profile if profile is not None else load_profile(cfg.profile)
    ncpus = cfg.cpus if cfg.cpus is not None else int(profile.get("cpus"))
    cfg.validate(ncpus)
    machine = Machine(profile, ncpus, record_timeline=cfg.timeline, pvpanic=cfg.pvpanic)
    kcfg = KernelConfig(version=cfg.kernel, panic_timeout_s=cfg.panic_timeout_s, kdump=cfg.kdump,
                        crash_kexec_post_notifiers=cfg.crash_kexec_post_notifiers,
                        policies=Policies(after_panic=cfg.after_panic))
    k = Kernel(machine, kcfg)
    k.boot()
    sim = Simulator(machine, seed=cfg.seed)
    for cpu in range(ncpus):
        task = sysrq_crash(k, cfg.trigger_ns) if cpu == cfg.panic_cpu else OTHERS[cfg.others](k)
        sim.start_task(cpu, task)
    return Run(machine, k, sim, ghost=None)


class _Window:
    """Host-side counters at the start of the observation window."""

    def __init__(self, machine: Machine, now_ns: int) -> None:
        self.start_ns = now_ns
        self.host_ns = [machine.host_ns(c, now_ns) for c in range(machine.ncpus)] if machine.hyp else None
        hyp = machine.hyp
        self.exits = [v.exits for v in hyp.vcpus] if hyp else None
        self.wakeups = [v.wakeups for v in hyp.vcpus] if hyp else None


@dataclass
class PanicRun(Run):
    """A finished run: the model objects behind it (for traces), its config and
    its result."""

    config: PanicConfig
    result: PanicResult


def run_panic(cfg: PanicConfig) -> PanicResult:
    """The result alone. The cyclic collector stays off until the run is
    dropped (`paused_gc()` says why that order matters)."""
    with paused_gc():
        return simulate_panic(cfg).result


def simulate_panic(cfg: PanicConfig, profile: Profile | None = None) -> PanicRun:
    run = build_panic(cfg, profile)
    machine, k, sim = run.machine, run.kernel, run.driver
    window: dict[str, _Window] = {}

    def on_mark(name: str, at_ns: int) -> None:
        # The window opens at the end line, or at the pvpanic event when the
        # host pauses the guest (then no end line ever comes), as in the lab.
        if name == "panic_end" or (name == "pvpanic" and cfg.pvpanic is Pvpanic.PAUSE):
            window["start"] = _Window(machine, at_ns) if machine.hyp else None
            sim.schedule(at_ns + cfg.observe_ns, sim.stop)

    k.on_mark = on_mark
    limit_ns = cfg.limit_ns(machine.profile)
    sim.run(limit_ns)
    end_ns = sim.now_ns
    _check_the_limit_held(cfg, k, sim, limit_ns)
    machine.close(end_ns)
    if machine.paused_at_ns is not None:
        end_ns = machine.paused_at_ns + cfg.observe_ns   # time goes on for the host
    return PanicRun(machine, k, sim, None, config=cfg,
                    result=_result(cfg, machine, k, sim, window.get("start"), end_ns, limit_ns))


def _check_the_limit_held(cfg: PanicConfig, k: Kernel, sim: Simulator, limit_ns: int) -> None:
    """The limit bounds a run, it must never cut one: a panic that printed its
    end line gets its whole observation window (`panic_bounds`)."""
    if "panic_end" in k.marks and sim.reset_reason is None and not sim.stopped:
        raise RuntimeError(
            f"the run limit ({limit_ns} ns) cut the {cfg.observe_ns} ns window after the end line "
            f"at {k.marks['panic_end']} ns short: panic_work_bound_ns() is not a bound")


def _result(cfg, machine, k, sim, w, end_ns, limit_ns) -> PanicResult:
    marks = k.marks
    entry = marks.get("panic_entry")
    r: PanicResult = {
        "schema_version": SCHEMA_VERSION,
        "scenario": "panic",
        "config": asdict(cfg),
        "profile": machine.profile.name,
        "cpus": machine.ncpus,
        "kernel": cfg.kernel,
        "policies": k.policies.describe(),
        "outcome": _outcome(k, sim),
        "marks_ns": dict(sorted(marks.items())),
        "time_to_end_ns": _between(marks, "panic_entry", "panic_end"),
        "reboot_after_ns": _between(marks, "panic_entry", "emergency_restart"),
        "crash_kexec_after_ns": _between(marks, "panic_entry", "crash_kexec"),
        "pvpanic": cfg.pvpanic,
        "panic_to_others_stopped_ns": _between(marks, "panic_entry", "others_stopped"),
        "smp_send_stop_ns": _between(marks, "smp_send_stop", "others_stopped"),
        "state_ns": {str(c.index): dict(c.time_in_ns) for c in machine.cpus},
        "handlers_after_panic": _handlers_after(machine, entry),
        "panic_loop_iterations": k.panic_loop_iterations,
        "blink_intervals_ns": _blink_intervals(k),
        "events": sim.events_run,
        "end_ns": end_ns,
        "limit_ns": limit_ns,
    }
    if machine.hyp is not None and w is not None:
        r.update(_host_view(machine, w, end_ns))
    return r


def _between(marks: dict[str, int], start: str, end: str) -> int | None:
    """ns from mark `start` to mark `end`; None unless both happened."""
    return marks[end] - marks[start] if start in marks and end in marks else None


def _outcome(k, sim) -> str:
    if sim.reset_reason == "pvpanic-pause":
        return "paused"
    if sim.reset_reason == "crash_kexec":
        return "crash-kexec"
    if "emergency_restart" in k.marks:
        return "rebooted"
    if "panic_end" in k.marks:
        return "panicked-and-finished"
    return "hung"


def _handlers_after(machine: Machine, entry_ns: int | None) -> dict[str, int]:
    counts: dict[str, int] = {}
    if entry_ns is None:
        return counts
    for t, cpu, vector in machine.irq_log:
        if t >= entry_ns:
            key = f"CPU{cpu}:{vector}"
            counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def _blink_intervals(k) -> list[int]:
    b = k.blinks[:64]
    return [b2 - b1 for b1, b2 in zip(b, b[1:])]


def _host_view(machine: Machine, w: _Window, end_ns: int) -> dict:
    hyp = machine.hyp
    span = end_ns - w.start_ns
    per_vcpu = []
    for cpu in range(machine.ncpus):
        host = machine.host_ns(cpu, end_ns) - w.host_ns[cpu]
        per_vcpu.append({
            "cpu": cpu,
            "host_cpu_s_per_s": host / span,
            "host_cpu_ns": host,
            "perf_samples": hyp.samples(host),
            "cycles": hyp.cycles(host),
            "exits": hyp.vcpus[cpu].exits - w.exits[cpu],
            "wakeups": hyp.vcpus[cpu].wakeups - w.wakeups[cpu],
        })
    vmm_ns = int(hyp.vmm_background * span)
    total_ns = sum(v["host_cpu_ns"] for v in per_vcpu) + vmm_ns
    return {
        "window_ns": span,
        "host_cpu_s_per_s": total_ns / span,
        "host_cpu_ns": total_ns,
        "vmm_background_ns": vmm_ns,
        "perf_samples": hyp.samples(total_ns),
        "cycles": hyp.cycles(total_ns),
        "per_vcpu": per_vcpu,
    }
