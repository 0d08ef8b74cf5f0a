"""`haltlab sweep panic` (the panic scenario over seeds x policies x CPU counts),
`haltlab sweep printk-flood` (S2's stress campaign, `haltlab.sweep.flood`) and
`haltlab sweep kexec` (S3's shutdown designs over CPU counts and load,
`haltlab.sweep.kexec`, with `--plot`).

Options in, `haltlab.sweep.PanicSweep` out; the library checks them (errors
name fields, shown here as flags), runs them through a local process pool or a
Dask cluster (`--scheduler`), and streams rows to `--output` (JSON Lines) as they
finish. The same command again resumes; a file made with other inputs is
refused. This module only adds the progress display and the summary tables.
"""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.table import Table

from haltlab.cli.console import console, progress
from haltlab.cli.options import (KernelSpec, PathText, format_option, kernel_preset_option, observe_option,
                                 output_file_option, profile_option, seconds_to_ns)
from haltlab.cli.simulate import console_spin_option, flood_options
from haltlab.errors import UserError
from haltlab.kernel.commits import PRESETS
from haltlab.results import check_out_path, dumps, write_bytes_atomic, writing_to
from haltlab.sweep import PanicSweep, check_executor, executor, open_sweep, panic_row, run_items, worker_count

__all__ = ["sweep", "executor_options"]


def executor_options(f):
    """`--workers`, `--scheduler`, `--scheduler-timeout`: where a sweep's runs execute."""
    f = click.option("--scheduler-timeout", "scheduler_timeout_s", type=float, default=10.0, show_default=True,
                     metavar="SECONDS", help="How long to try to reach --scheduler.")(f)
    f = click.option("--scheduler", default=None, metavar="ADDRESS",
                     help="Dask scheduler, tcp://HOST:PORT (needs haltlab[dask]).")(f)
    return click.option("--workers", type=int, default=None,
                        help="Local worker processes [default and most: the CPU count, and the runs to do].")(f)


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
@executor_options
def sweep_panic(output, out_alias, profile, cpus, after_panic, others, seeds, observe_s, workers,
                scheduler, scheduler_timeout_s) -> None:
    """The panic scenario for every combination; prints medians per configuration."""
    output = _output(output, out_alias)
    spec = PanicSweep.parse(profile=profile, cpus=cpus, after_panic=after_panic, others=others,
                            seeds=seeds, observe_ns=seconds_to_ns(observe_s, "--observe"))
    ran = _resume(spec, spec.runs, panic_row, output, workers, scheduler, scheduler_timeout_s)
    _print_summary(spec, output, ran)


def _output(output: Path | None, alias: Path | None) -> Path:
    if output is not None and alias is not None and output != alias:
        raise UserError(f"--output {output}, --out {alias}: give the file once (--out is the old name)")
    if (output or alias) is None:
        raise UserError("--output FILE is required: the JSON Lines file the runs go to")
    return output or alias


def _resume(spec, total: int, row, output: Path, workers: int | None, scheduler: str | None,
            timeout_s: float) -> int:
    """Open (or resume) the sweep file, run what it lacks; how many runs ran."""
    check_executor(scheduler, workers, timeout_s)
    check_out_path(output, "--output", directory=False)
    with open_sweep(output, spec.inputs()) as file:
        todo = spec.todo(file.done)
        if todo:
            _run(total, spec.items(), row, file, todo, workers, scheduler, timeout_s)
        return file.written


def _run(total: int, items, row, file, todo: int, workers: int | None, scheduler: str | None,
         timeout_s: float) -> None:
    """`row` for each of `items` not yet in `file` (`todo` of `total`), with progress."""
    n = None
    if scheduler is None:
        n, note = worker_count(workers, todo)
        if note:
            click.echo(f"haltlab: sweep: {note}", err=True)
    done_before = total - todo
    with executor(scheduler, n, timeout_s) as pool, progress("sweep", total) as bar:
        started = time.monotonic()

        def show(ran: int) -> None:
            rate = ran / max(time.monotonic() - started, 1e-9)
            eta = f"ETA {_duration((todo - ran) / rate)}" if ran else "ETA -"
            bar.update(done_before + ran, f"{rate:.1f} runs/s, {eta}")

        show(0)
        run_items(row, items, file, pool, show)


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


@sweep.command("printk-flood")
@output_file_option(help="JSON Lines file the runs go to; an existing one is resumed.  [required]")
@click.option("--runs", type=int, default=100, show_default=True, metavar="N", help="Runs per variant.")
@click.option("--kernel", "kernels", type=KernelSpec(PRESETS, many=True), multiple=True,
              help="A kernel, as v5.17+d51507098ff9; repeat it or give a comma list for several variants "
                   "[default: v5.17+d51507098ff9].")
