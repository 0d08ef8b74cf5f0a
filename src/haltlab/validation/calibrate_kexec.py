"""`haltlab lab calibrate --arch arm64`: the kexec shutdown's per-phase costs from the cpuhp trace.

What the lab measures at 2 vCPUs with `lab kexec --arch arm64 --cpuhp-trace`
(lab/parse.py `cpuhp_phases`: per CPU, the printk times of the cpuhp state
machine's trace events) and what each fixes in `qemu-tcg-arm64`:

* `console_ns_per_char`: the trace's own cost. `tp_printk` prints each event
  synchronously, so the gap from a `cpuhp_exit` to the next `cpuhp_enter`
  (nothing runs between but printing the exit line) over that line's
  characters is the console's time per character (`trace_ns_per_char`).
  Every span below is taken without its trace: the span less that cost
  times the characters of the trace lines stored inside it. The model is the
  untraced kernel, so the lines the untraced kernel prints too (the psci
  kill line, "Bye!") stay in;
* `ipi_latency_ns`: `ap_wake_ns`, from `cpuhp_kick_ap_work` on the boot CPU
  to the first event of `cpuhp/1` (the IPI that wakes the thread on its idle
  vCPU and the switch to it): solved so the model's wake-up (its AP
  teardown less the callbacks and the grace period) equals it;
* `rcu_gp_overhead_ns`: `sched_cpu_deactivate_ns`, the callback whose time is
  its `synchronize_rcu()`: what the lab's grace period takes beyond the
  model's jiffy waits (kernel/rcu.py);
* `cpuhp_ap_callbacks_ns`: `ap_teardown_ns` (the whole AP-side teardown on
  `cpuhp/1`), less what the model already charges there (the wake-up, the
  grace period);
* `cpuhp_dying_callbacks_ns`: `takedown_cpu_ns` (stop_machine() with
  take_cpu_down(), the dying CPU's cpu_die() and CPU_OFF, the boot CPU's
  death wait and AFFINITY_INFO poll, the kill line), less what the model
  charges there with the costs above. The DYING states' own trace events
  never reach the console, so the lab cannot split this span: the key
  carries all of the stop the model does not price otherwise (multi_cpu_stop()'s
  handshakes between vCPU threads the host schedules, the death report);
* `cpuhp_dead_callbacks_ns`: `bp_dead_ns`, the boot CPU's DEAD states after
  takedown_cpu, which the model charges as that one cost.

Each value is the median over the idle runs' CPUs, every run of every file
pooled. The fits are exact: each key enters its phase linearly, so one model
run with the key at zero gives the rest; a final run checks every phase
(`fit`: model beside lab, per phase). Not fitted: the total and per-CPU
shutdown times (what `validate` compares, at 2, 4 and 8 vCPUs), the psci
poll (a check: the lab's kills are `polled 0 ms`), and the busy runs. The
model has no key for `cpuhp/N` waking behind a CPU-bound task: it preempts
the task at once (kernel/sched.py, CFS's wake-up rule), so the busy traced
runs' wake-up is reported beside the idle one (`busy_check`) as a test of
that rule, not fitted.
"""

from __future__ import annotations

import datetime
import statistics
from pathlib import Path

from haltlab.errors import ConfigError, UserError
from haltlab.kernel.idle import Others
from haltlab.lab.experiments.kexec import KexecConfig as LabKexec
from haltlab.lab.experiments.kexec import default_timeout_s, run_kexec
from haltlab.lab.parse import arm64_kexec_shutdown
from dataclasses import replace

from haltlab.machine.profile import Param, Profile, load_profile
from haltlab.scenarios.kexec import KexecConfig, simulate_kexec
from haltlab.validation.calibrate_flood import read_lab_result
from haltlab.validation.lab_kernel import LAB_KERNEL_PRESET, arm64_preset_match
from haltlab.validation.save import check_rewritable, write_or_keep

__all__ = ["calibrate_kexec", "lab_kexec_phases", "measured_spans", "model_phases", "model_cpu_phases",
           "trace_free", "KEXEC_KEYS", "SPANS", "PROFILE", "CALIBRATION_CPUS", "TRACE_FIELDS"]

