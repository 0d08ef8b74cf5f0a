"""Scenario for the explorer: S4's park designs across an x86 kexec, every interleaving.

    Result: S4's park-spin fails "the boot CPU's sibling is not parked" (as posted,
    without bootcoresibling=) and "no NMI reaches a parked CPU"; the review's
    park-mwait fails only the NMI one (the review names it, proposes no handler).

The x86 kexec reboot (`scenarios.kexec_x86`) on the explorer's driver, at 2
to 4 CPUs of the chosen profile (xeon-gold-6154 at 4 CPUs is 2 packages x 1
core x 2 threads, so CPU 2 is CPU 0's sibling), with the properties issue 11
names, each a ghost fact the park code sets (kernel/arch/x86_park.py):

* **park memory stays reserved while a CPU sits in it**: the new kernel's
  `memblock_free_all()` does not hand the park section to the allocator with
  a CPU still in it (S4 keeps it only with `cpuparkmem=`; `--no-park-mem`);
* **every parked CPU is accounted for**: after `smp_init()` no CPU is still
  parked unless the new kernel said so (`--max-cpus` below the parked count
  strands S4's; the review's count lets the kernel say it);
* **no NMI reaches a parked CPU**: a fault source sends one NMI to CPU 1 at
  the start, and the explorer chooses when it arrives (at once, in the old
  kernel, in the park, in the new kernel); parked, with no IDT, it is a
  triple fault;
* **the boot CPU's sibling is not parked**;
* the run ends (at `init` or a reset) and never deadlocks.

Untimed by default: the properties are about orders, not durations (every
delay is one step), and the bring-up's bounded waits (10 s alive, 10 ms
count) only end early when nothing else can step.
"""

from __future__ import annotations

from dataclasses import dataclass

from haltlab.checks.properties import Outcome, always, at_end, check, eventually, never_deadlock
from haltlab.engine.explorer import ExplorerDriver, Reduce, Timing, replay
from haltlab.engine.ops import Ghost, Shared
from haltlab.engine.por import reads
from haltlab.engine.run import Run
from haltlab.errors import ConfigError
from haltlab.kernel.policies import Bringup
from haltlab.kernel.arch.x86_park import PARK_DESIGNS
from haltlab.scenarios.explore_timing import check_search_fields, profile_of, tolerance_pct
from haltlab.scenarios.kexec_x86 import X86KexecConfig, build_kexec_x86

__all__ = ["X86KexecCheckConfig", "make_run", "check_kexec_x86", "replay_kexec_x86", "PROPERTIES", "reboot_ended",
           "all_up"]


@dataclass(frozen=True)
class X86KexecCheckConfig:
    cpus: int = 4
    bringup: Bringup = Bringup.PARK_SPIN
    kernel: str = "v7.1"
    profile: str = "xeon-gold-6154"
    boot_core_sibling: int | None = None
    park_mem_reserved: bool = True
    max_cpus: int | None = None
    nmi: bool = True                      # the NMI fault source
    timing: Timing = Timing.UNTIMED
    tolerance_pct: int | None = None
    reduce: Reduce = Reduce.NONE
    max_states: int = 200_000

    def __post_init__(self) -> None:
        for name, kind in (("bringup", Bringup), ("timing", Timing), ("reduce", Reduce)):
            try:
                object.__setattr__(self, name, kind(getattr(self, name)))
            except ValueError:
                pass

    def x86_config(self) -> X86KexecConfig:
        # loglevel 0: the console prints nothing (its time is the simulator's question)
        return X86KexecConfig(profile=self.profile, cpus=self.cpus, bringup=self.bringup, kernel=self.kernel,
                              boot_core_sibling=self.boot_core_sibling, park_mem_reserved=self.park_mem_reserved,
                              max_cpus=self.max_cpus, console_loglevel=0)

    def validate(self) -> None:
        if not 2 <= self.cpus <= 4:
            raise ConfigError("cpus", self.cpus, "the x86 kexec explorer takes 2 to 4 CPUs")
        check_search_fields(self)
        if self.timing is Timing.WIDENED:
            raise ConfigError("timing", self.timing, "timed or untimed: the x86 kexec explorer does not widen")
        self.x86_config().validate(self.cpus, profile_of(self.profile))


