"""Scenario: an x86 kexec reboot, from "Starting new kernel" to the new kernel's `init` (S4).

CPU 0 runs `kernel_kexec()`; the others idle (or spin with interrupts off,
or sit offline in `mwait_play_dead()`). The old kernel stops them
(`native_machine_shutdown()`), CPU 0 copies the image, runs the purgatory
and boots the new kernel, whose `smp_init()` brings the APs back by the
design chosen (`Bringup`: serial INIT/SIPI, 6.5's parallel bring-up, S4's
park or its review's). The run ends at `init`, at a reset (a parked CPU's
NMI), or at its limit. It answers S4's question, how long `smp_init()` and
the whole reboot take, with each AP's timeline, and says what each design
leaves unsafe (x86_park's violations).

One machine and one run for both kernels: the old kernel's state is left
as it is at the jump (no CPU reads it after), the new kernel's bring-up
state is its own (`SmpBoot`'s `new:` variables), and the park section and
the hardware (INIT/SIPI, C-states) carry over, as they do.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from haltlab.engine.context import smp_processor_id
from haltlab.engine.ops import clear_bit, this_cpu_write
from haltlab.engine.run import Run
from haltlab.engine.simulator import Simulator, paused_gc
from haltlab.errors import ConfigError
from haltlab.kernel import smpboot
from haltlab.kernel.arch import x86_park, x86_smpboot
from haltlab.kernel.arch.x86_kexec import mwait_dead_init, mwait_play_dead
from haltlab.kernel.commits import commit_set
from haltlab.kernel.idle import Others, do_idle, irqsoff_task
from haltlab.kernel.kernel import Kernel, KernelConfig
from haltlab.kernel.kexec import kernel_kexec, kexec_init
from haltlab.kernel.policies import Bringup, Policies
from haltlab.kernel.sched import Task, sched_init
from haltlab.machine.machine import Machine
from haltlab.machine.profile import Profile, load_profile
from haltlab.machine.topology import topology_of
from haltlab.scenarios.kexec import run_to_mark
from haltlab.scenarios.kexec_x86_result import PHASES, SCHEMA_VERSION, X86KexecResult

__all__ = ["X86KexecConfig", "build_kexec_x86", "simulate_kexec_x86", "run_kexec_x86", "MAX_CPUS", "LIMIT_NS",
           "CSTATES"]

NSEC_PER_SEC = 1_000_000_000
MAX_CPUS = 8192                # x86-64 CONFIG_NR_CPUS' maximum with MAXSMP (arch/x86/Kconfig: NR_CPUS_RANGE_END)
LIMIT_NS = 120 * NSEC_PER_SEC
CSTATES = ("C1", "C1E", "C6")


@dataclass(frozen=True)
class X86KexecConfig:
    profile: str = "xeon-gold-6154"
    cpus: int | None = None
    bringup: Bringup = Bringup.INIT_SIPI
    others: Others = Others.IDLE
    kernel: str = "v7.1"
    seed: int = 0
    lpj: bool = False                    # lpj= on the new kernel's command line
    tsc_reliable: bool = False           # tsc=reliable
    cpu_init_udelay: int | None = None   # cpu_init_udelay=
    max_cpus: int | None = None          # maxcpus=
    offline_cpus: int = 0                # the highest-numbered CPUs, offline in mwait_play_dead()
    boot_core_sibling: int | None = None     # S4's bootcoresibling= (None: not given, the patch's 0)
    park_mem_reserved: bool = True       # S4's cpuparkmem= on the new kernel's command line
    park_cstate: str = "C1"              # the review variant's MWAIT hint
    console_loglevel: int = 7
    timeline: bool = False               # the machine's state intervals: no report of this run reads them

    def __post_init__(self) -> None:
        for name, kind in (("bringup", Bringup), ("others", Others)):
            try:
                object.__setattr__(self, name, kind(getattr(self, name)))
            except ValueError:
                pass                     # validate() names it

    def validate(self, ncpus: int, profile: Profile) -> None:
        if profile.arch != "x86_64":
            raise ConfigError("profile", self.profile, f"an {profile.arch} profile: the x86 kexec model needs x86_64")
        if not 2 <= ncpus <= MAX_CPUS:
            raise ConfigError("cpus", ncpus, f"2 to {MAX_CPUS} (a boot CPU and at least one AP)")
        if not isinstance(self.bringup, Bringup):
            raise ConfigError("bringup", self.bringup, f"choose from {', '.join(Bringup)}")
        if not isinstance(self.others, Others):
            raise ConfigError("others", self.others, f"choose from {', '.join(Others)}")
        commits = commit_set(self.kernel)
        if self.bringup in (Bringup.PARALLEL, Bringup.PARK_MWAIT) and "cpuhp_core_sync_dead" not in commits:
            raise ConfigError("bringup", self.bringup, f"needs the 6.5 hotplug series (kernel {self.kernel} lacks "
                                                       "cpuhp_core_sync_dead): use --kernel v6.6 or later")
        if self.park_cstate not in CSTATES:
            raise ConfigError("park_cstate", self.park_cstate, f"choose from {', '.join(CSTATES)}")
        if not 0 <= self.offline_cpus < ncpus:
            raise ConfigError("offline_cpus", self.offline_cpus, f"0 to {ncpus - 1}")
        if self.max_cpus is not None and self.max_cpus < 1:
            raise ConfigError("max_cpus", self.max_cpus, "at least 1")
        if self.boot_core_sibling is not None and not 0 <= self.boot_core_sibling < ncpus:
            raise ConfigError("boot_core_sibling", self.boot_core_sibling, f"a CPU, 0 to {ncpus - 1}")
        if self.cpu_init_udelay is not None and not 0 <= self.cpu_init_udelay <= 10**6:
            raise ConfigError("cpu_init_udelay", self.cpu_init_udelay, "0 to 1000000 us")
        for key in ("x86_family", "ap_sipi_response_ns", "boot_to_smp_init_ns", "kexec_image_kib"):
            if key not in profile.params:
                raise ConfigError("profile", self.profile, f"no {key}: not a profile for the x86 kexec model")
        topology_of(profile, ncpus)

    def ncpus(self, profile: Profile) -> int:
        return self.cpus if self.cpus is not None else int(profile.get("cpus"))


async def _kexec_task(k) -> None:
    await this_cpu_write(k.sched.curr[0], Task.KEXEC)
    await kernel_kexec(k)


def build_kexec_x86(cfg: X86KexecConfig, profile: Profile | None = None, *, make_driver=None) -> Run:
    profile = profile if profile is not None else load_profile(cfg.profile)
    ncpus = cfg.ncpus(profile)
    cfg.validate(ncpus, profile)
    topo = topology_of(profile, ncpus)
    machine = Machine(profile, ncpus, record_timeline=cfg.timeline)
    kcfg = KernelConfig(version=cfg.kernel, console_loglevel=cfg.console_loglevel,
                        policies=Policies(bringup=cfg.bringup))
    k = Kernel(machine, kcfg)
    k.arch_smpboot = x86_smpboot
    sched_init(k, {})
    kexec_init(k, 0)
    offline = ((1 << cfg.offline_cpus) - 1) << (ncpus - cfg.offline_cpus) if cfg.offline_cpus else 0
    if offline:
        mwait_dead_init(k, offline)
    smpboot.smpboot_init(k, topo, max_cpus=cfg.max_cpus)
    x86_smpboot.x86_boot_init(k, preset_lpj=cfg.lpj, tsc_reliable=cfg.tsc_reliable,
                              cpu_init_udelay=cfg.cpu_init_udelay)
    x86_park.park_init(k, cfg.bringup, boot_core_sibling=cfg.boot_core_sibling, reserved=cfg.park_mem_reserved,
                       cstate=cfg.park_cstate)
    k.boot()
    old_nmi = machine._nmi_handler
    machine.register_nmi_handler(lambda cpu: x86_park.park_nmi(k, cpu, lambda k: old_nmi(cpu)))
    machine.register_reset_handlers(lambda cpu: x86_smpboot.x86_init_reset(k, cpu),
                                    lambda cpu: x86_smpboot.trampoline_start(k, cpu))
    sim = make_driver(machine) if make_driver is not None else Simulator(machine, seed=cfg.seed)
    for cpu in range(ncpus):
        if cpu == 0:
            task = _kexec_task(k)
        elif offline >> cpu & 1:
            task = _offline_task(k)
        elif cfg.others is Others.IRQSOFF:
            task = irqsoff_task(k)
        else:
            task = do_idle(k)
        sim.start_task(cpu, task)
    return Run(machine, k, sim, ghost=k.ghost_fingerprint)


async def _offline_task(k) -> None:
    """A CPU taken offline before the kexec: not in the online mask, in `mwait_play_dead()`."""
    await clear_bit(smp_processor_id(), k.cpu_online_mask)
    await mwait_play_dead(k)


def simulate_kexec_x86(cfg: X86KexecConfig, profile: Profile | None = None):
    run = build_kexec_x86(cfg, profile)
    end_ns = run_to_mark(run, "init", LIMIT_NS)
    run.result = _result(cfg, run.machine, run.kernel, run.driver, end_ns)
    return run


def run_kexec_x86(cfg: X86KexecConfig) -> X86KexecResult:
    with paused_gc():
        return simulate_kexec_x86(cfg).result


def _result(cfg: X86KexecConfig, machine, k, sim, end_ns: int) -> X86KexecResult:
    marks = k.marks
    start = marks.get("machine_shutdown")
    edges = [marks.get(m) for m in ("machine_shutdown", "machine_kexec", "new_kernel", "smp_init", "smp_init_done",
                                    "init")]
    phases = {}
    for name, t0, t1 in zip(PHASES, edges, edges[1:]):
        phases[name] = t1 - t0 if t0 is not None and t1 is not None else None
    sb = k.smpboot
    t_smp = marks.get("smp_init")
    sipied = {c for _, c, v in machine.irq_log if v == "SIPI"}
    unparked = k.ghost.get("unparked", set())
    per_ap = []
    for cpu in range(1, machine.ncpus):
        row = sb.timeline.get(cpu, {})

        def rel(event: str) -> int | None:
            t = row.get(event)
            return None if t is None or t_smp is None else t - t_smp
        per_ap.append({"cpu": cpu, "package": sb.topo.package_of(cpu), "thread": sb.topo.thread_of(cpu),
                       "kicked_ns": rel("kicked"), "alive_ns": rel("alive"), "online_ns": rel("online"),
                       "up_ns": rel("up"), "tsc_sync_ns": row.get("tsc_sync_ns"),
                       "calibrate_ns": row.get("calibrate_ns"),
                       "parked": cpu in k.ghost.get("parked", ()),
                       "woken_by": "park" if cpu in unparked else "init-sipi" if cpu in sipied else None})
    if "init" in marks:
        outcome = "init"
    elif sim.reset_reason is not None:
        outcome = "reset"
    else:
        outcome = "hung"
    return {
        "schema_version": SCHEMA_VERSION,
        "scenario": "kexec",
        "arch": "x86",
        "config": asdict(cfg),
        "profile": machine.profile.name,
        "cpus": machine.ncpus,
        "kernel": cfg.kernel,
        "policies": {"bringup": cfg.bringup},
        "outcome": outcome,
        "reset_reason": sim.reset_reason,
        "downtime_ns": marks["init"] - start if "init" in marks and start is not None else None,
        "smp_init_ns": phases["smp_init"],
        "phases": phases,
        "init_udelay_us": k.x86_boot.init_udelay,
        "cpus_online": bin(sb.cpu_online_mask.value).count("1"),
        "per_ap": per_ap,
        "park_violations": list(k.park.violations) if k.park is not None else [],
        "console": [text for _, _, _, text in machine.console],
        "marks_ns": dict(sorted(marks.items())),
        "state_ns": {str(c.index): dict(c.time_in_ns) for c in machine.cpus},
        "events": sim.events_run,
        "end_ns": end_ns,
        "limit_ns": LIMIT_NS,
    }

