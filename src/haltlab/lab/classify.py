"""How a run ended, decided from channels that a console flood cannot fake.

A verdict must never rest on console silence: a guest flooding its console is
never silent, yet it may be stuck. So the evidence is, in order of trust:

1. the guest's own exit through `isa-debug-exit` (init wrote a code to port
   0xf4; QEMU exits with status `code << 1 | 1`), or its power-off;
2. the pvpanic device's GUEST_PANICKED event on QMP (the host saw the panic
   notifier run) and, with `-action panic=pause`, the host taking the guest over;
3. the end-of-panic marker on the console (a line, not a silence);
4. a reset after panic (panic=N with `-no-reboot`: QEMU exits with status 0).

Only when none of these came before the deadline is the run hung; whether the
console was still talking in the last few seconds is then just a description
(hung-with-output vs hung-silent), never the verdict itself.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "COMPLETED",
    "PANICKED",
    "HUNG_OUTPUT",
    "HUNG_SILENT",
    "FAILED",
    "OUTCOMES",
    "Observation",
    "debug_exit_code",
    "classify",
]

COMPLETED = "completed"
PANICKED = "panicked-and-finished"
HUNG_OUTPUT = "hung-with-output"
HUNG_SILENT = "hung-silent"
FAILED = "failed"
OUTCOMES = (COMPLETED, PANICKED, HUNG_OUTPUT, HUNG_SILENT, FAILED)

# A console quiet for this long before the deadline counts as silent.
QUIET_NS = 2_000_000_000


@dataclass(frozen=True)
class Observation:
    """What the host saw of one run; every field comes from the runner."""

    exit_status: int | None  # QEMU's own exit status; None if still running at the deadline
    timed_out: bool
    panic_seen: bool  # "Kernel panic - not syncing" on the console, or a pvpanic event
    end_marker_seen: bool  # "---[ end Kernel panic" on the console
    pvpanic_action: str | None  # GUEST_PANICKED's action ("pause", "none"), None without event
    deadline_ns: int  # host monotonic ns at which the run was judged
    last_console_ns: int | None  # host ns of the last console line


def debug_exit_code(status: int | None) -> int | None:
    """The code init wrote to isa-debug-exit, from QEMU's exit status.

    QEMU exits with `(code << 1) | 1`, so odd statuses are debug exits; 0 is a
    normal exit (power-off, or a reset under `-no-reboot`).
    """
    if status is None or status <= 0 or status % 2 == 0:
        return None
    return status >> 1


def classify(obs: Observation) -> str:
    """One of OUTCOMES for the run described by `obs`."""
    if obs.end_marker_seen or obs.pvpanic_action == "pause":
        return PANICKED
    if obs.exit_status is not None and not obs.timed_out:
        if obs.exit_status == 0 and obs.panic_seen:
            return PANICKED  # panic_timeout's reset, turned into an exit by -no-reboot
        if debug_exit_code(obs.exit_status) == 0 or obs.exit_status == 0:
            return COMPLETED
        return FAILED
    if not obs.timed_out:
        return FAILED  # judged before the deadline without an ending: a runner bug
    talking = obs.last_console_ns is not None and obs.deadline_ns - obs.last_console_ns < QUIET_NS
    return HUNG_OUTPUT if talking else HUNG_SILENT
