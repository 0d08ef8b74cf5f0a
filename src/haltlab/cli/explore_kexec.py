"""`haltlab explore kexec` and `haltlab replay kexec`: S3's shutdown designs,
every interleaving, against the properties S3's review names
(`scenarios.kexec_check`). Kept beside `cli.explore` (whose helpers it uses)
so that each scenario's options stay in one place.
"""

from __future__ import annotations

import click
from rich.text import Text

from haltlab.cli.console import console
from haltlab.cli.explore import _choice_lists, _replay_cycle, _replay_words, _search, explore, replay, verdict_fields
from haltlab.cli.options import cpus_option, format_option, kernel_preset_option, max_states_option, reduce_option
from haltlab.engine.core import DriverError
from haltlab.engine.timing import Timing
from haltlab.errors import UserError
from haltlab.kernel.commits import PRESETS
from haltlab.kernel.idle import OTHERS
from haltlab.kernel.policies import Bringup, KexecShutdown
from haltlab.report.race_trace import trace_lines, trace_text
from haltlab.report.tables import Column, Table, print_tables
from haltlab.results import dumps

__all__ = ["explore_kexec_cmd", "replay_kexec_cmd"]


def _kexec_options(f):
    f = cpus_option(help="CPUs: CPU0 runs kexec, the others are taken down or parked (2-4) "
                         "[default: 2 for arm64, 4 for x86: xeon-gold-6154 takes a multiple of 4].")(f)
    f = kernel_preset_option(sorted(PRESETS))(f)
    f = click.option("--arch", type=click.Choice(["arm64", "x86"]), default="arm64", show_default=True,
                     help="arm64: S3's shutdown designs; x86: S4's bring-up designs (--bringup).")(f)
    f = click.option("--bringup", type=click.Choice([b.value for b in Bringup]), default=None,
                     help="x86: serial INIT/SIPI, 6.5's parallel bring-up, S4's park-spin or its review's "
                          "park-mwait [default: park-spin].")(f)
    f = click.option("--boot-core-sibling", type=click.IntRange(0), default=None, metavar="CPU",
                     help="x86 park-spin: S4's bootcoresibling= [default: not given, the patch's 0].")(f)
    f = click.option("--no-park-mem", "park_mem_reserved", is_flag=True, flag_value=False, default=True,
                     help="x86: the new kernel's command line lacks cpuparkmem=.")(f)
    f = click.option("--max-cpus", type=click.IntRange(1), default=None, metavar="N",
                     help="x86: maxcpus= on the new kernel's command line.")(f)
    f = click.option("--no-nmi", "nmi", is_flag=True, flag_value=False, default=True,
                     help="x86: no NMI fault source (by default one NMI to CPU1 may arrive at any point).")(f)
    f = click.option("--shutdown", type=click.Choice([s.value for s in KexecShutdown]), default="hotplug",
                     show_default=True, help="machine_shutdown()'s design.")(f)
    f = click.option("--others", type=click.Choice(list(OTHERS)), default="idle", show_default=True,
                     help="What the secondary CPUs do when kexec starts.")(f)
    f = click.option("--managed-irqs", is_flag=True, help="Managed device interrupts (affine to one CPU).")(f)
    f = click.option("--freeze", is_flag=True, help="freeze_processes() before the shutdown.")(f)
    f = click.option("--timing", type=click.Choice([Timing.TIMED.value, Timing.UNTIMED.value]), default=None,
                     help="timed: the interleavings the profile's costs allow (the waits here span 1 us to 5 s); "
                          "untimed: every interleaving, a bounded wait timing out whenever no other CPU can step "
                          "[default: timed for arm64, untimed for x86].")(f)
    return click.option("--timing-tolerance", "timing_tolerance", type=click.IntRange(0, 100), default=None,
                        metavar="PCT", help="Timed: how far a duration may stray from its cost, either way "
                                            "[default: the profile's timing_tolerance].")(f)


def _cfg(cpus, kernel, arch, shutdown, others, managed_irqs, freeze, timing, timing_tolerance, bringup=None,
         boot_core_sibling=None, park_mem_reserved=True, max_cpus=None, nmi=True, **extra):
    if cpus is None:
        cpus = 4 if arch == "x86" else 2
    if arch == "x86":
        s3 = [flag for flag, value, default in (("--shutdown", shutdown, "hotplug"), ("--others", others, "idle"),
                                                ("--managed-irqs", managed_irqs, False), ("--freeze", freeze, False))
              if value != default]
        if s3:
            raise UserError(f"{s3[0]}: an arm64 (S3) option; --arch x86 takes --bringup and its options")
        from haltlab.scenarios.kexec_x86_check import X86KexecCheckConfig
        return X86KexecCheckConfig(cpus=cpus, kernel=kernel, bringup=bringup or "park-spin",
                                   boot_core_sibling=boot_core_sibling, park_mem_reserved=park_mem_reserved,
                                   max_cpus=max_cpus, nmi=nmi, timing=timing or "untimed",
                                   tolerance_pct=timing_tolerance, **extra)
    s4 = [flag for flag, value, default in (("--bringup", bringup, None), ("--boot-core-sibling", boot_core_sibling, None),
                                            ("--no-park-mem", park_mem_reserved, True), ("--max-cpus", max_cpus, None),
                                            ("--no-nmi", nmi, True)) if value != default]
    if s4:
        raise UserError(f"{s4[0]}: an x86 (S4) option; use it with --arch x86")
    from haltlab.scenarios.kexec_check import KexecCheckConfig
    return KexecCheckConfig(cpus=cpus, kernel=kernel, shutdown=shutdown, others=others, managed_irqs=managed_irqs,
                            freeze=freeze, timing=timing or "timed", tolerance_pct=timing_tolerance, **extra)


