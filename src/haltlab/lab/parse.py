"""Pure parsers of what a guest prints: serial console lines in, facts out.

Nothing here touches QEMU, so every parser is tested on literal logs pasted from
real boots (tests/lab/test_parse.py). A line is `(host_ns, text)`: the host's
monotonic clock when the line arrived, and the text without its line ending.
Kernel lines carry their own printk timestamp (`[    1.234567] ...`, enabled by
`printk.time=1`), which is the guest's clock (local_clock(), restarted by every
boot, so also by kexec).

Markers (kernel/panic.c, kernel/smp.c, kernel/kexec_core.c in 6.1):
- `Kernel panic - not syncing: %s` (pr_emerg at the start of panic()),
- `---[ end Kernel panic - not syncing: %s ]---` (the last thing panic() prints,
  after console_flush_on_panic(); absent when panic_timeout resets first),
- `smp: Bringing up secondary CPUs ...` / `smp: Brought up %d node(s), %d CPU(s)`
  around the bring-up loop of smp_init(),
- `Linux version ...`, the first line of every boot,
- `kexec_core: Starting new kernel`, printed by kernel_kexec() just before
  machine_shutdown(),
- `sysrq: Trigger a crash`, printed by __handle_sysrq() (drivers/tty/sysrq.c)
  before it calls sysrq_handle_crash(): the trigger, in console order,
- `** N printk messages dropped **`, written by call_console_driver()
  (kernel/printk/printk.c) before the record that follows a gap in the ring;
  its own console write, so its own line, with no printk timestamp,
- `printk: Too many dropped messages. Suppress messages on non-panic CPUs to
  prevent livelock.`, the pr_warn_once() of 13fb0f74d702's guard in
  console_emit_next_record(): `panic_in_progress() && panic_console_dropped++ >
  10`, so the 12th gap the console meets during a panic.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence

__all__ = [
    "Line",
    "PANIC_START",
    "PANIC_END",
    "printk_ns",
    "strip_printk",
    "find",
    "find_all",
    "boot_starts",
    "kernel_release",
    "smp_init_spans",
    "panic_facts",
    "SYSRQ_CRASH",
    "GUARD_LINE",
    "trigger_position",
    "flood_console",
    "brought_up_cpus",
    "ready_cpus", "ready_cpus_each",
    "STARTING_NEW_KERNEL", "BYE", "exit_code", "arm64_kexec_shutdown", "cpuhp_phases", "cpuhp_events",
    "CpuhpEvent", "SMP_BEGIN", "SMP_DONE",
]

Line = tuple[int, str]

PANIC_START = "Kernel panic - not syncing"
PANIC_END = "---[ end Kernel panic"
BOOT_START = "Linux version "
SMP_BEGIN = "Bringing up secondary CPUs"
SMP_DONE = re.compile(r"Brought up (\d+) nodes?, (\d+) CPUs?")

_PRINTK = re.compile(r"\[\s*(\d+)\.(\d{6})\]\s?(.*)")


def printk_ns(text: str) -> int | None:
    """The printk timestamp of a console line in ns, or None if it has none.

    Searched, not matched at the start: a line may begin with output of a
    process that was cut off by a kernel message (no newline in between).
    """
    m = _PRINTK.search(text)
    return int(m.group(1)) * 1_000_000_000 + int(m.group(2)) * 1000 if m else None


def strip_printk(text: str) -> str:
    """The message without its printk timestamp."""
    m = _PRINTK.search(text)
    return m.group(3) if m else text


def find(lines: Sequence[Line], needle: str, start: int = 0) -> int | None:
    """Index of the first line at or after `start` containing `needle`."""
    for i in range(start, len(lines)):
        if needle in lines[i][1]:
            return i
    return None


def find_all(lines: Sequence[Line], needle: str) -> list[int]:
    return [i for i, (_, text) in enumerate(lines) if needle in text]


def boot_starts(lines: Sequence[Line]) -> list[int]:
    """Index of each kernel's first line: one for a plain boot, two after kexec."""
    return find_all(lines, BOOT_START)


