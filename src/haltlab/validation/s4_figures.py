"""S4's figures beside the model: how long x86's smp_init() takes after kexec.

S4 ("[PATCH] use x86 cpu park to speedup smp_init in kexec situation",
seeds/003, shenkai, 2020-12-15; kernel-facts §5 and §6): "On 72-core
x86(Intel Xeon Gold 6154 CPU @ 3.00GHz) machine with Linux-5.10.0, time cost
of smp_init is 210ms with cpu park while 80ms without". The sentence swaps
the two (the patch exists to make the bring-up faster, and the cover text
says parking saves pulling APs "from a deep C-state"; seeds/README.md): 210 ms
is the stock INIT/SIPI bring-up, 80 ms the parked one, and the rows say so.

The model's rows run `scenarios.kexec_x86` on the xeon-gold-6154 profile (72
CPUs, 2 sockets x 18 cores x 2 threads; every per-AP cost cited or labelled
an estimate) with the `v5.17` preset, the closest to S4's 5.10: the serial
`do_boot_cpu()` with 5.x's `cpu_initialized_mask` / `cpu_callin_mask` waits,
no 6.5 parallel bring-up. `--bringup init-sipi` is the stock kernel,
`--bringup park-spin` S4's patch as posted. Nothing here is fitted to S4's
numbers: the notes say which inputs make the gap.

No lab column: the lab's guests are TCG guests of 2 to 8 vCPUs, whose
`smp_init()` is a different machine's (`haltlab lab kexec` on x86 measures
it by phase; README, "x86: the kexec reboot by phase").
"""

from __future__ import annotations

import functools
import statistics

from haltlab.kernel.policies import Bringup
from haltlab.scenarios.kexec_x86 import X86KexecConfig, run_kexec_x86
from haltlab.validation.figures import Figure, LabValue, ModelValue

__all__ = ["S4_FIGURES", "S4_PROFILE", "S4_KERNEL", "s4_run", "reset_s4"]

S4_PROFILE = "xeon-gold-6154"
S4_KERNEL = "v5.17"                 # the preset closest to S4's 5.10 (serial bring-up, 5.x's waits)
_S4 = "S4"
_SRC = ("seeds/003, shenkai, \"[PATCH] use x86 cpu park to speedup smp_init in kexec situation\" "
        "(2020-12-15)")
_SWAPPED = "(the message swaps the two: parking is the faster)"


@functools.cache
def s4_run(bringup: Bringup) -> dict:
    """The model's kexec reboot on S4's machine (cached: two rows read each run)."""
    return run_kexec_x86(X86KexecConfig(profile=S4_PROFILE, bringup=bringup, kernel=S4_KERNEL))


def reset_s4() -> None:
    s4_run.cache_clear()


def _ms(ns: float) -> str:
    return f"{ns / 1e6:.1f} ms" if abs(ns) >= 100_000 else f"{ns / 1e3:.1f} us"


def _breakdown(r: dict) -> str:
    """What the run's smp_init() is made of: the APs' kick-to-up times, and
    the ones the code makes slow (a package's first CPU: TSC sync and delay
    calibration)."""
    aps = [a for a in r["per_ap"] if a["up_ns"] is not None and a["kicked_ns"] is not None]
    if not aps:
        return f" No AP came up (outcome {r['outcome']})."
    took = sorted(a["up_ns"] - a["kicked_ns"] for a in aps)
    slow = [a for a in aps if a["calibrate_ns"]]
    calib = "; ".join(f"CPU{a['cpu']} calibrates its delay loop, {_ms(a['calibrate_ns'])}" for a in slow)
    return (f" {len(aps)} APs up, woken by {', '.join(sorted({str(a['woken_by']) for a in aps}))}; an AP's "
            f"do_boot_cpu() to cpu_up() return: median {_ms(statistics.median(took))}, longest "
            f"{_ms(took[-1])}" + (f"; {calib}" if calib else "") + ".")


def _setup(r: dict) -> str:
    return (f"Model: {S4_PROFILE}, {r['cpus']} CPUs, kernel {S4_KERNEL} (the closest preset to S4's 5.10), "
            f"--bringup {r['config']['bringup']}: smp_init() {_ms(r['smp_init_ns'])}, outcome {r['outcome']}.")


_GAP = ("What sets it: in 5.x's shape the first CPU of the second package has no package sibling "
        "online when it comes up, so it runs the 20 ms TSC check and calibrate_delay_direct() "
        "(kernel-facts §6; the calibration is the jiffy loop, about 79 ms at HZ=250), in both designs; "
        "the INIT/SIPI an AP answers is ap_sipi_response_ns, a labelled estimate (inside the 350 us to "
        "3.5 ms tglx quotes); the rest is the profile's per-AP estimates. `haltlab simulate kexec --arch x86 "
        "--lpj` shows the run without the calibration.")


def _init_sipi() -> ModelValue:
    r = s4_run(Bringup.INIT_SIPI)
    return ModelValue(r["smp_init_ns"] / 1e9, _setup(r) + _breakdown(r) + " " + _GAP)


def _park() -> ModelValue:
    r = s4_run(Bringup.PARK_SPIN)
    return ModelValue(r["smp_init_ns"] / 1e9, _setup(r) + _breakdown(r) + " " + _GAP + (
        " A parked AP skips INIT/SIPI and the trampoline's real-mode start, not the serialized "
        "start_secondary() / callin / TSC work: with CPU 18's calibration in both, the 80 ms leaves no room "
        "for it, so S4's runs skipped it (lpj=, or a kernel that kept a value) or the model's other per-AP "
        "costs are too small; none is raised to match. `haltlab explore kexec --arch x86 --bringup park-spin` "
        "shows what the design leaves unsafe."))


def _speedup() -> ModelValue:
    stock, park = s4_run(Bringup.INIT_SIPI), s4_run(Bringup.PARK_SPIN)
    return ModelValue(stock["smp_init_ns"] / park["smp_init_ns"], (
        f"smp_init() with INIT/SIPI ({_ms(stock['smp_init_ns'])}) over smp_init() parked "
        f"({_ms(park['smp_init_ns'])}), both at {S4_PROFILE}, {S4_KERNEL}: the park saves "
        f"{_ms(stock['smp_init_ns'] - park['smp_init_ns'])} over {stock['cpus'] - 1} APs, the INIT/SIPI "
        f"each AP no longer answers (S4's implies {_ms((210e6 - 80e6) / (stock['cpus'] - 1))} per AP)."))


def _no_lab() -> LabValue:
    return LabValue(None, "no lab value: the lab's TCG guests have 2 to 8 vCPUs, not S4's 72-CPU Xeon; "
                          "`haltlab lab kexec` (x86) measures their smp_init() by phase")


S4_FIGURES: list[Figure] = [
    Figure("S4-smp-init-init-sipi", _S4, "smp_init() after kexec, INIT/SIPI (stock), 72 CPUs", "s", 0.210,
           f"{_SRC}: \"time cost of smp_init is 210ms with cpu park while 80ms without\" {_SWAPPED}",
           S4_PROFILE, _init_sipi, _no_lab),
    Figure("S4-smp-init-park", _S4, "smp_init() after kexec, CPUs parked (S4's patch), 72 CPUs", "s", 0.080,
           f"{_SRC}: \"... while 80ms without\" {_SWAPPED}", S4_PROFILE, _park, _no_lab),
    Figure("S4-park-speedup", _S4, "smp_init() with INIT/SIPI over smp_init() parked", "ratio", 0.210 / 0.080,
           f"{_SRC}: 210 ms / 80 ms", S4_PROFILE, _speedup),
]