@console_spin_option(multiple=True)
@profile_option()
@flood_options
@click.option("--seed", type=int, default=0, show_default=True,
              help="The campaign's seed: run i's seed is derived from it and i.")
@executor_options
@format_option
def sweep_printk_flood(output, runs, kernels, console_spin, profile, cpus, hang_after_s, flood_irqs_off, seed,
                       workers, scheduler, scheduler_timeout_s, fmt) -> None:
    """S2's stress campaign: hangs/runs per variant, with a 95% Wilson interval."""
    from haltlab.scenarios.printk_flood import ASSUMPTIONS
    from haltlab.sweep.flood import FloodSweep, flood_row

    if output is None:
        raise UserError("--output FILE is required: the JSON Lines file the runs go to")
    spec = FloodSweep.parse(profile=profile, kernels=kernels or ("v5.17+d51507098ff9",), console_spin=console_spin,
                            runs=runs, seed=seed, cpus=cpus, hang_after_s=hang_after_s, flood_irqs_off=flood_irqs_off)
    ran = _resume(spec, spec.total, flood_row, output, workers, scheduler, scheduler_timeout_s)
    variants = spec.summary(output)
    summary = {"scenario": "printk-flood", "output": str(output), "profile": spec.profile.name,
               "cpus": spec.base.cpus, "seed": spec.seed, "runs": spec.runs, "new_runs": ran,
               "assumptions": ASSUMPTIONS, "variants": [v.to_dict() for v in variants]}
    if fmt == "json":
        click.echo(dumps(summary), nl=False)
        return
    from haltlab.report.flood_view import print_flood_campaign
    out = console()
    if fmt == "table":
        out.print(f"sweep: {sum(v.runs for v in variants)} runs in {output} ({ran} new)", soft_wrap=True,
                  markup=False, highlight=False)
    print_flood_campaign(summary, out, fmt)


@sweep.command("kexec")
@output_file_option(help="JSON Lines file the runs go to; an existing one is resumed.  [required]")
@click.option("--arch", type=click.Choice(["arm64", "x86"]), default="arm64", show_default=True,
              help="arm64: S3's shutdown designs. x86: S4's whole reboot, smp_init() per bring-up design.")
@click.option("--profile", default=None, metavar="NAME|FILE",
              help="Machine profile [default: arm64-server-24 for --arch arm64, xeon-gold-6154 for x86].")
@click.option("--cpus", default=None, metavar="LIST",
              help="CPU counts, e.g. 8,64,256 or 2-8 [default: 8,16,32,64,128,256; x86 8,16,32,64,128,256,512].")
@click.option("--shutdown", default=None, metavar="LIST",
              help="arm64's machine_shutdown() designs: hotplug, smp-send-stop, parallel-hotplug, "
                   "parallel-hotplug-naive [default: hotplug,smp-send-stop,parallel-hotplug].")
@click.option("--others", default=None, metavar="LIST",
              help="arm64: what the secondary CPUs do: idle, busy, irqsoff [default: idle,busy].")
@click.option("--bringup", default=None, metavar="LIST",
              help="x86: smp_init()'s designs: init-sipi, parallel, park-spin, park-mwait [default: all four].")
@click.option("--park-cstate", default=None, metavar="LIST",
              help="x86: park-mwait's MWAIT hints, C1, C1E, C6 [default: all three]; the other designs "
                   "wait in no C-state of their choosing and run once per CPU count.")
@click.option("--lpj", is_flag=True, help="x86: lpj= on the new kernel's command line: no delay calibration.")
@kernel_preset_option(list(PRESETS))
@click.option("--loglevel", "console_loglevel", type=click.IntRange(0, 15), default=7, show_default=True,
              help="The console's loglevel (7: pr_info lines printed; 4: quiet).")
@click.option("--freeze", is_flag=True, help="arm64: freeze_processes() before the shutdown, as S3's review suggested.")
@click.option("--plot", type=PathText(), default=None, metavar="FILE.png",
              help="Also write the time against CPU count per design (log-log) as a PNG.")
