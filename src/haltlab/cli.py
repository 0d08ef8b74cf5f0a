"""The `haltlab` command.

click gives the command tree and option parsing; rich gives tables and progress.
Every `UserError`, and every bad option value click finds, becomes one line on
stderr and exit status 2, never a traceback or a usage block. The commands here
are thin: they build a config, call `haltlab.report`, print, and write files only
once everything is rendered, so a failing run leaves no partial output.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from haltlab.errors import UserError
from haltlab.kernel.commits import PRESETS
from haltlab.kernel.idle import OTHERS
from haltlab.kernel.policies import POLICIES
from haltlab.report.reproduce import LAB_MODES

__all__ = ["main", "cli"]


def _fail(ctx: click.Context, message: str, code: int) -> None:
    click.echo(f"haltlab: error: {' '.join(message.split())}", err=True)
    ctx.exit(code)


class _Group(click.Group):
    """A group that turns user errors into one line instead of a traceback."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as e:
            _fail(ctx, _usage_line(e), e.exit_code)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as e:
            _fail(ctx, str(e), e.exit_code)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as e:   # a bad option value of a subcommand
            _fail(ctx, _usage_line(e), e.exit_code)


def _usage_line(e: click.UsageError) -> str:
    where = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
    return e.format_message() + where


@click.group(cls=_Group)
@click.version_option(package_name="haltlab")
def cli() -> None:
    """Model and measure how Linux stops, halts and parks CPUs around panic and kexec."""


# --- haltlab simulate ---------------------------------------------------------------


@cli.group(cls=_Group)
def simulate() -> None:
    """Run a scenario in the model, in virtual time (deterministic for a seed)."""


@simulate.command("panic")
@click.option("--profile", default="kvm-x86", show_default=True,
              help="Machine profile: a name in profiles/ or a path to a TOML file.")
@click.option("--cpus", type=int, default=None, help="CPU count [default: the profile's].")
@click.option("--after-panic", type=click.Choice(sorted(POLICIES["after_panic"])),
              default="mdelay", show_default=True,
              help="The loop panic() ends in: stock mdelay() or S1's safe_halt().")
@click.option("--others", type=click.Choice(list(OTHERS)), default="idle", show_default=True,
              help="What the other CPUs do when the panic starts.")
@click.option("--observe", "observe_s", type=float, default=10.0, show_default=True,
              metavar="SECONDS", help='How long to watch after "end Kernel panic".')
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--kernel", type=click.Choice(list(PRESETS)), default="v7.1", show_default=True,
              help="Kernel version preset (a set of named commits).")
@click.option("--panic-timeout", "panic_timeout_s", type=int, default=0, show_default=True,
              metavar="S", help="panic= boot parameter: reboot after S seconds (0: never).")
@click.option("--panic-cpu", type=int, default=0, show_default=True,
              help="The CPU that triggers the panic (sysrq-c).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as canonical JSON.")
@click.option("--trace", "trace_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, metavar="DIR",
              help="Write dmesg.txt, console.txt, interrupts.txt, timeline.png, result.json.")
def simulate_panic(profile, cpus, after_panic, others, observe_s, seed, kernel,
                   panic_timeout_s, panic_cpu, as_json, trace_dir) -> None:
    """One CPU panics (sysrq-c); what do the machine and, for a guest, the host see?"""
    from haltlab.report._files import write_files
    from haltlab.report.trace import trace_files
    from haltlab.results import check_out_path, dumps, writing_to
    from haltlab.scenarios.panic import PanicConfig, seconds_to_ns, simulate_panic

    if trace_dir is not None:
        check_out_path(trace_dir, "--trace", directory=True)
    cfg = PanicConfig(profile=profile, cpus=cpus, after_panic=after_panic, others=others,
                      observe_ns=seconds_to_ns(observe_s, "--observe"), seed=seed,
                      kernel=kernel, panic_timeout_s=panic_timeout_s, panic_cpu=panic_cpu)
    trace = simulate_panic(cfg)
    if trace_dir is not None:
        with writing_to("--trace", trace_dir):
            write_files(trace_dir, trace_files(trace))
    if as_json:
        click.echo(dumps(trace.result), nl=False)
    else:
        from haltlab.report.panic_view import print_panic
        print_panic(trace.result, _console())
        if trace_dir is not None:
            click.echo(f"trace written to {trace_dir}/")


def _console(stderr: bool = False):
    from rich.console import Console
    columns = os.environ.get("COLUMNS", "")
    width = None if sys.stdout.isatty() else int(columns) if columns.isdigit() else 120
    return Console(stderr=stderr, width=width)


# --- haltlab reproduce --------------------------------------------------------------


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as canonical JSON.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("haltlab-out/reproduce"), show_default=True,
              help="Where to write reproduce.json, reproduce.md and the plots.")
@click.option("--lab", "lab_mode", type=click.Choice(LAB_MODES), default="auto",
              show_default=True, help="auto: add lab measurements where the lab can run.")
def reproduce(as_json: bool, out_dir: Path, lab_mode: str) -> None:
    """Every figure of the seed threads, side by side with the model (and the lab)."""
    from haltlab.report import reproduce as rp  # the module
    from haltlab.report._files import write_files
    from haltlab.results import check_out_path, dumps, writing_to

    check_out_path(out_dir, "--out", directory=True)
    report, files = _with_progress(lambda step: rp.run_reproduce(lab_mode, step=step),
                                   rp.step_count())
    with writing_to("--out", out_dir):
        write_files(out_dir, files)
    if as_json:
        click.echo(dumps(report), nl=False)
    else:
        from haltlab.report.reproduce_view import print_reproduce
        print_reproduce(report, out_dir, _console())


def _with_progress(work, total: int):
    """Run `work(step)` under a rich progress bar on stderr (stdout stays clean)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    columns = (TextColumn("{task.description:<48}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=_console(stderr=True), transient=True) as progress:
        task = progress.add_task("reproduce", total=total)
        started = []

        def step(description: str) -> None:
            if started:
                progress.advance(task)
            started.append(description)
            progress.update(task, description=description)

        result = work(step)
        progress.update(task, completed=total)
    return result


# --- commands from other modules ----------------------------------------------------

def _mount_subcommands() -> None:
    from haltlab.cli_explore import explore, replay
    from haltlab.cli_sweep import sweep
    from haltlab.cli_validate import calibrate, validate
    from haltlab.lab.cli import lab

    lab.add_command(calibrate)      # defined above the lab: it writes model profiles
    for command in (explore, replay, sweep, validate, lab):
        cli.add_command(command)


_mount_subcommands()


def main() -> None:
    cli(prog_name="haltlab")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
