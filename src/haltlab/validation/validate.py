"""`haltlab validate`: the calibrated model and the lab on the same configurations.

Runs each case of the registry (cases.py) on the model, on the profile the lab
calibrates (`qemu-tcg-x86`, kernel preset `debian-6.1.0-56`: the lab's kernel,
v6.1 with its stable backports), and on real kernels, and puts them side by
side with the relative error. The lab boots one kernel for every case, and the
result says whether the preset describes it (lab_kernel.py).

S1's build cases (s1_lab.py) boot the kernels the lab builds from Debian's
source, stock and with S1's patch, and compare their host CPU after the panic
with the model's (`after_panic` as the patch set says); they boot no Debian
package, so a command of only those resolves none.

S2's flood cases (flood.py) compare the model's stress test with a `lab flood`
campaign: a fresh one, or a saved `lab flood --output FILE` result passed in
`lab_results` (a campaign takes minutes; the model's side is always run).
Saved results must be of the kernel the rest of the command boots; when every
case has one, that kernel is the saved results' own (pinned by package and
version, so the lab's image cache answers without apt). A flood case with a
`build` is outside that rule: it boots its own build (`lab flood --build
NAME`), a saved result of it must be of that patch set, and its kernel is
reported per case (`flood_builds`).

S3's arm64 kexec cases (kexec_arm64.py) run the model on `qemu-tcg-arm64`
and boot Debian's arm64 kernel, or read a saved `lab kexec --arch arm64`
campaign (`lab_results`); they are outside the one-kernel rule too (an
arm64 kernel, not the amd64 package), and their lab side is reported as
`kexec_arm64`.
"""

from __future__ import annotations

from haltlab.errors import ConfigError
from haltlab.kernel.commits import commit_set
from haltlab.lab.experiments import FloodConfig as LabFlood
from haltlab.lab.experiments import PanicConfig as LabPanic
from haltlab.lab.experiments import run_flood as lab_flood
from haltlab.lab.experiments import run_panic as lab_panic
from haltlab.lab.images import KernelImage
from haltlab.scenarios.panic import PanicConfig, simulate_panic
from haltlab.validation.cases import CASES, FLOOD_CASES, KEXEC_CASES, LAB_FIELD, Case, FloodCase, KexecCase
from haltlab.validation.flood import (
    DEFAULT_SEEDS, STOCK_MODEL, build_model, check_lab_flood, compare_flood, hang_count, lab_flood_runs,
    model_flood_runs, notes_4_holds,
)
from haltlab.validation.calibrate_kexec import PROFILE as ARM64_PROFILE
from haltlab.validation.kexec_arm64 import check_lab_kexec, kexec_rows
from haltlab.validation.lab_kernel import LAB_KERNEL_PRESET, arm64_preset_match, preset_match, resolve_lab_kernel
from haltlab.validation.measures import model_panic_facts
from haltlab.validation.s1_lab import S1_BUILD_CASES, S1BuildCase, s1_build_rows
from haltlab.validation.s1_lab import built_kernel as s1_built_kernel

__all__ = ["validate", "check_options", "model_facts", "PROFILE", "LAB_WINDOW_NS", "ALL_CASES"]

ALL_CASES = (*CASES, *FLOOD_CASES, *S1_BUILD_CASES, *KEXEC_CASES)

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


def check_options(*, runs: int, kernel_package: str | None = None, seeds: int = DEFAULT_SEEDS) -> None:
    """validate()'s own inputs, refused before anything runs (a ConfigError)."""
    if not isinstance(runs, int) or runs < 1:
        raise ConfigError("runs", runs, "must be an integer >= 1")
    if not isinstance(seeds, int) or seeds < 1:
        raise ConfigError("seeds", seeds, "must be an integer >= 1")
    if kernel_package is not None:
        LabPanic(kernel_package=kernel_package).validate()


def _package(lab: dict) -> str:
    return f"{lab.get('kernel_package')}={lab.get('kernel_package_version')}"


def _packaged(case) -> bool:
    """A case `_kernel_for()` decides the kernel of (every case but a flood
    case with a build of its own, which boots and reports that build)."""
    return not (isinstance(case, FloodCase) and case.build) and not isinstance(case, KexecCase)


def _kernel_for(cases, lab_results: dict, kernel_package: str | None) -> KernelImage | None:
    """The one Debian kernel of the command: the booted one, which saved results
    must match (None when every case boots a build of its own)."""
    cases = [c for c in cases if _packaged(c)]
    if not cases:
        return None
    names = {c.name for c in cases}
    saved = {name: _package(lab) for name, lab in lab_results.items() if name in names}
    if len(set(saved.values())) > 1:
        raise ConfigError("lab results", ", ".join(f"{n}: {p}" for n, p in sorted(saved.items())),
                          "are of different kernels; validate compares one")
    boots = any(c.name not in lab_results for c in cases if not isinstance(c, S1BuildCase))
    if saved and not boots:
        return resolve_lab_kernel(next(iter(saved.values())))
    if not boots and any(isinstance(c, S1BuildCase) for c in cases):
        return s1_built_kernel(next(c.build for c in cases if isinstance(c, S1BuildCase)))
    kernel = resolve_lab_kernel(kernel_package)
    booted = f"{kernel.package}={kernel.package_version}"
    for name, pkg in saved.items():
        if pkg != booted:
            raise ConfigError(f"lab result for {name}: kernel", pkg, f"this validate boots {booted}")
    return kernel


