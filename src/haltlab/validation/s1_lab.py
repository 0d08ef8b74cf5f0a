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
from haltlab.lab.images import resolve_kernel
from haltlab.lab.qemu import qemu_version

__all__ = ["s1_lab_run", "lab_available", "LAB_SMP", "LAB_RUNS"]

LAB_SMP = 2
LAB_RUNS = 2


def lab_available() -> None:
    """Raise a one-line UserError saying why the lab cannot run here."""
    qemu_version()
    resolve_kernel()


@functools.cache
def s1_lab_run(pvpanic: str) -> dict:
    lab_available()
    return lab_panic(LabPanic(smp=LAB_SMP, runs=LAB_RUNS, pvpanic=pvpanic))
