"""`haltlab sweep panic`: the panic scenario over seeds x policies x CPU counts.

Options in, `haltlab.sweep.PanicSweep` out; the library checks them (errors
name fields, shown here as flags), runs them through a local process pool or a
Dask cluster (`--scheduler`), and streams rows to `--output` (JSON Lines) as they
finish. The same command again resumes; a file made with other inputs is
refused. This module only adds the progress display and the summary table.
"""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.table import Table

from haltlab.cli.console import console, progress
from haltlab.cli.options import PathText, observe_option, output_file_option, profile_option, seconds_to_ns
from haltlab.errors import UserError
from haltlab.results import check_out_path
from haltlab.sweep import PanicSweep, check_executor, executor, open_sweep, panic_row, run_items, worker_count

__all__ = ["sweep"]


@click.group()
def sweep() -> None:
    """Run a scenario over many seeds, variants and CPU counts in parallel."""


@sweep.command("panic")
@output_file_option(help="JSON Lines file the runs go to; an existing one is resumed.  [required]")
@click.option("--out", "out_alias", type=PathText(), hidden=True)   # the old name; --out is a directory elsewhere
@profile_option()
@click.option("--cpus", default="8", show_default=True, metavar="LIST", help="CPU counts, e.g. 8,64,512 or 2-8.")
@click.option("--after-panic", default="mdelay,safe_halt", show_default=True, metavar="LIST",
              help="The loops panic() ends in: mdelay (stock), safe_halt (S1).")
@click.option("--others", default="idle", show_default=True, metavar="LIST",
              help="What the other CPUs do: idle, busy, irqsoff.")
@click.option("--seeds", default="0-3", show_default=True, metavar="LIST", help="Seeds, e.g. 0-99 or 1,5,9.")
@observe_option(10.0, help='How long to watch after "end Kernel panic".')
@click.option("--workers", type=int, default=None,
              help="Local worker processes [default and most: the CPU count, and the runs to do].")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Dask scheduler, tcp://HOST:PORT (needs haltlab[dask]).")
@click.option("--scheduler-timeout", "scheduler_timeout_s", type=float, default=10.0, show_default=True,
              metavar="SECONDS", help="How long to try to reach --scheduler.")
def sweep_panic(output, out_alias, profile, cpus, after_panic, others, seeds, observe_s, workers,
                scheduler, scheduler_timeout_s) -> None:
    """The panic scenario for every combination; prints medians per configuration."""
    output = _output(output, out_alias)
    spec = PanicSweep.parse(profile=profile, cpus=cpus, after_panic=after_panic, others=others,
                            seeds=seeds, observe_ns=seconds_to_ns(observe_s, "--observe"))
    check_executor(scheduler, workers, scheduler_timeout_s)
    check_out_path(output, "--output", directory=False)
    with open_sweep(output, spec.inputs()) as file:
        todo = spec.todo(file.done)
        if todo:
            _run(spec, file, todo, workers, scheduler, scheduler_timeout_s)
        ran = file.written
    _print_summary(spec, output, ran)


def _output(output: Path | None, alias: Path | None) -> Path:
    if output is not None and alias is not None and output != alias:
        raise UserError(f"--output {output}, --out {alias}: give the file once (--out is the old name)")
    if (output or alias) is None:
        raise UserError("--output FILE is required: the JSON Lines file the runs go to")
    return output or alias


def _run(spec: PanicSweep, file, todo: int, workers: int | None, scheduler: str | None,
         timeout_s: float) -> None:
    n = None
    if scheduler is None:
        n, note = worker_count(workers, todo)
        if note:
            click.echo(f"haltlab: sweep: {note}", err=True)
    done_before = spec.runs - todo
    with executor(scheduler, n, timeout_s) as pool, progress("sweep", spec.runs) as bar:
        started = time.monotonic()

        def show(ran: int) -> None:
            rate = ran / max(time.monotonic() - started, 1e-9)
            eta = f"ETA {_duration((todo - ran) / rate)}" if ran else "ETA -"
            bar.update(done_before + ran, f"{rate:.1f} runs/s, {eta}")

        show(0)
        run_items(panic_row, spec.items(), file, pool, show)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _print_summary(spec: PanicSweep, output: Path, ran: int) -> None:
    """Medians per configuration of this sweep's runs (the file may hold others)."""
    groups = spec.summary(output)
    out = console()
    out.print(f"sweep: {sum(g.runs for g in groups)} runs in {output} ({ran} new)", soft_wrap=True,
              markup=False, highlight=False)      # a line of its own: a long path never wraps it
    t = Table()
    for col in ("configuration", "runs", "hung", "time to end (ms, median)", "host CPU-s/s (median)"):
        t.add_column(col)
    for g in groups:
        t.add_row(f"{spec.profile.name} {g.cpus} CPUs {g.after_panic} {g.others}", str(g.runs), str(g.hung),
                  f"{g.time_to_end_ns / 1e6:.3f}" if g.time_to_end_ns is not None else "-",
                  f"{g.host_cpu_s_per_s:.4f}" if g.host_cpu_s_per_s is not None else "-")
    out.print(t)
