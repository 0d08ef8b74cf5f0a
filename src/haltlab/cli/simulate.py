"""`haltlab simulate ...`: one scenario in the model, in virtual time."""

from __future__ import annotations

from collections.abc import Callable

import click

from haltlab.cli.console import console
from haltlab.cli.options import (cpus_option, crash_options, format_option, kernel_preset_option,
                                 observe_option, out_dir_option, profile_option, seconds_to_ns, seed_option)
from haltlab.kernel.commits import PRESETS
from haltlab.kernel.idle import OTHERS
from haltlab.kernel.policies import POLICIES

__all__ = ["simulate", "TRACE_NAMES", "console_spin_option", "flood_options", "kexec_options"]

# The files of a --trace set (report.trace.trace_files), known before the run so a
# directory holding anything else is refused up front (report/_files.check_set_dir).
TRACE_NAMES = ("dmesg.txt", "console.txt", "interrupts.txt", "timeline.png", "timeline.json",
               "report.html", "result.json")
INT_MAX = 2**31 - 1         # panic_timeout is an int in kernel/panic.c


@click.group()
def simulate() -> None:
    """Run a scenario in the model, in virtual time (deterministic for a seed)."""


@simulate.command("panic")
@profile_option()
@cpus_option(help="Number of CPUs [default: the profile's].")
@click.option("--after-panic", type=click.Choice(sorted(POLICIES["after_panic"])),
              default="mdelay", show_default=True,
              help="The loop panic() ends in: stock mdelay() or S1's safe_halt().")
@click.option("--others", type=click.Choice(list(OTHERS)), default="idle", show_default=True,
              help="What the other CPUs do when the panic starts.")
@observe_option(10.0, help='How long to watch after "end Kernel panic".')
@seed_option(help="Seeds the tick phases and the order of same-nanosecond events.")
@kernel_preset_option(list(PRESETS))
@click.option("--panic-timeout", "panic_timeout_s", type=click.IntRange(max=INT_MAX), default=0, show_default=True,
              metavar="S", help="panic= boot parameter: reboot after S seconds (0: never).")
@click.option("--panic-cpu", type=int, default=0, show_default=True,
              help="The CPU that triggers the panic (sysrq-c).")
@crash_options
@format_option
@out_dir_option("--trace", "trace_dir",
                help="Write dmesg.txt, console.txt, interrupts.txt, timeline.png, timeline.json, "
                     "report.html and result.json, as one set.")
def simulate_panic(profile, cpus, after_panic, others, observe_s, seed, kernel,
                   panic_timeout_s, panic_cpu, kdump, crash_kexec_post_notifiers, fmt, trace_dir) -> None:
    """One CPU panics (sysrq-c); what do the machine and, for a guest, the host see?"""
    from haltlab.report._files import check_set_dir, write_files
    from haltlab.report.trace import trace_files
    from haltlab.results import check_out_path, dumps, writing_to
    from haltlab.machine.profile import load_profile
    from haltlab.scenarios.panic import PanicConfig, simulate_panic

    if trace_dir is not None:
        check_out_path(trace_dir, "--trace", directory=True)
        check_set_dir(trace_dir, "--trace", TRACE_NAMES)
    cfg = PanicConfig(profile=profile, cpus=cpus, after_panic=after_panic, others=others,
                      observe_ns=seconds_to_ns(observe_s, "--observe"), seed=seed,
                      kernel=kernel, panic_timeout_s=panic_timeout_s, panic_cpu=panic_cpu,
                      kdump=kdump, crash_kexec_post_notifiers=crash_kexec_post_notifiers)
    machine = load_profile(profile)             # a bad profile fails here, before the run
    cfg.validate(cpus if cpus is not None else int(machine.get("cpus")))
    trace = simulate_panic(cfg, machine)
    if trace_dir is not None:
        files = trace_files(trace)
        check_set_dir(trace_dir, "--trace", files)
        with writing_to("--trace", trace_dir):
            write_files(trace_dir, files)
    if fmt == "json":
        click.echo(dumps(trace.result), nl=False)
        return
    from haltlab.report.panic_view import print_panic
    print_panic(trace.result, console(), fmt)
    if trace_dir is not None and fmt != "csv":
        click.echo(f"{'' if fmt == 'table' else chr(10)}trace written to {trace_dir}/")


def console_spin_option(*, multiple: bool = False) -> Callable:
    """`--console-spin`: which CPUs console_trylock_spinning() forbids to spin in a panic."""
    names = sorted(POLICIES["console_spin"])
    if multiple:
        return click.option("--console-spin", default="stock", show_default=True, metavar="LIST",
                            help=f"console_spin policies, a comma list of {', '.join(names)}.")
    return click.option("--console-spin", type=click.Choice(names), default="stock", show_default=True,
                        help="stock: the kernel's commits decide; panic-cpu-only: S2's proposal, only the "
                             "panic CPU refuses to spin.")


