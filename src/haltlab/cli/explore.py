"""`haltlab explore ...` and `haltlab replay ...`: the interleaving explorer's commands.

`explore` searches every interleaving of a scenario for small CPU counts and
prints a verdict; a violation comes with its shortest choice list, a readable
trace and the one `haltlab replay ...` command that reproduces it. `replay` runs
a choice list again, optionally twice with the fingerprints compared step by step
(`--check-determinism`), which is how a model change that makes runs depend on
anything but their choices is caught.
"""

from __future__ import annotations

import dataclasses
import shlex
import time

import click
from rich.text import Text

from haltlab.cli.console import console, progress
from haltlab.engine.core import DriverError
from haltlab.engine.explorer import check_determinism as replay_twice_and_compare
from haltlab.checks.timed_lasso import settle
from haltlab.engine.explorer import check_cycle, parse_choices
from haltlab.engine.timing import Timing
from haltlab.errors import UserError
from haltlab.kernel.commits import PRESETS
from haltlab.cli.options import cpus_option, format_option, kernel_preset_option, max_states_option, reduce_option
from haltlab.report.race_trace import trace_lines, trace_text
from haltlab.report.tables import Column, Table, print_tables
from haltlab.results import dumps
from haltlab.scenarios.panic_race import (
    VARIANTS, PanicRaceConfig, check_panic_race, make_run, replay_panic_race, timing_assumptions,
    timing_tolerance_pct,
)

__all__ = ["explore", "replay"]


def _race_options(f):
    f = cpus_option(default=2, help="CPUs that panic at once (2-8).")(f)
    f = click.option("--variant", type=click.Choice(VARIANTS), default="cmpxchg", show_default=True,
                     help="How panic() claims panic_cpu: the kernel's cmpxchg, or a broken load-then-store.")(f)
    f = kernel_preset_option(sorted(PRESETS))(f)
    f = click.option("--timeouts", type=click.Choice(["quiescent", "any"]), default="quiescent", show_default=True,
                     help="Untimed: when a bounded wait may time out: only when nothing else can happen, "
                          "or at any step.")(f)
    return _timing_options(f)


def _timing_options(f):
    """`--timing` and `--timing-tolerance`, the same for every scenario the explorer checks."""
    f = click.option("--timing", type=click.Choice([t.value for t in (Timing.UNTIMED, Timing.TIMED, Timing.WIDENED)]), default="untimed",
                     show_default=True,
                     help="untimed: every interleaving, whatever the steps cost (the stronger verdict); timed: "
                          "only the interleavings the profile's costs allow (haltlab.engine.timing); widened: "
                          "timed, with a zone that comes back to the same state widened (ok is a proof, a "
                          "livelock a candidate; for loops inside long operations).")(f)
    return click.option("--timing-tolerance", "timing_tolerance", type=click.IntRange(0, 100), default=None,
                        metavar="PCT", help="Timed: how far a duration may stray from its cost, either way "
                                            "[default: the profile's timing_tolerance].")(f)


def _search(name: str, check, cfg, debug: bool):
    """Run `check(cfg)` with a progress line (states, states/s, stack depth)."""
    with progress(f"explore {name}", None) as shown:
        started = time.monotonic()

        def report(states: int, stack_depth: int) -> None:
            rate = states / max(time.monotonic() - started, 1e-9)
            shown.update(states, "states", states_per_s=f"{rate:,.0f}", stack_depth=stack_depth)

        outcome = check(cfg, progress=report, debug=debug)
        report(outcome.exploration.states, 0)
    return outcome


def _replay_command(cfg: PanicRaceConfig, choices: list[str], cycle: list[str] | None = None) -> str:
    args = ["haltlab", "replay", "panic-race", "--cpus", str(cfg.cpus), "--variant", cfg.variant,
            "--kernel", cfg.kernel, "--timeouts", cfg.timeouts]
    return _replay_words(args, cfg.timing, lambda: timing_tolerance_pct(cfg), choices, cycle)


