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
from haltlab.cli.options import format_option, output_file_option
from haltlab.errors import UserError
from haltlab.report.tables import Column, Table, print_tables
from haltlab.results import check_out_path, dumps

__all__ = ["calibrate", "validate"]


@click.command()
@click.option("--profile", default="qemu-tcg-x86", show_default=True, help="The guest profile to calibrate.")
@click.option("--runs", type=int, default=3, show_default=True)
@guest_cpus_option(help="vCPUs of the guest measured.")
@kernel_package_option()
@click.option("--dry-run", is_flag=True, help="Measure and print, but do not rewrite the profile.")
@format_option
def calibrate(profile, runs, cpus, kernel_package, dry_run, fmt) -> None:
    """Measure a real guest and write the profile's measurable parameters back."""
    from haltlab.validation.calibrate import calibrate as run_calibration
    from haltlab.validation.save import MeasurementNotWritten
    try:
        result = run_calibration(profile, runs=runs, cpus=cpus, write=not dry_run, kernel_package=kernel_package,
                                 progress=run_lines("lab calibrate"))
    except MeasurementNotWritten as e:
        if e.kept_in is None or fmt == "json":     # the measurement survives on stdout
            click.echo(dumps(e.result), nl=False)
        if e.kept_in is None:
            raise UserError(f"{e}; the measurement is on stdout above") from None
        raise
    if fmt == "json":
        click.echo(dumps(result), nl=False)
        return
    print_tables([_calibration_table(result)], fmt, console())


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
              notes=[result["provenance"], f"model preset: {result['preset_match_reason']}"])
    for key, value in result["values"].items():
        t.add_row(key, _value(result["previous"][key]), _value(value))
    return t


@click.command()
@click.option("--runs", type=int, default=2, show_default=True, help="Lab runs per case (panic_timeout: 1).")
@click.option("--case", "cases", multiple=True, help="Only these cases (repeatable); default: all.")
@kernel_package_option()
@format_option
@output_file_option()
def validate(runs, cases, kernel_package, fmt, output) -> None:
    """Run the calibrated model and real kernels on the same configurations, side by side."""
    from haltlab.validation import validate as validation
    from haltlab.validation.cases import CASES
    names = {c.name for c in CASES}
    for c in cases:
        if c not in names:
            raise UserError(f"--case {c}: unknown (choose from {', '.join(sorted(names))})")
    validation.check_options(runs=runs, kernel_package=kernel_package)
    if output is not None:
        check_out_path(output, "--output", directory=False)
    chosen = tuple(c for c in CASES if not cases or c.name in cases)
    result = validation.validate(chosen, runs=runs, progress=run_lines("validate"),
                                 kernel_package=kernel_package)
    save_or_show(result, output, "--output")
    if fmt == "json":
        click.echo(dumps(result), nl=False)
        return
    print_tables(_validation_tables(result), fmt, console())


# quantity -> its label (with the unit shown), the divisor from the field's unit, digits
_QUANTITIES = {
    "host_cpu_s_per_s": ("host CPU-s/s", 1, 4),
    "panic_to_end_ns": ("panic to end line, ms", 1e6, 2),
    "stop_gap_ns": ("stop gap, ms", 1e6, 2),
    "panic_to_reset_ns": ("panic to reset, ms", 1e6, 2),
}


def _shown_as(q: str) -> tuple[str, float, int]:
    """How quantity `q` is shown; one the table does not know yet by its field
    name (ns in ms, anything else to four decimals), never left out."""
    return _QUANTITIES.get(q) or ((f"{q}, ms", 1e6, 2) if q.endswith("_ns") else (q, 1, 4))


def _shown(q: str, v) -> str:
    _, scale, digits = _shown_as(q)
    return "-" if v is None else f"{v / scale:,.{digits}f}"


def _case_title(r: dict) -> str:
    reset = f", panic={r['panic_timeout_s']}" if r["panic_timeout_s"] else ""
    own = " (calibration's own case: agreement is expected, not evidence)" if r["calibrated_on"] else ""
    return f"{r['case']}: {r['cpus']} CPUs, pvpanic {r['pvpanic']}{reset}{own}"


def _validation_tables(result: dict) -> list[Table]:
    """What was compared, then one table per case: narrow enough for 80
    columns with every number whole (one table with a case column is not)."""
    lab = result["lab"] or {}
    head = Table("validate: the calibrated model beside real kernels", [Column("side"), Column("what")],
                 show_header=False,
                 notes=["lab: the median, min and max over its runs; error: (model - lab median) / lab median",
                        f"model preset: {result['preset_match_reason']}"])
    head.add_row("model", f"profile {result['profile']}, kernel preset {result['kernel_preset']}")
    head.add_row("lab", f"{lab.get('accelerator')}, kernel {lab.get('kernel_release')} ({lab.get('kernel_package')} "
                        f"{lab.get('kernel_package_version')}), QEMU {lab.get('qemu_version')}")
    cases: dict[str, Table] = {}
    for r in result["rows"]:
        if r["case"] not in cases:
            cases[r["case"]] = Table(_case_title(r), [Column("quantity"), *(
                Column(c, numeric=True) for c in ("model", "lab median", "min", "max", "runs", "error"))])
        q = r["quantity"]
        err = f"{r['relative_error']:+.0%}" if r["relative_error"] is not None else "-"
        figures = (_shown(q, r[k]) for k in ("model", "lab_median", "lab_min", "lab_max"))
        cases[r["case"]].add_row(_shown_as(q)[0], *figures, str(r["lab_runs"]), err)
    return [head, *cases.values()]
