"""Scenario: a kexec reboot takes the secondary CPUs down (S3, arm64).

CPU 0 runs the task that called `reboot(LINUX_REBOOT_CMD_KEXEC)`
(`kernel_kexec()`, kernel/kexec.py); every other CPU idles, runs a CPU-bound
user task, or spins with interrupts off. `machine_shutdown()` takes them down
by the design chosen (`KexecShutdown`: stock hotplug, S3's `smp_send_stop()`,
or the parallel hotplug S3's review points to); the run ends at the jump
(`machine_kexec()`), at a BUG(), or at its limit (a shutdown that never
ends). It answers S3's question, how long the shutdown takes, and says what
each design leaves behind: CPUs still running old-kernel code at the jump,
interrupts routed to a CPU that executed CPU_OFF, BUG()s.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from haltlab.engine.run import Run
from haltlab.engine.simulator import Simulator, paused_gc
from haltlab.errors import ConfigError
from haltlab.kernel.commits import commit_set
from haltlab.kernel.cpuhp import cpuhp_init, cpuhp_thread_fun
from haltlab.kernel.idle import Others, do_idle, irqsoff_task
from haltlab.kernel.irq import irq_init, spis_routed_to
from haltlab.kernel.kernel import Kernel, KernelConfig
from haltlab.kernel.kexec import kernel_kexec, kexec_init
from haltlab.kernel.policies import KexecShutdown, Policies
from haltlab.kernel.rcu import rcu_gp_ns
from haltlab.kernel.sched import Task, sched_init, user_task
from haltlab.kernel.smp import csd_init
from haltlab.kernel.stop_machine import cpu_stopper_thread, stop_machine_init
from haltlab.machine.machine import Machine
from haltlab.machine.profile import Profile, load_profile
from haltlab.scenarios.kexec_result import SCHEMA_VERSION, KexecResult

__all__ = ["KexecConfig", "KexecRun", "build_kexec", "simulate_kexec", "run_kexec", "run_to_mark", "MAX_CPUS",
           "LIMIT_NS"]

NSEC_PER_SEC = 1_000_000_000
MAX_CPUS = 4096            # arm64 CONFIG_NR_CPUS' maximum (arch/arm64/Kconfig: range 2 4096)
LIMIT_NS = 120 * NSEC_PER_SEC
"""A shutdown still running after two minutes is reported as hung: every
bounded wait on the paths is at most 10 s per CPU (`cpuhp_bp_sync_dead()`),
so only an unbounded one (stop_machine() against a CPU with interrupts off)
gets there."""


@dataclass(frozen=True)
class KexecConfig:
    profile: str = "arm64-server-24"
    cpus: int | None = None              # None: the profile's
    shutdown: KexecShutdown = KexecShutdown.HOTPLUG
    others: Others = Others.IDLE
    kernel: str = "v7.1"
    seed: int = 0
    irqs: int | None = None              # device interrupts; None: one per CPU
    managed_irqs: bool = False
    freeze: bool = False                 # freeze_processes() before the shutdown (S3's review)
    console_loglevel: int = 7
    pseudo_nmi: bool = False
    timeline: bool = True

    def __post_init__(self) -> None:
        for name, kind in (("shutdown", KexecShutdown), ("others", Others)):
            try:
                object.__setattr__(self, name, kind(getattr(self, name)))
            except ValueError:
                pass                     # validate() names it

    def validate(self, ncpus: int, arch: str) -> None:
        if arch != "arm64":
            raise ConfigError("profile", self.profile, f"an {arch} profile: the kexec shutdown model is arm64's (S3)")
        if not 2 <= ncpus <= MAX_CPUS:
            raise ConfigError("cpus", ncpus, f"2 to {MAX_CPUS} (a boot CPU and at least one to take down)")
        if not isinstance(self.shutdown, KexecShutdown):
            raise ConfigError("shutdown", self.shutdown, f"choose from {', '.join(KexecShutdown)}")
        if not isinstance(self.others, Others):
            raise ConfigError("others", self.others, f"choose from {', '.join(Others)}")
        commit_set(self.kernel)
        if self.irqs is not None and not 0 <= self.irqs <= 988:
            raise ConfigError("irqs", self.irqs, "0 to 988 (GICv3 SPIs 32-1019)")
        if not isinstance(self.freeze, bool):
            raise ConfigError("freeze", self.freeze, "must be true or false")

    def ncpus(self, profile: Profile) -> int:
        return self.cpus if self.cpus is not None else int(profile.get("cpus"))


async def _kexec_task(k, freeze: bool) -> None:
    from haltlab.engine.ops import this_cpu_write
    await this_cpu_write(k.sched.curr[0], Task.KEXEC)
    await kernel_kexec(k, freeze=freeze)


async def _busy_then_idle(k) -> None:
    await user_task(k)
    await do_idle(k)


def build_kexec(cfg: KexecConfig, profile: Profile | None = None, *, make_driver=None) -> Run:
    """The run, booted; `make_driver(machine)` (the explorer's) replaces the simulator."""
    profile = profile if profile is not None else load_profile(cfg.profile)
    ncpus = cfg.ncpus(profile)
    cfg.validate(ncpus, profile.arch)
    machine = Machine(profile, ncpus, record_timeline=cfg.timeline)
    kcfg = KernelConfig(version=cfg.kernel, pseudo_nmi=cfg.pseudo_nmi, console_loglevel=cfg.console_loglevel,
                        policies=Policies(kexec_shutdown=cfg.shutdown))
    k = Kernel(machine, kcfg)
    sched_init(k, {Task.CPUHP: cpuhp_thread_fun, Task.STOPPER: cpu_stopper_thread})
    cpuhp_init(k)
    stop_machine_init(k)
    csd_init(k)
    irq_init(k, ncpus if cfg.irqs is None else cfg.irqs, cfg.managed_irqs)
    kexec_init(k, (1 << ncpus) - 2 if cfg.others is Others.BUSY else 0)
    k.boot()
    sim = make_driver(machine) if make_driver is not None else Simulator(machine, seed=cfg.seed)
    for cpu in range(ncpus):
        if cpu == 0:
            task = _kexec_task(k, cfg.freeze)
        elif cfg.others is Others.BUSY:
            task = _busy_then_idle(k)
        elif cfg.others is Others.IRQSOFF:
            task = irqsoff_task(k)
        else:
            task = do_idle(k)
        sim.start_task(cpu, task)
    return Run(machine, k, sim, ghost=k.ghost_fingerprint)


@dataclass
class KexecRun(Run):
    config: KexecConfig
    result: KexecResult


def run_to_mark(run: Run, mark: str, limit_ns: int) -> int:
    """Simulate `run` until the kernel sets `mark` (the run's question is
    answered there: a BUG, the new kernel's init) or `limit_ns`; the machine's
    accounting closed at the end, which is returned."""
    sim = run.driver

    def on_mark(name: str, at_ns: int) -> None:
        if name == mark:
            sim.schedule(at_ns, sim.stop)

    run.kernel.on_mark = on_mark
    sim.run(limit_ns)
    end_ns = sim.now_ns
    run.machine.close(end_ns)
    return end_ns


def simulate_kexec(cfg: KexecConfig, profile: Profile | None = None) -> KexecRun:
    run = build_kexec(cfg, profile)
    end_ns = run_to_mark(run, "bug", LIMIT_NS)
    machine, k, sim = run.machine, run.kernel, run.driver
    return KexecRun(machine, k, sim, run.ghost, config=cfg, result=_result(cfg, machine, k, sim, end_ns))


def run_kexec(cfg: KexecConfig) -> KexecResult:
    with paused_gc():
        return simulate_kexec(cfg).result


def _result(cfg: KexecConfig, machine, k, sim, end_ns: int) -> KexecResult:
    marks = k.marks
    start = marks.get("machine_shutdown")
    done = marks.get("machine_shutdown_done")
    phases_by_cpu: dict[int, dict[str, int]] = {}
    bp_phases: dict[str, int] = {}
    for cpu, name, t0, t1 in k.cpuhp.phases:
        row = phases_by_cpu.setdefault(cpu, {})
        row[name] = row.get(name, 0) + t1 - t0
        if name in ("rcu_sync_enter", "stop_machine", "idle_dead", "wait_dead", "ap_teardown", "_cpu_down",
                    "freeze_processes"):
            bp_phases[name] = bp_phases.get(name, 0) + t1 - t0
    per_cpu = []
    for cpu in range(1, machine.ncpus):
        off = marks.get(f"cpu_off:{cpu}")
        ph = phases_by_cpu.get(cpu, {})
        per_cpu.append({"cpu": cpu, "down_ns": ph.get("_cpu_down"),
                        "cpu_off_at_ns": None if off is None or start is None else off - start,
                        "phases_ns": dict(sorted(ph.items()))})
    gone = _off_before(marks, end_ns)
    routed = [f"SPI {spi} routed to CPU{cpu}, which executed CPU_OFF"
              for cpu in sorted(gone) for spi in spis_routed_to(k, cpu)]
    if sim.reset_reason == "kexec":
        outcome = "kexec"
    elif "bug" in marks:
        outcome = "bug"
    else:
        outcome = "hung"
    jumped_at = marks.get("machine_kexec")
    running = sorted(c for c in range(1, machine.ncpus) if c not in _off_before(marks, jumped_at)) \
        if jumped_at is not None else []
    return {
        "schema_version": SCHEMA_VERSION,
        "scenario": "kexec",
        "config": asdict(cfg),
        "profile": machine.profile.name,
        "cpus": machine.ncpus,
        "kernel": cfg.kernel,
        "policies": {"kexec_shutdown": cfg.shutdown},
        "outcome": outcome,
        "shutdown_ns": done - start if start is not None and done is not None else None,
        "rcu_gp_ns": rcu_gp_ns(k),
        "per_cpu": per_cpu,
        "phases_ns": dict(sorted(bp_phases.items())),
        "bugs": [what for _, _, what in k.bugs],
        "spis_routed_to_dead_cpus": routed,
        "cpus_running_at_jump": running,
        "console": [text for _, _, _, text in machine.console],
        "marks_ns": dict(sorted(marks.items())),
        "state_ns": {str(c.index): dict(c.time_in_ns) for c in machine.cpus},
        "events": sim.events_run,
        "end_ns": end_ns,
        "limit_ns": LIMIT_NS,
    }


def _off_before(marks: dict[str, int], at_ns: int) -> set[int]:
    return {int(name.split(":")[1]) for name, t in marks.items() if name.startswith("cpu_off:") and t <= at_ns}
