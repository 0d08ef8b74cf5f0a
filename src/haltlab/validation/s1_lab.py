"""The lab's side of S1: a real panicked guest, measured on this host.

S1 measured a KVM guest with host `perf` before and after a guest-side patch.
The lab cannot boot the patched kernel (it never merged), so its "after" is the
host-side remedy the thread's reviewers pointed to: QEMU's pvpanic device with
`-action panic=pause`. Both are measured over the lab's window and scaled to
S1's inferred 13.75 s window, perf-style: samples = host CPU-s x 4000 Hz, cycles =
host CPU-s x this host's clock.

Both runs boot the same kernel: it is resolved once per `reproduce`
(`lab_kernel()`, pinned with `reset(kernel_package)`), never once per run.
"""

from __future__ import annotations

import functools

from haltlab.lab.experiments import PanicConfig as LabPanic
from haltlab.lab.experiments import run_panic as lab_panic
from haltlab.lab.images import KernelImage, check_package_name
from haltlab.validation.lab_kernel import resolve_lab_kernel

__all__ = ["s1_lab_run", "lab_kernel", "reset", "LAB_CPUS", "LAB_RUNS"]

LAB_CPUS = 2
LAB_RUNS = 2

_pinned: dict[str, str | None] = {"kernel_package": None}


def reset(kernel_package: str | None = None) -> None:
    """Forget the runs and the kernel; the next ones boot `kernel_package`
    (None: what linux-image-amd64 depends on when first asked)."""
    if kernel_package is not None:
        check_package_name(kernel_package)  # a bad pin is the user's error, not "lab unavailable"
    _pinned["kernel_package"] = kernel_package
    lab_kernel.cache_clear()
    s1_lab_run.cache_clear()


@functools.cache
def lab_kernel() -> KernelImage:
    return resolve_lab_kernel(_pinned["kernel_package"])


@functools.cache
def s1_lab_run(pvpanic: str) -> dict:
    """Where the lab cannot run (no QEMU, no kernel), the experiment's own
    preparation says why in a one-line UserError, which `reproduce` shows in
    place of the lab's figure; no separate availability check repeats that work."""
    return lab_panic(LabPanic(cpus=LAB_CPUS, runs=LAB_RUNS, pvpanic=pvpanic), kernel=lab_kernel())