PROFILE = "qemu-tcg-arm64"
CALIBRATION_CPUS = 2
KEXEC_KEYS = ("console_ns_per_char", "ipi_latency_ns", "nmi_latency_ns", "rcu_gp_overhead_ns", "cpuhp_ap_callbacks_ns",
              "cpuhp_dying_callbacks_ns", "cpuhp_dead_callbacks_ns")
# the spans fitted, each with its trace characters (parse.cpuhp_phases)
SPANS = ("ap_wake", "sched_cpu_deactivate", "ap_teardown", "takedown_cpu", "bp_dead")
TRACE_FIELDS = ("trace_ns_per_char", *(f"{s}_ns" for s in SPANS), *(f"{s}_trace_chars" for s in SPANS))


def lab_kexec_phases(data: dict, where: str, cpus: int = CALIBRATION_CPUS) -> dict[str, list[dict]]:
    """The traced results of `cpus` vCPUs in a saved `lab kexec --arch arm64`
    file, as `{"idle": [per-CPU phases...], "busy": [...]}` over its completed runs.
    A file that is not such a result, or a CPU without a field the fit reads,
    is a one-line UserError naming it."""
    results = data["campaigns"] if "campaigns" in data else [data]
    out: dict[str, list[dict]] = {"idle": [], "busy": [], "meta": []}
    for r in results:
        if r.get("experiment") != "kexec" or r.get("arch") != "arm64":
            raise UserError(f"{where}: not an arm64 lab kexec result (experiment {r.get('experiment')!r}, "
                            f"arch {r.get('arch')!r})")
        if r.get("cpus") != cpus or "trace_event=cpuhp:*" not in (r.get("kernel_params") or []):
            continue
        if r.get("others") not in ("idle", "busy"):
            raise UserError(f"{where}: others {r.get('others')!r}: expected idle or busy")
        for i, run in enumerate(r.get("runs") or []):
            if run.get("outcome") != "completed":
                continue
            for cpu in run.get("cpuhp_phases") or []:
                missing = [f for f in TRACE_FIELDS if not isinstance(cpu.get(f), (int, float))]
                if missing:
                    raise UserError(f"{where}: run {i} CPU{cpu.get('cpu')}: no {missing[0]} (a result from "
                                    f"before 2026-12-02, or a trace that lost events: run lab kexec --arch "
                                    f"arm64 --cpus {cpus} --cpuhp-trace again)")
                out[r["others"]].append(cpu)
        out["meta"].append({k: r.get(k) for k in ("kernel_release", "kernel_package", "kernel_package_version",
                                                  "qemu_version", "accelerator", "qemu_cpu", "others", "n_runs",
                                                  "completed")})
    if not out["meta"]:
        raise UserError(f"{where}: no result of {cpus} vCPUs with the cpuhp trace "
                        f"(lab kexec --arch arm64 --cpus {cpus} --cpuhp-trace [--others busy])")
    return out


def trace_free(cpus: list[dict]) -> tuple[float, dict[str, list[int]]]:
    """The trace's cost per character (median over the CPUs), and each span of
    each CPU without its trace lines (integer ns)."""
    per_char = statistics.median(c["trace_ns_per_char"] for c in cpus)
    return per_char, {s: [round(c[f"{s}_ns"] - per_char * c[f"{s}_trace_chars"]) for c in cpus] for s in SPANS}


def measured_spans(cpus: list[dict]) -> dict:
    """`trace_free()`'s spans, median over the CPUs."""
    per_char, spans = trace_free(cpus)
    return {"trace_ns_per_char": per_char, "samples": len(cpus),
            **{f"{s}_ns": round(statistics.median(v)) for s, v in spans.items()}}


def model_cpu_phases(profile: Profile, cpus: int = CALIBRATION_CPUS, others: Others = Others.IDLE) -> list[dict]:
    """The model's spans of each secondary CPU's `_cpu_down()`, in the order
    they went down, as the lab's trace cuts them, and the kill lines' polls."""
    run = simulate_kexec(KexecConfig(profile=PROFILE, cpus=cpus, others=others, kernel=LAB_KERNEL_PRESET,
                                     timeline=False), profile)
    ap_callbacks, dead = profile.cost_ns("cpuhp_ap_callbacks_ns"), profile.cost_ns("cpuhp_dead_callbacks_ns")
    out = []
    for cpu, polled in zip(run.result["per_cpu"], _polled(run.result["console"])):
        ph = cpu["phases_ns"]
        out.append({
            "ap_wake_ns": ph["ap_teardown"] - ph["synchronize_rcu"] - ap_callbacks,
            "sched_cpu_deactivate_ns": ph["synchronize_rcu"],
            "ap_teardown_ns": ph["ap_teardown"],
            "takedown_cpu_ns": ph["stop_machine"] + ph["idle_dead"] + ph["wait_dead"],
            "bp_dead_ns": dead,
            "psci_polled_ms": polled,
        })
    return out


