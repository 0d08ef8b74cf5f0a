"""A real guest's per-vCPU timeline, from what the host measured (pure).

`lab_timeline` in a lab panic run, for the report's swimlanes beside the
model's:

    {"cpus": [{"cpu": 0, "intervals": [[start_ns, end_ns, state], ...]}, ...],
     "marks_ns": {name: ns}, "sample_interval_ns": 10000000,
     "running_min_share": 0.1}

Times are host ns relative to the trigger (the earliest panic evidence, see
runner.Guest.trigger_ns), so 0 is the panic and earlier samples are negative.

How a lane is made: the sampler (sampler.VcpuTrace) reads each vCPU thread's
time on a host CPU every `sample_interval_ns`; a sample interval in which the
thread ran for at least RUNNING_MIN_SHARE of it is "running", any other is
"halted"; neighbouring intervals of one state are merged.

What the lanes can and cannot show:
* It is the host's view: whether the vCPU's thread ran on a host CPU, not what
  the guest CPU was doing. A vCPU spinning in `mdelay()`, or with interrupts
  off, and one running ordinary code all read "running"; a vCPU in HLT (QEMU
  sleeps its thread), a stopped vCPU and a guest paused by the host all read
  "halted". There are no irqs_off, in_nmi or mwait lanes.
* The sample interval is the resolution: a state change is seen only at the
  next sample, and a burst shorter than 10% of an interval (a timer tick taken
  by an idle vCPU, tens of microseconds under TCG) stays "halted".
* On a loaded host a vCPU that wants to run may wait on a run queue; if it got
  under 10% of an interval it reads "halted" there (the run's
  `host_cpu_demand_s_per_s` counts that wait; the lanes do not).
* Marks are exact host stamps, not quantized: `trigger`, `panic_line` (the
  "Kernel panic - not syncing" line's arrival), `end_line` (the "---[ end
  Kernel panic" line's arrival), `pvpanic` (QEMU's GUEST_PANICKED event), and
  `window_start`/`window_end` (the host-CPU sampling window), each present
  when it happened.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["RUNNING_MIN_SHARE", "PRE_TRIGGER_NS", "intervals", "lab_timeline"]

RUNNING_MIN_SHARE = 0.1  # of a sample interval spent on a host CPU: "running" from here up
PRE_TRIGGER_NS = 500_000_000  # how much of the time before the trigger a timeline keeps

Reading = tuple[int, Mapping[int, int]]  # (host_ns, {cpu_index: run_ns so far})


def intervals(readings: Sequence[Reading], cpu: int, zero_ns: int) -> list[list]:
    """One vCPU's `[start_ns, end_ns, state]` intervals from consecutive readings,
    relative to `zero_ns`, neighbours of one state merged."""
    out: list[list] = []
    for (t0, r0), (t1, r1) in zip(readings, readings[1:]):
        if t1 <= t0:
            continue
        share = (r1[cpu] - r0[cpu]) / (t1 - t0)
        state = "running" if share >= RUNNING_MIN_SHARE else "halted"
        if out and out[-1][2] == state and out[-1][1] == t0 - zero_ns:
            out[-1][1] = t1 - zero_ns
        else:
            out.append([t0 - zero_ns, t1 - zero_ns, state])
    return out


def lab_timeline(readings: Sequence[Reading], trigger_ns: int | None, marks_host_ns: Mapping[str, int | None],
                 sample_interval_ns: int) -> dict | None:
    """The run's timeline from PRE_TRIGGER_NS before the trigger to the last
    reading; None for a run that never triggered (nothing to align on)."""
    if trigger_ns is None:
        return None
    kept = [r for r in readings if r[0] >= trigger_ns - PRE_TRIGGER_NS]
    if len(kept) < 2:
        return None
    cpus = sorted(kept[0][1])
    return {
        "cpus": [{"cpu": c, "intervals": intervals(kept, c, trigger_ns)} for c in cpus],
        "marks_ns": {name: ns - trigger_ns for name, ns in marks_host_ns.items() if ns is not None},
        "sample_interval_ns": sample_interval_ns,
        "running_min_share": RUNNING_MIN_SHARE,
    }
