"""Per-CPU timeline of a run: hardware state over time, with the panic's marks.

Two panels because the run has two time scales: the panic itself takes
milliseconds, the observation after it (where S1's host cost accrues) seconds.
The top panel zooms on the panic (ms), the bottom shows the whole run (s).
Rendered with matplotlib's object API on the Agg canvas, never pyplot, so no
global figure state and no display is involved.
"""

from __future__ import annotations

import io
from collections import defaultdict

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

__all__ = ["STATE_COLOURS", "MARKS", "shown_cpus", "zoom_range", "timeline_png"]

# Warm colours burn the CPU (and, in a guest, a host CPU); cool ones sleep.
STATE_COLOURS = {
    "running": "#e6550d", "irqs_off": "#a50f15", "in_nmi": "#756bb1",
    "halted": "#74c476", "mwait": "#3182bd", "offline": "#d9d9d9",
}
MARKS = {
    "panic_entry": ("panic() entered", "#000000", "-"),
    "others_stopped": ("other CPUs stopped", "#555555", "--"),
    "panic_end": ('"end Kernel panic"', "#000000", ":"),
    "emergency_restart": ("emergency_restart()", "#c51b8a", "-."),
}
MAX_ALL_CPUS = 32
FIRST_CPUS = 16


def shown_cpus(ncpus: int, panic_cpu: int) -> list[int]:
    """Every CPU up to 32; beyond, CPUs 0..15 and the panic CPU."""
    if ncpus <= MAX_ALL_CPUS:
        return list(range(ncpus))
    return sorted(set(range(FIRST_CPUS)) | {panic_cpu})


def zoom_range(marks: dict[str, int], console_ends: list[int], end_ns: int) -> tuple[int, int]:
    """The panic's own time span, padded: panic() entry to its last console line."""
    start = marks.get("panic_entry")
    if start is None:
        return 0, end_ns
    stop = marks.get("panic_end") or max((e for e in console_ends if e >= start), default=end_ns)
    pad = max((stop - start) // 12, 100_000)
    return max(0, start - pad), min(end_ns, stop + pad)


def _bars(intervals, cpus: set[int]) -> dict[tuple[int, str], list[tuple[int, int]]]:
    bars: dict[tuple[int, str], list[tuple[int, int]]] = defaultdict(list)
    for cpu, state, start, end in intervals:
        if cpu in cpus:
            bars[cpu, state].append((start, end - start))
    return bars


def _draw_states(ax, bars, rows: dict[int, int], scale: float, lo: int, hi: int) -> None:
    for (cpu, state), spans in bars.items():
        clipped = [(s / scale, w / scale) for s, w in spans if s < hi and s + w > lo]
        if clipped:
            ax.broken_barh(clipped, (rows[cpu] - 0.4, 0.8), facecolors=STATE_COLOURS[state],
                           linewidth=0)
    ax.set_xlim(lo / scale, hi / scale)
    ax.set_ylim(len(rows) - 0.5, -0.5)


def _draw_marks(ax, marks: dict[str, int], scale: float) -> None:
    for name, (_text, colour, style) in MARKS.items():
        if name in marks:
            ax.axvline(marks[name] / scale, color=colour, linestyle=style, linewidth=1.2)


def _point_at_zoom(ax, lo: int, hi: int, end_ns: int) -> None:
    """The panic is too short to see at this scale: shade it and say where it went."""
    if hi - lo < end_ns // 100:     # a sliver: fill it, at least a few pixels wide
        ax.axvspan(lo / 1e9, max(hi, lo + end_ns // 400) / 1e9, color="#fec44f", zorder=3)
    else:                           # wide enough to see: outline it, keep the bars visible
        ax.axvspan(lo / 1e9, hi / 1e9, fill=False, edgecolor="#b36b00", linewidth=1.5, zorder=3)
    ax.annotate("the panic (zoomed above)", xy=(hi / 1e9, -0.5), xytext=(30, 6),
                textcoords="offset points", fontsize=8, annotation_clip=False,
                arrowprops={"arrowstyle": "->", "color": "#b36b00"}, color="#b36b00")


def _label_rows(ax, rows: dict[int, int], panic_cpu: int) -> None:
    ax.set_yticks(list(rows.values()))
    ax.set_yticklabels([f"CPU{c} (panic)" if c == panic_cpu else f"CPU{c}" for c in rows],
                       fontsize=8)


def _title(trace, cpus: list[int]) -> str:
    r, cfg = trace.result, trace.config
    title = (f"{r['profile']}, {r['cpus']} CPUs, kernel {r['kernel']}, "
             f"after panic: {cfg.after_panic}, others: {cfg.others}, seed {cfg.seed}")
    if len(cpus) < r["cpus"]:
        extra = f" and the panic CPU{cfg.panic_cpu}" if cfg.panic_cpu >= FIRST_CPUS else ""
        title += f"\nshowing CPUs 0-{FIRST_CPUS - 1}{extra} of {r['cpus']}"
    return title


def _legend(fig, states: set[str], marks: dict[str, int]) -> None:
    handles = [Patch(color=STATE_COLOURS[s], label=s) for s in STATE_COLOURS if s in states]
    handles += [Line2D([], [], color=c, linestyle=ls, label=t)
                for name, (t, c, ls) in MARKS.items() if name in marks]
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), fontsize=8,
               frameon=False, bbox_to_anchor=(0.5, 0.955))


def timeline_png(trace, *, dpi: int = 110) -> bytes:
    """The run's timeline as PNG bytes (the machine must have recorded intervals)."""
    m, marks, cfg = trace.machine, trace.kernel.marks, trace.config
    cpus = shown_cpus(m.ncpus, cfg.panic_cpu)
    rows = {cpu: i for i, cpu in enumerate(cpus)}
    bars = _bars(m.intervals, set(cpus))
    end_ns = trace.result["end_ns"]
    lo, hi = zoom_range(marks, [e for _s, e, _c, _t in m.console], end_ns)
    panel_h = 0.6 + 0.24 * len(cpus)
    fig = Figure(figsize=(12, 1.3 + 2 * panel_h), dpi=dpi)
    FigureCanvasAgg(fig)
    zoom, whole = fig.subplots(2, 1, gridspec_kw={"hspace": 1.0 / panel_h})
    _draw_states(zoom, bars, rows, 1e6, lo, hi)
    _draw_marks(zoom, marks, 1e6)
    zoom.set_xlabel("time since power-on (ms)")
    zoom.set_title("the panic itself (zoom)", fontsize=9, loc="left")
    _draw_states(whole, bars, rows, 1e9, 0, end_ns)
    _draw_marks(whole, marks, 1e9)
    _point_at_zoom(whole, lo, hi, end_ns)
    whole.set_xlabel("time since power-on (s)")
    whole.set_title(_whole_title(trace), fontsize=9, loc="right", pad=14)
    for ax in (zoom, whole):
        _label_rows(ax, rows, cfg.panic_cpu)
        ax.grid(axis="x", color="#eeeeee", linewidth=0.6)
        ax.set_axisbelow(True)
    fig.suptitle(_title(trace, cpus), fontsize=10, y=0.995)
    _legend(fig, {s for _c, s in bars}, marks)
    height = fig.get_figheight()
    fig.subplots_adjust(left=0.1, right=0.98, top=1 - 1.0 / height, bottom=0.55 / height)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _whole_title(trace) -> str:
    r = trace.result
    text = f"the whole run, 0 to {r['end_ns'] / 1e9:.3f} s"
    if r.get("window_ns"):
        text += (f"; host cost measured over the {r['window_ns'] / 1e9:.3f} s after "
                 '"end Kernel panic"')
    return text
