"""`haltlab lab calibrate` and `haltlab validate`: the model against real kernels.

Both run real QEMU guests (TCG), so they take a minute or two and show progress.
Both print in `--format`: the canonical JSON (`--json`), or their tables
(`report.tables` models: calibrate's parameters, validate's cases) as rich
text, Markdown or CSV, with the notes under them.
"""

from __future__ import annotations

import click

from haltlab.cli.console import console, run_lines
from haltlab.cli.lab import guest_cpus_option, save_or_show
from haltlab.cli.options import kernel_package_option
from haltlab.cli.options import format_option, output_file_option, saved_lab_results
from haltlab.errors import UserError
from haltlab.report.tables import Column, Table, print_tables
from haltlab.results import check_out_path, dumps

__all__ = ["calibrate", "validate"]


@click.command()
@click.option("--profile", default=None,
              help="The guest profile to calibrate.  [default: qemu-tcg-x86; --arch arm64: qemu-tcg-arm64]")
@click.option("--runs", type=int, default=3, show_default=True)
@guest_cpus_option(help="vCPUs of the guest measured.")
@kernel_package_option()
@click.option("--dry-run", is_flag=True, help="Measure and print, but do not rewrite the profile.")
@click.option("--flood", "flood", type=click.Path(dir_okay=False), default=None,
              help="Calibrate devkmsg_user_ns from this saved `lab flood --cpus 2 --output FILE` result "
                   "instead of booting panics.")
@click.option("--seeds", type=int, default=None, help="With --flood: model runs per trial (default 40).")
@click.option("--arch", default="x86_64", show_default=True, metavar="ARCH",
              help="x86_64 (the panic and flood calibrations) or arm64 (the kexec shutdown's per-phase costs "
                   "from the cpuhp trace at 2 vCPUs; profile qemu-tcg-arm64).")
@click.option("--kexec", "kexec_files", multiple=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="--arch arm64: fit from these saved `lab kexec --arch arm64 --cpus 2 --cpuhp-trace --output "
                   "FILE` results (repeatable; busy ones are checked, not fitted) instead of booting.")
@format_option
def calibrate(profile, runs, cpus, kernel_package, dry_run, flood, seeds, arch, kexec_files, fmt) -> None:
    """Measure a real guest and write the profile's measurable parameters back."""
    from haltlab.validation.calibrate import calibrate as run_calibration
    from haltlab.validation.calibrate_flood import calibrate_flood
    from haltlab.validation.calibrate_kexec import CALIBRATION_CPUS, PROFILE as ARM64_PROFILE, calibrate_kexec
    from haltlab.validation.flood import DEFAULT_SEEDS
    from haltlab.validation.save import MeasurementNotWritten
    if arch not in ("x86_64", "arm64"):
        raise UserError(f"--arch {arch}: expected x86_64 or arm64")
    if seeds is not None and flood is None:
        raise UserError("--seeds: only with --flood (the panic calibration runs the model once)")
    if arch == "arm64":
        if flood is not None or kernel_package is not None:
            raise UserError(f"--arch arm64: {'--flood' if flood is not None else '--kernel-package'} is for the "
                            f"x86 calibrations (arm64 boots Debian's linux-image-arm64)")
        if cpus != CALIBRATION_CPUS:
            raise UserError(f"--cpus {cpus}: the arm64 calibration fits 2 vCPUs (4 and 8 are validate's test)")
        profile = ARM64_PROFILE if profile is None else profile
    elif kexec_files:
        raise UserError("--kexec: only with --arch arm64")
    else:
        profile = "qemu-tcg-x86" if profile is None else profile
    try:
        if arch == "arm64":
            result = calibrate_kexec(list(kexec_files), profile, runs=runs, write=not dry_run,
                                     progress=run_lines("lab calibrate --arch arm64"))
        elif flood is not None:
            result = calibrate_flood(flood, profile, write=not dry_run,
                                     seeds=DEFAULT_SEEDS if seeds is None else seeds)
        else:
            result = run_calibration(profile, runs=runs, cpus=cpus, write=not dry_run,
                                     kernel_package=kernel_package, progress=run_lines("lab calibrate"))
    except MeasurementNotWritten as e:
        if e.kept_in is None or fmt == "json":     # the measurement survives on stdout
            click.echo(dumps(e.result), nl=False)
        if e.kept_in is None:
            raise UserError(f"{e}; the measurement is on stdout above") from None
        raise
    if fmt == "json":
        click.echo(dumps(result), nl=False)
        return
    print_tables([_calibration_table(result)] + ([_fit_table(result)] if "fit" in result else []), fmt, console())


