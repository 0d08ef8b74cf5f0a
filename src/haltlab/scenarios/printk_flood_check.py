"""Scenario for the explorer: S2's flood against a panic, every interleaving.

    Result: Eventually ("---[ end Kernel panic" on the console, panic()'s
            final loop reached, or the kdump kernel entered)

CPU0 runs the sysrq shell: it prints the sysrq line, then panics. CPUs 1..N-1
run S2's writer (`printk_flood.kmsg_flood`) forever. The explorer asks, for a
kernel spec and the `console_spin` policy: can the panic fail to finish on a
fair run (a livelock, shown as a lasso), can it get stuck with nothing left to
do (a deadlock, shown as a path), can two CPUs become the panic CPU?

The model is the kernel's (`kernel/printk.py`), with two declared
abstractions that keep an endless flood finite:

* sequence numbers relative to the ring's tail (`SeqWindow`): the ring's
  overwrite makes every state of a flood that outpaces the console recur;
* a ring of `ring_records` flood records (default 1; `log_buf_bytes`), not
  128 KiB. The verdicts compare how fast records come with how fast they go
  and what the code does when the ring overwrites; a bigger ring only delays
  the first overwrite (and, with 13fb0f74d702, the 12 gaps come after a
  longer first lap). So a kernel that livelocks, deadlocks or finishes with
  two records does so with 131. Measured outcomes that depend on the size
  (how long the panic takes) belong to the simulator (`printk_flood`).

`dump_stack()` prints nothing here (`dump_stack_lines=0`): the panic's own
lines are the "Kernel panic" line, the arch's notifier line and the end line,
which keeps the windows S2 names (the panic line between the claim and the
stop, the notifier's line after it).
"""

from __future__ import annotations

from dataclasses import dataclass

from haltlab.checks.properties import Outcome, always, check, eventually, never_deadlock
from haltlab.engine.explorer import ExplorerDriver, Reduce, Timing, replay
from haltlab.engine.ops import Ghost
from haltlab.engine.por import reads
from haltlab.engine.run import Run
from haltlab.engine.symmetry import CpuSymmetry
from haltlab.errors import ConfigError
from haltlab.kernel.commits import commit_set
from haltlab.kernel.kernel import Kernel, KernelConfig
from haltlab.kernel.policies import ConsoleSpin, Policies, choose
from haltlab.kernel.printk_ringbuffer import SeqWindow, blk_size
from haltlab.machine.machine import Machine
from haltlab.scenarios.explore_timing import assumptions, check_search_fields, profile_of, tolerance_pct
from haltlab.kernel.panic import panic
from haltlab.scenarios.printk_flood import PANIC_MSG, flood_line, kmsg_flood, sysrq_trigger

__all__ = ["PrintkFloodCheckConfig", "make_run", "check_printk_flood", "replay_printk_flood",
           "PROPERTIES", "panic_finished", "timing_assumptions", "timing_tolerance_pct"]