def kernel_release(lines: Sequence[Line]) -> str | None:
    """`6.1.0-56-amd64` from the first `Linux version 6.1.0-56-amd64 (...)` line."""
    i = find(lines, BOOT_START)
    if i is None:
        return None
    rest = lines[i][1].split(BOOT_START, 1)[1].split()
    return rest[0] if rest else None


def smp_init_spans(lines: Sequence[Line]) -> list[dict]:
    """Each boot's bring-up of secondary CPUs, by printk clock.

    smp_init() prints the first marker before bringing up the APs and the second
    after the last one is online, so the difference of the two printk timestamps
    is the bring-up time as the guest measured it (the guest clock, which is
    what S4's 210 ms / 80 ms figures were too). One dict per boot that printed
    both markers, in boot order: `smp_init_ns`, `cpus`, `nodes`, and `line`
    (the index of the "Brought up" line, to tell which boot it belongs to).
    """
    spans, begin = [], None
    for i, (_, text) in enumerate(lines):
        if SMP_BEGIN in text:
            begin = printk_ns(text)  # a new boot's marker replaces an unfinished one
        elif begin is not None and (m := SMP_DONE.search(text)):
            end = printk_ns(text)
            if end is not None:
                spans.append({
                    "smp_init_ns": end - begin, "nodes": int(m.group(1)), "cpus": int(m.group(2)), "line": i,
                })
            begin = None
    return spans


def panic_facts(lines: Sequence[Line]) -> dict:
    """When the (first) panic started and ended, by host clock and printk clock.

    `panic_to_end_ns` is the guest-clock duration of panic() up to its final
    message; None when the end marker never came (a hang, a reset, or a host
    that paused the guest first).
    """
    start, end = find(lines, PANIC_START), find(lines, PANIC_END)
    if start is not None and end is not None and end < start:
        end = find(lines, PANIC_END, start)
    facts = {
        "panic_message": strip_printk(lines[start][1]).split(": ", 1)[-1] if start is not None else None,
        "panic_host_ns": lines[start][0] if start is not None else None,
        "end_host_ns": lines[end][0] if end is not None else None,
        "panic_printk_ns": printk_ns(lines[start][1]) if start is not None else None,
        "end_printk_ns": printk_ns(lines[end][1]) if end is not None else None,
    }
    a, b = facts["panic_printk_ns"], facts["end_printk_ns"]
    facts["panic_to_end_ns"] = b - a if a is not None and b is not None else None
    # What the UART carried from the panic line to the end line, both included:
    # every character plus its newline, printk prefix and all. With the host
    # times above this gives the console's effective cost per character.
    span = lines[start:end + 1] if start is not None and end is not None else []
    facts["panic_console_lines"] = len(span) if span else None
    facts["panic_console_chars"] = sum(len(text) + 1 for _, text in span) if span else None
    # The longest silence inside the panic: on a stock kernel that is
    # smp_send_stop() waiting for the other CPUs, between the last dump_stack()
    # line and the first line a panic notifier prints.
    gaps = [b[0] - a[0] for a, b in zip(span, span[1:])]
    facts["panic_max_line_gap_ns"] = max(gaps) if gaps else None
    return facts


SYSRQ_CRASH = "sysrq: Trigger a crash"
GUARD_LINE = "Too many dropped messages. Suppress messages on non-panic CPUs to prevent livelock."
DROPPED_TEXT = "printk messages dropped"

_DROPPED = re.compile(r"\*\* (\d+) printk messages dropped \*\*")
_GUARD = re.compile(re.escape(GUARD_LINE))
_STAMP = re.compile(r"\[\s*(\d+)\.(\d{6})\]")
# Longer than any notice or the guard line: how far back into a line a match
# that a line break cut in two can start.
_SPLIT_REACH = 128