def make_run(cfg: X86KexecCheckConfig) -> Run:
    timed = Timing(cfg.timing).timed
    tol = tolerance_pct(cfg.profile, cfg.tolerance_pct) if timed else None
    run = build_kexec_x86(cfg.x86_config(), profile_of(cfg.profile),
                          make_driver=lambda m: ExplorerDriver(m, timing=cfg.timing, local_delays=True,
                                                               tolerance_pct=tol))
    if cfg.nmi:
        run.driver.post_interrupt(1, "NMI", 0)            # the fault source: one NMI, arriving when it may
    return run


@reads(Ghost("new_kernel_init"))
def reboot_ended(run: Run) -> bool:
    return "init" in run.kernel.marks or run.driver.reset_reason is not None


def _no(kind: str):
    @reads(Ghost(f"park_violation:{kind}"))
    def holds(run: Run) -> bool | str:
        cpus = run.kernel.ghost.get(f"park_violation:{kind}")
        if not cpus:
            return True
        return "; ".join(v for v in run.kernel.park.violations if any(f"CPU{c}" in v for c in cpus))
    holds.__name__ = f"no_{kind}"
    return holds


_MEMORY, _ACCOUNTING, _NMI, _SIBLING = _no("memory"), _no("accounting"), _no("nmi"), _no("sibling")


@reads(Ghost("new_kernel_init"), Shared("new:cpu_online_mask"))
def all_up(run: Run) -> bool | str:
    """At the new kernel's init, every CPU `smp_init()` was to bring up
    (`maxcpus=`, else all) is online: what every design owes, parked or not."""
    k = run.kernel
    if "init" not in k.marks:
        return True                 # a reset: another property says why
    want = min(k.smpboot.max_cpus, run.machine.ncpus)
    online = bin(k.smpboot.cpu_online_mask.value).count("1")
    return True if online >= want else f"{online} of the {want} CPUs smp_init() brings up are online at init"

PROPERTIES = (
    always(_MEMORY, name="park memory stays reserved while a CPU sits in it",
           message="the park memory went to the allocator with a CPU in it", reads=_MEMORY.__reads__),
    always(_ACCOUNTING, name="every parked CPU accounted for",
           message="a parked CPU was left behind and nothing said so", reads=_ACCOUNTING.__reads__),
    always(_NMI, name="no NMI reaches a parked CPU",
           message="an NMI reached a parked CPU (no IDT: triple fault)", reads=_NMI.__reads__),
    always(_SIBLING, name="the boot CPU's sibling is not parked",
           message="the boot CPU's SMT sibling is parked", reads=_SIBLING.__reads__),
    at_end(all_up, name="every CPU brought up is online at init",
           message="smp_init() returned with a CPU it brings up not online", reads=all_up.__reads__),
    never_deadlock(),
    eventually(reboot_ended, name="the reboot ends", message="a run that never reaches init nor resets",
               reads=reboot_ended.__reads__, stable=True),
)


def check_kexec_x86(cfg: X86KexecCheckConfig, progress=None, *, properties=PROPERTIES) -> Outcome:
    cfg.validate()
    return check(lambda: make_run(cfg), properties, goal=reboot_ended, max_states=cfg.max_states,
                 progress=progress, reduce=cfg.reduce)


def replay_kexec_x86(cfg: X86KexecCheckConfig, choices: list[str]) -> Run:
    cfg.validate()
    return replay(lambda: make_run(cfg), choices)


def park_designs() -> tuple[Bringup, ...]:
    return PARK_DESIGNS
