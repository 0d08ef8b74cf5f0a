"""The lab's side of S1: a real panicked guest, measured on this host.

S1 measured a KVM guest with host `perf` before and after a guest-side patch.
The lab cannot boot the patched kernel (it never merged), so its "after" is the
host-side remedy the thread's reviewers pointed to: QEMU's pvpanic device with
`-action panic=pause`. Both are measured over the lab's window and scaled to
S1's inferred 13.75 s window, perf-style: samples = host CPU-s x 4000 Hz, cycles =
host CPU-s x this host's clock.
"""

from __future__ import annotations

import functools

from haltlab.lab.experiments import PanicConfig as LabPanic
from haltlab.lab.experiments import run_panic as lab_panic

__all__ = ["s1_lab_run", "LAB_CPUS", "LAB_RUNS"]

LAB_CPUS = 2
LAB_RUNS = 2


@functools.cache
def s1_lab_run(pvpanic: str) -> dict:
    """Where the lab cannot run (no QEMU, no kernel), the experiment's own
    preparation says why in a one-line UserError, which `reproduce` shows in
    place of the lab's figure; no separate availability check repeats that work."""
    return lab_panic(LabPanic(cpus=LAB_CPUS, runs=LAB_RUNS, pvpanic=pvpanic))