# A position in the console: (line index, column).
Position = tuple[int, int]


def _occurrences(lines: Sequence[Line], pattern: re.Pattern, adjacent) -> list[tuple[Position, re.Match]]:
    """Every match of `pattern` with the position it starts at, in console order.

    A match may also span the break between line i and i + 1 when
    `adjacent(i)` (no line was left out between them): in a panic, bust_spinlocks()
    sets oops_in_progress and serial8250_console_write() then only try-locks
    the port, so bytes the tty layer sends from another CPU, a newline among
    them, can land inside a kernel line.
    """
    found = []
    for i, (_, text) in enumerate(lines):
        found += [((i, m.start()), m) for m in pattern.finditer(text)]
        if i + 1 < len(lines) and adjacent(i):
            joined = text + lines[i + 1][1]
            found += [((i, m.start()), m) for m in pattern.finditer(joined, max(0, len(text) - _SPLIT_REACH))
                      if m.start() < len(text) < m.end()]
    return sorted(found, key=lambda f: f[0])


def trigger_position(lines: Sequence[Line]) -> tuple[Position, str] | None:
    """Where the panic was triggered in console order, and by which marker.

    The sysrq line comes first; the panic line stands in when the sysrq line
    is missing (a panic not triggered by sysrq, or its record overwritten
    before the console reached it). None when neither is on the console.
    """
    marks = [(i, lines[i][1].find(needle), name)
             for needle, name in ((SYSRQ_CRASH, "sysrq"), (PANIC_START, "panic"))
             if (i := find(lines, needle)) is not None]
    if not marks:
        return None
    i, col, name = min(marks)
    return (i, col), name


def _stamp_before(text: str, col: int) -> int | None:
    """The printk timestamp (ns) of the record a match at `col` belongs to:
    the last one before it on its line."""
    stamps = list(_STAMP.finditer(text, 0, col))
    m = stamps[-1] if stamps else None
    return int(m.group(1)) * 1_000_000_000 + int(m.group(2)) * 1000 if m else None


def flood_console(lines: Sequence[Line], tag: str, bulk_before: Sequence[int] | None = None,
                  bulk_lines: int = 0) -> dict:
    """What the console says about printk's ring before and after the trigger.

    `lines` are the kept console lines; flood records (lines with `tag`) may
    be among them, or counted apart by the serial reader (`bulk_lines` in all,
    `bulk_before[i]` of them before `lines[i]`), or both. Returns the drop
    notices (`drop_notices_*`, how many; `dropped_*`, the sum of their N)
    before and after the trigger, the flood records before and after it,
    whether the 13fb0f74d702 guard's line came after it (`guard_fired`), and
    when: `guard_host_ns` (its line's arrival, host clock) and
    `trigger_to_guard_printk_ns` (guest clock, from the printk timestamps of
    the trigger's line and the guard's). Without a trigger everything is
    "before" and the guard has not fired: the guard only acts during a panic.
    """
    def adjacent(i: int) -> bool:
        return bulk_before is None or bulk_before[i] == bulk_before[i + 1]

    trigger = trigger_position(lines)
    at = trigger[0] if trigger else None

    def after(pos: Position) -> bool:
        return at is not None and pos > at

    notices = _occurrences(lines, _DROPPED, adjacent)
    before = [int(m.group(1)) for pos, m in notices if not after(pos)]
    later = [int(m.group(1)) for pos, m in notices if after(pos)]
    guard = next((pos for pos, _ in _occurrences(lines, _GUARD, adjacent) if after(pos)), None)
    stamps = [_stamp_before(lines[p[0]][1], p[1]) if p is not None else None for p in (at, guard)]

    kept = [(i, text.find(tag)) for i, (_, text) in enumerate(lines) if tag in text]
    if at is None:
        bulk_at = bulk_lines
    else:
        bulk_at = bulk_before[at[0]] if bulk_before else 0
    records_before = bulk_at + sum(not after(pos) for pos in kept)
    return {
        "trigger_marker": trigger[1] if trigger else None,
        "drop_notices_before_trigger": len(before),
        "dropped_before_trigger": sum(before),
        "drop_notices_after_trigger": len(later),
        "dropped_after_trigger": sum(later),
        "guard_fired": guard is not None,
        "guard_host_ns": lines[guard[0]][0] if guard is not None else None,
        "trigger_to_guard_printk_ns": stamps[1] - stamps[0] if None not in stamps else None,
        "flood_lines_before_trigger": records_before,
        "flood_lines_after_trigger": bulk_lines + len(kept) - records_before,
    }