def model_phases(profile: Profile) -> dict:
    """CPU 1's spans at the calibration's 2 vCPUs, with its poll as a list (the lab's shape)."""
    (cpu,) = model_cpu_phases(profile)
    return cpu | {"psci_polled_ms": [cpu["psci_polled_ms"]]}


def _polled(console: list[str]) -> list[int]:
    return arm64_kexec_shutdown([(0, text) for text in console])["psci_polled_ms"]


def _fit(profile: Profile, lab: dict) -> tuple[dict, dict]:
    """The keys, each solved in the order the phases depend on them."""
    values = {"console_ns_per_char": max(1, round(lab["trace_ns_per_char"]))}
    zero = {"ipi_latency_ns": 0, "rcu_gp_overhead_ns": 0, "cpuhp_ap_callbacks_ns": 0, "cpuhp_dying_callbacks_ns": 0}
    m0 = model_phases(_with_kexec_values(profile, values | zero, "calibration trial"))
    values["ipi_latency_ns"] = max(0, lab["ap_wake_ns"] - m0["ap_wake_ns"])
    values["nmi_latency_ns"] = values["ipi_latency_ns"]
    values["rcu_gp_overhead_ns"] = max(0, lab["sched_cpu_deactivate_ns"] - m0["sched_cpu_deactivate_ns"])
    m1 = model_phases(_with_kexec_values(profile, values | {"cpuhp_ap_callbacks_ns": 0, "cpuhp_dying_callbacks_ns": 0},
                                   "calibration trial"))
    values["cpuhp_ap_callbacks_ns"] = max(0, lab["ap_teardown_ns"] - m1["ap_teardown_ns"])
    values["cpuhp_dying_callbacks_ns"] = max(0, lab["takedown_cpu_ns"] - m1["takedown_cpu_ns"])
    values["cpuhp_dead_callbacks_ns"] = max(0, lab["bp_dead_ns"])
    check = model_phases(_with_kexec_values(profile, values, "calibration check"))
    fit = {s: {"lab": lab[s], "model": check[s]} for s in (f"{x}_ns" for x in SPANS)}
    fit["psci_polled_ms"] = {"model": check["psci_polled_ms"]}
    return values, fit


_WHAT = {
    "console_ns_per_char": "the trace's cpuhp_exit-to-next-cpuhp_enter gaps over the exit line's characters",
    "ipi_latency_ns": "cpuhp_kick_ap_work's enter to cpuhp/1's first event, without the trace: solved so the "
                      "model's wake-up of cpuhp/1 equals it",
    "nmi_latency_ns": "not measurable (Debian's arm64 6.1 has no pseudo-NMI, CONFIG_ARM64_PSEUDO_NMI unset); "
                      "set to ipi_latency_ns",
    "rcu_gp_overhead_ns": "sched_cpu_deactivate()'s span (its synchronize_rcu()) without the trace, less the "
                          "model's (jiffies_till_first_fqs + 1) jiffies",
    "cpuhp_ap_callbacks_ns": "cpuhp_kick_ap_work's span without the trace, less the model's wake-up and grace period",
    "cpuhp_dying_callbacks_ns": "takedown_cpu's span without the trace, less what the model charges there with "
                                "the other costs: the DYING callbacks and all of the stop the model does not "
                                "price otherwise (the lab cannot split the span: the DYING states' events never "
                                "reach the console)",
    "cpuhp_dead_callbacks_ns": "takedown_cpu's exit to the CPU's last cpuhp event (the boot CPU's DEAD states) "
                               "without the trace",
}