def _replay_words(args: list[str], timing, tolerance_pct, choices: list[str], cycle: list[str] | None) -> str:
    """A replay command's timing, choices and cycle after its scenario's own flags;
    `tolerance_pct()` is asked only when timed (untimed, no profile need have one)."""
    if Timing(timing).timed:
        args += ["--timing", str(timing), "--timing-tolerance", str(tolerance_pct())]
    args += ["--choices", ",".join(choices)]
    if cycle:
        args += ["--cycle", ",".join(cycle)]
    return shlex.join(args)


@click.group()
def explore() -> None:
    """Search every interleaving of a scenario for races, for small CPU counts."""


@explore.command("panic-race")
@_race_options
@max_states_option(500_000)
@reduce_option
@format_option
def explore_panic_race_cmd(cpus, variant, kernel, timeouts, timing, timing_tolerance, max_states, reduce, debug,
                           fmt) -> None:
    """Two or more CPUs call panic() at once: exactly one may become panic_cpu."""
    if max_states < 1:
        raise UserError(f"--max-states {max_states}: must be at least 1")
    cfg = PanicRaceConfig(cpus=cpus, variant=variant, kernel=kernel, timeouts=timeouts, max_states=max_states,
                          reduce=reduce, timing=timing, tolerance_pct=timing_tolerance)
    cfg.validate()                              # before the search and its progress line
    assumptions = timing_assumptions(cfg)
    outcome = _search("panic-race", check_panic_race, cfg, debug)
    ex = outcome.exploration
    result = {
        "scenario": "panic-race", "cpus": cpus, "variant": variant, "kernel": kernel, "timeouts": timeouts,
        "verdict": str(outcome.verdict), "states": ex.states, "transitions": ex.transitions,
        "terminal_states": ex.terminal, "max_depth": ex.max_depth, "truncated": ex.truncated,
    }
    if reduce != "none":        # left out with none, so that output stays what it was before --reduce
        result["reduce"] = reduce
        result["reductions"] = list(ex.reductions)
    if Timing(timing).timed:    # left out untimed, so that output stays what it was before --timing
        result["timing"] = timing
        result["timing_assumptions"] = assumptions
    if ex.violation is not None:
        result["violation"] = {"message": ex.violation.message, "choices": ex.violation.choices,
                               "replay": _replay_command(cfg, ex.violation.choices)}
    if outcome.lasso is not None:
        lasso = outcome.lasso
        result["livelock"] = {"property": outcome.property.name, "message": outcome.message,
                              "prefix": list(lasso.prefix), "cycle": list(lasso.cycle),
                              "replay": _replay_command(cfg, list(lasso.prefix), list(lasso.cycle))}
    if outcome.candidate is not None:
        result["undecided"] = _undecided_entry(outcome)
    if Timing(cfg.timing) is Timing.WIDENED:
        for key in ("violation", "livelock"):
            if key in result:
                _mark_candidate(result[key], lambda prefix: replay_panic_race(cfg, prefix)[0], "haltlab simulate panic")
    if fmt == "json":
        click.echo(dumps(result), nl=False)     # seconds left out: JSON is byte-identical per input
    else:
        _print_exploration(result, ex, cfg, fmt, assumptions)
    if ex.violation is not None or outcome.lasso is not None:
        raise SystemExit(1)


def _print_exploration(result: dict, ex, cfg: PanicRaceConfig, fmt: str, assumptions: str) -> None:
    out = console()
    t = Table(f"explore panic-race: {cfg.cpus} CPUs, variant {cfg.variant}, kernel {cfg.kernel}",
              [Column("verdict"), *(Column(c, numeric=True) for c in
                                    ("states", "transitions", "end states", "max depth", "seconds"))])
    t.add_row(result["verdict"], str(ex.states), str(ex.transitions), str(ex.terminal), str(ex.max_depth),
              f"{ex.seconds:.2f}")
    t.notes.append(f"reductions: {', '.join(ex.reductions) or 'none'}"
                   + (" (states count orbits: one per renaming of the CPUs)" if ex.perms else ""))
    t.notes.append(f"timing: {assumptions}")
    if "livelock" in result:
        lv = result["livelock"]
        t.notes += [f"livelock ({lv['property']}): {lv['message']}",
                    f"a fair run that never makes progress: {len(lv['prefix'])} choices, then "
                    f"{len(lv['cycle'])} repeated forever", *_replay_notes(lv)]
        print_tables([t], fmt, out)
        return
    if "undecided" in result:
        t.notes += _undecided_notes(result["undecided"])
        print_tables([t], fmt, out)
        return
    if ex.violation is None:
        scope = "within the state bound" if ex.truncated else (
            "in every interleaving the durations allow" if Timing(cfg.timing).timed else "in every interleaving")
        t.notes.append(f"No violation {scope}: exactly one CPU becomes panic_cpu and the others end in "
                       "panic_smp_self_stop().")
        print_tables([t], fmt, out)
        return
    v = ex.violation
    t.notes += [f"violation: {v.message}",
                f"shortest choice list ({len(v.choices)} choices): {','.join(v.choices)}",
                *trace_lines(v.trace, _arch(cfg)), *_replay_notes(result["violation"])]
    if fmt == "table":
        t.cell_styles[(0, 0)] = "bold red"
    print_tables([t], fmt, out)