def _value(v) -> str:
    """A profile parameter as printed: an integer whole (`2,731,192`), a rate
    (CPU-s/s) to six decimals, so no figure is rounded away (`:g` printed
    2,596,128,000 Hz as `2.59613e+09`)."""
    if v is None:
        return "-"
    return f"{v:,}" if isinstance(v, int) else f"{v:,.6f}"


def _calibration_table(result: dict) -> Table:
    written = f": written to {result['path']}" if result["written"] else " (dry run: not written)"
    t = Table(f"calibrate {result['profile']}{written}",
              [Column("parameter"), Column("before", numeric=True), Column("measured", numeric=True)],
              notes=[result["provenance"]] + ([f"model preset: {result['preset_match_reason']}"]
                                              if "preset_match_reason" in result else []))
    for key, value in result["values"].items():
        t.add_row(key, _value(result["previous"][key]), _value(value))
    return t


def _fit_table(result: dict) -> Table:
    """The arm64 calibration's spans: the lab's without the trace, the calibrated model's."""
    busy = result.get("busy_check")
    notes = [f"lab: median over {result['lab_spans']['samples']} CPUs of the idle traced runs, each span less "
             f"its trace lines at {result['lab_spans']['trace_ns_per_char']:.0f} ns per character",
             f"psci AFFINITY_INFO polled (model): {result['fit']['psci_polled_ms']['model']} ms"]
    if busy:
        notes.append(f"busy ({busy['samples']} CPUs, not fitted; the model wakes cpuhp/N at once behind a "
                     f"CPU-bound task): cpuhp/1 wake-up {busy['busy_ap_wake_ns'] / 1e6:.2f} ms vs idle "
                     f"{busy['idle_ap_wake_ns'] / 1e6:.2f} ms; AP teardown {busy['busy_ap_teardown_ns'] / 1e6:.2f} "
                     f"vs {busy['idle_ap_teardown_ns'] / 1e6:.2f} ms; DEAD states {busy['busy_bp_dead_ns'] / 1e6:.2f} "
                     f"vs {busy['idle_bp_dead_ns'] / 1e6:.2f} ms")
    t = Table("the spans fitted (2 vCPUs, idle), ms", [Column("span"), Column("lab", numeric=True),
                                                       Column("model", numeric=True)], notes=notes)
    for span, v in result["fit"].items():
        if span.endswith("_ns"):
            t.add_row(span[:-3], f"{v['lab'] / 1e6:,.3f}", f"{v['model'] / 1e6:,.3f}")
    return t


@click.command()
@click.option("--runs", type=int, default=2, show_default=True, help="Lab runs per case (panic_timeout: 1).")
@click.option("--case", "cases", multiple=True, help="Only these cases (repeatable); default: all.")
@kernel_package_option()
@click.option("--lab-result", "lab_results", multiple=True, metavar="CASE=FILE",
              help="A flood or kexec case's lab side from a saved `lab flood` or `lab kexec --arch arm64` "
                   "--output FILE result (repeatable).")
