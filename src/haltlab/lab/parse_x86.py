"""The x86 kexec reboot on the console, phase by phase (pure; lines as in parse.py).

What a Debian 6.1 guest under QEMU TCG prints on the way, and which clock
sees each step (real consoles in tests/lab/fixtures/kexec_x86_*):

1. old kernel's shutdown: the host's marker (`haltlab: kexec -e`, written to
   /dev/kmsg just before `kexec -e`) to kernel_kexec()'s "kexec_core:
   Starting new kernel", printed after kernel_restart_prepare() (reboot
   notifiers, device_shutdown()) and just before machine_shutdown(). Both
   lines carry the old kernel's printk clock: that clock.
2. the jump and purgatory: "Starting new kernel" is the old kernel's last
   line; machine_shutdown() (stop_other_cpus(), the local APIC off),
   machine_kexec(), relocate_kernel()'s copy and kexec-tools' purgatory (its
   SHA-256 of the loaded segments) print nothing. The next line is the new
   kernel's decompressor: with `earlyprintk=serial` on the command line
   extract_kernel() has a serial console, and choose_random_location() warns
   "Physical KASLR disabled: no suitable memory region!" (and "Invalid
   physical address chosen!") in a kexec'd guest, before it decompresses.
   Only the host's arrival times see this step.
3. decompression and early boot: that warning to the new kernel's "Linux
   version" line, printed by start_kernel() and written out when
   setup_arch()'s parse_early_param() registers the boot console. Host clock
   (the new kernel's printk clock reads 0 until its TSC is calibrated).
4. the new kernel's boot to smp_init(): "Linux version" to smp_init()'s
   "smp: Bringing up secondary CPUs ...". Host clock: the printk clock
   starts late and restarts once ("tsc: Marking TSC unstable due to TSCs
   unsynchronized", the clocksource switch to a sched_clock from 0).
5. smp_init(): "Bringing up" to "smp: Brought up N node(s), M CPU(s)".
   Host clock: here the printk clock counts timer ticks. With the TSC
   unstable, local_clock() is sched_clock_cpu(), held within one tick
   (TICK_NSEC) of the tick-updated time of day, and the clocksource is still
   refined-jiffies ("clocksource: Switched to clocksource hpet" comes after
   smp_init()), whose time advances one jiffy per tick interrupt taken. Under
   TCG on a busy host a vCPU takes fewer ticks than the host's time would
   give, so the printk clock runs slow: 2026-12-02, "Bringing up" to "Brought
   up" was 1.1 s on the printk clock and 6.7 s on the host's at 8 vCPUs
   (docs/lab.md). The printk figure stays in `smp_init_*_ns` (the guest's own
   view, what a kernel reports); `smp_init_*_host_ns` are the host's.
6. smp_init() to init: "Brought up" to "Run /init as init process" (the
   kernel's last line before it executes the stage-2 /init). Host clock (the
   clocksource switch to the HPET happens inside it).

Per AP, announce_cpu() (arch/x86/kernel/smpboot.c) prints " #N" with
pr_cont() on the boot CPU before it sends INIT/SIPI/SIPI to CPU N; the time
from one announcement to the next (the last: to "Brought up") is one AP's
bring-up: do_boot_cpu(), the AP's start_secondary() up to online, and the
next AP's cpuhp prepare states. The fragments get their own printk stamp
only when another record came between them: an AP's calibrate_delay_direct()
failure lines (no `lpj=`) do that; with `lpj=` the fragments join into one
record (".... node  #0, CPUs:      #1 #2 #3") and only the cpuhp trace
events (`trace_event=cpuhp:* tp_printk`, cpuhp_up_phases) time each AP.
The AP's own lines carry its not yet running per-CPU sched_clock
("[    0.000000]"), so only the boot CPU's stamps are used. The printk
stamps are the tick-counting clock of step 5. The host's arrival times of
the announcement lines do not time the APs: a line reaches the host only
when its record is finalized, by the next record (an AP's calibration
failure line, or "Brought up" when that AP's direct calibration succeeded
and printed nothing), so they are not kept.

Delay-loop calibration (init/calibrate.c calibrate_delay(), 6.1): the boot
CPU uses lpj_fine from the TSC ("Calibrating delay loop (skipped), value
calculated using timer frequency.."), or `lpj=` ("(skipped) preset
value.."); an AP with no `lpj=` asks calibrate_delay_is_known(), which on
x86 answers only for a CPU with X86_FEATURE_CONSTANT_TSC (TCG's qemu64 CPU
has none), so it runs calibrate_delay_direct(), which under TCG fails
("calibrate_delay_direct() failed to get a good estimate for
loops_per_jiffy.") and falls back to the converging loop: the hundreds of
ms per AP that `lpj=` removes. calibrate_delay() prints only once (its
`printed` flag), so with `lpj=` no AP says anything.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from haltlab.lab.parse import (
    SMP_BEGIN, SMP_DONE, Line, boot_starts, cpuhp_events, find, printk_ns, strip_printk,
)

__all__ = [
    "RUN_INIT", "KASLR_WARNINGS", "PHASES", "PHASE_CLOCKS", "ap_announcements", "per_ap_bringup_ns",
    "delay_calibration", "cpuhp_up_phases", "x86_kexec_phases", "boot_bringup",
]

RUN_INIT = "Run /init as init process"
STARTING = "kexec_core: Starting new kernel"
# extract_kernel()'s warnings in a kexec'd guest (arch/x86/boot/compressed/kaslr.c).
KASLR_WARNINGS = ("Physical KASLR disabled", "Invalid physical address chosen")

# The reboot's phases in order, and the clock each is measured on in `phases`
# (`phases_host` has every one on the host's clock; those add up to downtime_ns).
PHASES = ("old_kernel_shutdown_ns", "jump_and_purgatory_ns", "decompress_ns", "boot_to_smp_init_ns",
          "smp_init_ns", "smp_init_to_init_ns")
PHASE_CLOCKS = {
    "old_kernel_shutdown_ns": "printk",
    "jump_and_purgatory_ns": "host",
    "decompress_ns": "host",
    "boot_to_smp_init_ns": "host",
    "smp_init_ns": "host",
    "smp_init_to_init_ns": "host",
}

_ANNOUNCE = re.compile(r"^(?:\.\.\.\. node\s+#\d+, CPUs:)?((?:\s+#\d+)+)\s*$")
_CPU_NUM = re.compile(r"#(\d+)")
_CALIBRATING = "Calibrating delay loop"
_DIRECT_FAILED = "calibrate_delay_direct() failed"
_TSC_UNSTABLE = re.compile(r"tsc: Marking TSC unstable due to (.*)")


def ap_announcements(lines: Sequence[Line], begin: int, end: int) -> list[tuple[int, int | None]]:
    """(cpu, the boot CPU's printk ns of its " #N", None when it shares a
    record with an earlier one) for the lines begin..end (one smp_init())."""
    out = []
    for i in range(begin, end):
        m = _ANNOUNCE.match(strip_printk(lines[i][1]))
        if m is None:
            continue
        t = printk_ns(lines[i][1])
        for k, cpu in enumerate(_CPU_NUM.findall(m.group(1))):
            out.append((int(cpu), t if k == 0 else None))
    return out


def per_ap_bringup_ns(announces: list[tuple[int, int | None]], done_ns: int | None) -> list[int | None]:
    """Each AP's time from its announcement to the next (the last: to
    "Brought up"), in bring-up order; None where a stamp is missing or shared."""
    stamps = [t for _, t in announces] + [done_ns]
    return [b - a if a is not None and b is not None else None for a, b in zip(stamps, stamps[1:])]


def delay_calibration(lines: Sequence[Line], begin: int, end: int) -> dict:
    """What one boot (lines begin..end) said about the delay loop and the TSC."""
    bsp = next((strip_printk(lines[i][1]) for i in range(begin, end) if _CALIBRATING in lines[i][1]), None)
    tsc = next((m.group(1) for i in range(begin, end) if (m := _TSC_UNSTABLE.search(lines[i][1]))), None)
    return {
        "bsp_line": bsp,
        "ap_direct_failures": sum(_DIRECT_FAILED in lines[i][1] for i in range(begin, end)),
        "tsc_unstable_reason": tsc,
    }


def cpuhp_up_phases(lines: Sequence[Line], begin: int, end: int) -> list[dict]:
    """Each AP's `_cpu_up()` from the cpuhp trace events between begin and end
    (one smp_init()), by the boot CPU's printk clock, in bring-up order:
    `prepare_ns` (its first event to bringup_cpu's enter: the BP PREPARE
    states, smpboot_create_threads() and the rest), `bringup_cpu_ns`
    (bringup_cpu, CPUHP_BRINGUP_CPU: __cpu_up() -> do_boot_cpu()'s INIT/SIPI,
    the AP's start_secondary(), then the AP's online states its hotplug
    thread runs while the BP waits), `cpu_up_ns` (first event to last).
    Events stamped by the AP itself before its clock runs (0) are skipped."""
    out = []
    for cpu, all_events in cpuhp_events(lines[begin:end]).items():
        e = [x for x in all_events if x[3] != 0]
        if cpu == 0 or not e:
            continue
        enter = next(((k, t) for k, (kind, _, fn, t) in enumerate(e) if kind != "exit" and fn == "bringup_cpu"), None)
        bstep = e[enter[0]][1] if enter else None
        leave = (next((t for kind, step, _, t in e[enter[0] + 1:] if kind == "exit" and step == bstep), None)
                 if enter else None)
        out.append({
            "cpu": cpu,
            "prepare_ns": enter[1] - e[0][3] if enter else None,
            "bringup_cpu_ns": leave - enter[1] if enter and leave is not None else None,
            "cpu_up_ns": e[-1][3] - e[0][3],
        })
    return out


def boot_bringup(lines: Sequence[Line], boot: int, end: int) -> dict:
    """One boot's smp_init() in detail (lines boot..end): per AP and calibration."""
    b = find(lines, SMP_BEGIN, boot)
    e = next((i for i in range(b, end) if SMP_DONE.search(lines[i][1])), None) if b is not None and b < end else None
    if e is None:
        return {"smp_init_host_ns": None, "per_ap_bringup_ns": [], "ap_order": [],
                "calibration": delay_calibration(lines, boot, end), "cpuhp_up": []}
    ann = ap_announcements(lines, b, e)
    return {
        "smp_init_host_ns": lines[e][0] - lines[b][0],
        "per_ap_bringup_ns": per_ap_bringup_ns(ann, printk_ns(lines[e][1])),
        "ap_order": [c for c, _ in ann],
        "calibration": delay_calibration(lines, boot, end),
        "cpuhp_up": cpuhp_up_phases(lines, b, e + 1),
    }


