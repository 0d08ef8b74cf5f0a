"""Human-readable view of one kexec shutdown (`simulate kexec`, S3).

Reads only the dict `--json` prints; `report.tables` models, so `--format
markdown` and `csv` print the same rows.
"""

from __future__ import annotations

from rich.console import Console

from haltlab.report.tables import Column, Table, print_tables

__all__ = ["kexec_run_tables", "print_kexec_run", "ms"]


def ms(ns: int | None) -> str:
    return "-" if ns is None else f"{ns / 1e6:,.3f}"


_OUTCOMES = {"kexec": "jumped to the new kernel (machine_kexec())",
             "bug": "stopped by a BUG()",
             "hung": "still shutting down at the run's limit"}


def kexec_run_tables(r: dict) -> list[Table]:
    cfg = r["config"]
    t = Table("kexec shutdown", [Column("quantity"), Column("value")], show_header=False)
    t.add_row("machine", f"{r['profile']}, {r['cpus']} CPUs, the others {cfg['others']}"
                         f"{', frozen first' if cfg['freeze'] else ''}")
    t.add_row("kernel", f"{r['kernel']}, machine_shutdown(): {cfg['shutdown']}")
    t.add_row("outcome", _OUTCOMES[r["outcome"]])
    t.add_row("shutdown (Starting new kernel to machine_shutdown()'s return)", f"{ms(r['shutdown_ns'])} ms")
    downs = [c["down_ns"] for c in r["per_cpu"] if c["down_ns"] is not None]
    if downs:
        t.add_row("per CPU (_cpu_down), min / median / max",
                  f"{ms(min(downs))} / {ms(sorted(downs)[len(downs) // 2])} / {ms(max(downs))} ms")
    t.add_row("grace period (synchronize_rcu(), model)", f"{ms(r['rcu_gp_ns'])} ms")
    for name, ns in r["phases_ns"].items():
        t.add_row(f"control CPU in {name}", f"{ms(ns)} ms")
    t.add_row("BUG()s", "; ".join(r["bugs"]) or "none")
    t.add_row("interrupts routed to a CPU that executed CPU_OFF",
              "; ".join(r["spis_routed_to_dead_cpus"][:4]) + (" ..." if len(r["spis_routed_to_dead_cpus"]) > 4 else "")
              or "none")
    t.add_row("CPUs still running old-kernel code at the jump",
              ", ".join(f"CPU{c}" for c in r["cpus_running_at_jump"]) or "none")
    t.add_row("events", f"{r['events']:,}")
    cpus = Table("per CPU", [Column("CPU"), Column("_cpu_down ms"), Column("CPU_OFF at ms")]
                 + [Column(f"{p} ms") for p in ("ap_teardown", "synchronize_rcu", "stop_machine", "wait_dead")])
    for c in r["per_cpu"]:
        ph = c["phases_ns"]
        cpus.add_row(str(c["cpu"]), ms(c["down_ns"]), ms(c["cpu_off_at_ns"]),
                     *(ms(ph.get(p)) for p in ("ap_teardown", "synchronize_rcu", "stop_machine", "wait_dead")))
    return [t, cpus]


def print_kexec_run(r: dict, console: Console, fmt: str = "table") -> None:
    print_tables(kexec_run_tables(r), fmt, console)
