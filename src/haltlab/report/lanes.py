"""One run's per-CPU hardware states over time: the one source every view draws from.

The machine records an interval each time a CPU's hardware state changes
(`Machine._close_interval`: cpu, state, start, end); the lab's sampler will give
the same shape for a real guest (`lab_timeline` in a lab result). `Lanes` holds
either, grouped per CPU and sorted, with the run's marks (`panic_entry`,
`others_stopped`, `panic_end`, and whatever else the kernel marked), so that
timeline.png, the HTML swimlanes and the Perfetto JSON cannot disagree about a
single interval: they all read a `Lanes`.

Marks are drawn by name from the run, never from a fixed list: a run that marks
a failed stop shows that mark and not "other CPUs stopped". Names this module
knows get a readable label and a fixed style; any other name is drawn as it is.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["MODEL_CLOCK", "model_label", "Lanes", "STATE_COLOURS", "MARK_STYLES", "mark_style", "model_lanes", "lab_lanes",
           "lab_timeline_of", "marks_in_order", "shown_cpus", "subset_note", "zoom_range", "state_totals"]

# Warm colours burn the CPU (and, in a guest, a host CPU); cool ones sleep.
STATE_COLOURS = {
    "running": "#e6550d", "irqs_off": "#a50f15", "in_nmi": "#756bb1",
    "halted": "#74c476", "mwait": "#3182bd", "offline": "#bdbdbd",
}
UNKNOWN_STATE_COLOUR = "#969696"

# name -> (label, colour, matplotlib line style); the order is the legend's.
MARK_STYLES = {
    "panic_self_stop": ("a losing CPU parks (panic_smp_self_stop)", "#8c6d31", "-."),
    "panic_entry": ("panic() entered", "#000000", "-"),
    "smp_send_stop": ("smp_send_stop() called", "#3182bd", "--"),
    "others_stopped": ("other CPUs stopped", "#555555", "--"),
    "stop_failed": ("stop failed: a CPU never stopped", "#d7301f", "--"),
    "emergency_restart": ("emergency_restart()", "#c51b8a", "-."),
    "crash_kexec": ("machine_kexec() into the kdump kernel", "#c51b8a", "-"),
    "pvpanic": ("pvpanic event (host told)", "#1c9099", "-."),
    "panic_end": ('"end Kernel panic"', "#000000", ":"),
    "panic_loop": ("after-panic loop entered", "#888888", ":"),
}
# Marks this module does not know yet (a new kernel-side mark): drawn with their
# own name, coloured in turn from here so two of them stay apart.
OTHER_MARK_COLOURS = ("#d7301f", "#7a0177", "#0868ac", "#238443")

MODEL_CLOCK = "model time since power-on"

MAX_ALL_CPUS = 32
FIRST_CPUS = 16


@dataclass(frozen=True)
class Lanes:
    """Per-CPU intervals of one run, sorted by start, and the run's marks.

    `cpus` maps every CPU of the run to its `(start_ns, end_ns, state)`
    intervals (empty intervals are never recorded); `start_ns` to `end_ns` is
    the whole run (a model run starts at power-on, 0; a lab timeline where its
    sampler started); `zoom_ns` is the panic's own span, padded, where a view
    of the panic starts."""

    ncpus: int
    panic_cpu: int | None
    start_ns: int
    end_ns: int
    cpus: Mapping[int, tuple[tuple[int, int, str], ...]]
    marks_ns: Mapping[str, int]
    zoom_ns: tuple[int, int]


def mark_style(name: str, others_seen: int = 0) -> tuple[str, str, str]:
    """(label, colour, line style) of a mark; `others_seen` unknown marks came before."""
    if name in MARK_STYLES:
        return MARK_STYLES[name]
    return name, OTHER_MARK_COLOURS[others_seen % len(OTHER_MARK_COLOURS)], "--"


def marks_in_order(marks_ns: Mapping[str, int]) -> list[tuple[str, int, tuple[str, str, str]]]:
    """The run's marks by time (then name), each with its style."""
    out, unknown = [], 0
    for name, ns in sorted(marks_ns.items(), key=lambda kv: (kv[1], kv[0])):
        out.append((name, ns, mark_style(name, unknown)))
        unknown += name not in MARK_STYLES
    return out