def _panic_rows(case: Case, runs: int, progress, kernel: KernelImage) -> tuple[list[dict], dict]:
    model = model_facts(case)
    lab = _lab_facts(case, 1 if case.panic_timeout_s else runs, progress, kernel)
    meta, outcomes = lab.pop("_meta"), lab.pop("_outcomes")
    rows = []
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
    return rows, meta


def _flood_rows(case: FloodCase, runs: int, progress, kernel: KernelImage | None, saved: dict | None,
                seeds: int) -> tuple[list[dict], dict, dict | None]:
    model = build_model(case.build) if case.build else STOCK_MODEL
    lab = saved if saved is not None else lab_flood(LabFlood(cpus=case.cpus, runs=runs, accel="tcg",
                                                             build=case.build),
                                                    progress=progress, kernel=None if case.build else kernel)
    model_runs = model_flood_runs(case.cpus, seeds, model=model)
    rows = compare_flood(case, model_runs, lab, f"lab result for {case.name}")
    # kernel-notes §4 predicts the runs of a kernel with 13fb0f74d702's guard; the builds without it have none
    guarded = "printk_suppress_panic_printk" in commit_set(model.kernel)
    notes = {"model": notes_4_holds(model_runs), "lab": notes_4_holds(lab_flood_runs(lab))} if guarded else None
    meta = {k: lab.get(k) for k in _LAB_META}
    if case.build:
        (m_hung, m_n), (l_hung, l_n) = hang_count(model_runs), hang_count(lab_flood_runs(lab))
        meta |= {"build": case.build, "kernel_build": lab.get("kernel_build"), "model_kernel": model.kernel,
                 "console_spin": str(model.console_spin), "model_hung": m_hung, "model_runs": m_n,
                 "lab_hung": l_hung, "lab_runs": l_n}
    return rows, meta, notes


def validate(cases: tuple = ALL_CASES, *, runs: int = 2, progress=None, kernel_package: str | None = None,
             lab_results: dict[str, dict] | None = None, seeds: int = DEFAULT_SEEDS) -> dict:
    """Every case on the model and the lab; the lab boots one kernel for all of
    them (`kernel_package`, default what linux-image-amd64 depends on, resolved
    once here), and the result says whether the model's preset describes it.
    `lab_results` maps a flood case's name to a saved `lab flood` result."""
    check_options(runs=runs, kernel_package=kernel_package, seeds=seeds)
    lab_results = dict(lab_results or {})
    saved_names = {c.name for c in cases if isinstance(c, (FloodCase, KexecCase))}
    for name in lab_results:
        if name not in saved_names:
            raise ConfigError("lab result", name, f"is not a flood or kexec case of this validate "
                                                  f"({', '.join(sorted(saved_names)) or 'none chosen'})")
    by_name = {c.name: c for c in cases}
    for name, lab in lab_results.items():       # a mismatched file is refused before anything runs
        if isinstance(by_name[name], KexecCase):
            check_lab_kexec(lab, by_name[name], f"lab result for {name}")
        else:
            check_lab_flood(lab, by_name[name].cpus, f"lab result for {name}", by_name[name].build)
    kernel = _kernel_for(cases, lab_results, kernel_package)
    rows, meta, notes, builds, arm64 = [], None, {}, {}, None
    for case in cases:
        if isinstance(case, KexecCase):
            case_rows, arm64 = kexec_rows(case, runs, progress, lab_results.get(case.name),
                                          f"lab result for {case.name}")
        elif isinstance(case, FloodCase):
            case_rows, case_meta, case_notes = _flood_rows(case, runs, progress, kernel,
                                                           lab_results.get(case.name), seeds)
            if case_notes is not None:
                notes[case.name] = case_notes
            if case.build:
                builds[case.name] = case_meta
            else:
                meta = case_meta
        elif isinstance(case, S1BuildCase):
            case_rows, build_meta = s1_build_rows(case, runs, progress, profile=PROFILE, window_ns=LAB_WINDOW_NS)
            meta = meta or build_meta
        else:
            case_rows, meta = _panic_rows(case, runs, progress, kernel)
        rows += case_rows
    out = {"profile": PROFILE, "lab": meta, "rows": rows}
    if kernel is not None:
        out |= preset_match(LAB_KERNEL_PRESET, kernel)
    if builds:
        out["flood_builds"] = builds
    if arm64 is not None:
        out["kexec_arm64"] = {"profile": ARM64_PROFILE, "lab": arm64, **arm64_preset_match(arm64)}
    if notes:
        out["flood_seeds"] = seeds
        out["flood_kernel_notes_4"] = notes
    return out
