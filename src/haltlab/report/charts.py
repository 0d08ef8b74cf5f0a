"""Charts of the reproduce report (matplotlib object API on Agg, no pyplot)."""

from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["s1_host_cpu_png"]

SOURCES = (("seed_value", "thread (host perf)", "#636363"),
           ("model_value", "model", "#e6550d"),
           ("lab_value", "lab", "#3182bd"))


def _short(v: float) -> str:
    """55.06K, 36.09G: short enough for a bar label, precise enough to compare."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e4, "K")):
        if v >= scale:
            return f"{v / (1e3 if suffix == 'K' else scale):.2f}{suffix}"
    return f"{v:,.0f}"


def _bars(ax, rows: dict[str, dict], ids: tuple[str, str], unit: str) -> None:
    sources = [s for s in SOURCES if any(rows[i][s[0]] is not None for i in ids)]
    width = 0.8 / len(sources)
    for k, (field, label, colour) in enumerate(sources):
        xs = [g + (k - (len(sources) - 1) / 2) * width for g in range(len(ids))]
        values = [rows[i][field] for i in ids]
        shown = [(x, v) for x, v in zip(xs, values) if v]
        ax.bar([x for x, _ in shown], [v for _, v in shown], width, color=colour, label=label)
        for x, v in shown:
            ax.annotate(_short(v), (x, v), xytext=(0, 2), textcoords="offset points",
                        ha="center", fontsize=8)
    ax.set_yscale("log")
    ax.set_xticks(range(len(ids)))
    ax.set_xticklabels(["before: mdelay() loop\n(stock)", "after: safe_halt()\n(S1 patch)"])
    ax.set_ylabel(f"{unit} (log scale)")
    ax.margins(y=0.15)
    ax.grid(axis="y", color="#eeeeee", which="both", linewidth=0.6)
    ax.set_axisbelow(True)


def s1_host_cpu_png(rows: list[dict], window_s: float, perf_hz: int, *, dpi: int = 110) -> bytes:
    """S1 before vs after, thread vs model (vs lab when measured), samples and cycles."""
    by_id = {r["id"]: r for r in rows}
    fig = Figure(figsize=(10, 4.2), dpi=dpi)
    FigureCanvasAgg(fig)
    samples, cycles = fig.subplots(1, 2)
    _bars(samples, by_id, ("S1-samples-before", "S1-samples-after"), "perf samples")
    _bars(cycles, by_id, ("S1-cycles-before", "S1-cycles-after"), "cycles")
    samples.set_title(f"perf samples (cycles:P, {perf_hz} Hz)", fontsize=10)
    cycles.set_title("event count (cycles)", fontsize=10)
    samples.legend(fontsize=8, loc="upper right")
    red = by_id["S1-reduction"]
    fig.suptitle(f"S1: host cost of a panicked KVM guest over {window_s:g} s; reduction "
                 f"thread {red['seed_value']:,.0f}x, model {red['model_value']:,.0f}x", fontsize=11)
    fig.text(0.5, 0.01, "The model's 'before' matches by construction (window and host clock "
             "come from it); its 'after' is mostly VMM background, also taken from the thread. "
             "See reproduce.md.", ha="center", fontsize=7.5, color="#555555")
    fig.subplots_adjust(left=0.08, right=0.98, top=0.86, bottom=0.2, wspace=0.28)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()