def shown_cpus(ncpus: int, panic_cpu: int | None) -> list[int]:
    """Every CPU up to 32; beyond, CPUs 0..15 and the panic CPU."""
    if ncpus <= MAX_ALL_CPUS:
        return list(range(ncpus))
    return sorted(set(range(FIRST_CPUS)) | ({panic_cpu} if panic_cpu is not None else set()))


def subset_note(ncpus: int, panic_cpu: int | None) -> str:
    """What a view of `shown_cpus` leaves out, in words ('' when it shows all)."""
    if ncpus <= MAX_ALL_CPUS:
        return ""
    extra = (f" and the panic CPU{panic_cpu}"
             if panic_cpu is not None and panic_cpu >= FIRST_CPUS else "")
    return f"showing CPUs 0-{FIRST_CPUS - 1}{extra} of {ncpus}"


def zoom_range(marks: Mapping[str, int], console_ends: list[int], end_ns: int) -> tuple[int, int]:
    """The panic's own time span, padded: panic() entry to its last console line."""
    start = marks.get("panic_entry")
    if start is None:
        return 0, end_ns
    stop = marks.get("panic_end") or max((e for e in console_ends if e >= start), default=end_ns)
    pad = max((stop - start) // 12, 100_000)
    return max(0, start - pad), min(end_ns, stop + pad)


def _grouped(ncpus: int, intervals) -> dict[int, tuple[tuple[int, int, str], ...]]:
    per_cpu: dict[int, list[tuple[int, int, str]]] = defaultdict(list)
    for cpu, start, end, state in intervals:
        per_cpu[cpu].append((start, end, state))
    return {cpu: tuple(sorted(per_cpu.get(cpu, ()))) for cpu in range(ncpus)}


def model_label(result: Mapping) -> str:
    """A model run in one line: what its lanes are headed with."""
    cfg = result["config"]
    return (f"model: {result['profile']}, {result['cpus']} CPUs, kernel {result['kernel']}, "
            f"after panic: {result['policies']['after_panic']}, others: {cfg['others']}, "
            f"seed {cfg['seed']}")


def model_lanes(trace) -> Lanes:
    """The lanes of a simulated run (`haltlab.scenarios.panic.PanicRun`)."""
    m, marks = trace.machine, dict(trace.kernel.marks)
    end_ns = trace.result["end_ns"]
    cpus = _grouped(m.ncpus, ((c, s, e, st) for c, st, s, e in m.intervals))
    zoom = zoom_range(marks, [e for _s, e, _c, _t in m.console], end_ns)
    return Lanes(m.ncpus, trace.config.panic_cpu, 0, end_ns, cpus, marks, zoom)


def lab_timeline_of(result: Mapping) -> dict | None:
    """A lab result's `lab_timeline`: its own, or the first run's that has one."""
    if result.get("lab_timeline"):
        return result["lab_timeline"]
    return next((r["lab_timeline"] for r in result.get("runs", ()) if r.get("lab_timeline")), None)


def lab_lanes(timeline: Mapping, panic_cpu: int | None = 0) -> Lanes:
    """The lanes of a real guest, from a lab result's `lab_timeline`:
    `{"cpus": [{"cpu": n, "intervals": [[start_ns, end_ns, state], ...]}],
    "marks_ns": {name: ns}}`. The lab panics CPU 0 (sysrq-c from its init)."""
    rows = timeline["cpus"]
    ncpus = max((int(r["cpu"]) for r in rows), default=-1) + 1
    flat = [(int(r["cpu"]), int(s), int(e), str(st)) for r in rows for s, e, st in r["intervals"]
            if int(e) > int(s)]
    marks = {str(k): int(v) for k, v in timeline.get("marks_ns", {}).items()}
    end_ns = max([e for _c, _s, e, _t in flat] + list(marks.values()) + [0])
    start_ns = min([s for _c, s, _e, _t in flat] + [end_ns])
    lo, hi = zoom_range(marks, [], end_ns)
    return Lanes(ncpus, panic_cpu, start_ns, end_ns, _grouped(ncpus, flat), marks,
                 (max(lo, start_ns), hi))


def state_totals(lanes: Lanes) -> dict[int, dict[str, int]]:
    """ns per state per CPU, summed from the intervals (what `state_ns` reports)."""
    out: dict[int, dict[str, int]] = {}
    for cpu, intervals in lanes.cpus.items():
        totals: dict[str, int] = defaultdict(int)
        for start, end, state in intervals:
            totals[state] += end - start
        out[cpu] = dict(totals)
    return out