@click.option("--seeds", type=int, default=40, show_default=True, help="Model runs per flood case.")
@format_option
@output_file_option()
def validate(runs, cases, kernel_package, lab_results, seeds, fmt, output) -> None:
    """Run the calibrated model and real kernels on the same configurations, side by side."""
    from haltlab.validation import validate as validation
    names = {c.name for c in validation.ALL_CASES}
    for c in cases:
        if c not in names:
            raise UserError(f"--case {c}: unknown (choose from {', '.join(sorted(names))})")
    validation.check_options(runs=runs, kernel_package=kernel_package, seeds=seeds)
    if output is not None:
        check_out_path(output, "--output", directory=False)
    saved = saved_lab_results(lab_results, "CASE")
    chosen = tuple(c for c in validation.ALL_CASES if not cases or c.name in cases)
    result = validation.validate(chosen, runs=runs, progress=run_lines("validate"),
                                 kernel_package=kernel_package, lab_results=saved, seeds=seeds)
    save_or_show(result, output, "--output")
    if fmt == "json":
        click.echo(dumps(result), nl=False)
        return
    print_tables(_validation_tables(result), fmt, console())


# quantity -> its label (with the unit shown), the divisor from the field's unit, digits
_QUANTITIES = {
    "host_cpu_s_per_s": ("host CPU-s/s", 1, 4),
    "vcpu_demand_s_per_s": ("vCPU demand, s/s", 1, 4),
    "panic_to_end_ns": ("panic to end line, ms", 1e6, 2),
    "stop_gap_ns": ("stop gap, ms", 1e6, 2),
    "panic_to_reset_ns": ("panic to reset, ms", 1e6, 2),
    "records_per_drop_notice": ("records/drop notice", 1, 1),
    "flood_records_per_s_before_trigger": ("records/s pre-trigger", 1, 0),
    "guard_fired_fraction": ("guard fired, share", 1, 2),
    "drop_notices_after_trigger": ("drop notices", 1, 1),
    "trigger_to_end_ns": ("trigger to end, ms", 1e6, 1),
    "hang_rate": ("hung, share (95% Wilson)", 1, 3),
    "shutdown_ns": ("shutdown total, ms", 1e6, 2),
    "per_cpu_shutdown_ns": ("per CPU (median), ms", 1e6, 2),
    "psci_polled_ms": ("psci polled, ms", 1, 0),
    "ap_wake_ns": ("cpuhp/N wake-up, ms", 1e6, 2),
    "sched_cpu_deactivate_ns": ("sched_cpu_deactivate, ms", 1e6, 2),
    "ap_teardown_ns": ("AP teardown, ms", 1e6, 2),
    "takedown_cpu_ns": ("takedown_cpu, ms", 1e6, 2),
    "bp_dead_ns": ("DEAD states, ms", 1e6, 2),
}


def _shown_as(q: str) -> tuple[str, float, int]:
    """How quantity `q` is shown; one the table does not know yet by its field
    name (ns in ms, anything else to four decimals), never left out."""
    return _QUANTITIES.get(q) or ((f"{q}, ms", 1e6, 2) if q.endswith("_ns") else (q, 1, 4))


def _shown(q: str, v) -> str:
    _, scale, digits = _shown_as(q)
    return "-" if v is None else f"{v / scale:,.{digits}f}"


def _case_title(r: dict, builds: dict) -> str:
    if "model_runs" in r:       # a flood case: calibration used one of its quantities, marked in its row
        b = builds.get(r["case"])
        on = (f"lab build {b['build']}, model {b['model_kernel']} console_spin={b['console_spin']}; "
              if b else "")
        return (f"{r['case']}: S2's flood, {r['cpus']} CPUs, one flooder; {on}model: median of {r['model_seeds']} "
                f"seeds (* calibration's own: agreement is expected, not evidence)")
    if "others" in r:           # an arm64 kexec case (S3)
        own = " (calibration's configuration: agreement is expected, not evidence)" if r["calibrated_on"] else ""
        what = "the cpuhp trace's phases per CPU, each without its trace" if r["traced"] else "arm64 kexec shutdown"
        return f"{r['case']}: {what}, {r['cpus']} vCPUs, others {r['others']}{own}"
    if "build" in r:            # an S1 build case: the kernel lab/build.py built
        return f"{r['case']}: {r['cpus']} CPUs, lab kernel built: {r['build']}; model: {r['model_setup']}"
    reset = f", panic={r['panic_timeout_s']}" if r["panic_timeout_s"] else ""
    own = " (calibration's own case: agreement is expected, not evidence)" if r["calibrated_on"] else ""
    return f"{r['case']}: {r['cpus']} CPUs, pvpanic {r['pvpanic']}{reset}{own}"


