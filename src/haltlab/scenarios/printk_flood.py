"""Scenario: S2's stress test in the timed simulator, one run.

S2's reproducer (the cover letter of "printk: reduce deadlocks during panic",
kernel-facts §2.3): a process writes 991-character records to /dev/kmsg in a
loop on one CPU while another panics with `echo c > /proc/sysrq-trigger`; a
run hangs when no login prompt appears on the serial console within 60 s. The
model's run: CPU0 runs the shell and triggers sysrq after a delay drawn from
the seed; CPUs 1..N-1 flood (`kmsg_flood`, S2's one writer, or more); the run
hangs when "---[ end Kernel panic" has not reached the console 60 s after the
trigger (S2 watched for the login prompt of the kdump kernel or the reboot;
the end line is what the model and the lab can see, and the lab uses it too).

What S2 does not say, assumed here and printed with every result: no kdump
(`smp_send_stop()`, so the flooder is stopped by REBOOT_VECTOR when the panic
CPU gets that far), the console's speed and the flood loop's cost are the
profile's (`console_ns_per_char`, `devkmsg_user_ns`), the trigger delay is
uniform in [0.5 s, 2 s] after the flood starts (the lab's `lab flood`
range), and every cost varies by the profile's `timing_tolerance` (uniform,
`machine.jitter`).

A livelocked run must not cost 60 s of simulated flooding. `livelock_proof()`
decides it as soon as the model can prove it: the panic CPU holds console_sem
in `console_unlock()` before `smp_send_stop()`, the kernel has no rule that
ends that loop while records keep coming (no 13fb0f74d702 guard, no
779dbc2e78d7 drop, no hand-over a flooder could take), every unread record is
a flood record, and a flooder's slowest iteration is shorter than the
console's fastest flood record. Then every time the panic CPU looks for the
next record one more has been stored since it last looked, so the loop never
ends, and nothing else in the model can end it (only the panic CPU could stop
the flooders). The row says "livelock (proven at T)".
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

from haltlab.engine.context import ktime_get_ns
from haltlab.engine.ops import local_irq_disable, local_irq_enable, ndelay, set_cpu_state
from haltlab.engine.run import Run
from haltlab.engine.simulator import Simulator
from haltlab.engine.symmetry import cpu_locals
from haltlab.errors import ConfigError
from haltlab.kernel.commits import commit_set
from haltlab.kernel.idle import do_idle
from haltlab.kernel.kernel import Kernel, KernelConfig
from haltlab.kernel.panic import panic
from haltlab.kernel.policies import ConsoleSpin, Policies, choose
from haltlab.kernel.printk import devkmsg_write, printk
from haltlab.machine.jitter import Jitter
from haltlab.machine.machine import Machine
from haltlab.machine.profile import KEYS, Profile, load_profile

__all__ = ["PrintkFloodConfig", "run_printk_flood", "build_printk_flood", "kmsg_flood", "flood_line",
           "livelock_proof", "ASSUMPTIONS", "FLOOD_TAG", "PANIC_MSG"]

NSEC_PER_SEC = 1_000_000_000
NSEC_PER_MSEC = 1_000_000
PANIC_MSG = "sysrq triggered crash"
FLOOD_TAG = "FLOOD "
_CHECK_EVERY_NS = 5 * NSEC_PER_MSEC       # how often the run looks for a livelock proof
_TICK_KEYS = ("tick_handler_ns", "irq_entry_exit_ns")

ASSUMPTIONS = ("no kdump: smp_send_stop() stops the flooders (S2 does not say); "
               "console speed and flood loop cost from the profile (console_ns_per_char, devkmsg_user_ns); "
               "trigger delay uniform in [delay_min_s, delay_max_s] after the flood starts; "
               "every cost jittered uniformly by the profile's timing_tolerance; "
               "hung = no '---[ end Kernel panic' on the console hang_after_s after the trigger")


@dataclass(frozen=True)
class PrintkFloodConfig:
    """One run of S2's stress test."""

    kernel: str = "v5.17+d51507098ff9"
    console_spin: ConsoleSpin = ConsoleSpin.STOCK
    profile: str = "kvm-x86"
    cpus: int = 2                       # CPU0 panics; every other CPU floods
    flooders: int | None = None         # CPUs 1..flooders flood, the rest idle (None: all but CPU0; the lab: 1)
    seed: int = 0
    delay_min_s: float = 0.5
    delay_max_s: float = 2.0
    hang_after_s: float = 60.0          # S2: 60 s
    line_len: int = 991                 # S2's records (LOG_LINE_MAX - 1 in 6.1)
    flood_irqs_off: bool = False        # the flooder prints with interrupts off
    log_buf_shift: int | None = None    # None: the profile's (or Kconfig's 17)
    jitter: bool = True

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "console_spin", ConsoleSpin(self.console_spin))
        except ValueError:
            pass                # validate() names it

    def validate(self) -> None:
        commit_set(self.kernel)
        choose("console_spin", self.console_spin)
        if not 2 <= self.cpus <= 64:
            raise ConfigError("cpus", self.cpus, "the flood needs 2 to 64 CPUs (one panics, the rest flood)")
        if self.flooders is not None and not (isinstance(self.flooders, int) and 1 <= self.flooders < self.cpus):
            raise ConfigError("flooders", self.flooders, f"1 to {self.cpus - 1} (CPU0 panics; the rest of the "
                                                         f"{self.cpus} CPUs flood or idle)")
        if not 0 <= self.delay_min_s <= self.delay_max_s:
            raise ConfigError("delay_min_s", self.delay_min_s,
                              f"must be at least 0 and at most delay_max_s ({self.delay_max_s:g} s)")
        if self.delay_max_s > 3600:
            raise ConfigError("delay_max_s", self.delay_max_s, "at most an hour")
        if not 0 < self.hang_after_s <= 3600:
            raise ConfigError("hang_after_s", self.hang_after_s, "between 0 and 3600 s")
        if not 1 <= self.line_len <= 1024:
            raise ConfigError("line_len", self.line_len, "a record is 1 to 1024 characters (PRINTKRB_RECORD_MAX)")