def _arch(cfg: PanicRaceConfig) -> str:
    from haltlab.machine.profile import load_profile
    return load_profile(cfg.profile).arch


def _choice_lists(choices: str, cycle: str | None) -> tuple[list[str], list[str] | None]:
    """`--choices` and `--cycle` parsed; a bad or empty list is one line naming the option."""
    try:
        parsed = parse_choices(choices)
    except ValueError as e:
        raise UserError(f"--choices: {e}") from None
    if not parsed:
        raise UserError(f"--choices {choices!r}: give at least one choice, e.g. c0,c1")
    try:
        return parsed, parse_choices(cycle) if cycle is not None else None
    except ValueError as e:
        raise UserError(f"--cycle: {e}") from None


def _replay_cycle(run, cycle: str | None, parsed_cycle: list[str] | None) -> None:
    """Replay a livelock's cycle after the prefix: it must come back to the same state."""
    if parsed_cycle is None:
        return
    try:
        check_cycle(run, parsed_cycle)
    except DriverError as e:
        raise UserError(f"--cycle {cycle}: {e}") from None


@click.group()
def replay() -> None:
    """Run a scenario again along a choice list printed by `haltlab explore`."""


@replay.command("panic-race")
@_race_options
@click.option("--choices", required=True, help="Comma-separated choices, e.g. c1,c0,c0,c1.")
@click.option("--cycle", default=None, help="A livelock's cycle (from `haltlab explore`): replayed after "
                                            "--choices, it must come back to the same state.")
@click.option("--check-determinism", is_flag=True,
              help="Replay twice and compare state fingerprints after every step.")
def replay_panic_race_cmd(cpus, variant, kernel, timeouts, timing, timing_tolerance, choices, cycle,
                          check_determinism) -> None:
    """Replay a panic-race choice list and print its trace and verdict."""
    cfg = PanicRaceConfig(cpus=cpus, variant=variant, kernel=kernel, timeouts=timeouts, timing=timing,
                          tolerance_pct=timing_tolerance)
    cfg.validate()
    parsed, parsed_cycle = _choice_lists(choices, cycle)
    try:
        run, msg = replay_panic_race(cfg, parsed)
        if check_determinism:
            replay_twice_and_compare(lambda: make_run(cfg), parsed)
    except DriverError as e:
        raise UserError(f"--choices {choices}: {e}") from None
    _replay_cycle(run, cycle, parsed_cycle)
    out = console()
    out.print(trace_text(run.driver.trace, run.machine.profile.arch), soft_wrap=True)
    out.print(Text(f"verdict: {'violation: ' + msg if msg else 'no violation at this point'}"))
    if check_determinism:
        out.print(f"determinism: {len(parsed)} steps replayed twice, fingerprints equal at every step")
    if parsed_cycle is not None:
        out.print(f"cycle: {len(parsed_cycle)} choices come back to the same state: the run can repeat them "
                  "forever (a livelock)")
    if msg or parsed_cycle is not None:
        raise SystemExit(1)


# --- printk-flood: S2's flood against a panic ------------------------------------------

