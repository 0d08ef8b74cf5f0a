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
  machine_shutdown().
"""

from __future__ import annotations

import re
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
    "dropped_messages",
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


_DROPPED = re.compile(r"\*\* (\d+) printk messages dropped \*\*")


def dropped_messages(lines: Sequence[Line]) -> int:
    """Records the console skipped because the ring buffer overwrote them.

    console_unlock() prints `** N printk messages dropped **` when it finds a
    gap in sequence numbers: the flood outran the console.
    """
    return sum(int(m.group(1)) for _, text in lines if (m := _DROPPED.search(text)))
