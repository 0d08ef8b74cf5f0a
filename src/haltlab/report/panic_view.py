"""Human-readable view of one panic run (`haltlab simulate panic`): tables.

Reads only the result dict, the same one `--json` prints, so what a person sees
and what a script reads cannot disagree. The tables are `report.tables.Table`
models, so the same view prints as a rich table, Markdown or CSV (`--format`).
"""

from __future__ import annotations

from rich.console import Console, Group

from haltlab.machine.cpu import HW_STATES
from haltlab.report.tables import Column, Table, print_tables

__all__ = ["panic_table_models", "panic_tables", "print_panic", "state_rows", "summary_table",
           "states_table", "host_table", "handlers_table", "AGGREGATE_ABOVE"]

AGGREGATE_ABOVE = 16    # more CPUs than this: one row for the panic CPU, one for the rest
MAX_VCPU_ROWS = 16


def _ms(ns: int | None) -> str:
    return "-" if ns is None else f"{ns / 1e6:,.3f}"


def summary_table(r: dict) -> Table:
    cfg = r["config"]
    t = Table("Panic run", [Column("quantity"), Column("value")], show_header=False)
    t.add_row("machine", f"{r['profile']}, {r['cpus']} CPUs, kernel {r['kernel']}, seed {cfg['seed']}")
    crash = "".join(f"; {text}" for key, text in (("kdump", "kdump kernel loaded"),
                                                   ("crash_kexec_post_notifiers", "crash_kexec_post_notifiers"))
                    if cfg.get(key))
    t.add_row("variant", f"after panic: {r['policies']['after_panic']}; other CPUs: {cfg['others']}; "
                         f"panic_timeout={cfg['panic_timeout_s']}{crash}")
    t.add_row("outcome", r["outcome"])
    if cfg.get("kdump"):        # the run ends in the crash kernel, not at the end line
        t.add_row("panic() entry to machine_kexec() (kdump kernel)", f"{_ms(r['crash_kexec_after_ns'])} ms")
    else:
        t.add_row('time to "end Kernel panic"', f"{_ms(r['time_to_end_ns'])} ms")
    t.add_row("panic() entry to other CPUs stopped", f"{_ms(r['panic_to_others_stopped_ns'])} ms")
    t.add_row("smp_send_stop() call to other CPUs stopped", f"{_ms(r['smp_send_stop_ns'])} ms")
    if cfg["panic_timeout_s"]:
        t.add_row("reboot after", f"{_ms(r['reboot_after_ns'])} ms")
    t.add_row("iterations of the after-panic loop", str(r["panic_loop_iterations"]))
    return t


def state_rows(r: dict) -> list[tuple[str, dict]]:
    states, panic_cpu = r["state_ns"], r["config"]["panic_cpu"]
    if r["cpus"] <= AGGREGATE_ABOVE:
        return [(f"CPU{c}" + (" (panic)" if int(c) == panic_cpu else ""), s)
                for c, s in sorted(states.items(), key=lambda kv: int(kv[0]))]
    others = {s: sum(v[s] for c, v in states.items() if int(c) != panic_cpu) for s in HW_STATES}
    return [(f"CPU{panic_cpu} (panic)", states[str(panic_cpu)]),
            (f"{r['cpus'] - 1} others, summed", others)]


def states_table(r: dict) -> Table:
    t = Table(f"Time per CPU state, whole run (0 to {r['end_ns'] / 1e9:.3f} s), ms",
              [Column("CPU"), *(Column(s, numeric=True) for s in HW_STATES)])
    for label, row in state_rows(r):
        t.add_row(label, *(_ms(row[s]) for s in HW_STATES))
    return t


def host_table(r: dict) -> Table | None:
    if "per_vcpu" not in r:
        return None
    w = r["window_ns"] / 1e9
    t = Table(f'Host view over the {w:.3f} s after "end Kernel panic"',
              [Column("vCPU"), *(Column(c, numeric=True) for c in
                                 ("host CPU-s/s", "perf samples", "cycles", "exits", "wakeups"))],
              bold_rows=frozenset({0}))
    t.add_row("whole guest", f"{r['host_cpu_s_per_s']:.6f}", f"{r['perf_samples']:,}",
              f"{r['cycles']:,}", "", "")
    busy = [v for v in r["per_vcpu"] if v["host_cpu_ns"] or v["exits"] or v["wakeups"]]
    for v in busy[:MAX_VCPU_ROWS]:
        t.add_row(f"CPU{v['cpu']}", f"{v['host_cpu_s_per_s']:.6f}", f"{v['perf_samples']:,}",
                  f"{v['cycles']:,}", f"{v['exits']:,}", f"{v['wakeups']:,}")
    if len(busy) > MAX_VCPU_ROWS:
        t.add_row(f"... {len(busy) - MAX_VCPU_ROWS} more vCPUs (see --json)", "", "", "", "", "")
    t.add_row("VMM background", f"{r['vmm_background_ns'] / r['window_ns']:.6f}", "", "", "", "")
    t.notes.append(f"{len(r['per_vcpu']) - len(busy)} vCPUs cost the host nothing in the window")
    return t


def handlers_table(r: dict) -> Table:
    per_vector: dict[str, list[int]] = {}
    panic_cpu = r["config"]["panic_cpu"]
    for key, n in r["handlers_after_panic"].items():
        cpu, vector = key.split(":", 1)
        row = per_vector.setdefault(vector, [0, 0, 0])
        if int(cpu.removeprefix("CPU")) == panic_cpu:
            row[0] += n
        else:
            row[1] += n
            row[2] += 1
    t = Table("Interrupt handlers run after panic() was entered",
              [Column("vector"), *(Column(c, numeric=True) for c in
                                   (f"on CPU{panic_cpu} (panic)", "on other CPUs", "other CPUs that took it"))])
    for vector, (mine, others, ncpus) in sorted(per_vector.items()):
        t.add_row(vector, str(mine), str(others), str(ncpus))
    if not per_vector:
        t.notes.append("none")
    return t


def blink_line(r: dict) -> str:
    b = r["blink_intervals_ns"]
    if not b:
        return "Blink: no LED toggles recorded after the panic."
    shown = ", ".join(_ms(x) for x in sorted(set(b)))
    return f"Blink: {len(b) + 1} toggles recorded; intervals between them: {shown} ms."


def panic_table_models(r: dict) -> list[Table]:
    states, host, handlers = states_table(r), host_table(r), handlers_table(r)
    if host is None and r["outcome"] == "crash-kexec":
        states.notes.append("Host view: none; the run ended in the kdump kernel, before any observation window.")
    elif host is None:
        states.notes.append("Host view: bare metal, no hypervisor.")
    handlers.notes.append(blink_line(r))
    return [summary_table(r), states, *([host] if host is not None else []), handlers]


def panic_tables(r: dict) -> Group:
    """The tables as one rich renderable (notes under each)."""
    return Group(*panic_table_models(r))


def print_panic(r: dict, console: Console | None = None, fmt: str = "table") -> None:
    print_tables(panic_table_models(r), fmt, console or Console())