@dataclass(frozen=True)
class PrintkFloodCheckConfig:
    cpus: int = 2
    kernel: str = "v5.17+d51507098ff9"
    console_spin: ConsoleSpin = ConsoleSpin.STOCK
    profile: str = "kvm-x86"
    line_len: int = 991
    ring_records: int = 1
    flood_irqs_off: bool = False
    sysrq_line: bool = False             # CPU0 prints "sysrq: Trigger a crash" before panic()
    kdump: bool = False                  # a crash kernel is loaded
    post_notifiers: bool = False         # crash_kexec_post_notifiers
    timing: Timing = Timing.UNTIMED
    tolerance_pct: int | None = None
    reduce: Reduce = Reduce.NONE
    max_states: int = 500_000

    def __post_init__(self) -> None:
        for name, kind in (("console_spin", ConsoleSpin), ("timing", Timing), ("reduce", Reduce)):
            try:
                object.__setattr__(self, name, kind(getattr(self, name)))
            except ValueError:
                pass            # validate() names it

    def validate(self) -> None:
        if not 2 <= self.cpus <= 4:
            raise ConfigError("cpus", self.cpus, "the flood explorer takes 2 to 4 CPUs (one panics, the rest flood)")
        commit_set(self.kernel)
        choose("console_spin", self.console_spin)
        check_search_fields(self)
        if not 1 <= self.ring_records <= 16:
            raise ConfigError("ring_records", self.ring_records, "the explorer's ring holds 1 to 16 flood records")
        if not 1 <= self.line_len <= 1024:
            raise ConfigError("line_len", self.line_len, "a record is 1 to 1024 characters")
        for name in ("kdump", "post_notifiers", "sysrq_line", "flood_irqs_off"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(name, getattr(self, name), "must be true or false")


def timing_tolerance_pct(cfg: PrintkFloodCheckConfig) -> int:
    """The tolerance a timed exploration widens every cost by (`explore_timing`)."""
    return tolerance_pct(cfg.profile, cfg.tolerance_pct)


def timing_assumptions(cfg: PrintkFloodCheckConfig) -> str:
    return assumptions(cfg.profile, cfg.timing, cfg.tolerance_pct,
                       durations="a console line at console_ns_per_char per character")


SEQ_WINDOW = SeqWindow(seq_vars=("console_seq",), dropped_vars=("console_dropped",),
                       saturate={"panic_console_dropped": 11})


def make_run(cfg: PrintkFloodCheckConfig) -> Run:
    profile = profile_of(cfg.profile)
    machine = Machine(profile, cfg.cpus, record_timeline=False)
    line = flood_line(cfg.line_len)
    k = Kernel(machine, KernelConfig(version=cfg.kernel, dump_stack_lines=0, notifier_lines=True,
                                     log_buf_bytes=cfg.ring_records * blk_size(line),
                                     kdump=cfg.kdump, crash_kexec_post_notifiers=cfg.post_notifiers,
                                     policies=Policies(console_spin=cfg.console_spin)))
    k.boot()
    driver = ExplorerDriver(machine, timing=cfg.timing, local_delays=True,
                            tolerance_pct=timing_tolerance_pct(cfg) if Timing(cfg.timing).timed else None)
    driver.start_task(0, sysrq_trigger(k, 0) if cfg.sysrq_line else panic(k, PANIC_MSG))
    for cpu in range(1, cfg.cpus):
        driver.start_task(cpu, kmsg_flood(k, line, cfg.flood_irqs_off))
    return Run(machine, k, driver, ghost=k.ghost_fingerprint, abstraction=SEQ_WINDOW,
               symmetry=CpuSymmetry(cpus=tuple(range(1, cfg.cpus)), ghost=Kernel.GHOST_KIND, frozen=(0,)))


@reads(Ghost("end_printed"), Ghost("in_panic_loop"), Ghost("crash_kexec"))
def panic_finished(run: Run) -> bool:
    """The end line reached the console, panic() reached its final loop, or
    the crash kernel was entered (kdump)."""
    g = run.kernel.ghost
    return bool(g.get("end_printed") or g.get("in_panic_loop") or g.get("crash_kexec"))


def _one_panic_cpu(run: Run) -> bool:
    return len(run.kernel.ghost.get("panic_owners", ())) <= 1


PROPERTIES = (
    always(_one_panic_cpu, name="one panic CPU", message="two CPUs passed the panic_cpu claim",
           reads={Ghost("panic_owners")}),
    never_deadlock(),
    eventually(panic_finished, name="the panic finishes",
               message='a run on which "---[ end Kernel panic" never reaches the console',
               # stable: the ghost facts it reads only grow (`Kernel.ghost_add`)
               reads=panic_finished.__reads__, stable=True),
)


def check_printk_flood(cfg: PrintkFloodCheckConfig, progress=None, *, debug: bool = False) -> Outcome:
    cfg.validate()
    return check(lambda: make_run(cfg), PROPERTIES, goal=panic_finished, max_states=cfg.max_states,
                 progress=progress, reduce=cfg.reduce, debug=debug)


def replay_printk_flood(cfg: PrintkFloodCheckConfig, choices: list[str]) -> Run:
    cfg.validate()
    return replay(lambda: make_run(cfg), choices)
