"""Human-readable views of S2's stress test: one run (`simulate printk-flood`)
and a campaign (`sweep printk-flood`).

Each reads only the dicts `--json` prints, so a person and a script see the
same numbers; the tables are `report.tables.Table` models, so `--format
markdown` and `csv` print the same rows.
"""

from __future__ import annotations

from rich.console import Console

from haltlab.report.tables import Column, Table, print_tables

__all__ = ["flood_run_table", "flood_campaign_table", "print_flood_run", "print_flood_campaign", "ms"]


def ms(ns: int | None) -> str:
    return "-" if ns is None else f"{ns / 1e6:,.3f}"


def _decision(r: dict) -> str:
    if r["decided_by"] == "end":
        return "ended: 'end Kernel panic' reached the console"
    if r["decided_by"] == "livelock":
        return f"hung: livelock proven at {ms(r['decided_at_ns'])} ms ({r['livelock_proof']})"
    return f"hung: no 'end Kernel panic' {r['config']['hang_after_s']:g} s after the trigger (timeout)"


def flood_run_table(r: dict) -> Table:
    """One run: the variant, how it was decided, and what the console showed."""
    cfg = r["config"]
    t = Table("printk-flood run", [Column("quantity"), Column("value")], show_header=False)
    t.add_row("machine", f"{cfg['profile']}, {cfg['cpus']} CPUs (CPU0 panics, {cfg['cpus'] - 1} flooding), "
                         f"seed {cfg['seed']}")
    t.add_row("kernel", f"{cfg['kernel']}, console_spin={cfg['console_spin']}")
    t.add_row("outcome", _decision(r))
    t.add_row("sysrq trigger at", f"{ms(r['trigger_ns'])} ms")
    t.add_row("trigger to 'end Kernel panic'", f"{ms(r['trigger_to_end_ns'])} ms")
    t.add_row("trigger to smp_send_stop()", f"{ms(r['smp_send_stop_after_trigger_ns'])} ms")
    t.add_row("drop notices after the trigger", f"{r['drop_notices_after_trigger']:,} "
                                                 f"({r['dropped_after_trigger']:,} records dropped)")
    t.add_row("13fb0f74d702 guard fired", "yes" if r["guard_fired"] else "no")
    t.add_row("flood records on the console after the trigger", f"{r['flood_records_on_console_after_trigger']:,}")
    t.add_row("records stored", f"{r['records_stored']:,}")
    t.add_row("events", f"{r['events']:,}")
    return t


def print_flood_run(r: dict, assumptions: str, console: Console, fmt: str = "table") -> None:
    t = flood_run_table(r)
    t.notes.append(f"assumed: {assumptions}")
    print_tables([t], fmt, console)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def flood_campaign_table(summary: dict) -> Table:
    """A campaign: hangs/runs per variant, the Wilson interval, how the runs
    were decided and the trigger-to-end times of those that ended."""
    t = Table(f"printk-flood campaign: {summary['runs']:,} runs per variant, profile {summary['profile']}, "
              f"{summary['cpus']} CPUs, seed {summary['seed']}",
              [Column("variant", whole=True), Column("hung/runs", numeric=True), Column("rate", numeric=True),
               Column("95% Wilson", numeric=True), Column("ended", numeric=True),
               Column("livelock", numeric=True), Column("timeout", numeric=True),
               Column("trigger to end, median ms", numeric=True), Column("range ms", numeric=True)])
    for v in summary["variants"]:
        times = v["trigger_to_end_ns"]
        t.add_row(f"{v['kernel']} console_spin={v['console_spin']}", f"{v['hung']:,}/{v['runs']:,}",
                  _pct(v["hang_rate"]), f"{_pct(v['hang_rate_low'])}-{_pct(v['hang_rate_high'])}",
                  f"{v['decided']['end']:,}", f"{v['decided']['livelock']:,}", f"{v['decided']['timeout']:,}",
                  ms(times["median"]) if times else "-",
                  f"{ms(times['min'])}-{ms(times['max'])}" if times else "-")
    t.notes.append("hung: no 'end Kernel panic' on the console within the hang window after the trigger; "
                   "livelock: decided early by livelock_proof() (the loop provably never ends), "
                   "timeout: the window ran out; trigger to end: over the runs that ended")
    t.notes.append(f"assumed: {summary['assumptions']}")
    return t


def print_flood_campaign(summary: dict, console: Console, fmt: str = "table") -> None:
    print_tables([flood_campaign_table(summary)], fmt, console)
