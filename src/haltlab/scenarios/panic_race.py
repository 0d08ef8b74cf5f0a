"""Scenario for the explorer: several CPUs call `panic()` at once.

In the shape of a litmus test:

    Result: Never (two panic CPUs)

Every CPU disables interrupts and tries to claim `panic_cpu` with
`atomic_try_cmpxchg()`. Exactly one wins and carries on; every other CPU sees
the claim and ends in `panic_smp_self_stop()` (on x86 spinning with interrupts
off until the winner's `smp_send_stop()` gives up on REBOOT_VECTOR and stops it
with an NMI). The `load-store` variant replaces the cmpxchg with a read and a
separate write, and the explorer must find the interleaving in which two CPUs
both read PANIC_CPU_INVALID and both become the panic CPU.

Properties:
* always: at most one CPU has passed the claim;
* at the end (the winner in the final loop, or nothing left to do): exactly one
  CPU passed the claim, `panic_cpu` names it, and every other CPU entered
  `panic_smp_self_stop()` (with `timeouts="any"`, or timed with a tolerance
  that lets the one-second wait end early, a slow CPU may instead be
  stopped by the NMI before it reaches the claim; then it must be in
  `stop_this_cpu()` or have the stop NMI on its way).
"""

from __future__ import annotations

from dataclasses import dataclass

from haltlab.checks.properties import Outcome, always, at_end, check, eventually, never_deadlock
from haltlab.engine.explorer import ExplorerDriver, Exploration, Reduce, Timeouts, Timing, replay
from haltlab.engine.ops import Ghost
from haltlab.engine.por import reads
from haltlab.engine.run import Run
from haltlab.engine.symmetry import CpuSymmetry
from haltlab.errors import ConfigError
from haltlab.kernel.commits import commit_set
from haltlab.kernel.kernel import Kernel, KernelConfig
from haltlab.kernel.panic import panic
from haltlab.kernel.policies import PanicStart, Policies, choose
from haltlab.machine.machine import Machine
from haltlab.scenarios.explore_timing import assumptions, profile_of, tolerance_pct

__all__ = ["PanicRaceConfig", "make_run", "explore_panic_race", "check_panic_race", "replay_panic_race",
           "PROPERTIES", "VARIANTS", "timing_assumptions", "timing_tolerance_pct"]

VARIANTS = tuple(p.value for p in PanicStart)
"""The claim variants by name, as plain `str` (see `kernel.policies`)."""


@dataclass(frozen=True)
class PanicRaceConfig:
    """One exploration; `variant` and `timeouts` accept names and hold members."""

    cpus: int = 2
    variant: PanicStart = PanicStart.CMPXCHG
    profile: str = "kvm-x86"
    kernel: str = "v7.1"
    timeouts: Timeouts = Timeouts.QUIESCENT
    max_states: int = 500_000
    reduce: Reduce = Reduce.NONE        # the CLI's default is all
    timing: Timing = Timing.UNTIMED     # untimed is the stronger verdict: it holds for every duration
    tolerance_pct: int | None = None    # timed: the profile's timing_tolerance unless given

    def __post_init__(self) -> None:
        for name, kind in (("variant", PanicStart), ("timeouts", Timeouts), ("reduce", Reduce),
                           ("timing", Timing)):
            try:
                object.__setattr__(self, name, kind(getattr(self, name)))
            except ValueError:
                pass            # left as given: validate() names it

    def validate(self) -> None:
        if not 2 <= self.cpus <= 8:
            raise ConfigError("cpus", self.cpus, "the race needs 2 to 8 CPUs")
        choose("panic_start", self.variant, field="variant")
        if not isinstance(self.timeouts, Timeouts):
            raise ConfigError("timeouts", self.timeouts, "choose quiescent or any")
        if not isinstance(self.reduce, Reduce):
            raise ConfigError("reduce", self.reduce, "choose none, symmetry, por or all")
        if not isinstance(self.timing, Timing):
            raise ConfigError("timing", self.timing, "choose untimed, timed or widened")
        if self.tolerance_pct is not None and not 0 <= self.tolerance_pct <= 100:
            raise ConfigError("tolerance_pct", self.tolerance_pct, "a timing tolerance is 0 to 100 %")
        commit_set(self.kernel)
        if self.max_states < 1:
            raise ConfigError("max_states", self.max_states, "must be at least 1")