def x86_kexec_phases(lines: Sequence[Line], marker: int | None) -> dict:
    """The reboot after the host's marker line, by phase (module docstring).

    Returns `phases` (PHASES, each on PHASE_CLOCKS' clock), `phases_host`
    (all on the host's), `downtime_ns` (host: marker to the new kernel's
    "Run /init"), `decompressor_line` (the first line the new kernel's
    decompressor printed, or None: without it the jump and the decompression
    are one span, in neither phase), and per kernel (`first`, `second`) the
    smp_init() detail of boot_bringup(). A missing line leaves None.
    """
    boots = boot_starts(lines)
    second = next((b for b in boots if marker is not None and b > marker), None)
    first = boots[0] if boots else None
    nxt_end = len(lines)
    idx: dict[str, int | None] = dict.fromkeys(("marker", "starting", "decomp", "boot", "smp_b", "smp_e", "init"))
    idx["marker"] = marker
    if marker is not None:
        end_old = second if second is not None else nxt_end
        idx["starting"] = find(lines[:end_old], STARTING, marker)
        after = idx["starting"] if idx["starting"] is not None else marker
        idx["decomp"] = next((i for i in range(after + 1, end_old)
                              if any(w in lines[i][1] for w in KASLR_WARNINGS)), None)
    if second is not None:
        idx["boot"] = second
        idx["smp_b"] = find(lines, SMP_BEGIN, second)
        if idx["smp_b"] is not None:
            idx["smp_e"] = next((i for i in range(idx["smp_b"], nxt_end) if SMP_DONE.search(lines[i][1])), None)
        idx["init"] = find(lines, RUN_INIT, second)

    def host(a: str, b: str) -> int | None:
        i, j = idx[a], idx[b]
        return lines[j][0] - lines[i][0] if i is not None and j is not None else None

    def guest(a: str, b: str) -> int | None:
        i, j = idx[a], idx[b]
        p, q = (printk_ns(lines[k][1]) if k is not None else None for k in (i, j))
        return q - p if p is not None and q is not None else None

    spans = {
        "old_kernel_shutdown_ns": ("marker", "starting"),
        "jump_and_purgatory_ns": ("starting", "decomp"),
        "decompress_ns": ("decomp", "boot"),
        "boot_to_smp_init_ns": ("boot", "smp_b"),
        "smp_init_ns": ("smp_b", "smp_e"),
        "smp_init_to_init_ns": ("smp_e", "init"),
    }
    phases_host = {k: host(*v) for k, v in spans.items()}
    phases = {k: (host(*v) if PHASE_CLOCKS[k] == "host" else guest(*v)) for k, v in spans.items()}
    first_end = marker if marker is not None else nxt_end
    return {
        "phases": phases,
        "phases_host": phases_host,
        "downtime_ns": host("marker", "init"),
        "decompressor_line": lines[idx["decomp"]][1].strip() if idx["decomp"] is not None else None,
        "first": boot_bringup(lines, first, first_end) if first is not None else None,
        "second": boot_bringup(lines, second, nxt_end) if second is not None else None,
    }
