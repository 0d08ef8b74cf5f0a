"""Human-readable view of one kexec run (`simulate kexec`): S3's arm64
shutdown, and S4's x86 reboot by phase with each AP's way up.

Reads only the dict `--json` prints; `report.tables` models, so `--format
markdown` and `csv` print the same rows.
"""

from __future__ import annotations

from rich.console import Console

from haltlab.report.tables import Column, Table, print_tables

__all__ = ["kexec_run_tables", "print_kexec_run", "ms", "kexec_x86_run_tables", "print_kexec_x86_run"]


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


_X86_OUTCOMES = {"init": "the new kernel reached init",
                 "reset": "the machine reset",
                 "hung": "still rebooting at the run's limit"}
_PHASE_TEXT = {"old_kernel_shutdown": "old kernel: Starting new kernel to machine_kexec()",
               "image_copy_and_purgatory": "image copy and purgatory",
               "boot_to_smp_init": "new kernel: entry to smp_init()",
               "smp_init": "smp_init()",
               "smp_init_to_init": "smp_init() to init"}


def _spread(values: list[int]) -> str:
    if not values:
        return "-"
    values = sorted(values)
    return f"{ms(values[0])} / {ms(values[len(values) // 2])} / {ms(values[-1])}"


def kexec_x86_run_tables(r: dict) -> list[Table]:
    cfg = r["config"]
    t = Table("x86 kexec reboot", [Column("quantity"), Column("value")], show_header=False)
    t.add_row("machine", f"{r['profile']}, {r['cpus']} CPUs, the others {cfg['others']}")
    t.add_row("kernel", f"{r['kernel']}, bring-up: {cfg['bringup']}{', lpj=' if cfg['lpj'] else ''}")
    reset = f" ({r['reset_reason']})" if r["outcome"] == "reset" and r["reset_reason"] else ""
    t.add_row("outcome", _X86_OUTCOMES[r["outcome"]] + reset)
    t.add_row("downtime (Starting new kernel to init)", f"{ms(r['downtime_ns'])} ms")
    for name, ns in r["phases"].items():
        t.add_row(f"  {_PHASE_TEXT[name]}", f"{ms(ns)} ms")
    t.add_row("CPUs online in the new kernel", str(r["cpus_online"]))
    t.add_row("init_udelay", f"{r['init_udelay_us']} us")
    aps = r["per_ap"]
    woken: dict[str, int] = {}
    for a in aps:
        woken[a["woken_by"] or "never"] = woken.get(a["woken_by"] or "never", 0) + 1
    t.add_row("APs woken by", ", ".join(f"{k} {n}" for k, n in sorted(woken.items())))
    t.add_row("AP kicked, from smp_init(), min / median / max ms",
              _spread([a["kicked_ns"] for a in aps if a["kicked_ns"] is not None]))
    t.add_row("AP alive, min / median / max ms", _spread([a["alive_ns"] for a in aps if a["alive_ns"] is not None]))
    t.add_row("AP online, min / median / max ms", _spread([a["online_ns"] for a in aps if a["online_ns"] is not None]))
    syncs = [(a["cpu"], a["tsc_sync_ns"]) for a in aps if a["tsc_sync_ns"]]
    cals = [(a["cpu"], a["calibrate_ns"]) for a in aps if a["calibrate_ns"]]
    t.add_row("TSC sync checks", ", ".join(f"CPU{c} {ms(ns)} ms" for c, ns in syncs[:4])
              + (f" (+{len(syncs) - 4})" if len(syncs) > 4 else "") or "none")
    t.add_row("delay calibrations", ", ".join(f"CPU{c} {ms(ns)} ms" for c, ns in cals[:4])
              + (f" (+{len(cals) - 4})" if len(cals) > 4 else "") or "none")
    v = r["park_violations"]
    t.add_row("park violations", "; ".join(v[:3]) + (f" (+{len(v) - 3} more)" if len(v) > 3 else "") or "none")
    t.add_row("events", f"{r['events']:,}")
    cols = ("kicked", "alive", "online", "up")
    cpus = Table("per AP (ms from smp_init())", [Column("CPU"), Column("pkg"), Column("thr")]
                 + [Column(c) for c in cols] + [Column("woken by")])
    for a in aps:
        cpus.add_row(str(a["cpu"]), str(a["package"]), str(a["thread"]),
                     *(ms(a[f"{c}_ns"]) for c in cols), a["woken_by"] or "-")
    return [t, cpus]


def print_kexec_x86_run(r: dict, console: Console, fmt: str = "table") -> None:
    print_tables(kexec_x86_run_tables(r), fmt, console)