def _flood_options(f):
    from haltlab.cli.options import crash_options
    from haltlab.cli.simulate import console_spin_option
    f = cpus_option(default=2, help="CPUs: CPU0 panics, the others flood /dev/kmsg (2-4).")(f)
    f = kernel_preset_option(sorted(PRESETS), default="v5.17+d51507098ff9")(f)
    f = console_spin_option()(f)
    f = crash_options(f)
    f = click.option("--ring-records", type=click.IntRange(1, 16), default=1, show_default=True, metavar="N",
                     help="The explorer's ring holds N flood records (the abstraction in "
                          "scenarios/printk_flood_check.py).")(f)
    return _timing_options(f)


def _flood_cfg(cpus, kernel, console_spin, kdump, crash_kexec_post_notifiers, ring_records, timing,
               timing_tolerance, **extra):
    from haltlab.scenarios.printk_flood_check import PrintkFloodCheckConfig
    return PrintkFloodCheckConfig(cpus=cpus, kernel=kernel, console_spin=console_spin, kdump=kdump,
                                  post_notifiers=crash_kexec_post_notifiers, ring_records=ring_records,
                                  timing=timing, tolerance_pct=timing_tolerance, **extra)


def _flood_replay_command(cfg, choices: list[str], cycle: list[str] | None = None) -> str:
    from haltlab.scenarios.printk_flood_check import timing_tolerance_pct
    args = ["haltlab", "replay", "printk-flood", "--cpus", str(cfg.cpus), "--kernel", cfg.kernel,
            "--console-spin", cfg.console_spin, "--ring-records", str(cfg.ring_records)]
    if cfg.kdump:
        args.append("--kdump")
    if cfg.post_notifiers:
        args.append("--post-notifiers")
    return _replay_words(args, cfg.timing, lambda: timing_tolerance_pct(cfg), choices, cycle)


@explore.command("printk-flood")
@_flood_options
@max_states_option(500_000)
@reduce_option
@format_option
def explore_printk_flood_cmd(cpus, kernel, console_spin, kdump, crash_kexec_post_notifiers, ring_records, timing,
                             timing_tolerance, max_states, reduce, debug, fmt) -> None:
    """S2: CPU0 panics while the others flood /dev/kmsg: does the panic always finish?"""
    from haltlab.scenarios.printk_flood_check import (
        check_printk_flood, timing_assumptions,
    )
    if max_states < 1:
        raise UserError(f"--max-states {max_states}: must be at least 1")
    cfg = _flood_cfg(cpus, kernel, console_spin, kdump, crash_kexec_post_notifiers, ring_records, timing,
                     timing_tolerance, reduce=reduce, max_states=max_states)
    cfg.validate()
    assumptions = timing_assumptions(cfg)
    outcome = _search("printk-flood", check_printk_flood, cfg, debug)
    ex = outcome.exploration
    result = {
        "scenario": "printk-flood", "cpus": cpus, "kernel": kernel, "console_spin": console_spin,
        "kdump": kdump, "post_notifiers": crash_kexec_post_notifiers, "ring_records": ring_records,
        **verdict_fields(outcome, lambda choices, cycle=None: _flood_replay_command(cfg, choices, cycle),
                         reduce=reduce, timing=timing, assumptions=assumptions),
    }
    if cfg.timing is Timing.WIDENED:
        from haltlab.scenarios.printk_flood_check import replay_printk_flood
        for key in ("violation", "deadlock", "livelock"):
            if key in result and key != "violation":
                exact = dataclasses.replace(cfg, timing=Timing.TIMED)
                _mark_candidate(result[key], lambda prefix: replay_printk_flood(cfg, prefix),
                                exact_prefix=lambda prefix: replay_printk_flood(exact, prefix),
                                exact_command=lambda prefix, cycle: _flood_replay_command(exact, prefix, cycle))
            elif key in result:
                _mark_candidate(result[key], lambda prefix: replay_printk_flood(cfg, prefix))
    if fmt == "json":
        click.echo(dumps(result), nl=False)
    else:
        _print_flood(result, ex, cfg, fmt)
    if ex.violation is not None or outcome.lasso is not None:
        raise SystemExit(1)


