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
from haltlab.cli.options import cpus_option, format_option, kernel_preset_option, reduce_option
from haltlab.engine.core import DriverError
from haltlab.engine.timing import Timing
from haltlab.errors import UserError
from haltlab.kernel.commits import PRESETS
from haltlab.kernel.idle import OTHERS
from haltlab.kernel.policies import KexecShutdown
from haltlab.report.race_trace import trace_lines, trace_text
from haltlab.report.tables import Column, Table, print_tables
from haltlab.results import dumps

__all__ = ["explore_kexec_cmd", "replay_kexec_cmd"]


def _kexec_options(f):
    f = cpus_option(default=2, help="CPUs: CPU0 runs kexec, the others are taken down (2-4).")(f)
    f = kernel_preset_option(sorted(PRESETS))(f)
    f = click.option("--arch", type=click.Choice(["arm64"]), default="arm64", show_default=True,
                     help="The shutdown model is arm64's (S3).")(f)
    f = click.option("--shutdown", type=click.Choice([s.value for s in KexecShutdown]), default="hotplug",
                     show_default=True, help="machine_shutdown()'s design.")(f)
    f = click.option("--others", type=click.Choice(list(OTHERS)), default="idle", show_default=True,
                     help="What the secondary CPUs do when kexec starts.")(f)
    f = click.option("--managed-irqs", is_flag=True, help="Managed device interrupts (affine to one CPU).")(f)
    f = click.option("--freeze", is_flag=True, help="freeze_processes() before the shutdown.")(f)
    f = click.option("--timing", type=click.Choice([Timing.TIMED.value, Timing.UNTIMED.value]), default="timed",
                     show_default=True,
                     help="timed: the interleavings the profile's costs allow (the waits here span 1 us to 5 s); "
                          "untimed: every interleaving, a bounded wait timing out whenever no other CPU can step.")(f)
    return click.option("--timing-tolerance", "timing_tolerance", type=click.IntRange(0, 100), default=None,
                        metavar="PCT", help="Timed: how far a duration may stray from its cost, either way "
                                            "[default: the profile's timing_tolerance].")(f)


def _cfg(cpus, kernel, arch, shutdown, others, managed_irqs, freeze, timing, timing_tolerance, **extra):
    from haltlab.scenarios.kexec_check import KexecCheckConfig
    return KexecCheckConfig(cpus=cpus, kernel=kernel, shutdown=shutdown, others=others, managed_irqs=managed_irqs,
                            freeze=freeze, timing=timing, tolerance_pct=timing_tolerance, **extra)


def _replay_command(cfg, choices: list[str], cycle: list[str] | None = None) -> str:
    from haltlab.scenarios.kexec_check import timing_tolerance_pct
    args = ["haltlab", "replay", "kexec", "--cpus", str(cfg.cpus), "--kernel", cfg.kernel,
            "--shutdown", str(cfg.shutdown), "--others", str(cfg.others)]
    if cfg.managed_irqs:
        args.append("--managed-irqs")
    if cfg.freeze:
        args.append("--freeze")
    return _replay_words(args, cfg.timing, lambda: timing_tolerance_pct(cfg), choices, cycle)


@explore.command("kexec")
@_kexec_options
@click.option("--max-states", type=int, default=200_000, show_default=True, metavar="N",
              help="Stop after N distinct states; the verdict is then bounded-ok.")
@reduce_option
@format_option
def explore_kexec_cmd(cpus, kernel, arch, shutdown, others, managed_irqs, freeze, timing, timing_tolerance,
                      max_states, reduce, debug, fmt) -> None:
    """S3: does the kexec shutdown take every CPU out of the old kernel, safely and in bounded time?"""
    from haltlab.scenarios.kexec_check import check_kexec, timing_assumptions
    if max_states < 1:
        raise UserError(f"--max-states {max_states}: must be at least 1")
    cfg = _cfg(cpus, kernel, arch, shutdown, others, managed_irqs, freeze, timing, timing_tolerance,
               reduce=reduce, max_states=max_states)
    cfg.validate()
    outcome = _search("kexec", check_kexec, cfg, debug)
    ex = outcome.exploration
    result = {
        "scenario": "kexec", "arch": arch, "cpus": cpus, "kernel": kernel, "shutdown": shutdown, "others": others,
        "managed_irqs": managed_irqs, "freeze": freeze,
        **verdict_fields(outcome, lambda choices, cycle=None: _replay_command(cfg, choices, cycle),
                         reduce=reduce, timing=timing, assumptions=timing_assumptions(cfg)),
    }
    if fmt == "json":
        click.echo(dumps(result), nl=False)
    else:
        _print(result, ex, cfg, fmt)
    if ex.violation is not None or outcome.lasso is not None:
        raise SystemExit(1)


def _print(result: dict, ex, cfg, fmt: str) -> None:
    extra = (", managed irqs" if cfg.managed_irqs else "") + (", frozen" if cfg.freeze else "")
    t = Table(f"explore kexec: {cfg.cpus} CPUs, kernel {cfg.kernel}, --shutdown {cfg.shutdown}, "
              f"others {cfg.others}{extra}",
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
                        *trace_lines(ex.violation.trace, "arm64"), "replay with:", v["replay"]]
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
def replay_kexec_cmd(cpus, kernel, arch, shutdown, others, managed_irqs, freeze, timing, timing_tolerance, choices,
                     cycle) -> None:
    """Replay a kexec choice list and print its trace and the properties' state."""
    from haltlab.scenarios.kexec_check import PROPERTIES, replay_kexec
    cfg = _cfg(cpus, kernel, arch, shutdown, others, managed_irqs, freeze, timing, timing_tolerance)
    cfg.validate()
    parsed, parsed_cycle = _choice_lists(choices, cycle)
    try:
        run = replay_kexec(cfg, parsed)
    except DriverError as e:
        raise UserError(f"--choices {choices}: {e}") from None
    _replay_cycle(run, cycle, parsed_cycle)
    out = console()
    out.print(trace_text(run.driver.trace, "arm64"), soft_wrap=True)
    failed = [(p.name, p.failure(run)) for p in PROPERTIES if p.pred is not None and p.kind == "always"]
    failed = [(name, msg) for name, msg in failed if msg is not None]
    out.print(Text("verdict: " + ("; ".join(f"violation ({n}): {m}" for n, m in failed) if failed
                                  else "no violation at this point")))
    if failed or parsed_cycle is not None:
        raise SystemExit(1)