def flood_line(line_len: int) -> str:
    """A flood record as the lab's guest writes it: the tag, then 'F's."""
    return (FLOOD_TAG + "F" * line_len)[:line_len]


async def kmsg_flood(k, line: str, irqs_off: bool) -> None:
    """S2's writer: `while :; do echo $LINE >&3; done`, one write(2) per record
    (each iteration's cost drawn afresh when the machine jitters it)."""
    await set_cpu_state(tick_enabled=True)
    while True:
        await ndelay(k.machine.cost_ns("devkmsg_user_ns"))
        if irqs_off:
            await local_irq_disable()
        await devkmsg_write(k, line)
        if irqs_off:
            await local_irq_enable()


@cpu_locals(plain=("delay_ns",))
async def sysrq_trigger(k, delay_ns: int) -> None:
    """The shell on CPU0: waits, then `echo c > /proc/sysrq-trigger`
    (`__handle_sysrq()` prints the action, `sysrq_handle_crash()` panics)."""
    await set_cpu_state(tick_enabled=True)
    await ndelay(delay_ns)
    k.mark("sysrq_trigger", ktime_get_ns())
    await printk(k, "sysrq: Trigger a crash")
    await panic(k, PANIC_MSG)


def _trigger_delay_ns(cfg: PrintkFloodConfig) -> int:
    lo, hi = round(cfg.delay_min_s * NSEC_PER_SEC), round(cfg.delay_max_s * NSEC_PER_SEC)
    return random.Random(f"printk-flood trigger {cfg.seed}").randint(lo, hi)


def build_printk_flood(cfg: PrintkFloodConfig, profile: Profile | None = None) -> Run:
    cfg.validate()
    profile = profile if profile is not None else load_profile(cfg.profile)
    if "devkmsg_user_ns" not in profile.params:
        raise ConfigError("profile", cfg.profile, "has no [costs] devkmsg_user_ns, the flood loop's cost")
    jitter = None
    if cfg.jitter:
        if "timing_tolerance" not in profile.params:
            raise ConfigError("profile", cfg.profile, "has no [costs] timing_tolerance to jitter the costs by")
        jitter = Jitter(cfg.seed, profile.get("timing_tolerance"), _jittered_keys(profile))
    machine = Machine(profile, cfg.cpus, record_timeline=False, jitter=jitter)
    k = Kernel(machine, KernelConfig(version=cfg.kernel, log_buf_shift=cfg.log_buf_shift,
                                     policies=Policies(console_spin=cfg.console_spin)))
    k.boot()
    sim = Simulator(machine, seed=cfg.seed)
    sim.start_task(0, sysrq_trigger(k, _trigger_delay_ns(cfg)))
    line = flood_line(cfg.line_len)
    flooders = cfg.cpus - 1 if cfg.flooders is None else cfg.flooders
    for cpu in range(1, cfg.cpus):
        sim.start_task(cpu, kmsg_flood(k, line, cfg.flood_irqs_off) if cpu <= flooders else do_idle(k))
    return Run(machine, k, sim, ghost=None)


def _jittered_keys(profile: Profile) -> frozenset[str]:
    return frozenset(key for key in profile.params
                     if KEYS[key].section == "costs" and KEYS[key].dimension == "time")


def _bound(machine: Machine, key: str, which: int) -> int:
    base = machine.profile.cost_ns(key)
    return machine.jitter.bounds(base)[which] if machine.jitter is not None else base


def flood_iteration_max_ns(machine: Machine) -> int:
    """The slowest a flooder's iteration can be once the panic CPU holds the
    console: the loop and write(2), the store, the three atomics of its path
    (`prb_reserve()`, `prb_final_commit()`, the failing `down_trylock()`; its
    reads and interrupt-flag changes cost nothing in the model), and every
    tick that can fall inside it: at most one more than fit in its length."""
    atomic = _bound(machine, "atomic_op_ns", 1)
    work = _bound(machine, "devkmsg_user_ns", 1) + _bound(machine, "printk_store_ns", 1) + 3 * atomic
    tick = sum(_bound(machine, key, 1) for key in _TICK_KEYS)
    if tick >= machine.tick_period_ns:
        return 2**63            # ticks alone fill the CPU: no bound, so no livelock proof either
    ticks = 1
    while True:                                         # a fixpoint: ticks lengthen the iteration
        longest = work + ticks * tick
        need = longest // machine.tick_period_ns + 1
        if need <= ticks:
            return longest
        ticks = need


