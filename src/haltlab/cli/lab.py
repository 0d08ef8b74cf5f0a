"""`haltlab lab ...` commands: a thin layer over the experiment functions.

Each command turns options into a config dataclass, calls `run_<name>(config)`
and prints the result in `--format` (`--json`: the canonical JSON; otherwise
its tables, `report.tables` models: the summaries and the runs by outcome);
`--output FILE` also writes the JSON atomically. Validation lives in the
configs, so the CLI and programmatic callers get the same one-line UserError.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import click

from haltlab.cli.console import console, run_lines
from haltlab.cli.options import PathText, format_option, kernel_package_option, output_file_option
from haltlab.errors import UserError
from haltlab.report.tables import Column, Table, print_tables
from haltlab.results import check_out_path, dumps, write_json_atomic, writing_to

__all__ = ["lab", "guest_cpus_option", "save_or_show"]



@click.group()
def lab() -> None:
    """Boot real kernels under QEMU and measure the panic and kexec CPU paths."""


def guest_cpus_option(default: int = 2, help: str = "vCPUs of the guest.", *, many: bool = False) -> Callable:
    """`--cpus N` (the model's word), and `--smp N` (QEMU's) as a hidden alias:
    both fill the config field `cpus`. `many`: a comma list (`--smp 2,4`) as a
    tuple of counts, the command running once per count."""
    kind = CpuList() if many else int

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def command(*args, cpus, smp_alias, **kw):
            if cpus is not None and smp_alias is not None and cpus != smp_alias:
                raise UserError(f"--cpus {_shown(cpus)} and --smp {_shown(smp_alias)}: --smp is another name "
                                f"for --cpus; give one")
            value = next((v for v in (cpus, smp_alias) if v is not None), (default,) if many else default)
            return fn(*args, cpus=value, **kw)
        command = click.option("--smp", "smp_alias", type=kind, default=None, hidden=True)(command)
        return click.option("--cpus", "cpus", type=kind, default=None, metavar="N[,N...]" if many else "N",
                            help=f"{help}{' A comma list runs once per count.' if many else ''}  "
                                 f"[default: {default}]")(command)
    return decorate


def _shown(cpus) -> str:
    return ",".join(map(str, cpus)) if isinstance(cpus, tuple) else str(cpus)


class CpuList(click.ParamType):
    """`2` or `2,4`: vCPU counts, each an integer (the config checks the range)."""

    name = "cpus"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            counts = tuple(int(v) for v in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r}: expected an integer or a comma list of integers, as 2,4", param, ctx)
        if len(set(counts)) != len(counts):
            self.fail(f"{value!r}: a count is given twice", param, ctx)
        return counts


def common_options(fn: Callable) -> Callable:
    """The options every experiment takes, with the LabConfig field names."""
    opts = [
        guest_cpus_option(many=True),
        click.option("--runs", type=int, default=1, show_default=True, help="Repetitions; median and min-max are reported."),
        click.option("--memory-mb", type=int, default=512, show_default=True, help="Guest RAM."),
        click.option("--accel", default="auto", show_default=True, help="auto (KVM if usable, else TCG), kvm or tcg."),
        click.option("--bzimage", type=PathText(), default=None, metavar="FILE",
                     help="Your kernel image to boot (default: Debian's linux-image-amd64)."),
        click.option("--modules", type=PathText(), default=None, metavar="DIR",
                     help="Modules directory for --bzimage (lib/modules/RELEASE)."),
        kernel_package_option(),
        click.option("--build", default=None, metavar="NAME",
                     help="Boot the kernel `haltlab lab build NAME` builds from Debian's source with the patch "
                          "set NAME (built first if not cached)."),
        click.option("--boot-timeout", "boot_timeout_s", type=float, default=120.0, show_default=True, help="Seconds from start to the trigger."),
        format_option,
        output_file_option(),
    ]
    return functools.reduce(lambda f, opt: opt(f), reversed(opts), fn)


def _execute(run: Callable, config_type: type, options: dict, fmt: str, output: Path | None,
             tables: Callable[[dict], list[Table]]) -> None:
    """Run one experiment with a line per finished run; print and save its result.

    A comma list of vCPU counts runs the experiment once per count, on one
    kernel (resolved, or built, once), and the JSON is the list of results.
    Every config is checked, and `--output` too, before the runs, which take
    minutes; a UserError is left to the top-level `haltlab` group, which
    prints it as one line.
    """
    configs = [config_type(**{**options, "cpus": n}) for n in options["cpus"]]
    for c in configs:
        c.validate()
    if output is not None:
        check_out_path(output, "--output", directory=False)
    label = f"lab {config_type.__name__[:-6].lower()}"
    if len(configs) == 1:
        results = [run(configs[0], progress=run_lines(label))]
    else:
        kernel = configs[0].resolve_kernel()
        results = [run(c, progress=run_lines(f"{label} --cpus {c.cpus}"), kernel=kernel) for c in configs]
    result = results[0] if len(results) == 1 else results
    save_or_show(result, output, "--output")
    if fmt == "json":
        click.echo(dumps(result), nl=False)
    else:
        print_tables([t for r in results for t in tables(r)], fmt, console())


def save_or_show(result: dict | list, output: Path | None, flag: str) -> None:
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


def _figure(v: float | int | None, scale: float, digits: int) -> str:
    return "-" if v is None else f"{v / scale:,.{digits}f}"


# A row of a lab table: its label (the unit in it), the Summary it shows, and
# how: the divisor that turns the field's unit into the label's, and the digits.
_Row = tuple[str, dict | None, float, int]


def _title(r: dict) -> str:
    package = f" ({r['kernel_package']} {r['kernel_package_version']})" if r.get("kernel_package") else ""
    if r.get("kernel_build"):
        b = r["kernel_build"]
        package = f" (built: {b['patch_set']} on {b['source_package']} {b['source_version']}, " \
                  f"config {b['config_sha256'][:12]})"
    return (f"haltlab lab {r['experiment']}: {r['kernel_release']}{package}, {r['accelerator']}, "
            f"QEMU {r['qemu_version']}, {r['cpus']} vCPUs, {r['n_runs']} run(s)")


def _lab_tables(r: dict, rows: list[_Row], notes: tuple[str, ...] = ()) -> list[Table]:
    """The summaries (median, min, max and how many runs gave a value) and the
    runs by outcome: every number in a numeric column, so none is cut."""
    figures = Table(_title(r), [Column("quantity"),
                                *(Column(c, numeric=True) for c in ("median", "min", "max", "runs"))])
    for label, stats, scale, digits in rows:
        if stats:
            figures.add_row(label, *(_figure(stats[k], scale, digits) for k in ("median", "min", "max")),
                            str(stats["n"]))
        else:
            figures.add_row(label, "-", "-", "-", "0")
    outcomes = Table("Runs by outcome", [Column("outcome"), Column("runs", numeric=True)], notes=list(notes))
    for outcome, n in r["outcomes"].items():
        outcomes.add_row(outcome, str(n))
    return [figures, outcomes]


def _panic_tables(r: dict) -> list[Table]:
    rows: list[_Row] = [("host CPU-s/s, whole guest", r["host_cpu_s_per_s_stats"], 1, 3)]
    rows += [(f"host CPU-s/s, vCPU {v['cpu_index']}", v["host_cpu_s_per_s"], 1, 3) for v in r["per_vcpu"]]
    rows += [
        ("vCPU demand (CPU + run-queue wait), s/s", r["vcpu_demand_s_per_s"], 1, 3),
        (f"perf samples/s at {r['perf_freq_hz']} Hz", r["perf_samples_per_s"], 1, 0),
        ("trigger to end of panic, ms", r["trigger_to_end_ns"], 1e6, 1),
        ("trigger to pvpanic event, ms", r["trigger_to_pvpanic_ns"], 1e6, 1),
        ("panic to reset, s", r["panic_to_reset_ns"], 1e9, 3),
    ]
    return _lab_tables(r, rows)


def _kexec_tables(r: dict) -> list[Table]:
    rows: list[_Row] = [
        ("cold boot to first line, s", r["cold_boot_to_first_line_ns"], 1e9, 3),
        ("kexec -e to second kernel's first line, s", r["kexec_downtime_ns"], 1e9, 3),
        ("smp_init, first kernel, ms", r["smp_init_first_ns"], 1e6, 1),
        ("smp_init, second kernel, ms", r["smp_init_second_ns"], 1e6, 1),
    ]
    notes: tuple[str, ...] = ()
    if r.get("arch") == "arm64":
        rows += [
            ("shutdown, Starting new kernel to Bye!, ms", r["shutdown_ns"], 1e6, 1),
            ("shutdown, host clock, ms", r["shutdown_host_ns"], 1e6, 1),
            ("per CPU, between psci kill lines, ms", r["per_cpu_shutdown_ns"], 1e6, 2),
            ("psci AFFINITY_INFO polled, ms", r["psci_polled_ms"], 1, 0),
            ("last kill to Bye!, ms", r["last_kill_to_bye_ns"], 1e6, 2),
        ]
        notes = (f"others: {r['others']}; {r['runs_all_cpus_killed']} of {r['completed']} completed runs printed "
                 f"a psci kill line for every secondary CPU",)
    elif "phases" in r:
        rows += [("downtime, kexec -e to second kernel's /init, s", r["downtime_ns"], 1e9, 3)]
        from haltlab.lab.parse_x86 import PHASES   # the reboot's order (a saved file's keys are sorted)
        rows += [(f"  {k.removesuffix('_ns').replace('_', ' ')} ({r['phase_clocks'][k]} clock), ms", r["phases"][k],
                  1e6, 1) for k in PHASES]
        rows += [("smp_init, first kernel, host clock, ms", r.get("smp_init_first_host_ns"), 1e6, 1),
                 ("smp_init, second kernel, host clock, ms", r.get("smp_init_second_host_ns"), 1e6, 1),
                 ("per AP bring-up, first kernel, ms", r["per_ap_bringup_ns_first"], 1e6, 1),
                 ("per AP bring-up, second kernel, ms", r["per_ap_bringup_ns_second"], 1e6, 1),
                 ("host CPUs busy besides QEMU", r["other_busy_cpus"], 1, 2)]
        notes = (f"lpj: {r['lpj'] if r['lpj'] is not None else 'calibrated'}; kernel parameters: "
                 f"{' '.join(r['kernel_params'])}",)
    return _lab_tables(r, rows, notes)


def _flood_tables(r: dict) -> list[Table]:
    never = f"; {r['never_triggered']} never reached the trigger" if r["never_triggered"] else ""
    triggered = r["n_runs"] - r["never_triggered"]
    spread = Counter(r["drop_notices_after_trigger_all"])
    notices = ", ".join(f"{k} in {v} run{'s' * (v != 1)}" for k, v in sorted(spread.items())) or "no run triggered"
    return _lab_tables(r, [
        ("trigger to end of panic, ms", r["trigger_to_end_ns"], 1e6, 1),
        ("flood records before trigger", r["flood_lines_before_trigger"], 1, 0),
        ("flood records after trigger", r["flood_lines_after_trigger"], 1, 0),
        ("drop notices before trigger", r["drop_notices_before_trigger"], 1, 0),
        ("drop notices after trigger", r["drop_notices_after_trigger"], 1, 0),
        ("messages dropped after trigger", r["dropped_after_trigger"], 1, 0),
        ("printk messages dropped, whole run", r["dropped_messages"], 1, 0),
        ("trigger to guard line, ms", r["trigger_to_guard_ns"], 1e6, 1),
        ("trigger to guard line, printk clock, ms", r["trigger_to_guard_printk_ns"], 1e6, 1),
    ], (f"hangs (triggered, panic never ended): {r['hangs']} of {r['n_runs']} runs{never}",
        f"{r['guard_fired_runs']} of {triggered} triggered runs: the guard fired (\"Too many dropped messages\")",
        f"drop notices after the trigger: {notices}"))


@lab.command()
@common_options
@click.option("--pvpanic", default="none", show_default=True, help="QEMU -action panic=: none (stock) or pause.")
@click.option("--panic-timeout", "panic_timeout_s", type=int, default=0, show_default=True, help="Kernel panic=N: reset N s after panic (0: never).")
@click.option("--observe", "--window", "window_s", type=float, default=3.0, show_default=True, metavar="SECONDS",
              help="How long to sample host CPU after the panic (real time, so shorter than the model's 10 s).")
@click.option("--settle", "settle_s", type=float, default=0.5, show_default=True, help="Wait after the panic before sampling.")
@click.option("--perf-freq-hz", type=int, default=4000, show_default=True, help="perf-style sampling frequency.")
@click.option("--timeout", "timeout_s", type=float, default=60.0, show_default=True, help="Trigger to end of panic; longer is a hang.")
def panic(fmt: str, output: Path | None, **options) -> None:
    """Panic with sysrq-c and measure the host CPU the panicked guest burns."""
    from haltlab.lab.experiments.panic import PanicConfig, run_panic

    _execute(run_panic, PanicConfig, options, fmt, output, _panic_tables)


@lab.command()
@common_options
@click.option("--timeout", "timeout_s", type=float, default=None,
              help="Whole cycle in seconds; longer is a hang.  [default: 120; arm64: 600, TCG boots it twice]")
@click.option("--arch", default="x86_64", show_default=True, metavar="ARCH",
              help="The guest: x86_64 (q35, KVM if usable) or arm64 (QEMU's virt board under TCG, Debian's "
                   "linux-image-arm64; also measures the secondary CPUs' shutdown).")
@click.option("--others", default="idle", show_default=True, metavar="idle|busy",
              help="What the CPUs do when kexec starts: idle, or busy (a spinning task pinned to each CPU).")
@click.option("--cpuhp-trace", "cpuhp_trace", is_flag=True,
              help="Boot with trace_event=cpuhp:* tp_printk (the cpuhp state machine's steps on the console): "
                   "arm64, each CPU's shutdown; x86, each AP's bring-up.")
@click.option("--lpj", "lpj", type=int, default=None, metavar="N",
              help="Boot with lpj=N (preset loops_per_jiffy): the APs skip the delay-loop calibration "
                   "(x86 TCG: 8400000, the boot CPU's lpj from its 2100 MHz TSC).")
def kexec(fmt: str, output: Path | None, **options) -> None:
    """kexec into the same kernel; time the jump and both kernels' smp_init."""
    from haltlab.lab.experiments.kexec import KexecConfig, run_kexec, default_timeout_s

    if options["timeout_s"] is None:
        options["timeout_s"] = default_timeout_s(options["arch"])
    _execute(run_kexec, KexecConfig, options, fmt, output, _kexec_tables)