def _replay_command(cfg, choices: list[str], cycle: list[str] | None = None) -> str:
    from haltlab.scenarios.kexec_check import timing_tolerance_pct
    if getattr(cfg, "bringup", None) is not None:
        return _replay_command_x86(cfg, choices, cycle)
    args = ["haltlab", "replay", "kexec", "--cpus", str(cfg.cpus), "--kernel", cfg.kernel,
            "--shutdown", str(cfg.shutdown), "--others", str(cfg.others)]
    if cfg.managed_irqs:
        args.append("--managed-irqs")
    if cfg.freeze:
        args.append("--freeze")
    return _replay_words(args, cfg.timing, lambda: timing_tolerance_pct(cfg), choices, cycle)


def _replay_command_x86(cfg, choices: list[str], cycle: list[str] | None = None) -> str:
    from haltlab.scenarios.explore_timing import tolerance_pct
    args = ["haltlab", "replay", "kexec", "--arch", "x86", "--cpus", str(cfg.cpus), "--kernel", cfg.kernel,
            "--bringup", str(cfg.bringup)]
    if cfg.boot_core_sibling is not None:
        args += ["--boot-core-sibling", str(cfg.boot_core_sibling)]
    if not cfg.park_mem_reserved:
        args.append("--no-park-mem")
    if cfg.max_cpus is not None:
        args += ["--max-cpus", str(cfg.max_cpus)]
    if not cfg.nmi:
        args.append("--no-nmi")
    return _replay_words(args, cfg.timing, lambda: tolerance_pct(cfg.profile, cfg.tolerance_pct), choices, cycle)


@explore.command("kexec")
@_kexec_options
@max_states_option(200_000)
@reduce_option
@format_option
def explore_kexec_cmd(cpus, kernel, arch, shutdown, others, managed_irqs, freeze, timing, timing_tolerance,
                      bringup, boot_core_sibling, park_mem_reserved, max_cpus, nmi, max_states, reduce, debug,
                      fmt) -> None:
    """S3: does the kexec shutdown take every CPU out of the old kernel, safely and in bounded time?
    S4 (--arch x86): what does parking the APs across the kexec make unsafe?"""
    from haltlab.scenarios.kexec_check import check_kexec, timing_assumptions
    if max_states < 1:
        raise UserError(f"--max-states {max_states}: must be at least 1")
    cfg = _cfg(cpus, kernel, arch, shutdown, others, managed_irqs, freeze, timing, timing_tolerance,
               bringup, boot_core_sibling, park_mem_reserved, max_cpus, nmi, reduce=reduce, max_states=max_states)
    cfg.validate()
    if arch == "x86":
        return _explore_x86(cfg, debug, fmt)
    outcome = _search("kexec", check_kexec, cfg, debug)
    result = {
        "scenario": "kexec", "arch": arch, "cpus": cfg.cpus, "kernel": kernel, "shutdown": shutdown, "others": others,
        "managed_irqs": managed_irqs, "freeze": freeze,
        **verdict_fields(outcome, lambda choices, cycle=None: _replay_command(cfg, choices, cycle),
                         reduce=reduce, timing=Timing(cfg.timing).value, assumptions=timing_assumptions(cfg)),
    }
    _emit(result, outcome, cfg, fmt)


def _emit(result: dict, outcome, cfg, fmt: str) -> None:
    """The result on stdout (JSON or tables); exit 1 on a violation or a livelock."""
    ex = outcome.exploration
    if fmt == "json":
        click.echo(dumps(result), nl=False)
    else:
        _print(result, ex, cfg, fmt)
    if ex.violation is not None or outcome.lasso is not None:
        raise SystemExit(1)


