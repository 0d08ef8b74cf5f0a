"""`haltlab lab ...` commands: a thin layer over the experiment functions.

Each command turns options into a config dataclass, calls `run_<name>(config)`
and prints the result: canonical JSON with `--json`, a rich table otherwise;
`--output FILE` also writes the JSON atomically. Validation lives in the
configs, so the CLI and programmatic callers get the same one-line UserError.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from haltlab.cli.options import PathText, output_file_option
from haltlab.errors import UserError
from haltlab.results import check_out_path, dumps, write_json_atomic, writing_to

__all__ = ["lab", "guest_cpus_option", "kernel_package_option", "save_or_show"]

_err = Console(stderr=True)


@click.group()
def lab() -> None:
    """Boot real kernels under QEMU and measure the panic and kexec CPU paths."""


def guest_cpus_option(default: int = 2, help: str = "vCPUs of the guest.") -> Callable:
    """`--cpus N` (the model's word), and `--smp N` (QEMU's) as a hidden alias:
    both fill the config field `cpus`."""
    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def command(*args, cpus: int | None, smp_alias: int | None, **kw):
            if cpus is not None and smp_alias is not None and cpus != smp_alias:
                raise UserError(f"--cpus {cpus} and --smp {smp_alias}: --smp is another name for --cpus; give one")
            return fn(*args, cpus=next((v for v in (cpus, smp_alias) if v is not None), default), **kw)
        command = click.option("--smp", "smp_alias", type=int, default=None, hidden=True)(command)
        return click.option("--cpus", "cpus", type=int, default=None, metavar="N",
                            help=f"{help}  [default: {default}]")(command)
    return decorate


def kernel_package_option() -> Callable:
    return click.option("--kernel-package", default=None, metavar="NAME[=VERSION]",
                        help="The Debian kernel package to boot, resolved once for the whole command "
                             "[default: what linux-image-amd64 depends on].")


def common_options(fn: Callable) -> Callable:
    """The options every experiment takes, with the LabConfig field names."""
    opts = [
        guest_cpus_option(),
        click.option("--runs", type=int, default=1, show_default=True, help="Repetitions; median and min-max are reported."),
        click.option("--memory-mb", type=int, default=512, show_default=True, help="Guest RAM."),
        click.option("--accel", default="auto", show_default=True, help="auto (KVM if usable, else TCG), kvm or tcg."),
        click.option("--bzimage", type=PathText(), default=None, metavar="FILE",
                     help="Your kernel image to boot (default: Debian's linux-image-amd64)."),
        click.option("--modules", type=PathText(), default=None, metavar="DIR",
                     help="Modules directory for --bzimage (lib/modules/RELEASE)."),
        kernel_package_option(),
        click.option("--boot-timeout", "boot_timeout_s", type=float, default=120.0, show_default=True, help="Seconds from start to the trigger."),
        click.option("--json", "as_json", is_flag=True, help="Print the result as JSON."),
        output_file_option(),
    ]
    return functools.reduce(lambda f, opt: opt(f), reversed(opts), fn)


def _execute(run: Callable, config, as_json: bool, output: Path | None, table: Callable[[dict], Table]) -> None:
    """Run one experiment with a progress line; print and save its result.

    `--output` is checked before the runs, which take minutes; a UserError is
    left to the top-level `haltlab` group, which prints it as one line.
    """
    if output is not None:
        check_out_path(output, "--output", directory=False)
    with _err.status(f"[bold]{type(config).__name__[:-6].lower()}[/]: preparing kernel and initramfs..."):
        result = run(config, progress=_progress)
    save_or_show(result, output, "--output")
    if as_json:
        click.echo(dumps(result), nl=False)
    else:
        Console().print(table(result))


def save_or_show(result: dict, output: Path | None, flag: str) -> None:
    """Write the result to `output`; if that fails (a full disk, a directory
    gone read-only), the measurement is not lost: its JSON goes to stdout and
    the error, which says so, follows (exit 2)."""
    if output is None:
        return
    try:
        with writing_to(flag, output):
            write_json_atomic(output, result)
    except UserError as e:
        click.echo(dumps(result), nl=False)
        raise UserError(f"{e}; the result is on stdout above") from None


def _progress(i: int, n: int, run: dict) -> None:
    _err.print(f"run {i + 1}/{n}: {run['outcome']}")


def _fmt(stats: dict | None, scale: float = 1.0, unit: str = "", digits: int = 3) -> str:
    """`median (min-max)` for a summarize() dict."""
    if not stats:
        return "-"
    f = lambda v: f"{v / scale:.{digits}f}"  # noqa: E731
    return f"{f(stats['median'])} ({f(stats['min'])}-{f(stats['max'])}){unit}"


def _table(result: dict, rows: list[tuple[str, str]]) -> Table:
    package = f" ({result['kernel_package']} {result['kernel_package_version']})" if result.get("kernel_package") else ""
    t = Table(title=f"haltlab lab {result['experiment']}: {result['kernel_release']}{package}, "
                    f"{result['accelerator']}, {result['cpus']} vCPUs, {result['n_runs']} run(s)")
    t.add_column("quantity")
    t.add_column("median (min-max)")
    for name, value in rows:
        t.add_row(name, value)
    t.add_row("outcomes", ", ".join(f"{k}: {v}" for k, v in result["outcomes"].items()))
    return t


def _panic_table(r: dict) -> Table:
    rows = [("host CPU-s/s, whole guest", _fmt(r["host_cpu_s_per_s_stats"]))]
    rows += [(f"host CPU-s/s, vCPU {v['cpu_index']}", _fmt(v["host_cpu_s_per_s"])) for v in r["per_vcpu"]]
    rows += [("vCPU demand (run + run-queue wait)/s", _fmt(r["vcpu_demand_s_per_s"]))]
    rows += [
        (f"perf samples/s at {r['perf_freq_hz']} Hz", _fmt(r["perf_samples_per_s"], digits=0)),
        ("trigger to end of panic", _fmt(r["trigger_to_end_ns"], 1e6, " ms", 1)),
        ("trigger to pvpanic event", _fmt(r["trigger_to_pvpanic_ns"], 1e6, " ms", 1)),
        ("panic to reset", _fmt(r["panic_to_reset_ns"], 1e9, " s")),
    ]
    return _table(r, rows)


def _kexec_table(r: dict) -> Table:
    return _table(r, [
        ("cold boot to first line", _fmt(r["cold_boot_to_first_line_ns"], 1e9, " s")),
        ("kexec -e to second kernel's first line", _fmt(r["kexec_downtime_ns"], 1e9, " s")),
        ("smp_init, first kernel", _fmt(r["smp_init_first_ns"], 1e6, " ms", 1)),
        ("smp_init, second kernel", _fmt(r["smp_init_second_ns"], 1e6, " ms", 1)),
    ])


def _flood_table(r: dict) -> Table:
    return _table(r, [
        ("hangs / runs", f"{r['hangs']} / {r['n_runs']}"
                         + (f" ({r['never_triggered']} never reached the trigger)" if r["never_triggered"] else "")),
        ("trigger to end of panic", _fmt(r["trigger_to_end_ns"], 1e6, " ms", 1)),
        ("flood records before trigger", _fmt(r["flood_lines_before_trigger"], digits=0)),
        ("printk messages dropped", _fmt(r["dropped_messages"], digits=0)),
    ])


@lab.command()
@common_options
@click.option("--pvpanic", default="none", show_default=True, help="QEMU -action panic=: none (stock) or pause.")
@click.option("--panic-timeout", "panic_timeout_s", type=int, default=0, show_default=True, help="Kernel panic=N: reset N s after panic (0: never).")
@click.option("--observe", "--window", "window_s", type=float, default=3.0, show_default=True, metavar="SECONDS",
              help="How long to sample host CPU after the panic (real time, so shorter than the model's 10 s).")
@click.option("--settle", "settle_s", type=float, default=0.5, show_default=True, help="Wait after the panic before sampling.")
@click.option("--perf-freq-hz", type=int, default=4000, show_default=True, help="perf-style sampling frequency.")
@click.option("--timeout", "timeout_s", type=float, default=60.0, show_default=True, help="Trigger to end of panic; longer is a hang.")
def panic(as_json: bool, output: Path | None, **options) -> None:
    """Panic with sysrq-c and measure the host CPU the panicked guest burns."""
    from haltlab.lab.experiments.panic import PanicConfig, run_panic

    _execute(run_panic, PanicConfig(**options), as_json, output, _panic_table)


@lab.command()
@common_options
@click.option("--timeout", "timeout_s", type=float, default=120.0, show_default=True, help="Whole cycle; longer is a hang.")
def kexec(as_json: bool, output: Path | None, **options) -> None:
    """kexec into the same kernel; time the jump and both kernels' smp_init."""
    from haltlab.lab.experiments.kexec import KexecConfig, run_kexec

    _execute(run_kexec, KexecConfig(**options), as_json, output, _kexec_table)


@lab.command()
@common_options
@click.option("--timeout", "timeout_s", type=float, default=60.0, show_default=True, help="Trigger to end of panic; longer is a hang (S2: 60 s).")
@click.option("--delay-min", "delay_min_s", type=float, default=0.5, show_default=True, help="Shortest flood-to-trigger delay, s.")
@click.option("--delay-max", "delay_max_s", type=float, default=2.0, show_default=True, help="Longest flood-to-trigger delay, s.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random delays.")
@click.option("--line-len", type=int, default=991, show_default=True, help="Characters per flood record, 16-991 (S2: 991).")
def flood(as_json: bool, output: Path | None, **options) -> None:
    """S2's stress test: flood /dev/kmsg from CPU 1, panic on CPU 0; count hangs."""
    from haltlab.lab.experiments.flood import FloodConfig, run_flood

    _execute(run_flood, FloodConfig(**options), as_json, output, _flood_table)