_READY_CPUS = re.compile(r"^READY .*\bcpus=(\d+)")


def brought_up_cpus(lines: Sequence[Line]) -> tuple[int, str] | None:
    """The CPUs the first kernel brought up, and its line without the timestamp:
    smp_init()'s "smp: Brought up N node(s), M CPU(s)" (M counts the boot CPU)."""
    for _, text in lines:
        if m := SMP_DONE.search(text):
            return int(m.group(2)), strip_printk(text)
    return None


def ready_cpus_each(progress: Sequence[Line]) -> list[tuple[str, int]]:
    """(stage, CPUs its init saw) of every READY line: a kexec run has two,
    the first kernel's and the second's (`stage=2`)."""
    out = []
    for _, text in progress:
        if (m := _READY_CPUS.match(text)) is not None:
            stage = re.search(r"\bstage=(\S+)", text)
            out.append((stage.group(1) if stage else "1", int(m.group(1))))
    return out


def ready_cpus(progress: Sequence[Line]) -> int | None:
    """The CPUs the guest's init saw (`nproc` in its first READY line), or None."""
    for _, text in progress:
        if text.startswith("READY"):
            m = _READY_CPUS.match(text)
            return int(m.group(1)) if m else None
    return None


# arm64's kexec shutdown (6.1): kernel_kexec() prints "kexec_core: Starting new
# kernel" (pr_notice) and calls machine_shutdown() -> smp_shutdown_nonboot_cpus(),
# which takes each secondary CPU down through CPU hotplug; the boot CPU's
# __cpu_die() -> cpu_psci_cpu_kill() polls PSCI AFFINITY_INFO and prints
# "psci: CPU%d killed (polled %d ms)" (pr_info; the ms are jiffies, so
# multiples of 1000/HZ: 4 ms at Debian's HZ=250); then machine_kexec() checks
# that no CPU is left online and prints "Bye!" (pr_info) before it jumps.
STARTING_NEW_KERNEL = "Starting new kernel"
BYE = "Bye!"
_PSCI_KILLED = re.compile(r"psci: CPU(\d+) killed \(polled (\d+) ms\)")
_PSCI_UNCLEAN = re.compile(r"psci: CPU(\d+) may not have shut down cleanly")
_CPUHP = re.compile(r"cpuhp_(enter|exit|multi_enter):\s+cpu: (\d+)\s+(?:target|state):\s*(-?\d+) step:\s*(\d+)"
                    r"(?: \((\S+)\)| ret: (-?\d+))")
_EXIT = re.compile(r"^EXIT (\d+)$")


def exit_code(progress: Sequence[Line]) -> int | None:
    """The code of init's last `EXIT n` line on the progress channel (an arm64
    guest's status: it powers off instead of a debug exit), or None."""
    codes = [int(m.group(1)) for _, text in progress if (m := _EXIT.match(text))]
    return codes[-1] if codes else None


