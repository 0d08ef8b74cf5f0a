"""Per-CPU timeline of a run: hardware state over time, with the panic's marks.

Two panels because the run has two time scales: the panic itself takes
milliseconds, the observation after it (where S1's host cost accrues) seconds.
The top panel zooms on the panic (ms), the bottom shows the whole run (s).
Rendered with matplotlib's object API on the Agg canvas, never pyplot, so no
global figure state and no display is involved. The intervals and marks come
from `haltlab.report.lanes`, as the HTML swimlanes' and the trace JSON's do;
every mark the run has is drawn, by its name.
"""

from __future__ import annotations

import io
from collections import defaultdict

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from haltlab.report.lanes import (
    STATE_COLOURS, UNKNOWN_STATE_COLOUR, Lanes, marks_in_order, model_lanes, shown_cpus,
    subset_note, zoom_range,
)

__all__ = ["STATE_COLOURS", "shown_cpus", "zoom_range", "timeline_figure", "timeline_png"]


def _bars(lanes: Lanes, cpus: list[int]) -> dict[tuple[int, str], list[tuple[int, int]]]:
    bars: dict[tuple[int, str], list[tuple[int, int]]] = defaultdict(list)
    for cpu in cpus:
        for start, end, state in lanes.cpus[cpu]:
            bars[cpu, state].append((start, end - start))
    return bars


def _draw_states(ax, bars, rows: dict[int, int], scale: float, lo: int, hi: int) -> None:
    for (cpu, state), spans in bars.items():
        clipped = [(s / scale, w / scale) for s, w in spans if s < hi and s + w > lo]
        if clipped:
            ax.broken_barh(clipped, (rows[cpu] - 0.4, 0.8),
                           facecolors=STATE_COLOURS.get(state, UNKNOWN_STATE_COLOUR), linewidth=0)
    ax.set_xlim(lo / scale, hi / scale)
    ax.set_ylim(len(rows) - 0.5, -0.5)


def _draw_marks(ax, marks: dict[str, int], scale: float) -> None:
    for _name, ns, (_label, colour, style) in marks_in_order(marks):
        ax.axvline(ns / scale, color=colour, linestyle=style, linewidth=1.2)


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


def _title(trace) -> str:
    r, cfg = trace.result, trace.config
    title = (f"{r['profile']}, {r['cpus']} CPUs, kernel {r['kernel']}, "
             f"after panic: {cfg.after_panic}, others: {cfg.others}, seed {cfg.seed}")
    subset = subset_note(r["cpus"], cfg.panic_cpu)
    return title + (f"\n{subset}" if subset else "")


LEGEND_COLUMNS = 7


def _legend(fig, states: set[str], marks: dict[str, int], top: float) -> None:
    known = [s for s in STATE_COLOURS if s in states]
    handles = [Patch(color=STATE_COLOURS[s], label=s) for s in known]
    handles += [Patch(color=UNKNOWN_STATE_COLOUR, label=s) for s in sorted(states - set(known))]
    handles += [Line2D([], [], color=c, linestyle=ls, label=label)
                for _name, _ns, (label, c, ls) in marks_in_order(marks)]
    fig.legend(handles=handles, loc="upper center", ncol=min(len(handles), LEGEND_COLUMNS),
               fontsize=8, frameon=False, bbox_to_anchor=(0.5, top))


def timeline_figure(trace, lanes: Lanes | None = None, *, dpi: int = 110) -> Figure:
    """The run's timeline (the machine must have recorded intervals), as a Figure."""
    lanes = lanes or model_lanes(trace)
    cpus = shown_cpus(lanes.ncpus, lanes.panic_cpu)
    rows = {cpu: i for i, cpu in enumerate(cpus)}
    bars = _bars(lanes, cpus)
    lo, hi = lanes.zoom_ns
    panel_h = 0.6 + 0.24 * len(cpus)
    legend_rows = -(-(len({s for _c, s in bars}) + len(lanes.marks_ns)) // LEGEND_COLUMNS)
    head_in = 0.85 + 0.2 * legend_rows
    fig = Figure(figsize=(12, head_in + 0.45 + 2 * panel_h), dpi=dpi)
    FigureCanvasAgg(fig)
    zoom, whole = fig.subplots(2, 1, gridspec_kw={"hspace": 1.0 / panel_h})
    _draw_states(zoom, bars, rows, 1e6, lo, hi)
    _draw_marks(zoom, lanes.marks_ns, 1e6)
    zoom.set_xlabel("time since power-on (ms)")
    zoom.set_title("the panic itself (zoom)", fontsize=9, loc="left")
    _draw_states(whole, bars, rows, 1e9, lanes.start_ns, lanes.end_ns)
    _draw_marks(whole, lanes.marks_ns, 1e9)
    _point_at_zoom(whole, lo, hi, lanes.end_ns)
    whole.set_xlabel("time since power-on (s)")
    whole.set_title(_whole_title(trace), fontsize=9, loc="right", pad=14)
    for ax in (zoom, whole):
        _label_rows(ax, rows, lanes.panic_cpu)
        ax.grid(axis="x", color="#eeeeee", linewidth=0.6)
        ax.set_axisbelow(True)
    height = fig.get_figheight()
    fig.suptitle(_title(trace), fontsize=10, y=1 - 0.05 / height, va="top")
    _legend(fig, {s for _c, s in bars}, dict(lanes.marks_ns), 1 - 0.5 / height)
    fig.subplots_adjust(left=0.1, right=0.98, top=1 - head_in / height, bottom=0.45 / height)
    return fig


def timeline_png(trace, lanes: Lanes | None = None, *, dpi: int = 110) -> bytes:
    """The run's timeline as PNG bytes."""
    buf = io.BytesIO()
    timeline_figure(trace, lanes, dpi=dpi).savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _whole_title(trace) -> str:
    r = trace.result
    text = f"the whole run, 0 to {r['end_ns'] / 1e9:.3f} s"
    if r.get("window_ns"):
        text += (f"; host cost measured over the {r['window_ns'] / 1e9:.3f} s after "
                 '"end Kernel panic"')
    return text