def verdict_fields(outcome, replay_command, *, reduce, timing, assumptions: str) -> dict:
    """What every scenario's `explore --json` says of its verdict: the search's
    size, its reductions and timing, the bound hit, and each counterexample
    with the property it breaks and its `haltlab replay` command
    (`replay_command(choices, cycle=None)`)."""
    ex = outcome.exploration
    result = {
        "verdict": str(outcome.verdict), "states": ex.states, "transitions": ex.transitions,
        "terminal_states": ex.terminal, "max_depth": ex.max_depth, "truncated": ex.truncated,
        "reduce": reduce, "reductions": list(ex.reductions), "timing": timing, "timing_assumptions": assumptions,
    }
    if outcome.bound is not None:
        result["bound"] = outcome.bound
    if ex.violation is not None:
        result["violation" if outcome.verdict != "deadlock" else "deadlock"] = {
            "property": outcome.property.name, "message": ex.violation.message, "choices": ex.violation.choices,
            "replay": replay_command(ex.violation.choices)}
    if outcome.lasso is not None:
        lasso = outcome.lasso
        result["livelock"] = {"property": outcome.property.name, "message": outcome.message,
                              "prefix": list(lasso.prefix), "cycle": list(lasso.cycle),
                              "replay": replay_command(list(lasso.prefix), list(lasso.cycle))}
    if outcome.candidate is not None:
        result["undecided"] = _undecided_entry(outcome)
    return result


def _mark_candidate(entry: dict, replay_prefix, confirm: str = "haltlab simulate printk-flood",
                    exact_prefix=None, exact_command=None) -> None:
    """A counterexample found with `--timing widened` is a candidate (the
    widened zones over-approximate the timed ones: docs/design.md, "Widening").
    Its choices are replayed here: where they do not replay one by one (its
    states were widened along the search's own paths to them, not this one), the
    replay command is left out rather than printed to fail. With
    `exact_prefix` (a replay with exact zones) and `exact_command(prefix,
    cycle)`, a path that ends stuck, or a lasso whose cycle settles
    (`checks.timed_lasso.settle`: its prefix then grows by the rounds it
    took), is a timed run and printed as one."""
    entry["candidate"] = ("found with widened zones, an over-approximation of the timed run; check it at the "
                          f"profile's durations ({confirm})")
    prefix = entry.get("prefix", entry.get("choices"))
    try:
        run = replay_prefix(list(prefix))
        if entry.get("cycle"):
            check_cycle(run, list(entry["cycle"]))
    except DriverError:
        entry["replay"] = None
        entry["candidate"] += ("; its choices do not replay one by one (its states were widened along the "
                               "search's own paths to them, not along this one)")
    if exact_prefix is None:
        return
    cycle = entry.get("cycle")
    try:                        # the same choices with exact zones: a timed run, no longer a candidate
        run = exact_prefix(list(prefix))
        if cycle:
            rounds = settle(run, list(cycle))
        elif run.driver.choices():
            return
    except DriverError:
        return
    entry["candidate"] = "found with widened zones and replayed with exact ones (--timing timed): a timed run"
    if cycle:
        entry["prefix"] = list(prefix) + list(cycle) * rounds
        entry["replay"] = exact_command(entry["prefix"], list(cycle))
    else:
        entry["replay"] = exact_command(list(prefix), None)


def _undecided_entry(outcome) -> dict:
    """Exact zones: the zone graph has a fair, time-divergent-looking lasso, but
    going round its cycle with exact zones is not a run (its zone shrinks away,
    or time need not pass: `haltlab.checks.timed_lasso`), and no other lasso
    is. Printed with its choices and why, never with a replay command: it is
    neither a livelock nor a proof that there is none."""
    lasso = outcome.candidate
    return {"property": outcome.property.name, "message": outcome.message, "prefix": list(lasso.prefix),
            "cycle": list(lasso.cycle), "replay": None}


def _undecided_notes(entry: dict) -> list[str]:
    return [f"undecided ({entry['property']}): {entry['message']}",
            f"the zone graph's lasso: {len(entry['prefix'])} choices, then {len(entry['cycle'])} "
            "(not a run; neither a livelock nor a proof of none)", *_replay_notes(entry)]