def calibrate_kexec(paths: list[str | Path] | None = None, profile_name: str = PROFILE, *, runs: int = 5,
                    write: bool = True, progress=None) -> dict:
    """Fit the kexec shutdown's per-phase costs from saved traced campaigns
    (`paths`) or, with none, from `runs` fresh ones (idle and busy, 2 vCPUs),
    and (with `write`) rewrite the profile, each value with its provenance."""
    if not isinstance(runs, int) or runs < 1:
        raise ConfigError("runs", runs, "must be an integer >= 1")
    profile = load_profile(profile_name)
    if profile.arch != "arm64" or not profile.is_guest:
        raise ConfigError("profile", profile_name, "the arm64 calibration fits an arm64 guest profile "
                                                   "(qemu-tcg-arm64)")
    if write:
        check_rewritable(profile.path)
    if paths:
        sources = [(str(p), read_lab_result(p, "--kexec", campaigns_ok=True)) for p in paths]
        how = " ".join(f"--kexec {Path(p).name}" for p in paths)
    else:
        sources = [("lab kexec", _boot(runs, others, progress)) for others in ("idle", "busy")]
        how = f"--runs {runs}"
    idle, busy, meta = [], [], []
    for where, data in sources:
        got = lab_kexec_phases(data, where)
        idle += got["idle"]
        busy += got["busy"]
        meta += got["meta"]
    if not idle:
        raise UserError(f"{how}: no completed idle run of 2 vCPUs with the cpuhp trace to fit "
                        f"(lab kexec --arch arm64 --cpus 2 --cpuhp-trace); busy runs only check")
    kernels = {(m["kernel_package"], m["kernel_package_version"]) for m in meta}
    if len(kernels) > 1:
        raise UserError(f"--kexec: the files are of different kernels ({sorted(kernels)}); calibrate on one")
    lab = measured_spans(idle)
    values, fit = _fit(profile, lab)
    m = meta[0]
    provenance = (f"lab measurement: haltlab lab calibrate --arch arm64 --profile {profile_name} {how} "
                  f"({datetime.date.today().isoformat()}; `lab kexec --arch arm64 --cpus 2 --cpuhp-trace`, "
                  f"kernel {m['kernel_release']} ({m['kernel_package']} {m['kernel_package_version']}), QEMU "
                  f"{m['qemu_version']}, {m['accelerator']}, -cpu {m['qemu_cpu']}; median over the "
                  f"{lab['samples']} CPUs of the idle runs, {lab['trace_ns_per_char']:.0f} ns per trace character)")
    result = {"profile": profile_name, "path": str(profile.path), "written": write, "arch": "arm64",
              "values": values, "previous": {k: profile.get(k) for k in values},
              "provenance": provenance, "lab_spans": lab, "fit": fit, "lab": meta,
              "busy_check": _busy_check(idle, busy, lab), **arm64_preset_match(m)}
    if write:
        calibrated = _with_kexec_values(profile, values, provenance)
        write_or_keep(calibrated, profile.path, result)
    return result


def _busy_check(idle: list[dict], busy: list[dict], lab: dict) -> dict | None:
    """cpuhp/1's wake-up behind a CPU-bound task beside its wake-up on an idle
    CPU, both without the trace: the model predicts the same (no key for it)."""
    if not busy:
        return None
    b = measured_spans(busy)
    return {"samples": b["samples"], "idle_ap_wake_ns": lab["ap_wake_ns"], "busy_ap_wake_ns": b["ap_wake_ns"],
            "idle_bp_dead_ns": lab["bp_dead_ns"], "busy_bp_dead_ns": b["bp_dead_ns"],
            "idle_ap_teardown_ns": lab["ap_teardown_ns"], "busy_ap_teardown_ns": b["ap_teardown_ns"]}


def _boot(runs: int, others: str, progress) -> dict:
    config = LabKexec(arch="arm64", cpus=CALIBRATION_CPUS, runs=runs, others=others, cpuhp_trace=True,
                      accel="tcg", timeout_s=default_timeout_s("arm64"))
    config.validate()
    return run_kexec(config, progress=progress)


def _with_kexec_values(profile: Profile, values: dict, source: str) -> Profile:
    """The profile with `values`, each carrying `source` and what fixed it."""
    params = dict(profile.params)
    for key, value in values.items():
        params[key] = Param(value, f"{source}: {_WHAT[key]}", profile.params[key].unit)
    return replace(profile, params=params)
