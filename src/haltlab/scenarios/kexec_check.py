"""Scenario for the explorer: S3's kexec shutdown, every interleaving.

    Result: Eventually (machine_kexec() jumps, or a BUG() stops the kexec)

The kexec scenario (`scenarios.kexec`) on the explorer's driver, at 2 to 4
CPUs, with the properties S3's review names:

* **no BUG()**: `machine_kexec()`'s `BUG_ON(num_online_cpus() > 1)`,
  `idle_task_exit()`'s `BUG_ON(current != idle)` (since 5.17: S3's patch calls
  `cpu_die()` from the stop IPI, whatever the CPU was running), and
  `smp_shutdown_nonboot_cpus()`'s own;
* **interrupts migrated before CPU_OFF** (PSCI §5.5.2): no device interrupt is
  routed to a CPU that has executed CPU_OFF while the old kernel runs;
* **every CPU truly left** at the jump: when `machine_kexec()` jumps, every
  secondary CPU has executed CPU_OFF (none still runs old-kernel code when the
  image is copied over it);
* **the wait is bounded**: every fair run ends, by the jump or by a BUG()
  (`eventually`), and never in a deadlock.

Timing: the shutdown's waits are sleeps and bounded spins from one
microsecond to seconds (`cpu_wait_death()`'s 5 s, `smp_send_stop()`'s 1 s);
untimed, a bound may expire before what it waits for, so a verdict that
differs under `--timing untimed` depends on timing (the CLI says so). The
default is `timed`.

No reduction by symmetry: SPI n is routed to CPU n, which tells the
secondaries apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from haltlab.checks.properties import Outcome, always, check, eventually, never_deadlock
from haltlab.engine.explorer import ExplorerDriver, Reduce, Timing, replay
from haltlab.engine.ops import Ghost, Shared
from haltlab.engine.por import reads
from haltlab.engine.run import Run
from haltlab.errors import ConfigError
from haltlab.kernel.idle import Others
from haltlab.kernel.irq import spis_routed_to
from haltlab.kernel.policies import KexecShutdown
from haltlab.scenarios.explore_timing import assumptions, check_search_fields, profile_of, tolerance_pct
from haltlab.scenarios.kexec import KexecConfig, build_kexec

__all__ = ["KexecCheckConfig", "make_run", "check_kexec", "replay_kexec", "PROPERTIES", "kexec_ended", "property_named",
           "timing_assumptions", "timing_tolerance_pct"]


@dataclass(frozen=True)
class KexecCheckConfig:
    cpus: int = 2
    shutdown: KexecShutdown = KexecShutdown.HOTPLUG
    others: Others = Others.IDLE
    kernel: str = "v7.1"
    profile: str = "arm64-server-24"
    irqs: int | None = None
    managed_irqs: bool = False
    freeze: bool = False
    timing: Timing = Timing.TIMED
    tolerance_pct: int | None = None
    reduce: Reduce = Reduce.NONE
    max_states: int = 200_000

    def __post_init__(self) -> None:
        for name, kind in (("shutdown", KexecShutdown), ("others", Others), ("timing", Timing), ("reduce", Reduce)):
            try:
                object.__setattr__(self, name, kind(getattr(self, name)))
            except ValueError:
                pass

    def kexec_config(self) -> KexecConfig:
        # loglevel 4: the explorer's console prints nothing of the kexec paths'
        # pr_info lines (their time is the simulator's question, not the verdicts')
        return KexecConfig(profile=self.profile, cpus=self.cpus, shutdown=self.shutdown, others=self.others,
                           kernel=self.kernel, irqs=self.irqs, managed_irqs=self.managed_irqs, freeze=self.freeze,
                           console_loglevel=4, timeline=False)

    def validate(self) -> None:
        if not 2 <= self.cpus <= 4:
            raise ConfigError("cpus", self.cpus, "the kexec explorer takes 2 to 4 CPUs (CPU0 and those it takes down)")
        check_search_fields(self)
        if self.timing is Timing.WIDENED:
            # widening is for loops inside long operations (S2's flood); a kexec
            # shutdown has none, and its counterexamples are not marked as candidates
            raise ConfigError("timing", self.timing, "timed or untimed: the kexec explorer does not widen")
        profile = profile_of(self.profile)
        self.kexec_config().validate(self.cpus, profile.arch)


def timing_tolerance_pct(cfg: KexecCheckConfig) -> int:
    return tolerance_pct(cfg.profile, cfg.tolerance_pct)


def timing_assumptions(cfg: KexecCheckConfig) -> str:
    return assumptions(cfg.profile, cfg.timing, cfg.tolerance_pct,
                       untimed_rule="a bounded wait may time out whenever no other CPU can step",
                       durations="sleeps (usleep_range(), schedule_timeout(), synchronize_rcu()) as their timers")


def make_run(cfg: KexecCheckConfig) -> Run:
    timed = Timing(cfg.timing).timed
    tol = timing_tolerance_pct(cfg) if timed else None
    return build_kexec(cfg.kexec_config(), profile_of(cfg.profile),
                       make_driver=lambda m: ExplorerDriver(m, timing=cfg.timing, local_delays=True, tolerance_pct=tol))


@reads(Ghost("kexec_jump"), Ghost("bug"))
def kexec_ended(run: Run) -> bool:
    g = run.kernel.ghost
    return bool(g.get("kexec_jump") or g.get("bug"))


@reads(Ghost("bug"))
def _no_bug(run: Run) -> bool | str:
    if not run.kernel.ghost.get("bug"):
        return True
    return "BUG(): " + "; ".join(what for _, _, what in run.kernel.bugs)


@reads(Ghost("cpu_off"), Ghost("kexec_jump"), Shared("GICD_IROUTER"))
def _irqs_migrated(run: Run) -> bool | str:
    g = run.kernel.ghost
    if g.get("kexec_jump"):
        return True
    bad = [f"SPI {spi} still routed to CPU{cpu}, which executed CPU_OFF"
           for cpu in sorted(g.get("cpu_off", ())) for spi in spis_routed_to(run.kernel, cpu)]
    return "; ".join(bad) if bad else True


@reads(Ghost("cpu_off"), Ghost("kexec_jump"))
def _all_left(run: Run) -> bool | str:
    g = run.kernel.ghost
    if not g.get("kexec_jump"):
        return True
    left = g.get("cpu_off", set())
    running = [c for c in range(1, run.machine.ncpus) if c not in left]
    if not running:
        return True
    return ("machine_kexec() jumps while " + ", ".join(f"CPU{c}" for c in running)
            + " has not executed CPU_OFF (still running old-kernel code)")


PROPERTIES = (
    always(_no_bug, name="no BUG()", message="a BUG() stopped the kexec", reads=_no_bug.__reads__),
    always(_irqs_migrated, name="interrupts migrated before CPU_OFF",
           message="an interrupt is routed to a CPU that executed CPU_OFF", reads=_irqs_migrated.__reads__),
    always(_all_left, name="every CPU left at the jump",
           message="machine_kexec() jumps with a secondary CPU still running", reads=_all_left.__reads__),
    never_deadlock(),
    eventually(kexec_ended, name="the kexec ends",
               message="a run on which machine_kexec() never jumps and no BUG() stops it",
               reads=kexec_ended.__reads__, stable=True),
)


def check_kexec(cfg: KexecCheckConfig, progress=None, *, debug: bool = False, properties=PROPERTIES) -> Outcome:
    """Judge `properties` (all of them by default; a subset shows the first
    violation of each, since the search stops at the first)."""
    cfg.validate()
    return check(lambda: make_run(cfg), properties, goal=kexec_ended, max_states=cfg.max_states,
                 progress=progress, reduce=cfg.reduce, debug=debug)


def property_named(name: str):
    for p in PROPERTIES:
        if p.name == name:
            return p
    raise ConfigError("property", name, f"choose from {', '.join(p.name for p in PROPERTIES)}")


def replay_kexec(cfg: KexecCheckConfig, choices: list[str]) -> Run:
    cfg.validate()
    return replay(lambda: make_run(cfg), choices)