def arm64_kexec_shutdown(lines: Sequence[Line], start: int = 0) -> dict:
    """The old kernel's shutdown on arm64, from "Starting new kernel" to "Bye!".

    Looked for from line `start` (the host's kexec marker) up to the next
    kernel's first line. Times on both clocks: the printk clock (`*_ns`: the
    arch timer, which under TCG follows the host's clock) and the host's
    arrival times (`*_host_ns`). Per CPU, in the order the CPUs died:
    `killed_cpus`, `psci_polled_ms`, and `per_cpu_shutdown_ns`, the printk
    time from the previous kill line (for the first CPU, from "Starting new
    kernel") to this CPU's: one `_cpu_down()` each, since the CPUs go one at a
    time. `cpuhp_events` counts the cpuhp trace events in the span (boot
    with `trace_event=cpuhp:* tp_printk` to get them).
    """
    nxt = next((b for b in boot_starts(lines) if b > start), len(lines))
    span = lines[:nxt]
    starting = find(span, STARTING_NEW_KERNEL, start)
    bye = find(span, BYE, starting) if starting is not None else None
    kills = []
    unclean = []
    events = 0
    if starting is not None:
        for i in range(starting, bye if bye is not None else nxt):
            text = span[i][1]
            if m := _PSCI_KILLED.search(text):
                kills.append((int(m.group(1)), int(m.group(2)), printk_ns(text), span[i][0]))
            elif m := _PSCI_UNCLEAN.search(text):
                unclean.append(int(m.group(1)))
            elif _CPUHP.search(text):
                events += 1

    def stamp(i: int | None) -> int | None:
        return printk_ns(span[i][1]) if i is not None else None

    t0, t1 = stamp(starting), stamp(bye)
    marks = [t0] + [k[2] for k in kills]
    per_cpu = [b - a if a is not None and b is not None else None for a, b in zip(marks, marks[1:])]
    last = kills[-1][2] if kills else t0
    return {
        "starting_seen": starting is not None,
        "bye_seen": bye is not None,
        "shutdown_ns": t1 - t0 if t0 is not None and t1 is not None else None,
        "shutdown_host_ns": span[bye][0] - span[starting][0] if starting is not None and bye is not None else None,
        "killed_cpus": [k[0] for k in kills],
        "psci_polled_ms": [k[1] for k in kills],
        "per_cpu_shutdown_ns": per_cpu,
        "per_cpu_shutdown_host_ns": [b - a for a, b in zip([span[starting][0]] + [k[3] for k in kills],
                                                           [k[3] for k in kills])] if starting is not None else [],
        "last_kill_to_bye_ns": t1 - last if t1 is not None and last is not None else None,
        "unclean_cpus": unclean,
        "cpuhp_events": events,
        "cpuhp_phases": cpuhp_phases(span[starting:bye]) if starting is not None and events else [],
    }


CpuhpEvent = tuple[str, int, str | None, int]  # (enter|exit|multi_enter, step, callback or None, printk ns)


def cpuhp_events(lines: Sequence[Line]) -> dict[int, list[CpuhpEvent]]:
    """The cpuhp trace events (`tp_printk`) of each CPU, CPUs in the order
    their first event came, events in console order; lines without a printk
    stamp are skipped."""
    return _cpuhp_events_and_chars(lines)[0]


def _cpuhp_events_and_chars(lines: Sequence[Line]) -> tuple[dict[int, list[CpuhpEvent]], dict[int, list[int]]]:
    """`cpuhp_events()`, and beside each event the characters of its console
    line with the newline (what the trace's own printing cost is counted in)."""
    events: dict[int, list[CpuhpEvent]] = {}
    chars: dict[int, list[int]] = {}
    for _, text in lines:
        m = _CPUHP.search(text)
        t = printk_ns(text)
        if m is not None and t is not None:
            cpu = int(m.group(2))
            events.setdefault(cpu, []).append((m.group(1), int(m.group(4)), m.group(5), t))
            chars.setdefault(cpu, []).append(len(text) + 1)
    return events, chars


