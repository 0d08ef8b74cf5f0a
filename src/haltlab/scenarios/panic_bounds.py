"""How long a panic run may take, and the largest inputs it accepts.

The simulator needs a time by which a panic that has not finished is called
hung. A fixed one (600 s until 2026-12) made `--panic-timeout 600` report a hang
and cut `--observe` windows short, so the limit follows from the inputs:

    limit = trigger + a bound on panic()'s own work + panic_timeout + observe

* `trigger_ns`: the shell writes 'c' to /proc/sysrq-trigger then; nothing before
  it is the panic's.
* `panic_work_bound_ns()`: from the trigger to the end line (or to the restart,
  less the timeout's countdown), the panicking CPU only prints, stops the others
  and runs two notifiers. Its interrupts are off from `panic()`'s
  `local_irq_disable()` to the final loop, no NMI targets it, and after
  `smp_send_stop()` its local APIC is off, so nothing else takes its time (before
  `panic()`, a tick may stretch a delay by at most one handler each). The bound
  adds, from the profile: every character printed at `console_ns_per_char` (the
  lines `dump_stack_lines()` makes to match `panic_console_lines`/`_chars`, the
  panic and end lines, the arch's notifier lines, and up to `EXTRA_LINES`
  further lines of up to `EXTRA_LINE_CHARS`: the sysrq line, the stop path's
  messages, "Rebooting in N seconds.."), each line's store and lock operations,
  the stop's own waits (x86 `native_stop_other_cpus()`: 1 s for REBOOT_VECTOR
  then 10 ms; arm64 `smp_send_stop()`: 1 s then 10 ms for the NMI retry; a
  crash stop, x86's NMI shoot-down or arm64's, waits at most as long and takes
  the place of `smp_send_stop()`, never adds to it), the
  APIC shutdown, the pvpanic exit and a few tick handlers. Then it doubles that
  and adds a second: a loose bound costs nothing for a run that finishes (it
  stops when its window closes) and only delays the verdict on one that hangs.
  `simulate_panic()` checks that the limit never cut an observation window
  short (that would be a model bug, raised as such, never a silent
  truncation); a panic that never reaches its end line is reported `hung`.
* `panic_timeout_s`: `panic()` counts down `panic_timeout * 1000` ms in
  PANIC_TIMER_STEP (100 ms) steps, then restarts.
* `observe_ns`: the window after the end line.

The inputs' ceilings: `panic_timeout` is a C `int` (`int panic_timeout` in
kernel/panic.c, set by `panic=` through `core_param(..., int, ...)`, which
refuses what does not fit), and the countdown loop compares against
`panic_timeout * 1000`, an `int` product: above INT_MAX / 1000 = 2147483 s it
overflows (the kernel builds with -fno-strict-overflow, so it wraps, to a
negative count that restarts at once or to some shorter one), so no kernel
counts down longer than that. The model refuses what the kernel cannot count. The window is capped at MAX_OBSERVE_NS, one day: longer
than any perf window the threads use (S1 records 10 s), and the run's cost grows
with it (every running CPU's tick is an event: about 7 s of computing for 500 s
of a 24-CPU arm64 run whose CPUs spin with interrupts off, 2026-12-01).
"""

from __future__ import annotations

from haltlab.kernel.arch import arch_ops
from haltlab.kernel.panic import PRINTK_PREFIX, dump_stack_lines

__all__ = ["INT_MAX", "PANIC_TIMEOUT_MAX_S", "MAX_OBSERVE_NS", "EXTRA_LINES", "EXTRA_LINE_CHARS",
           "panic_work_bound_ns", "run_limit_ns"]

NSEC_PER_SEC = 1_000_000_000
NSEC_PER_MSEC = 1_000_000
INT_MAX = 2**31 - 1
PANIC_TIMEOUT_MAX_S = INT_MAX // 1000     # the largest panic_timeout whose `* 1000` fits an int
MAX_OBSERVE_NS = 86_400 * NSEC_PER_SEC    # one day

EXTRA_LINES = 8            # lines beyond the profile's count: sysrq, stop path, countdown
EXTRA_LINE_CHARS = 128     # each, printk prefix and newline included
STOP_WAITS_NS = 1_000 * NSEC_PER_MSEC + 10 * NSEC_PER_MSEC   # both arches: 1 s, then 10 ms
OPS_PER_LINE = 12          # printk's atomics per line: store, lock, console_seq, unlock (6), twice
TICKS_BEFORE_PANIC = 4     # handlers that may stretch a delay before interrupts go off


def panic_work_bound_ns(profile, msg: str) -> int:
    """An upper bound on the time from the trigger to the end line (or to the
    restart, not counting the countdown), for `profile` and panic message `msg`."""
    real = [f"Kernel panic - not syncing: {msg}", *arch_ops(profile.arch).PANIC_NOTIFIER_LINES,
            f"---[ end Kernel panic - not syncing: {msg} ]---"]
    lines = real + dump_stack_lines(profile, msg)
    chars = sum(PRINTK_PREFIX + len(t) + 1 for t in lines) + EXTRA_LINES * EXTRA_LINE_CHARS
    nlines = len(lines) + EXTRA_LINES
    cost = profile.cost_ns
    work = (chars * cost("console_ns_per_char")
            + nlines * (cost("printk_store_ns") + OPS_PER_LINE * cost("atomic_op_ns"))
            + 2 * cost("stop_this_cpu_ns") + 16 * cost("atomic_op_ns")
            + TICKS_BEFORE_PANIC * (cost("tick_handler_ns") + cost("irq_entry_exit_ns")))
    if profile.is_guest:
        work += cost("vm_exit_roundtrip_ns")            # the pvpanic port write
    return 2 * (work + STOP_WAITS_NS) + NSEC_PER_SEC


def run_limit_ns(profile, msg: str, *, trigger_ns: int, panic_timeout_s: int, observe_ns: int) -> int:
    """When the simulator gives up: a panic not finished by then is hung."""
    return (trigger_ns + panic_work_bound_ns(profile, msg)
            + panic_timeout_s * NSEC_PER_SEC + observe_ns)