def console_record_min_ns(machine: Machine, line_len: int) -> int:
    """The fastest the console prints one flood record: its prefix, text and newline."""
    chars = len("[    0.000000] ") + line_len + 1
    return chars * _bound(machine, "console_ns_per_char", 0)


def livelock_proof(run: Run, cfg: PrintkFloodConfig) -> str | None:
    """Why the run can never end, or None if the model cannot prove it yet
    (the module docstring states the argument)."""
    k, machine = run.kernel, run.machine
    if "panic_entry" not in k.marks or "smp_send_stop" in k.marks or "panic_end" in k.marks:
        return None
    panic_cpu = k.panic_cpu.value
    if k.console_sem.value != panic_cpu:
        return None
    if k.config.has("printk_suppress_panic_printk") or k.config.has("printk_non_panic_cpus_out_of_ringbuffer"):
        return None         # those kernels drop the flood once a panic is under way: the loop ends
    spins = (k.config.has("printk_console_owner_handover")
             and (k.policies.console_spin is ConsoleSpin.PANIC_CPU_ONLY or not k.config.has("printk_no_spin_in_panic"))
             and not k.config.has("printk_no_console_owner_in_panic"))
    if spins:
        return None         # a flooder can become the waiter and take the console over
    if cfg.flood_irqs_off:
        return None         # not argued for: the flooder's iteration then has no tick bound
    ring = k.prb.value
    unread = [r for r in ring.records if r.seq >= k.console_seq.value]
    if not unread or any(len(r.text) < cfg.line_len for r in unread):
        return None
    slowest, fastest = flood_iteration_max_ns(machine), console_record_min_ns(machine, cfg.line_len)
    if slowest >= fastest:
        return None
    return (f"CPU{panic_cpu} holds console_sem in console_unlock() before smp_send_stop(); the kernel drops "
            f"no flood record and lets no flooder take the console over; every unread record is a flood "
            f"record; a flood iteration takes at most {slowest} ns and a console record at least {fastest} ns")


def run_printk_flood(cfg: PrintkFloodConfig, profile: Profile | None = None) -> dict:
    """One stress run: hung or not, how it was decided, and what the console showed."""
    run = build_printk_flood(cfg, profile)
    k, sim = run.kernel, run.driver
    hang_ns = round(cfg.hang_after_s * NSEC_PER_SEC)
    decided, proof = None, None
    while True:
        trig = k.marks.get("sysrq_trigger")
        deadline = trig + hang_ns if trig is not None else None
        step_to = sim.now_ns + _CHECK_EVERY_NS
        if deadline is not None:
            step_to = min(step_to, deadline)
        sim.run(step_to)
        if "panic_end" in k.marks:
            decided = "end"
            break
        if deadline is not None and sim.now_ns >= deadline:
            decided = "timeout"
            break
        proof = livelock_proof(run, cfg)
        if proof is not None:
            decided = "livelock"
            break
    return _result(cfg, run, decided, proof)


def _result(cfg: PrintkFloodConfig, run: Run, decided: str, proof: str | None) -> dict:
    k, machine, sim = run.kernel, run.machine, run.driver
    marks = k.marks
    trig = marks["sysrq_trigger"]
    after = [(t, n) for t, n in k.dropped_notices if t >= trig]
    tail = flood_line(cfg.line_len)[-16:]
    flood_after = sum(1 for start, _, cpu, text in machine.console if start >= trig and text.endswith(tail))
    flood_before = sum(1 for _, end, cpu, text in machine.console if end < trig and text.endswith(tail))
    end = marks.get("panic_end")
    return {
        "scenario": "printk-flood",
        "config": asdict(cfg),
        "kernel_commits": sorted(k.config.commits),
        "hung": decided != "end",
        "decided_by": decided,
        "livelock_proof": proof,
        "decided_at_ns": sim.now_ns,
        "trigger_ns": trig,
        "trigger_to_end_ns": end - trig if end is not None else None,
        "panic_to_end_ns": end - marks["panic_entry"] if end is not None else None,
        "smp_send_stop_after_trigger_ns": marks["smp_send_stop"] - trig if "smp_send_stop" in marks else None,
        "drop_notices_after_trigger": len(after),
        "dropped_after_trigger": sum(n for _, n in after),
        "guard_fired": "suppress_panic_printk" in marks,
        "guard_after_trigger_ns": marks["suppress_panic_printk"] - trig if "suppress_panic_printk" in marks else None,
        "flood_records_on_console_before_trigger": flood_before,
        "flood_records_on_console_after_trigger": flood_after,
        "records_stored": k.prb.value.next_seq,
        "events": sim.events_run,
    }

