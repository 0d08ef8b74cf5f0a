"""Every figure of the seed threads, next to the model's and the lab's value.

A `Figure` is one number a thread states, where it states it, and how haltlab
computes the same quantity. With the lab cases (cases.py) this is the one
registry of comparisons; report/ only renders it. `FIGURES` is what `haltlab
reproduce` walks;
each thread adds its rows here (S1 here; S2, S3 and S4 in their own modules). Model
values always come from running the model: nothing here hard-codes an output.

S1 ("[PATCH 0/2] Reduce CPU usage when finished handling panic", seeds/000):
host `perf` over a KVM guest after a panic, before and after the patch.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

from haltlab.machine.profile import load_profile
from haltlab.scenarios.panic import NSEC_PER_SEC, PanicConfig, run_panic

__all__ = ["ModelValue", "LabValue", "Figure", "FIGURES", "S1_PROFILE", "s1_config",
           "s1_perf_hz", "reset_caches"]


@dataclass(frozen=True)
class ModelValue:
    value: float
    note: str = ""


@dataclass(frozen=True)
class LabValue:
    value: float | None
    note: str = ""


@dataclass(frozen=True)
class Figure:
    """One figure of a thread and how to get it from the model (and the lab)."""

    id: str
    thread: str
    quantity: str
    unit: str
    seed_value: float
    seed_source: str
    profile: str
    model: Callable[[], ModelValue]
    lab: Callable[[], LabValue | None] | None = None


# --- S1 -------------------------------------------------------------------------------

S1_PROFILE = "kvm-x86"
S1_SAMPLES_BEFORE = 55_000          # "Samples: 55K of event 'cycles:P'" (rounded by perf)
S1_SAMPLES_AFTER = 51
S1_CYCLES_BEFORE = 36_090_772_574
S1_CYCLES_AFTER = 37_553_709
S1_VARIANTS = {"before": "mdelay", "after": "safe_halt"}


def s1_config(after_panic: str) -> PanicConfig:
    """S1's machine (the kvm-x86 profile at its default CPU count, others idle),
    observed for the window the thread implies: it does not state how long perf
    recorded, but 55K samples at perf's default frequency with one vCPU always on
    CPU is 55,000 / 4000 Hz = 13.75 s. Derived from the profile's perf_freq_hz."""
    return PanicConfig(profile=S1_PROFILE, after_panic=after_panic, others="idle",
                       observe_ns=S1_SAMPLES_BEFORE * NSEC_PER_SEC // s1_perf_hz(), seed=0)


def s1_perf_hz() -> int:
    return int(load_profile(S1_PROFILE).get("perf_freq_hz"))


def _s1_window_s() -> float:
    return s1_config("mdelay").observe_ns / NSEC_PER_SEC


@functools.cache
def _s1_run(phase: str) -> dict:
    return run_panic(s1_config(S1_VARIANTS[phase]))


def reset_caches(kernel_package: str | None = None) -> None:
    """Forget cached runs, so a `reproduce` re-runs the model from the profiles,
    and the lab's kernel, so it resolves it once more (pinned to `kernel_package`)."""
    _s1_run.cache_clear()
    from haltlab.validation.s3_figures import reset_s3
    from haltlab.validation.s4_figures import reset_s4
    reset_s3()
    reset_s4()
    from haltlab.validation import s1_lab
    s1_lab.reset(kernel_package)


def _s1_setup(r: dict) -> str:
    return (f"Model: {r['profile']}, {r['cpus']} vCPUs, others idle, after panic: "
            f"{r['policies']['after_panic']}, whole guest (vCPUs + VMM) over "
            f"{r['window_ns'] / 1e9:g} s after \"end Kernel panic\". That window is INFERRED "
            f"(the thread gives no duration): {S1_SAMPLES_BEFORE / 1000:g}K samples at perf's "
            f"default {s1_perf_hz()} Hz = {_s1_window_s():g} s with one vCPU on CPU.")


def _by_construction() -> str:
    ghz = load_profile(S1_PROFILE).get("host_cpu_hz") / 1e9
    return (f" The window and the profile's host clock (host_cpu_hz = {ghz:g} GHz, from "
            f"{S1_CYCLES_BEFORE / 1e9:.2f}e9 cycles / {_s1_window_s():g} s) are both derived "
            "from this 'before' figure, so 'before' matches by construction; the informative "
            "comparisons are the 'after' figures and the reduction ratio.")


def _after_split(r: dict, field: str) -> str:
    vcpus = sum(v[field] for v in r["per_vcpu"])
    panicked = r["per_vcpu"][r["config"]["panic_cpu"]]
    why = (": native_stop_other_cpus() disables the stopping CPU's own local APIC, so no "
           "tick ends its halt" if panicked["wakeups"] == 0 else "")
    return (f" Of the model's {r[field]:,}, the vCPUs account for {vcpus:,} (the panicked "
            f"vCPU woke {panicked['wakeups']} times{why}) and the VMM background "
            "for the rest. The VMM background is the lab's measurement of QEMU's own "
            "threads beside a panicked guest (not S1's 51 samples): S1's after-patch "
            "samples are QEMU main-loop and monitor-thread work on S1's KVM host, which "
            "the model only knows through that measurement.")


def _s1_value(phase: str, field: str) -> Callable[[], ModelValue]:
    def model() -> ModelValue:
        r = _s1_run(phase)
        tail = _by_construction() if phase == "before" else _after_split(r, field)
        return ModelValue(r[field], _s1_setup(r) + tail)
    return model


def _s1_reduction() -> ModelValue:
    before, after = _s1_run("before"), _s1_run("after")
    note = (f"Model: cycles with mdelay / cycles with safe_halt = {before['cycles']:,} / "
            f"{after['cycles']:,}, same machine and window as the rows above. 'Before' "
            "matches by construction; 'after' is the halted vCPUs plus the lab-measured VMM "
            "background, so a model ratio far above the thread's means the thread's "
            "'after' is dominated by VMM work the model does not see.")
    return ModelValue(before["cycles"] / after["cycles"], note)


def _s1_lab(phase: str, field: str) -> Callable[[], LabValue]:
    """The lab's figure for one S1 row: the kernel built from Debian's 6.1 source
    with the lab's config, stock ('before') or with S1's two patches ('after',
    `lab panic --build s1-safe-halt`), host CPU scaled to the same inferred
    13.75 s window."""
    def lab() -> LabValue:
        from haltlab.lab.sampler import host_cpu_hz
        from haltlab.validation.s1_lab import PATCHED_BUILD, STOCK_BUILD, build_label, s1_lab_run
        build = STOCK_BUILD if phase == "before" else PATCHED_BUILD
        r = s1_lab_run(build)
        window_s = _s1_window_s()
        if r["host_cpu_s_per_s"] is None:
            return LabValue(None, f"no lab run measured host CPU after its panic (outcomes: "
                                  f"{', '.join(f'{k} {v}' for k, v in sorted(r['outcomes'].items()))})")
        stats = r["host_cpu_s_per_s_stats"]
        cpu_s = r["host_cpu_s_per_s"] * window_s
        value = cpu_s * s1_perf_hz() if field == "perf_samples" else cpu_s * host_cpu_hz()
        what = "stock mdelay() loop" if phase == "before" else "S1's patch, safe_halt()"
        return LabValue(round(value), (
            f"{what}: `haltlab lab panic --build {build}`, kernel {r['kernel_release']} built as "
            f"{build_label(r)}; {r['accelerator']} guest, {r['cpus']} vCPUs, "
            f"QEMU {r['qemu_version']}: whole QEMU process {r['host_cpu_s_per_s']:.4f} host CPU-s/s "
            f"(median of {r['n_runs']}, {stats['min']:.4f}-{stats['max']:.4f}) over a "
            f"{r['window_ns'] / 1e9:g} s window, scaled to {window_s:g} s"))
    return lab


def _s1_lab_reduction() -> LabValue:
    before, after = _s1_lab("before", "cycles")(), _s1_lab("after", "cycles")()
    if before.value is None or after.value is None:
        return LabValue(None, "a lab side measured no host CPU: " + (before.note if before.value is None
                                                                        else after.note))
    if not after.value:
        return LabValue(None, "the patched guest used no measurable host CPU: the ratio is unbounded")
    return LabValue(before.value / after.value, "lab cycles, stock build / s1-safe-halt build (same source "
                                                "and config)")


_S1 = "S1"
_S1_SRC = "seeds/000, cover letter [PATCH 0/2], host perf"
FIGURES: list[Figure] = [
    Figure("S1-samples-before", _S1, "perf samples, stock mdelay() loop", "samples",
           S1_SAMPLES_BEFORE, f"{_S1_SRC}: \"Samples: 55K of event 'cycles:P'\"",
           S1_PROFILE, _s1_value("before", "perf_samples"),
           _s1_lab("before", "perf_samples")),
    Figure("S1-samples-after", _S1, "perf samples, safe_halt() (patched)", "samples",
           S1_SAMPLES_AFTER, f"{_S1_SRC} after the patch: \"Samples: 51 of event 'cycles:P'\"",
           S1_PROFILE, _s1_value("after", "perf_samples"),
           _s1_lab("after", "perf_samples")),
    Figure("S1-cycles-before", _S1, "perf cycles, stock mdelay() loop", "cycles",
           S1_CYCLES_BEFORE, f"{_S1_SRC}: \"Event count (approx.): 36090772574\"",
           S1_PROFILE, _s1_value("before", "cycles"),
           _s1_lab("before", "cycles")),
    Figure("S1-cycles-after", _S1, "perf cycles, safe_halt() (patched)", "cycles",
           S1_CYCLES_AFTER, f"{_S1_SRC} after the patch: \"Event count (approx.): 37553709\"",
           S1_PROFILE, _s1_value("after", "cycles"),
           _s1_lab("after", "cycles")),
    Figure("S1-reduction", _S1, "cycles before / cycles after", "ratio",
           S1_CYCLES_BEFORE / S1_CYCLES_AFTER,
           f"{_S1_SRC}: 36090772574 / 37553709 (\"from 36.09 billion to 37.55 million\")",
           S1_PROFILE, _s1_reduction, _s1_lab_reduction),
]

# S2 (seeds/001) lives in its own module, which imports Figure from this one: at the end.
from haltlab.validation.s2_figures import S2_EXPLORER_FIGURES, S2_FIGURES  # noqa: E402

from haltlab.validation.s3_figures import S3_FIGURES  # noqa: E402  (S3, seeds/002: the same way)
from haltlab.validation.s4_figures import S4_FIGURES  # noqa: E402  (S4, seeds/003: the same way)

FIGURES += S2_FIGURES + S2_EXPLORER_FIGURES + S3_FIGURES + S4_FIGURES