def _print_flood(result: dict, ex, cfg, fmt: str) -> None:
    out = console()
    spin = "" if cfg.console_spin == "stock" else f", console_spin={cfg.console_spin}"
    crash = (", kdump" if cfg.kdump else "") + (", post-notifiers" if cfg.post_notifiers else "")
    t = Table(f"explore printk-flood: {cfg.cpus} CPUs, kernel {cfg.kernel}{spin}{crash}",
              [Column("verdict"), *(Column(c, numeric=True) for c in
                                    ("states", "transitions", "end states", "max depth", "seconds"))])
    t.add_row(result["verdict"], str(ex.states), str(ex.transitions), str(ex.terminal), str(ex.max_depth),
              f"{ex.seconds:.2f}")
    t.notes.append(f"reductions: {'; '.join(result['reductions']) or 'none'}")
    t.notes.append(f"timing: {result['timing_assumptions']}")
    t.notes.append(f"abstractions: sequence numbers relative to the ring's tail; a ring of {cfg.ring_records} "
                   "flood record(s) (scenarios/printk_flood_check.py)")
    for key in ("livelock",):
        if key in result:
            lv = result[key]
            t.notes += [f"livelock ({lv['property']}): {lv['message']}",
                        f"a fair run that never makes progress: {len(lv['prefix'])} choices, then "
                        f"{len(lv['cycle'])} repeated forever"]
            t.notes += _replay_notes(lv)
    for key in ("deadlock", "violation"):
        if key in result:
            v = result[key]
            t.notes += [f"{key} ({v['property']}): {v['message']}",
                        f"shortest choice list ({len(v['choices'])} choices)", *trace_lines(ex.violation.trace, "x86_64")]
            t.notes += _replay_notes(v)
    if "undecided" in result:
        t.notes += _undecided_notes(result["undecided"])
    if "bound" in result:
        t.notes.append(f"bounded: {result['bound']}")
    if fmt == "table" and (ex.violation is not None or "livelock" in result):
        t.cell_styles[(0, 0)] = "bold red"
    print_tables([t], fmt, out)


def _replay_notes(entry: dict) -> list[str]:
    notes = [f"candidate: {entry['candidate']}"] if "candidate" in entry else []
    if entry["replay"] is not None:
        notes += ["replay with:", entry["replay"]]
    else:
        notes.append(f"choices: {','.join(entry.get('prefix', entry.get('choices')))}"
                     + (f"; cycle: {','.join(entry['cycle'])}" if entry.get("cycle") else ""))
    return notes


@replay.command("printk-flood")
@_flood_options
@click.option("--choices", required=True, help="Comma-separated choices, e.g. c1,c0,c0,c1.")
@click.option("--cycle", default=None, help="A livelock's cycle (from `haltlab explore`): replayed after "
                                            "--choices, it must come back to the same state.")
def replay_printk_flood_cmd(cpus, kernel, console_spin, kdump, crash_kexec_post_notifiers, ring_records, timing,
                            timing_tolerance, choices, cycle) -> None:
    """Replay a printk-flood choice list and print its trace."""
    from haltlab.scenarios.printk_flood_check import panic_finished, replay_printk_flood
    cfg = _flood_cfg(cpus, kernel, console_spin, kdump, crash_kexec_post_notifiers, ring_records, timing,
                     timing_tolerance)
    cfg.validate()
    parsed, parsed_cycle = _choice_lists(choices, cycle)
    try:
        run = replay_printk_flood(cfg, parsed)
    except DriverError as e:
        raise UserError(f"--choices {choices}: {e}") from None
    _replay_cycle(run, cycle, parsed_cycle)
    out = console()
    out.print(trace_text(run.driver.trace, run.machine.profile.arch), soft_wrap=True)
    done = panic_finished(run)
    out.print(Text(f"panic finished: {'yes' if done else 'not at this point'}; "
                   f"CPUs that can still step: {', '.join(run.driver.choices()) or 'none'}"))
    if parsed_cycle is not None:
        out.print(f"cycle: {len(parsed_cycle)} choices come back to the same state: the run can repeat them "
                  "forever (a livelock)")
        raise SystemExit(1)
