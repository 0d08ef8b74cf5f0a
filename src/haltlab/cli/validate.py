"""`haltlab lab calibrate` and `haltlab validate`: the model against real kernels.

Both run real QEMU guests (TCG), so they take a minute or two and show progress.
"""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from haltlab.cli.lab import guest_cpus_option, kernel_package_option, save_or_show
from haltlab.cli.options import output_file_option
from haltlab.errors import UserError
from haltlab.results import check_out_path, dumps

__all__ = ["calibrate", "validate"]


def _progress(console: Console, label: str):
    def report(i: int, n: int, run: dict) -> None:
        console.print(f"{label}: run {i + 1}/{n}: {run.get('outcome')}", highlight=False)
    return report


@click.command()
@click.option("--profile", default="qemu-tcg-x86", show_default=True, help="The guest profile to calibrate.")
@click.option("--runs", type=int, default=3, show_default=True)
@guest_cpus_option(help="vCPUs of the guest measured.")
@kernel_package_option()
@click.option("--dry-run", is_flag=True, help="Measure and print, but do not rewrite the profile.")
@click.option("--json", "as_json", is_flag=True)
def calibrate(profile, runs, cpus, kernel_package, dry_run, as_json) -> None:
    """Measure a real guest and write the profile's measurable parameters back."""
    from haltlab.validation.calibrate import calibrate as run_calibration
    from haltlab.validation.save import MeasurementNotWritten
    err = Console(stderr=True)
    try:
        result = run_calibration(profile, runs=runs, cpus=cpus, write=not dry_run, kernel_package=kernel_package,
                                 progress=_progress(err, "calibrate"))
    except MeasurementNotWritten as e:
        if e.kept_in is None or as_json:     # the measurement survives on stdout
            click.echo(dumps(e.result), nl=False)
        if e.kept_in is None:
            raise UserError(f"{e}; the measurement is on stdout above") from None
        raise
    if as_json:
        click.echo(dumps(result), nl=False)
        return
    t = Table(title=f"calibrate {profile}" + (" (dry run)" if dry_run else f": written to {result['path']}"))
    for col in ("parameter", "before", "measured"):
        t.add_column(col)
    for key, value in result["values"].items():
        t.add_row(key, f"{result['previous'][key]:g}", f"{value:g}")
    Console().print(t)
    Console().print(result["provenance"], highlight=False)
    Console().print(f"model preset: {result['preset_match_reason']}", highlight=False)


@click.command()
@click.option("--runs", type=int, default=2, show_default=True, help="Lab runs per case (panic_timeout: 1).")
@click.option("--case", "cases", multiple=True, help="Only these cases (repeatable); default: all.")
@kernel_package_option()
@click.option("--json", "as_json", is_flag=True)
@output_file_option()
def validate(runs, cases, kernel_package, as_json, output) -> None:
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
    result = validation.validate(chosen, runs=runs, progress=_progress(Console(stderr=True), "validate"),
                                 kernel_package=kernel_package)
    save_or_show(result, output, "--output")
    if as_json:
        click.echo(dumps(result), nl=False)
        return
    _print_validation(result)


def _fmt(q: str, v) -> str:
    if v is None:
        return "-"
    return f"{v:.4f}" if q == "host_cpu_s_per_s" else f"{v / 1e6:.2f} ms"


def _print_validation(result: dict) -> None:
    lab = result["lab"] or {}
    t = Table(title=f"validate: model ({result['profile']}, {result['kernel_preset']}) vs lab "
                    f"({lab.get('accelerator')}, kernel {lab.get('kernel_release')} ({lab.get('kernel_package')} "
                    f"{lab.get('kernel_package_version')}), QEMU {lab.get('qemu_version')})")
    for col in ("case", "quantity", "model", "lab median (min-max, runs)", "rel. error", "calibrated on"):
        t.add_column(col)
    for r in result["rows"]:
        q = r["quantity"]
        lab_cell = (f"{_fmt(q, r['lab_median'])} ({_fmt(q, r['lab_min'])}-{_fmt(q, r['lab_max'])}, {r['lab_runs']})"
                    if r["lab_median"] is not None else "-")
        err = f"{r['relative_error']:+.0%}" if r["relative_error"] is not None else "-"
        t.add_row(r["case"], q, _fmt(q, r["model"]), lab_cell, err, "yes" if r["calibrated_on"] else "no")
    Console().print(t)
    Console().print(f"model preset: {result['preset_match_reason']}", highlight=False)
