"""The lab cases: the configurations `haltlab validate` runs on the model and on real kernels.

With the thread figures (figures.py) this is the one registry of comparisons:
figures put the model beside what a thread states, cases put it beside what the
lab measures. Each case runs the lab's panic experiment and the model's panic
scenario with the same CPU count, pvpanic action and panic_timeout_s. A case
says whether calibration used its configuration (`panic-cpus2` is calibration's
own: agreement there is expected, not evidence); the others are the test.

Quantities, each the same measure on both sides (measures.py):
* `host_cpu_s_per_s`: the whole guest's host CPU over the post-panic window;
* `panic_to_end_ns`: from the arrival of the panic line to the arrival of the
  end-of-panic line;
* `stop_gap_ns`: the longest silence between two line arrivals from the panic
  line through the end line (`smp_send_stop()` waiting for the other CPUs);
* `panic_to_reset_ns`: panic to the machine reset, with `panic=N`.

The flood cases (`FloodCase`) put S2's stress test in the model beside `lab
flood` at the same vCPU count; their quantities and the one function that
computes each for both sides are in flood.py. `flood-cpus2` is the campaign
`lab calibrate --flood` solves `devkmsg_user_ns` from (its records per drop
notice); every other flood quantity, and all of `flood-cpus4`, is the test.
A flood case with a `build` boots the kernel `lab build NAME` compiles from
the patch set NAME (lab/patches/NAME) and runs the model on that set's
`model_kernel` and `model_policy`: the unpatched source (`stock`, the same
kernel as the Debian package but built with the lab's small config: a test that
the package's calibration carries over to the builds), S2's tested patch
(`s2-petr`), S2's author's proposal (`s2-stephen`) and 5.17's console lock
(`s2-stock-5.17`), all on the lab's 6.1 source. Nothing is calibrated on them:
the whole case is the test.

The arm64 kexec cases (`KexecCase`, S3) put `simulate kexec --arch arm64` on
`qemu-tcg-arm64` beside `lab kexec --arch arm64` at the same vCPU count and
load (kexec_arm64.py). `lab calibrate --arch arm64` fits the per-phase costs
on the cpuhp trace of 2 idle vCPUs, so `kexec-arm64-cpus2` is calibration's
configuration (its untraced totals were no input, but agreement there is
the least evidence); 4 and 8 vCPUs and the busy cases are the test. The
`kexec-arm64-phases-*` cases compare the phases themselves, from traced
campaigns (each span without its trace, as calibration takes them): at 2
vCPUs they are the fit's own figures (equal by construction), at 4 and 8 they
say which phase the model misses as the vCPUs grow.
"""

from __future__ import annotations

from dataclasses import dataclass

from haltlab.kernel.idle import Others

__all__ = ["Case", "CASES", "LAB_FIELD", "FloodCase", "FLOOD_CASES", "KexecCase", "KEXEC_CASES"]


@dataclass(frozen=True)
class Case:
    name: str
    cpus: int
    pvpanic: str = "none"
    panic_timeout_s: int = 0
    calibrated: bool = False

    def quantities(self) -> tuple[str, ...]:
        if self.panic_timeout_s:
            return ("panic_to_reset_ns",)
        if self.pvpanic == "pause":
            return ("host_cpu_s_per_s",)
        return ("host_cpu_s_per_s", "panic_to_end_ns", "stop_gap_ns")


CASES = (
    Case("panic-cpus2", 2, calibrated=True),
    Case("panic-cpus4", 4),
    Case("pause-cpus2", 2, pvpanic="pause"),
    Case("pause-cpus4", 4, pvpanic="pause"),
    Case("timeout3-cpus2", 2, panic_timeout_s=3),
)

# quantity -> the lab panic result's field holding its summary over runs
LAB_FIELD = {"host_cpu_s_per_s": "host_cpu_s_per_s_stats", "panic_to_end_ns": "panic_to_end_host_ns",
             "stop_gap_ns": "panic_max_line_gap_ns", "panic_to_reset_ns": "panic_to_reset_ns"}


@dataclass(frozen=True)
class FloodCase:
    name: str
    cpus: int
    calibrated_quantities: tuple[str, ...] = ()
    build: str | None = None            # a patch set: the lab boots its build, the model runs its spec

    @property
    def calibrated(self) -> bool:
        return bool(self.calibrated_quantities)


FLOOD_CASES = (
    FloodCase("flood-cpus2", 2, calibrated_quantities=("records_per_drop_notice",)),
    FloodCase("flood-cpus4", 4),
    *(FloodCase(f"flood-build-{name}-cpus2", 2, build=name)
      for name in ("stock", "s2-petr", "s2-stephen", "s2-stock-5.17")),
)


@dataclass(frozen=True)
class KexecCase:
    name: str
    cpus: int
    others: Others = Others.IDLE
    calibrated: bool = False
    traced: bool = False             # the cpuhp trace's phases (without the trace), not the totals


KEXEC_CASES = (
    KexecCase("kexec-arm64-cpus2", 2, calibrated=True),
    KexecCase("kexec-arm64-cpus4", 4),
    KexecCase("kexec-arm64-cpus8", 8),
    KexecCase("kexec-arm64-busy-cpus2", 2, Others.BUSY),
    KexecCase("kexec-arm64-busy-cpus4", 4, Others.BUSY),
    KexecCase("kexec-arm64-phases-cpus2", 2, calibrated=True, traced=True),
    KexecCase("kexec-arm64-phases-cpus4", 4, traced=True),
    KexecCase("kexec-arm64-phases-cpus8", 8, traced=True),
)