def cpuhp_phases(lines: Sequence[Line]) -> list[dict]:
    """Each CPU's `_cpu_down()` in phases, from the cpuhp trace events (6.1's
    include/trace/events/cpuhp.h, printed by `tp_printk`), by printk clock:

    - `ap_wake_ns`: from `cpuhp_kick_ap_work`'s enter to the target's first
      event, stored by `cpuhp/N` once it runs: the wake-up of that thread on
      its CPU (the IPI, the switch to it);
    - `ap_teardown_ns`: `cpuhp_kick_ap_work` (the boot CPU wakes the target's
      `cpuhp/N` thread, which runs the AP states down to CPUHP_TEARDOWN_CPU,
      and waits for it), of which `sched_cpu_deactivate_ns` (its
      synchronize_rcu()) is one step;
    - `takedown_cpu_ns`: `takedown_cpu` (stop_machine(take_cpu_down) on every
      online CPU, the target's cpu_die() and PSCI CPU_OFF, and __cpu_die()'s
      wait and AFFINITY_INFO polling), the step the psci kill line is printed in;
    - `bp_dead_ns`: from `takedown_cpu`'s exit to the CPU's last event (the
      boot CPU's DEAD callbacks, down to CPUHP_OFFLINE);
    - `cpu_down_ns`: from the CPU's first event to its last.

    One dict per CPU, in the order they went down; a phase the events do not
    show is None.

    What the trace itself costs (`tp_printk` prints each event synchronously
    from the CPU that hit it, before that CPU goes on): each phase's
    `*_trace_chars`, the characters of the trace lines stored inside it, with
    their printk prefix and newline (the count the model's console charges);
    and `trace_ns_per_char`, the median over the CPU's gaps from a
    `cpuhp_exit` to its next `cpuhp_enter` (`cpuhp_invoke_callback()` going
    from one state to the next: nothing runs between but the printing of the
    exit line) of the gap over that line's characters. A calibration
    subtracts the one times the other to get the phase without its trace.
    """
    events, chars = _cpuhp_events_and_chars(lines)
    out = []
    for cpu, ev in events.items():
        width = chars[cpu]

        def step(name: str) -> tuple[int, int] | None:
            """(enter, exit) event indices of the step named `name`."""
            for i, (kind, idx, fn, _) in enumerate(ev):
                if kind != "exit" and fn == name:
                    end = next((j for j, (k, n, _, _) in enumerate(ev[i + 1:], i + 1) if k == "exit" and n == idx),
                               None)
                    return (i, end) if end is not None else None
            return None

        def span(a: int | None, b: int | None) -> int | None:
            return ev[b][3] - ev[a][3] if a is not None and b is not None else None

        def traced(a: int | None, b: int | None) -> int | None:
            return sum(width[a:b]) if a is not None and b is not None else None

        kick, deact, take = step("cpuhp_kick_ap_work"), step("sched_cpu_deactivate"), step("takedown_cpu")
        last = len(ev) - 1
        per_char = [(ev[i + 1][3] - ev[i][3]) / width[i] for i in range(last)
                    if ev[i][0] == "exit" and ev[i + 1][0] != "exit"]
        first_ap = kick[0] + 1 if kick and kick[0] + 1 < kick[1] else None   # the AP thread's first event
        out.append({
            "cpu": cpu,
            "ap_wake_ns": span(kick[0], first_ap) if first_ap else None,
            "ap_wake_trace_chars": traced(kick[0], first_ap) if first_ap else None,
            "ap_teardown_ns": span(*kick) if kick else None,
            "sched_cpu_deactivate_ns": span(*deact) if deact else None,
            "takedown_cpu_ns": span(*take) if take else None,
            "bp_dead_ns": span(take[1], last) if take else None,
            "cpu_down_ns": ev[-1][3] - ev[0][3],
            "ap_teardown_trace_chars": traced(*kick) if kick else None,
            "sched_cpu_deactivate_trace_chars": traced(*deact) if deact else None,
            "takedown_cpu_trace_chars": traced(*take) if take else None,
            "bp_dead_trace_chars": traced(take[1], last) if take else None,
            "trace_ns_per_char": round(statistics.median(per_char), 1) if per_char else None,
        })
    return out
