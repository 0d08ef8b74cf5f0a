"""`haltlab lab flood`: S2's stress test on a real kernel.

A process pinned to CPU 1 writes 991-character records to /dev/kmsg as fast as
it can (S2's reproducer), while CPU 0 panics with sysrq-c after a random delay.
The run hangs if "---[ end Kernel panic" never reaches the console within the
timeout after the trigger (S2's criterion was 60 s). The verdict rests on the
trigger line of the progress channel and on that end marker, never on console
silence: a flooded console is never silent.

S2 saw 200 hangs in 1409 runs on a kernel that disabled console spinning for
every CPU during panic; kernels 5.18-6.5 (Debian 12's 6.1 among them) carry the
fixes that came out of that thread (kernel-facts 2.2), so the expected answer
here is no hangs, and the distribution of trigger-to-end times is the figure.

What 6.1 does with the flood is read from the console after the trigger (the
sysrq line, in console order; lab/parse.py `flood_console`): the "** N printk
messages dropped **" notices (the flood outran the console and the ring
wrapped), and whether 13fb0f74d702's guard fired (its "Too many dropped
messages" line, due at the 12th gap during the panic), and when.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from haltlab.errors import ConfigError
from haltlab.lab import initramfs
from haltlab.lab.classify import HUNG_OUTPUT, HUNG_SILENT, PANICKED, classify
from haltlab.lab.experiments.common import (
    LabConfig, Prepared, ProgressFn, check_seconds, elapsed_ns, guest_spec, header, outcome_counts, prepare, repeat,
)
from haltlab.lab.experiments.panic import PVPANIC_MODULES
from haltlab.lab.guest import FLOOD_TAG, flood_init, is_flood_record
from haltlab.lab.images import KernelImage
from haltlab.lab.parse import PANIC_END, flood_console, panic_facts
from haltlab.lab.runner import Guest
from haltlab.lab.stats import summarize

__all__ = ["FloodConfig", "run_flood", "flood_once", "run_delays", "MAX_LINE_LEN"]

# The longest record every kernel takes: devkmsg_write() (kernel/printk/printk.c)
# fails a write longer than LOG_LINE_MAX = 1024 - PREFIX_MAX (32) = 992 bytes with
# EINVAL (6.1; later kernels allow PRINTKRB_RECORD_MAX = 1024), and the guest's
# `echo` adds the newline. S2's 991 is exactly this maximum; one more and every
# write fails, so the "flood" would write nothing.
MAX_LINE_LEN = 991


@dataclass(frozen=True)
class FloodConfig(LabConfig):
    timeout_s: float = 60.0  # trigger to end marker; longer is a hang (S2: 60 s)
    delay_min_s: float = 0.5  # flood start to trigger, drawn uniformly per run
    delay_max_s: float = 2.0
    seed: int = 0  # the delays are a function of the seed
    line_len: int = 991  # S2's record length

    def validate(self) -> None:
        super().validate()
        if self.cpus < 2:
            raise ConfigError("cpus", self.cpus, "the flood needs a second CPU for the writer")
        check_seconds("delay_min_s", self.delay_min_s, zero_ok=True)
        check_seconds("delay_max_s", self.delay_max_s, zero_ok=True)
        if not self.delay_min_s <= self.delay_max_s:
            raise ConfigError("delay_min_s", self.delay_min_s,
                              f"must not exceed the longest delay ({self.delay_max_s:g} s)")
        check_seconds("timeout_s", self.timeout_s)
        if not isinstance(self.line_len, int) or not 16 <= self.line_len <= MAX_LINE_LEN:
            raise ConfigError("line_len", self.line_len, f"must be 16..{MAX_LINE_LEN} (/dev/kmsg takes at most "
                                                         "992 bytes a write, newline included)")


def run_delays(config: FloodConfig) -> list[float]:
    """The trigger delay of each run, in ms precision: a pure function of the seed."""
    rng = random.Random(config.seed)
    return [round(rng.uniform(config.delay_min_s, config.delay_max_s), 3) for _ in range(config.runs)]


def _entries(kernel):
    mods = initramfs.module_entries(kernel.modules_dir, PVPANIC_MODULES) if kernel.modules_dir else []
    return initramfs.base_entries(flood_init()) + mods


def flood_once(g: Guest, config: FloodConfig) -> dict:
    """One run on a started guest: wait for the trigger, then for the end of panic."""
    triggered = g.wait_until(lambda: g.trigger_ns() is not None, config.boot_timeout_s)
    done = triggered and g.wait_until(lambda: g.console.seen(PANIC_END) is not None, config.timeout_s)
    run = {"outcome": classify(g.observation(timed_out=not done)), "qemu_pid": g.pid}
    if run["outcome"] != PANICKED:
        run.update(g.tails())
    lines, bulk_before, bulk_lines = g.console.snapshot()
    facts = panic_facts(lines)
    ring = flood_console(lines, FLOOD_TAG, bulk_before, bulk_lines)
    trigger = g.trigger_ns()
    ev = g.panic_event()
    run.update({
        "triggered": triggered,
        "trigger_marker": ring["trigger_marker"],
        "flood_lines_before_trigger": ring["flood_lines_before_trigger"],
        "flood_lines_after_trigger": ring["flood_lines_after_trigger"],
        "flood_lines_total": ring["flood_lines_before_trigger"] + ring["flood_lines_after_trigger"],
        "console_bytes": g.console.bytes,
        "dropped_messages": ring["dropped_before_trigger"] + ring["dropped_after_trigger"],
        **{k: ring[k] for k in ("drop_notices_before_trigger", "dropped_before_trigger",
                                "drop_notices_after_trigger", "dropped_after_trigger", "guard_fired")},
        "trigger_to_guard_ns": elapsed_ns(trigger, ring["guard_host_ns"]),
        "trigger_to_guard_printk_ns": ring["trigger_to_guard_printk_ns"],
        "panic_to_end_ns": facts["panic_to_end_ns"],
        "trigger_to_end_ns": elapsed_ns(trigger, facts["end_host_ns"]),
        "trigger_to_pvpanic_ns": elapsed_ns(trigger, ev[0] if ev else None),
    })
    return run


def _spec(prep: Prepared, config: FloodConfig, delay: float):
    return guest_spec(prep, config, pvpanic="none", params={"delay": delay, "line_len": config.line_len})


# The per-run figures summarised over every run, and those about what followed
# a trigger, summarised over the runs that had one (a run that never triggered
# would count as "nothing dropped").
OVER_ALL_RUNS = ("panic_to_end_ns", "flood_lines_before_trigger", "dropped_messages",
                 "drop_notices_before_trigger", "dropped_before_trigger")
AFTER_THE_TRIGGER = ("flood_lines_after_trigger", "drop_notices_after_trigger", "dropped_after_trigger",
                     "trigger_to_guard_ns", "trigger_to_guard_printk_ns")


def run_flood(config: FloodConfig, progress: ProgressFn | None = None, *,
              kernel: KernelImage | None = None) -> dict:
    """Run the flood stress test `config.runs` times; a JSON-able result."""
    config.validate()
    prep = prepare(config, _entries, kernel)
    delays = run_delays(config)
    runs = repeat(config.runs, lambda i: _spec(prep, config, delays[i]),
                  lambda g: flood_once(g, config), progress, bulk=is_flood_record)
    for run, delay in zip(runs, delays):
        run["delay_s"] = delay
    # A hang is a panic that never ended; a guest that never triggered is not one.
    hangs = sum(r["outcome"] in (HUNG_OUTPUT, HUNG_SILENT) and r["triggered"] for r in runs)
    triggered = sum(r["triggered"] for r in runs)
    fired = [r for r in runs if r["triggered"]]
    result = header("flood", config, prep)
    result.update({
        "seed": config.seed,
        "timeout_ns": round(config.timeout_s * 1e9),
        "hangs": hangs,
        "never_triggered": sum(not r["triggered"] for r in runs),
        "hang_rate": hangs / triggered if triggered else None,
        "outcomes": outcome_counts(runs),
        "trigger_to_end_ns": summarize(r["trigger_to_end_ns"] for r in runs),
        "trigger_to_end_ns_all": sorted(r["trigger_to_end_ns"] for r in runs if r["trigger_to_end_ns"] is not None),
        "guard_fired_runs": sum(r["guard_fired"] for r in fired),
        "drop_notices_after_trigger_all": sorted(r["drop_notices_after_trigger"] for r in fired),
        **{key: summarize(r[key] for r in runs) for key in OVER_ALL_RUNS},
        **{key: summarize(r[key] for r in fired) for key in AFTER_THE_TRIGGER},
        "runs": runs,
    })
    return result