@lab.command()
@common_options
@click.option("--timeout", "timeout_s", type=float, default=60.0, show_default=True, help="Trigger to end of panic; longer is a hang (S2: 60 s).")
@click.option("--delay-min", "delay_min_s", type=float, default=0.5, show_default=True, help="Shortest flood-to-trigger delay, s.")
@click.option("--delay-max", "delay_max_s", type=float, default=2.0, show_default=True, help="Longest flood-to-trigger delay, s.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random delays.")
@click.option("--line-len", type=int, default=991, show_default=True, help="Characters per flood record, 16-991 (S2: 991).")
def flood(fmt: str, output: Path | None, **options) -> None:
    """S2's stress test: flood /dev/kmsg from CPU 1, panic on CPU 0; count hangs."""
    from haltlab.lab.experiments.flood import FloodConfig, run_flood

    _execute(run_flood, FloodConfig, options, fmt, output, _flood_tables)


@lab.command()
@click.argument("name", required=False)
@click.option("--jobs", type=int, default=None, metavar="N", help="make -jN (default: the machine's CPUs).")
@format_option
def build(name: str | None, jobs: int | None, fmt: str) -> None:
    """Build a kernel from Debian's source with the patch set NAME (no NAME: list the sets).

    Unpacks linux-source-6.x once, applies lab/patches/NAME, configures tinyconfig plus
    the lab's fragment, builds the bzImage with ccache, and caches it by content
    (a cold build takes minutes on 2 cores; a cached one returns at once).
    """
    from haltlab.lab.build import build_kernel
    from haltlab.lab.patchsets import load_patch_set, patch_set_names
    if name is None:
        sets = [load_patch_set(n) for n in patch_set_names()]
        if fmt == "json":
            click.echo(dumps([{"name": ps.name, "description": ps.description, "source_package": ps.source_package,
                               "model_kernel": ps.model_kernel, "model_policy": ps.model_policy,
                               "patches": [p.name for p in ps.patches]} for ps in sets]), nl=False)
            return
        t = Table("Patch sets (lab/patches/NAME; build one with haltlab lab build NAME)",
                  [Column("name"), Column("model kernel"), Column("patches", numeric=True), Column("description")])
        for ps in sets:
            t.add_row(ps.name, ps.model_kernel + (f" ({ps.model_policy})" if ps.model_policy else ""),
                      str(len(ps.patches)), ps.description)
        print_tables([t], fmt, console())
        return
    from haltlab.lab.experiments.common import check_build
    check_build(name)
    built = build_kernel(name, jobs=jobs)
    out = {"bzimage": str(built.bzimage), "config": str(built.config), "log": str(built.log),
           **{k: v for k, v in vars(built.info).items()}}
    if fmt == "json":
        click.echo(dumps(out), nl=False)
        return
    t = Table(f"haltlab lab build {name}", [Column("field"), Column("value")])
    for k, v in out.items():
        t.add_row(k, "-" if v is None else str(v))
    print_tables([t], fmt, console())
