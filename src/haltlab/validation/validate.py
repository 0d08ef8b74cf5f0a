"""`haltlab validate`: the calibrated model and the lab on the same configurations.

Runs each case of the registry (cases.py) on the model, on the profile the lab
calibrates (`qemu-tcg-x86`, kernel preset `debian-6.1.0-56`: the lab's kernel,
v6.1 with its stable backports), and on real kernels, and puts them side by
side with the relative error. The lab boots one kernel for every case, and the
result says whether the preset describes it (lab_kernel.py).
"""

from __future__ import annotations

from haltlab.errors import ConfigError
from haltlab.lab.experiments import PanicConfig as LabPanic
from haltlab.lab.experiments import run_panic as lab_panic
from haltlab.lab.images import KernelImage
from haltlab.scenarios.panic import PanicConfig, simulate_panic
from haltlab.validation.cases import CASES, LAB_FIELD, Case
from haltlab.validation.lab_kernel import LAB_KERNEL_PRESET, preset_match, resolve_lab_kernel
from haltlab.validation.measures import model_panic_facts

__all__ = ["validate", "check_options", "model_facts", "PROFILE", "LAB_WINDOW_NS"]

PROFILE = "qemu-tcg-x86"
NSEC_PER_SEC = 1_000_000_000
# The model watches the guest as long as the lab samples its host CPU.
LAB_WINDOW_NS = round(LabPanic.window_s * NSEC_PER_SEC)


def model_facts(case: Case, profile=None) -> dict:
    """The model's value of every quantity of `case`, each read as the lab reads it."""
    run = simulate_panic(PanicConfig(profile=PROFILE, cpus=case.cpus, kernel=LAB_KERNEL_PRESET, pvpanic=case.pvpanic,
                                     panic_timeout_s=case.panic_timeout_s, observe_ns=LAB_WINDOW_NS,
                                     timeline=False), profile)
    r, facts = run.result, model_panic_facts(run)
    end, start = facts["end_host_ns"], facts["panic_host_ns"]
    return {
        "host_cpu_s_per_s": r.get("host_cpu_s_per_s"),
        "panic_to_end_ns": end - start if end is not None and start is not None else None,
        "stop_gap_ns": facts["panic_max_line_gap_ns"],
        "panic_to_reset_ns": r["reboot_after_ns"],
    }


_LAB_META = ("kernel_release", "kernel_package", "kernel_package_version", "kernel_source", "qemu_version",
             "accelerator")


def _lab_facts(case: Case, runs: int, progress, kernel: KernelImage) -> dict:
    lab = lab_panic(LabPanic(cpus=case.cpus, runs=runs, pvpanic=case.pvpanic, accel="tcg",
                             panic_timeout_s=case.panic_timeout_s), progress=progress, kernel=kernel)
    facts = {q: lab.get(LAB_FIELD[q]) for q in case.quantities()}
    facts["_meta"] = {k: lab[k] for k in _LAB_META}
    facts["_outcomes"] = lab["outcomes"]
    return facts


def check_options(*, runs: int, kernel_package: str | None = None) -> None:
    """validate()'s own inputs, refused before anything runs (a ConfigError)."""
    if not isinstance(runs, int) or runs < 1:
        raise ConfigError("runs", runs, "must be an integer >= 1")
    if kernel_package is not None:
        LabPanic(kernel_package=kernel_package).validate()


def validate(cases: tuple[Case, ...] = CASES, *, runs: int = 2, progress=None,
             kernel_package: str | None = None) -> dict:
    """Every case on the model and the lab; the lab boots one kernel for all of
    them (`kernel_package`, default what linux-image-amd64 depends on, resolved
    once here), and the result says whether the model's preset describes it."""
    check_options(runs=runs, kernel_package=kernel_package)
    kernel = resolve_lab_kernel(kernel_package)
    rows, meta = [], None
    for case in cases:
        model = model_facts(case)
        lab = _lab_facts(case, 1 if case.panic_timeout_s else runs, progress, kernel)
        meta, outcomes = lab.pop("_meta"), lab.pop("_outcomes")
        for q in case.quantities():
            stats = lab.get(q)
            lab_median = stats["median"] if stats else None
            m = model[q]
            err = (m - lab_median) / lab_median if m is not None and lab_median else None
            rows.append({"case": case.name, "cpus": case.cpus, "pvpanic": case.pvpanic,
                         "panic_timeout_s": case.panic_timeout_s, "calibrated_on": case.calibrated,
                         "quantity": q, "model": m, "lab_median": lab_median,
                         "lab_min": stats["min"] if stats else None, "lab_max": stats["max"] if stats else None,
                         "lab_runs": stats["n"] if stats else 0, "lab_outcomes": outcomes,
                         "relative_error": err})
    return {"profile": PROFILE, "lab": meta, "rows": rows, **preset_match(LAB_KERNEL_PRESET, kernel)}