def make_run(cfg: PanicRaceConfig) -> Run:
    """Every CPU calls `panic()` at once, under the explorer."""
    machine = Machine(profile_of(cfg.profile), cfg.cpus, record_timeline=False)
    k = Kernel(machine, KernelConfig(version=cfg.kernel, dump_stack_lines=0,
                                     policies=Policies(panic_start=cfg.variant)))
    k.boot()
    driver = ExplorerDriver(machine, timeouts=cfg.timeouts, timing=cfg.timing,
                            tolerance_pct=timing_tolerance_pct(cfg) if Timing(cfg.timing).timed else None)
    for cpu in range(cfg.cpus):
        driver.start_task(cpu, panic(k, "race"))
    # Every CPU runs panic() in the same role: all are interchangeable.
    return Run(machine, k, driver, ghost=k.ghost_fingerprint,
               symmetry=CpuSymmetry(cpus=tuple(range(cfg.cpus)), ghost=Kernel.GHOST_KIND))


def timing_tolerance_pct(cfg: PanicRaceConfig) -> int:
    """The tolerance a timed exploration widens every cost by (`explore_timing`)."""
    return tolerance_pct(cfg.profile, cfg.tolerance_pct)


def timing_assumptions(cfg: PanicRaceConfig) -> str:
    """What a verdict's timing rests on, in words."""
    rule = ("a bounded wait times out only when nothing else can happen" if cfg.timeouts is Timeouts.QUIESCENT
            else "a bounded wait may time out at any step")
    return assumptions(cfg.profile, cfg.timing, cfg.tolerance_pct, untimed_rule=rule,
                       durations="the kernel's delays and timeouts")


def at_most_one_owner(run: Run) -> str | None:
    owners = sorted(run.kernel.ghost.get("panic_owners", ()))
    if len(owners) > 1:
        return f"CPUs {owners} all passed the panic_cpu claim: two panic CPUs"
    return None


def settled(run: Run) -> str | None:
    k = run.kernel
    owners = k.ghost.get("panic_owners", frozenset())
    if len(owners) != 1:
        return f"{len(owners)} CPUs passed the panic_cpu claim; expected exactly one"
    (owner,) = owners
    if k.panic_cpu.value != owner:
        return f"panic_cpu is {k.panic_cpu.value} but CPU{owner} passed the claim"
    self_stopped = k.ghost.get("self_stopped", frozenset())
    stopped = k.ghost.get("stopped", frozenset())
    for cpu in range(k.machine.ncpus):
        if cpu == owner or cpu in self_stopped:
            continue
        early = run.driver.timeouts is Timeouts.ANY or run.driver.clocks is not None
        if early and (cpu in stopped or _nmi_on_its_way(run, cpu)):
            continue
        return f"CPU{cpu} neither owns the panic nor entered panic_smp_self_stop()"
    return None


def _nmi_on_its_way(run: Run, cpu: int) -> bool:
    """With timeouts at any step the winner may finish before a slow CPU even
    tried the claim; the stop NMI in flight to it, latched, or already in its
    handler still stops it, since an NMI cannot be masked."""
    c = run.machine.cpus[cpu]
    return (cpu, "NMI") in run.driver.inflight or c.nmi_pending or c.in_nmi


@reads(Ghost("in_panic_loop"))
def winner_in_final_loop(run: Run) -> bool:
    return bool(run.kernel.ghost.get("in_panic_loop"))


# What the race must satisfy, in the words a verdict prints.
PROPERTIES = (
    always(lambda run: at_most_one_owner(run) or True, name="one panic CPU",
           message="two CPUs passed the panic_cpu claim", reads={Ghost("panic_owners")}),
    at_end(lambda run: settled(run) or True, name="settled",
           message="the race did not settle: one panic CPU, the others in panic_smp_self_stop()"),
    never_deadlock(),
    eventually(winner_in_final_loop, name="the winner finishes",
               message="a run on which the winner never reaches panic()'s final loop",
               # stable: the ghost fact it reads only grows (`Kernel.ghost_add`)
               reads=winner_in_final_loop.__reads__, stable=True),
)


def check_panic_race(cfg: PanicRaceConfig, progress=None, *, debug: bool = False) -> Outcome:
    """Every interleaving of the race, judged on `PROPERTIES`."""
    cfg.validate()
    # The race's graph is acyclic and each state is reached by about 2.4 edges:
    # breadth first, those edges bring runs to it (`engine.reach`, "frontier").
    return check(lambda: make_run(cfg), PROPERTIES, goal=winner_in_final_loop,
                 max_states=cfg.max_states, progress=progress, reduce=cfg.reduce, debug=debug,
                 reach="frontier")


def explore_panic_race(cfg: PanicRaceConfig, progress=None, *, debug: bool = False) -> Exploration:
    """The exploration `check_panic_race` judged (its counts and any violation)."""
    return check_panic_race(cfg, progress, debug=debug).exploration


def replay_panic_race(cfg: PanicRaceConfig, choices: list[str]) -> tuple[Run, str | None]:
    cfg.validate()
    run = replay(lambda: make_run(cfg), choices)
    msg = at_most_one_owner(run)
    if msg is None and (not run.driver.choices() or winner_in_final_loop(run)):
        msg = settled(run)
    return run, msg