def _notes_4(result: dict) -> list[str]:
    """Whether each flood case's model runs look as kernel-notes §4 predicts."""
    return [f"{name}: as kernel-notes §4 predicts (the guard with >= 12 drop notices, or no notice): "
            + "; ".join(f"{side} {n['fit']} of {n['runs']} runs" + (f" (not {n['misfits']})" if n["misfits"] else "")
                        for side, n in sides.items())
            for name, sides in result.get("flood_kernel_notes_4", {}).items()]


def _validation_tables(result: dict) -> list[Table]:
    """What was compared, then one table per case: narrow enough for 80
    columns with every number whole (one table with a case column is not)."""
    lab = result["lab"] or {}
    builds = result.get("flood_builds", {})
    preset = [f"model preset: {result['preset_match_reason']}"] if "preset_match_reason" in result else []
    head = Table("validate: the calibrated model beside real kernels", [Column("side"), Column("what")],
                 show_header=False,
                 notes=["lab: the median, min and max over its runs (hung: the rate and its 95% Wilson interval); "
                        "error: (model - lab median) / lab median", *preset, *_notes_4(result)])
    if result["lab"] is not None:
        head.add_row("model", f"profile {result['profile']}, kernel preset {result['kernel_preset']}")
        head.add_row("lab", f"{lab.get('accelerator')}, kernel {lab.get('kernel_release')} "
                            f"({lab.get('kernel_package')} {lab.get('kernel_package_version')}), "
                            f"QEMU {lab.get('qemu_version')}")
    if "kexec_arm64" in result:
        a = result["kexec_arm64"]
        al = a["lab"] or {}
        head.add_row("model (arm64)", f"profile {a['profile']}, kernel preset {a['kernel_preset']}")
        head.add_row("lab (arm64)", f"{al.get('accelerator')}, -cpu {al.get('qemu_cpu')}, kernel "
                                    f"{al.get('kernel_release')} ({al.get('kernel_package')} "
                                    f"{al.get('kernel_package_version')}), QEMU {al.get('qemu_version')}")
        head.notes.append(f"model preset (arm64): {a['preset_match_reason']}")
    for name, b in builds.items():
        kb = b.get("kernel_build") or {}
        head.add_row(name, f"model {b['model_kernel']} console_spin={b['console_spin']}: {b['model_hung']}/"
                           f"{b['model_runs']} hung; lab build {b['build']} ({kb.get('source_package')} "
                           f"{kb.get('source_version')}, config {str(kb.get('config_sha256'))[:12]}), "
                           f"{b.get('accelerator')}, QEMU {b.get('qemu_version')}: {b['lab_hung']}/{b['lab_runs']} hung")
    cases: dict[str, Table] = {}
    for r in result["rows"]:
        if r["case"] not in cases:
            cases[r["case"]] = Table(_case_title(r, builds), [Column("quantity"), *(
                Column(c, numeric=True) for c in ("model", "lab median", "min", "max", "runs", "error"))])
        q = r["quantity"]
        err = f"{r['relative_error']:+.0%}" if r["relative_error"] is not None else "-"
        figures = [_shown(q, r[k]) for k in ("model", "lab_median", "lab_min", "lab_max")]
        label = _shown_as(q)[0] + (" *" if "model_runs" in r and r["calibrated_on"] else "")
        cases[r["case"]].add_row(label, *figures, str(r["lab_runs"]), err)
    return [head, *cases.values()]
