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

__all__ = ["simulate", "TRACE_NAMES", "console_spin_option", "flood_options", "kexec_options", "x86_kexec_options"]

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


ARCH_PROFILES = {"arm64": "arm64-server-24", "x86": "xeon-gold-6154"}


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
    f = click.option("--shutdown", type=click.Choice([s.value for s in KexecShutdown]), default=None,
                     help="arm64's machine_shutdown(): stock hotplug, S3's smp-send-stop, or the "
                          "parallel hotplug design (and its naive form) [default: hotplug].")(f)
    f = click.option("--arch", type=click.Choice(["arm64", "x86"]), default="arm64", show_default=True,
                     help="arm64: S3's shutdown. x86: the whole reboot with S4's bring-up (--bringup).")(f)
    return f


def x86_kexec_options(f: Callable) -> Callable:
    """The x86 reboot's options (S4): the bring-up design and the new kernel's command line."""
    from haltlab.kernel.policies import Bringup
    from haltlab.scenarios.kexec_x86 import CSTATES
    f = click.option("--tsc-reliable", is_flag=True, help="tsc=reliable on the new kernel's command line.")(f)
    f = click.option("--cpu-init-udelay", type=click.IntRange(0, 10**6), default=None, metavar="US",
                     help="cpu_init_udelay= on the new kernel's command line.")(f)
    f = click.option("--offline-cpus", type=click.IntRange(0), default=0, show_default=True, metavar="N",
                     help="The N highest-numbered CPUs were offline (in mwait_play_dead()) before the kexec.")(f)
    f = click.option("--max-cpus", type=click.IntRange(1), default=None, metavar="N",
                     help="maxcpus= on the new kernel's command line.")(f)
    f = click.option("--no-park-mem", "park_mem_reserved", is_flag=True, flag_value=False, default=True,
                     help="park-*: the new kernel's command line lacks cpuparkmem=, so the park memory is "
                          "not reserved.")(f)
    f = click.option("--boot-core-sibling", type=click.IntRange(0), default=None, metavar="CPU",
                     help="park-spin: S4's bootcoresibling= [default: not given, the patch's 0].")(f)
    f = click.option("--park-cstate", type=click.Choice(list(CSTATES)), default="C1", show_default=True,
                     help="park-mwait: the C-state the parked CPUs MWAIT in.")(f)
    f = click.option("--lpj", is_flag=True, help="lpj= on the new kernel's command line: no delay calibration.")(f)
    return click.option("--bringup", type=click.Choice([b.value for b in Bringup]), default=None,
                        help="x86: how smp_init() brings the APs back: serial init-sipi, 6.5's parallel, S4's "
                             "park-spin, its review's park-mwait [default: init-sipi].")(f)


def kexec_profile(arch: str, profile: str | None) -> str:
    return profile if profile is not None else ARCH_PROFILES[arch]


@simulate.command("kexec")
@click.option("--profile", default=None, metavar="NAME|FILE",
              help="Machine profile [default: arm64-server-24 for --arch arm64, xeon-gold-6154 for x86].")
@cpus_option(help="Number of CPUs [default: the profile's].")
@kexec_options
@x86_kexec_options
@kernel_preset_option(list(PRESETS))
@seed_option(help="Seeds the order of same-nanosecond events.")
@format_option
def simulate_kexec(profile, cpus, arch, shutdown, others, managed_irqs, irqs, freeze, console_loglevel,
                   bringup, lpj, park_cstate, boot_core_sibling, park_mem_reserved, max_cpus, offline_cpus,
                   cpu_init_udelay, tsc_reliable, kernel, seed, fmt) -> None:
    """A kexec reboot: arm64, the secondary CPUs' way down (S3); x86, the whole reboot and the APs' way back up (S4)."""
    from haltlab.errors import UserError
    from haltlab.machine.profile import load_profile
    from haltlab.results import dumps

    profile = kexec_profile(arch, profile)
    machine = load_profile(profile)
    if arch == "x86":
        given = [flag for flag, value, default in (("--shutdown", shutdown, None), ("--irqs", irqs, None),
                                                   ("--managed-irqs", managed_irqs, False),
                                                   ("--freeze", freeze, False)) if value != default]
        if given:
            raise UserError(f"{given[0]}: an arm64 (S3) option; --arch x86 takes --bringup and its options")
        from haltlab.scenarios.kexec_x86 import X86KexecConfig, simulate_kexec_x86
        xcfg = X86KexecConfig(profile=profile, cpus=cpus, bringup=bringup or "init-sipi", others=others,
                              kernel=kernel, seed=seed, lpj=lpj, tsc_reliable=tsc_reliable,
                              cpu_init_udelay=cpu_init_udelay, max_cpus=max_cpus, offline_cpus=offline_cpus,
                              boot_core_sibling=boot_core_sibling, park_mem_reserved=park_mem_reserved,
                              park_cstate=park_cstate, console_loglevel=console_loglevel)
        xcfg.validate(xcfg.ncpus(machine), machine)
        result = simulate_kexec_x86(xcfg, machine).result
        if fmt == "json":
            click.echo(dumps(result), nl=False)
            return
        from haltlab.report.kexec_view import print_kexec_x86_run
        print_kexec_x86_run(result, console(), fmt)
        return
    x86_only = [flag for flag, value, default in (("--bringup", bringup, None), ("--lpj", lpj, False),
                                                  ("--boot-core-sibling", boot_core_sibling, None),
                                                  ("--no-park-mem", park_mem_reserved, True),
                                                  ("--max-cpus", max_cpus, None), ("--offline-cpus", offline_cpus, 0),
                                                  ("--cpu-init-udelay", cpu_init_udelay, None),
                                                  ("--tsc-reliable", tsc_reliable, False),
                                                  ("--park-cstate", park_cstate, "C1")) if value != default]
    if x86_only:
        raise UserError(f"{x86_only[0]}: an x86 (S4) option; use it with --arch x86")
    from haltlab.scenarios.kexec import KexecConfig, simulate_kexec as run
    cfg = KexecConfig(profile=profile, cpus=cpus, shutdown=shutdown or "hotplug", others=others, kernel=kernel,
                      seed=seed, irqs=irqs, managed_irqs=managed_irqs, freeze=freeze,
                      console_loglevel=console_loglevel)
    cfg.validate(cfg.ncpus(machine), machine.arch)
    result = run(cfg, machine).result
    if fmt == "json":
        click.echo(dumps(result), nl=False)
        return
    from haltlab.report.kexec_view import print_kexec_run
    print_kexec_run(result, console(), fmt)
