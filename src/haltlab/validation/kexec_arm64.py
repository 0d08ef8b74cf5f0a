"""S3's kexec shutdown: the calibrated arm64 TCG model beside `lab kexec --arch arm64`.

A case (cases.py `KexecCase`) is a vCPU count and what the other CPUs do.
The model runs `simulate kexec` on `qemu-tcg-arm64` (calibrated at 2 vCPUs
from the cpuhp trace, calibrate_kexec.py) with the lab kernel's preset; the
lab boots Debian's arm64 kernel untraced, or a saved `lab kexec --arch arm64
--output FILE` campaign stands in for it. Both sides are read by one
implementation, the lab's parser (`parse.arm64_kexec_shutdown`) over the
console lines, the model's with their printk stamps:

* `shutdown_ns`: "Starting new kernel" to "Bye!";
* `per_cpu_shutdown_ns`: the median over the CPUs of the time between
  consecutive psci kill lines (the first from "Starting new kernel");
* `psci_polled_ms`: the median of the kill lines' AFFINITY_INFO poll.

Only `kexec-arm64-cpus2` shares the calibration's configuration (its traced
phases were fitted; its untraced totals were not). The others are the test:
more vCPUs, and busy CPUs, for which the model has no key of its own.

A traced case (`kexec-arm64-phases-N`) compares the cpuhp trace's spans
instead, each without its trace lines as calibration takes them
(calibrate_kexec.trace_free), pooled over every CPU of every run, beside the
model's same spans over its CPUs (median): where the model's time per CPU
stays flat as the vCPUs grow, these rows say in which phase the lab's grows.
"""

from __future__ import annotations

import statistics

from haltlab.errors import ConfigError
from haltlab.lab.experiments.kexec import KexecConfig as LabKexec
from haltlab.lab.experiments.kexec import default_timeout_s, run_kexec
from haltlab.lab.parse import arm64_kexec_shutdown
from haltlab.machine.profile import load_profile
from haltlab.scenarios.kexec import KexecConfig, simulate_kexec
from haltlab.lab.stats import summarize
from haltlab.validation.calibrate_kexec import PROFILE, SPANS, lab_kexec_phases, model_cpu_phases, trace_free
from haltlab.validation.lab_kernel import LAB_KERNEL_PRESET

__all__ = ["QUANTITIES", "PHASES", "model_kexec_facts", "model_phase_facts", "lab_phase_stats", "lab_kexec_result",
           "kexec_rows", "check_lab_kexec"]

QUANTITIES = ("shutdown_ns", "per_cpu_shutdown_ns", "psci_polled_ms")
PHASES = tuple(f"{s}_ns" for s in SPANS)
_META = ("kernel_release", "kernel_package", "kernel_package_version", "qemu_version", "accelerator", "qemu_cpu")


def model_kexec_facts(case, profile=None) -> dict:
    """The model's value of each quantity, read from its console by the lab's parser."""
    run = simulate_kexec(KexecConfig(profile=PROFILE, cpus=case.cpus, others=case.others,
                                     kernel=LAB_KERNEL_PRESET, timeline=False), profile)
    facts = arm64_kexec_shutdown([(end_ns, text) for _start, end_ns, _cpu, text in run.machine.console])
    per_cpu = [v for v in facts["per_cpu_shutdown_ns"] if v is not None]
    return {"shutdown_ns": facts["shutdown_ns"],
            "per_cpu_shutdown_ns": round(statistics.median(per_cpu)) if per_cpu else None,
            "psci_polled_ms": statistics.median(facts["psci_polled_ms"]) if facts["psci_polled_ms"] else None,
            "outcome": run.result["outcome"]}


def model_phase_facts(case, profile=None) -> dict:
    """The model's trace spans, median over its secondary CPUs."""
    cpus = model_cpu_phases(profile if profile is not None else load_profile(PROFILE), case.cpus, case.others)
    return {q: round(statistics.median(c[q] for c in cpus)) for q in PHASES} | {"outcome": "kexec"}


def lab_phase_stats(result: dict, where: str) -> dict:
    """Each span of a traced result, without its trace, over every CPU of every completed run."""
    cpus = lab_kexec_phases(result, where, result["cpus"])[result["others"]]
    if not cpus:
        return {q: None for q in PHASES}
    _, spans = trace_free(cpus)
    return {f"{s}_ns": summarize(v) for s, v in spans.items()}


def _untraced(r: dict) -> bool:
    return "trace_event=cpuhp:*" not in (r.get("kernel_params") or [])


def check_lab_kexec(data: dict, case, where: str) -> dict:
    """The result of `data` (one, or a campaign's list) for `case`: arm64,
    the case's vCPUs and others, untraced; otherwise a ConfigError naming it."""
    results = data["campaigns"] if "campaigns" in data else [data]
    for r in results:
        if r.get("experiment") != "kexec" or r.get("arch") != "arm64":
            raise ConfigError(where, f"experiment {r.get('experiment')!r}, arch {r.get('arch')!r}",
                              "is not an arm64 lab kexec result")
    fits = [r for r in results if r.get("cpus") == case.cpus and r.get("others") == case.others
            and _untraced(r) != case.traced]
    if not fits:
        have = ", ".join(f"{r.get('cpus')} vCPUs {r.get('others')}{'' if _untraced(r) else ' traced'}"
                         for r in results)
        raise ConfigError(where, have, f"has no {'traced' if case.traced else 'untraced'} result of {case.cpus} "
                                       f"vCPUs, others {case.others}")
    return fits[0]


def lab_kexec_result(case, runs: int, progress, saved: dict | None, where: str) -> dict:
    if saved is not None:
        return check_lab_kexec(saved, case, where)
    return run_kexec(LabKexec(arch="arm64", cpus=case.cpus, runs=runs, others=case.others, accel="tcg",
                              cpuhp_trace=case.traced, timeout_s=default_timeout_s("arm64")), progress=progress)


def kexec_rows(case, runs: int, progress, saved: dict | None, where: str) -> tuple[list[dict], dict]:
    """One row per quantity, the validate table's shape, and the lab's kernel."""
    lab = lab_kexec_result(case, runs, progress, saved, where)
    if case.traced:
        model, lab_stats, quantities = model_phase_facts(case), lab_phase_stats(lab, where), PHASES
    else:
        model, lab_stats, quantities = model_kexec_facts(case), lab, QUANTITIES
    rows = []
    for q in quantities:
        stats = lab_stats.get(q)
        lab_median = stats["median"] if stats else None
        m = model[q]
        err = (m - lab_median) / lab_median if m is not None and lab_median else None
        rows.append({"case": case.name, "cpus": case.cpus, "others": case.others, "traced": case.traced,
                     "calibrated_on": case.calibrated,
                     "quantity": q, "model": m, "model_outcome": model["outcome"], "lab_median": lab_median,
                     "lab_min": stats["min"] if stats else None, "lab_max": stats["max"] if stats else None,
                     "lab_runs": stats["n"] if stats else 0, "lab_outcomes": lab.get("outcomes"),
                     "relative_error": err})
    return rows, {k: lab.get(k) for k in _META}
