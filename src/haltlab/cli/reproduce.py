"""`haltlab reproduce`: every figure of the seed threads beside the model and the lab."""

from __future__ import annotations

from pathlib import Path

import click

from haltlab.cli.console import console, with_progress
from haltlab.cli.options import format_option, kernel_package_option, out_dir_option, saved_lab_results
from haltlab.report.reproduce import LAB_MODES

__all__ = ["reproduce"]


@click.command()
@format_option
@out_dir_option("--out", "out_dir", default=Path("haltlab-out/reproduce"),
                help="Where to write reproduce.json, reproduce.md and the plots.")
@click.option("--lab", "lab_mode", type=click.Choice(LAB_MODES), default="auto",
              show_default=True, help="auto: add lab measurements where the lab can run.")
@kernel_package_option()
@click.option("--lab-result", "lab_results", multiple=True, metavar="NAME=FILE",
              help="S2's rows: the lab's hang rate of a patch set's build from a saved "
                   "`lab flood --build NAME --output FILE` campaign; S3's rows: kexec-arm64-idle=FILE or "
                   "kexec-arm64-busy=FILE, a saved `lab kexec --arch arm64` campaign (repeatable).")
def reproduce(fmt: str, out_dir: Path, lab_mode: str, kernel_package: str | None, lab_results) -> None:
    """Every figure of the seed threads, side by side with the model (and the lab)."""
    from haltlab.report import reproduce as rp  # the module
    from haltlab.report._files import check_set_dir, write_files
    from haltlab.results import check_out_path, dumps, writing_to
    from haltlab.validation.s2_figures import set_lab_results
    from haltlab.validation.s3_figures import set_s3_lab_results, split_lab_results

    check_out_path(out_dir, "--out", directory=True)
    check_set_dir(out_dir, "--out", rp.FILES)
    if kernel_package is not None:
        from haltlab.lab.images import check_package_name
        check_package_name(kernel_package)   # before the progress starts: one line, nothing else
    saved = saved_lab_results(lab_results, "NAME")
    s2, s3 = split_lab_results(saved)
    set_lab_results(s2)                      # refused here, before anything runs
    set_s3_lab_results(s3)
    report, files = with_progress(lambda step: rp.run_reproduce(lab_mode, step=step, kernel_package=kernel_package,
                                                                lab_results=saved),
                                  rp.step_count(), "reproduce")
    check_set_dir(out_dir, "--out", files)
    with writing_to("--out", out_dir):
        write_files(out_dir, files)
    if fmt == "json":
        click.echo(dumps(report), nl=False)
    else:
        from haltlab.report.reproduce_view import print_reproduce
        print_reproduce(report, out_dir, console(), fmt)
