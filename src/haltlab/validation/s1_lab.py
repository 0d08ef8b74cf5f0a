"""The lab's side of S1: S1's patched kernel beside the stock one, built and measured here.

S1 measured a KVM guest with host `perf` before and after its patch. The lab
builds both kernels from the same Debian source and the same config
(lab/build.py): `stock` (no patches: panic() ends in the busy
`mdelay(PANIC_TIMER_STEP)` loop) and `s1-safe-halt` (S1's two patches: the loop
calls `cpu_halt_after_panic()`, which x86 makes `safe_halt()`), panics each,
and reads the QEMU process's host CPU over the lab's window. The figures scale
that to S1's inferred 13.75 s window (figures.py).

Each build is built (or found in the lab cache) once per `reproduce` or
`validate` (`built_kernel()`, cached here), never once per run. Where the lab
cannot build or boot (no source package, no compiler, no QEMU), the one-line
UserError of the build or of the experiment's preparation says why, and the
row shows it in place of the lab's figure.

`S1_BUILD_CASES` are `validate`'s S1 cases: the host CPU of a panicked guest
running each build, in the model (its profile, the set's `model_kernel`, and
`after_panic` from the set's `model_policy`: `safe_halt` for S1's patch) and
in the lab (TCG, as every validate case).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from haltlab.lab.build import built_kernel as build_and_resolve
from haltlab.lab.experiments import PanicConfig as LabPanic
from haltlab.lab.experiments import run_panic as lab_panic
from haltlab.lab.images import KernelImage, check_package_name
from haltlab.lab.patchsets import load_patch_set
from haltlab.scenarios.panic import PanicConfig, simulate_panic

__all__ = ["s1_lab_run", "built_kernel", "reset", "LAB_CPUS", "LAB_RUNS", "STOCK_BUILD", "PATCHED_BUILD",
           "build_label", "S1BuildCase", "S1_BUILD_CASES", "model_policies", "s1_model_host_cpu",
           "s1_build_rows"]

LAB_CPUS = 2
LAB_RUNS = 2
STOCK_BUILD = "stock"
PATCHED_BUILD = "s1-safe-halt"


def reset(kernel_package: str | None = None) -> None:
    """Forget the runs and the builds. `kernel_package` (reproduce's pin of the
    Debian kernel) is checked, but S1's rows boot the lab's builds, not it."""
    if kernel_package is not None:
        check_package_name(kernel_package)  # a bad pin is the user's error, not "lab unavailable"
    built_kernel.cache_clear()
    s1_lab_run.cache_clear()


@functools.cache
def built_kernel(build: str) -> KernelImage:
    return build_and_resolve(build)


@functools.cache
def s1_lab_run(build: str) -> dict:
    """`lab panic --build BUILD`, LAB_RUNS runs on LAB_CPUS vCPUs."""
    return lab_panic(LabPanic(cpus=LAB_CPUS, runs=LAB_RUNS, build=build), kernel=built_kernel(build))


def build_label(r: dict) -> str:
    """`s1-safe-halt (linux-source-6.1 6.1.192-3, config 1a2b3c4d5e6f)`: the build a lab result booted."""
    b = r.get("kernel_build")
    if not b:
        return f"{r.get('kernel_release')} ({r.get('kernel_source')})"
    return f"{b['patch_set']} ({b['source_package']} {b['source_version']}, config {b['config_sha256'][:12]})"


# --- validate: host CPU of each build, model vs lab --------------------------------------

@dataclass(frozen=True)
class S1BuildCase:
    """A validate case that boots a kernel built from a patch set."""

    name: str
    cpus: int
    build: str
    calibrated: bool = False

    def quantities(self) -> tuple[str, ...]:
        return ("host_cpu_s_per_s",)


S1_BUILD_CASES = (
    S1BuildCase("s1-halt-cpus2", 2, PATCHED_BUILD),
    S1BuildCase("s1-halt-cpus4", 4, PATCHED_BUILD),
    S1BuildCase("stock-build-cpus2", 2, STOCK_BUILD),
)


def model_policies(build: str) -> dict[str, str]:
    """The model's policies a patch set says it is (`model_policy`, as after_panic=safe_halt)."""
    ps = load_patch_set(build)
    return dict(pair.split("=", 1) for pair in ps.model_policy.split(",")) if ps.model_policy else {}


def s1_model_host_cpu(case: S1BuildCase, profile: str, window_ns: int) -> tuple[float | None, str]:
    """The model's host CPU-s/s for `case` and the configuration it ran."""
    ps = load_patch_set(case.build)
    after_panic = model_policies(case.build).get("after_panic", "mdelay")
    run = simulate_panic(PanicConfig(profile=profile, cpus=case.cpus, kernel=ps.model_kernel, pvpanic="none",
                                     after_panic=after_panic, observe_ns=window_ns, timeline=False))
    return run.result.get("host_cpu_s_per_s"), f"{profile}, kernel {ps.model_kernel}, after_panic {after_panic}"


def s1_build_rows(case: S1BuildCase, runs: int, progress, *, profile: str, window_ns: int) -> tuple[list[dict], dict]:
    """validate's rows for one build case, and the lab's metadata."""
    model, model_setup = s1_model_host_cpu(case, profile, window_ns)
    lab = lab_panic(LabPanic(cpus=case.cpus, runs=runs, accel="tcg", build=case.build), progress=progress,
                    kernel=built_kernel(case.build))
    stats = lab["host_cpu_s_per_s_stats"]
    median = stats["median"] if stats else None
    row = {"case": case.name, "cpus": case.cpus, "pvpanic": "none", "panic_timeout_s": 0, "calibrated_on": False,
           "quantity": "host_cpu_s_per_s", "model": model, "lab_median": median,
           "lab_min": stats["min"] if stats else None, "lab_max": stats["max"] if stats else None,
           "lab_runs": stats["n"] if stats else 0, "lab_outcomes": lab["outcomes"],
           "relative_error": (model - median) / median if model is not None and median else None,
           "build": build_label(lab), "kernel_build": lab["kernel_build"], "model_setup": model_setup}
    meta = {k: lab.get(k) for k in ("kernel_release", "kernel_package", "kernel_package_version", "kernel_source",
                                    "qemu_version", "accelerator")}
    return [row], meta