@executor_options
def sweep_kexec(output, arch, profile, cpus, shutdown, others, bringup, park_cstate, lpj, kernel, console_loglevel,
                freeze, plot, workers, scheduler, scheduler_timeout_s) -> None:
    """S3: the kexec shutdown time per design, CPU count and load; S4 (--arch x86): smp_init() and the
    reboot's downtime per bring-up design, CPU count and park C-state. Prints each configuration."""
    from haltlab.cli.simulate import kexec_profile

    if output is None:
        raise UserError("--output FILE is required: the JSON Lines file the runs go to")
    profile = kexec_profile(arch, profile)
    if arch == "x86":
        given = [flag for flag, value, default in (("--shutdown", shutdown, None), ("--others", others, None),
                                                   ("--freeze", freeze, False)) if value != default]
        if given:
            raise UserError(f"{given[0]}: an arm64 (S3) option; --arch x86 takes --bringup and --park-cstate")
        _sweep_kexec_x86(output, profile, cpus, bringup, park_cstate, lpj, kernel, console_loglevel, plot, workers,
                         scheduler, scheduler_timeout_s)
        return
    x86_only = [flag for flag, value, default in (("--bringup", bringup, None), ("--park-cstate", park_cstate, None),
                                                  ("--lpj", lpj, False)) if value != default]
    if x86_only:
        raise UserError(f"{x86_only[0]}: an x86 (S4) option; use it with --arch x86")
    from haltlab.sweep.kexec import KexecSweep, kexec_row

    spec = KexecSweep.parse(profile=profile, cpus=cpus or "8,16,32,64,128,256",
                            shutdown=shutdown or "hotplug,smp-send-stop,parallel-hotplug", others=others or "idle,busy",
                            kernel=kernel, console_loglevel=console_loglevel, freeze=freeze)
    if plot is not None:
        check_out_path(plot, "--plot", directory=False)
    ran = _resume(spec, spec.runs, kexec_row, output, workers, scheduler, scheduler_timeout_s)
    groups = spec.summary(output)
    _print_kexec_summary(spec, groups, output, ran)
    if plot is not None:
        from haltlab.report.kexec_chart import kexec_sweep_png
        with writing_to("--plot", plot):
            write_bytes_atomic(plot, kexec_sweep_png(groups, spec.profile.name, kernel))
        console().print(f"plot: {plot}", soft_wrap=True, markup=False, highlight=False)


def _sweep_kexec_x86(output: Path, profile: str, cpus: str | None, bringup: str | None, park_cstate: str | None,
                     lpj: bool, kernel: str, console_loglevel: int, plot: Path | None, workers: int | None,
                     scheduler: str | None, scheduler_timeout_s: float) -> None:
    """S4's sweep: smp_init() and the downtime per bring-up design, CPU count and park C-state."""
    from haltlab.scenarios.kexec_x86 import CSTATES
    from haltlab.sweep.kexec_x86 import BRINGUPS, X86KexecSweep, kexec_x86_row

    spec = X86KexecSweep.parse(profile=profile, cpus=cpus or "8,16,32,64,128,256,512",
                               bringup=bringup or ",".join(BRINGUPS), park_cstate=park_cstate or ",".join(CSTATES),
                               kernel=kernel, lpj=lpj, console_loglevel=console_loglevel)
    if plot is not None:
        check_out_path(plot, "--plot", directory=False)
    ran = _resume(spec, spec.runs, kexec_x86_row, output, workers, scheduler, scheduler_timeout_s)
    groups = spec.summary(output)
    out = console()
    out.print(f"sweep: {len(groups)} runs in {output} ({ran} new)", soft_wrap=True, markup=False, highlight=False)
    t = Table()
    for col in ("configuration", "outcome", "smp_init() ms", "downtime ms", "CPUs online", "park violations"):
        t.add_column(col)
    for g in groups:
        t.add_row(f"{spec.profile.name} {g.cpus} CPUs {g.variant}", g.outcome, _ms(g.smp_init_ns), _ms(g.downtime_ns),
                  str(g.cpus_online), str(g.park_violations))
    out.print(t)
    if spec.unchanged:
        out.print(f"C-state axis: {', '.join(spec.unchanged)} wait in no C-state of their choosing (run once per "
                  "CPU count, C-state '-')", soft_wrap=True, markup=False, highlight=False)
    if plot is not None:
        from haltlab.report.kexec_x86_chart import kexec_x86_sweep_png
        with writing_to("--plot", plot):
            write_bytes_atomic(plot, kexec_x86_sweep_png(groups, spec.profile.name, kernel))
        out.print(f"plot: {plot}", soft_wrap=True, markup=False, highlight=False)


def _ms(ns: float | None) -> str:
    return "-" if ns is None else f"{ns / 1e6:.3f}"


def _print_kexec_summary(spec, groups, output: Path, ran: int) -> None:
    out = console()
    out.print(f"sweep: {len(groups)} runs in {output} ({ran} new)", soft_wrap=True, markup=False, highlight=False)
    t = Table()
    for col in ("configuration", "outcome", "shutdown ms", "_cpu_down() ms, median", "shutdown / (CPUs-1) ms",
                "CPU_OFF at ms, median", "BUGs"):
        t.add_column(col)
    for g in groups:
        t.add_row(f"{spec.profile.name} {g.cpus} CPUs {g.shutdown} {g.others}", g.outcome, _ms(g.shutdown_ns),
                  _ms(g.down_ns_median), _ms(g.per_secondary_ns), _ms(g.cpu_off_at_ns_median), str(g.bugs))
    out.print(t)