def _explore_x86(cfg, debug: bool, fmt: str) -> None:
    from haltlab.scenarios.kexec_x86_check import check_kexec_x86

    def search(c, progress=None, debug=False):
        return check_kexec_x86(c, progress)
    outcome = _search("kexec", search, cfg, debug)
    result = {
        "scenario": "kexec", "arch": "x86", "cpus": cfg.cpus, "kernel": cfg.kernel, "bringup": str(cfg.bringup),
        "boot_core_sibling": cfg.boot_core_sibling, "park_mem_reserved": cfg.park_mem_reserved,
        "max_cpus": cfg.max_cpus, "nmi": cfg.nmi,
        **verdict_fields(outcome, lambda choices, cycle=None: _replay_command(cfg, choices, cycle),
                         reduce=cfg.reduce, timing=Timing(cfg.timing).value,
                         assumptions="untimed: every interleaving, each delay one step, a bounded wait timing out "
                                     "whenever no other CPU can step" if cfg.timing is Timing.UNTIMED
                         else "timed by the profile's costs"),
    }
    _emit(result, outcome, cfg, fmt)


def _print(result: dict, ex, cfg, fmt: str) -> None:
    if getattr(cfg, "bringup", None) is not None:
        title = f"explore kexec --arch x86: {cfg.cpus} CPUs, kernel {cfg.kernel}, --bringup {cfg.bringup}"
    else:
        extra = (", managed irqs" if cfg.managed_irqs else "") + (", frozen" if cfg.freeze else "")
        title = f"explore kexec: {cfg.cpus} CPUs, kernel {cfg.kernel}, --shutdown {cfg.shutdown}, others {cfg.others}{extra}"
    t = Table(title,
              [Column("verdict"), *(Column(c, numeric=True) for c in
                                    ("states", "transitions", "end states", "max depth", "seconds"))])
    t.add_row(result["verdict"], str(ex.states), str(ex.transitions), str(ex.terminal), str(ex.max_depth),
              f"{ex.seconds:.2f}")
    t.notes.append(f"reductions: {'; '.join(result['reductions']) or 'none'}")
    t.notes.append(f"timing: {result['timing_assumptions']}")
    if "livelock" in result:
        lv = result["livelock"]
        t.notes += [f"livelock ({lv['property']}): {lv['message']}",
                    f"a fair run that never ends: {len(lv['prefix'])} choices, then {len(lv['cycle'])} repeated "
                    "forever", "replay with:", lv["replay"]]
    for key in ("deadlock", "violation"):
        if key in result:
            v = result[key]
            t.notes += [f"{key} ({v['property']}): {v['message']}",
                        f"shortest choice list ({len(v['choices'])} choices)",
                        *trace_lines(ex.violation.trace, "x86_64" if getattr(cfg, "bringup", None) else "arm64"),
                        "replay with:", v["replay"]]
    if "bound" in result:
        t.notes.append(f"bounded: {result['bound']}")
    if "undecided" in result:
        t.notes.append(f"undecided: {result['undecided']}")
    if fmt == "table" and (ex.violation is not None or "livelock" in result):
        t.cell_styles[(0, 0)] = "bold red"
    print_tables([t], fmt, console())


@replay.command("kexec")
@_kexec_options
@click.option("--choices", required=True, help="Comma-separated choices, e.g. c0,c1,i1.IPI_CPU_STOP.")
@click.option("--cycle", default=None, help="A livelock's cycle (from `haltlab explore`): replayed after "
                                            "--choices, it must come back to the same state.")
def replay_kexec_cmd(cpus, kernel, arch, shutdown, others, managed_irqs, freeze, timing, timing_tolerance,
                     bringup, boot_core_sibling, park_mem_reserved, max_cpus, nmi, choices, cycle) -> None:
    """Replay a kexec choice list and print its trace and the properties' state."""
    from haltlab.scenarios import kexec_check, kexec_x86_check
    cfg = _cfg(cpus, kernel, arch, shutdown, others, managed_irqs, freeze, timing, timing_tolerance,
               bringup, boot_core_sibling, park_mem_reserved, max_cpus, nmi)
    cfg.validate()
    if arch == "x86":
        PROPERTIES, replay_kexec = kexec_x86_check.PROPERTIES, kexec_x86_check.replay_kexec_x86
    else:
        PROPERTIES, replay_kexec = kexec_check.PROPERTIES, kexec_check.replay_kexec
    parsed, parsed_cycle = _choice_lists(choices, cycle)
    try:
        run = replay_kexec(cfg, parsed)
    except DriverError as e:
        raise UserError(f"--choices {choices}: {e}") from None
    _replay_cycle(run, cycle, parsed_cycle)
    out = console()
    out.print(trace_text(run.driver.trace, "x86_64" if arch == "x86" else "arm64"), soft_wrap=True)
    failed = [(p.name, p.failure(run)) for p in PROPERTIES if p.pred is not None and p.kind == "always"]
    failed = [(name, msg) for name, msg in failed if msg is not None]
    out.print(Text("verdict: " + ("; ".join(f"violation ({n}): {m}" for n, m in failed) if failed
                                  else "no violation at this point")))
    if failed or parsed_cycle is not None:
        raise SystemExit(1)