def flood_options(f: Callable) -> Callable:
    """The options a printk-flood run shares with its campaign."""
    f = click.option("--flood-irqs-off", is_flag=True,
                     help="The flooders print with interrupts off.")(f)
    f = click.option("--hang-after", "hang_after_s", type=float, default=60.0, show_default=True,
                     metavar="SECONDS", help="A run is hung if 'end Kernel panic' has not reached the console "
                                             "this long after the trigger (S2: 60).")(f)
    return cpus_option(default=2, help="CPUs: CPU0 panics, the others flood /dev/kmsg.")(f)


@simulate.command("printk-flood")
@profile_option()
@kernel_preset_option(list(PRESETS), default="v5.17+d51507098ff9")
@console_spin_option()
@flood_options
@seed_option(help="Seeds the trigger delay, the cost jitter and same-nanosecond order.")
@format_option
def simulate_printk_flood(profile, kernel, console_spin, cpus, hang_after_s, flood_irqs_off, seed, fmt) -> None:
    """S2's stress test, one run: CPU0 triggers sysrq-c while the others flood /dev/kmsg."""
    from haltlab.machine.profile import load_profile
    from haltlab.results import dumps
    from haltlab.scenarios.printk_flood import ASSUMPTIONS, PrintkFloodConfig, run_printk_flood

    machine = load_profile(profile)             # a bad profile fails here, before the run
    cfg = PrintkFloodConfig(kernel=kernel, console_spin=console_spin, profile=profile, cpus=cpus, seed=seed,
                            hang_after_s=hang_after_s, flood_irqs_off=flood_irqs_off)
    cfg.validate()
    result = {**run_printk_flood(cfg, machine), "assumptions": ASSUMPTIONS}
    if fmt == "json":
        click.echo(dumps(result), nl=False)
        return
    from haltlab.report.flood_view import print_flood_run
    print_flood_run(result, ASSUMPTIONS, console(), fmt)


ARCH_PROFILES = {"arm64": "arm64-server-24"}


def kexec_options(f: Callable) -> Callable:
    """The options a kexec shutdown run shares with its sweep and its explorer."""
    from haltlab.kernel.policies import KexecShutdown
    f = click.option("--loglevel", "console_loglevel", type=click.IntRange(0, 15), default=7, show_default=True,
                     help="The console's loglevel (7: the kernel's default, pr_info lines printed; 4: quiet).")(f)
    f = click.option("--freeze", is_flag=True,
                     help="freeze_processes() before the shutdown, as S3's review suggested.")(f)
    f = click.option("--irqs", type=click.IntRange(0, 988), default=None, metavar="N",
                     help="Device interrupts (SPIs), spread over the CPUs [default: one per CPU].")(f)
    f = click.option("--managed-irqs", is_flag=True,
                     help="The device interrupts are managed (each affine to its CPU only).")(f)
    f = click.option("--others", type=click.Choice(list(OTHERS)), default="idle", show_default=True,
                     help="What the secondary CPUs do when kexec starts.")(f)
    f = click.option("--shutdown", type=click.Choice([s.value for s in KexecShutdown]), default="hotplug",
                     show_default=True, help="machine_shutdown(): stock hotplug, S3's smp-send-stop, or the "
                                             "parallel hotplug design (and its naive form).")(f)
    f = click.option("--arch", type=click.Choice(["arm64", "x86"]), default="arm64", show_default=True,
                     help="arm64: S3's shutdown. x86: S4's bring-up (not modelled yet).")(f)
    return f


def kexec_profile(arch: str, profile: str | None) -> str:
    from haltlab.errors import ConfigError
    if arch == "x86":
        raise ConfigError("arch", arch, "the x86 kexec bring-up (S4) is not modelled yet; use --arch arm64")
    return profile if profile is not None else ARCH_PROFILES[arch]


@simulate.command("kexec")
@click.option("--profile", default=None, metavar="NAME|FILE",
              help="Machine profile [default: arm64-server-24 for --arch arm64].")
@cpus_option(help="Number of CPUs [default: the profile's].")
@kexec_options
@kernel_preset_option(list(PRESETS))
@seed_option(help="Seeds the order of same-nanosecond events.")
@format_option
def simulate_kexec(profile, cpus, arch, shutdown, others, managed_irqs, irqs, freeze, console_loglevel,
                   kernel, seed, fmt) -> None:
    """A kexec reboot takes the secondary CPUs down: how long, and what it leaves behind (S3)."""
    from haltlab.machine.profile import load_profile
    from haltlab.results import dumps
    from haltlab.scenarios.kexec import KexecConfig, simulate_kexec as run

    profile = kexec_profile(arch, profile)
    machine = load_profile(profile)
    cfg = KexecConfig(profile=profile, cpus=cpus, shutdown=shutdown, others=others, kernel=kernel, seed=seed,
                      irqs=irqs, managed_irqs=managed_irqs, freeze=freeze, console_loglevel=console_loglevel)
    cfg.validate(cfg.ncpus(machine), machine.arch)
    result = run(cfg, machine).result
    if fmt == "json":
        click.echo(dumps(result), nl=False)
        return
    from haltlab.report.kexec_view import print_kexec_run
    print_kexec_run(result, console(), fmt)
