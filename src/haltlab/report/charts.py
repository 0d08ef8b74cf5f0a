"""Charts of the reproduce report (matplotlib object API on Agg, no pyplot).

A log axis has no place for 0, and S1's "after" is 0 in the model (samples)
and in the lab: such a bar is labelled "0" at the axis floor instead of
vanishing. The caption says what each colour is and where its 'after' comes
from, from the inputs it is given, not from a fixed sentence about the numbers.
"""

from __future__ import annotations

import io
import textwrap

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["s1_host_cpu_figure", "s1_host_cpu_png", "s1_caption"]

SOURCES = (("seed_value", "thread (S1's host perf, KVM)", "#636363"),
           ("model_value", "model (kvm-x86 profile)", "#e6550d"),
           ("lab_value", "lab (real guest here; after = pvpanic pause)", "#3182bd"))


def _short(v: float) -> str:
    """55.06K, 36.09G: short enough for a bar label, precise enough to compare."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e4, "K")):
        if v >= scale:
            return f"{v / (1e3 if suffix == 'K' else scale):.2f}{suffix}"
    return f"{v:,.0f}"


def _bars(ax, rows: dict[str, dict], ids: tuple[str, str], unit: str) -> None:
    sources = [s for s in SOURCES if any(rows[i][s[0]] is not None for i in ids)]
    width = 0.8 / len(sources)
    floor = ax.get_xaxis_transform()        # x in data, y in axes fractions: 0 is the floor
    for k, (field, label, colour) in enumerate(sources):
        xs = [g + (k - (len(sources) - 1) / 2) * width for g in range(len(ids))]
        values = [rows[i][field] for i in ids]
        shown = [(x, v) for x, v in zip(xs, values) if v]
        ax.bar([x for x, _ in shown], [v for _, v in shown], width, color=colour, label=label)
        for x, v in shown:
            ax.annotate(_short(v), (x, v), xytext=(0, 2), textcoords="offset points",
                        ha="center", fontsize=8)
        for x in (x for x, v in zip(xs, values) if v == 0):
            ax.plot([x - width * 0.45, x + width * 0.45], [0.004, 0.004], transform=floor,
                    color=colour, linewidth=3, solid_capstyle="butt", clip_on=False)
            ax.text(x, 0.015, "0", transform=floor, ha="center", va="bottom", fontsize=9,
                    fontweight="bold", color=colour)
    ax.set_yscale("log")
    ax.set_xticks(range(len(ids)))
    ax.set_xticklabels(["before: mdelay() loop\n(stock)", "after: safe_halt()\n(S1 patch)"])
    ax.set_ylabel(f"{unit} (log scale)")
    ax.margins(y=0.15)
    ax.grid(axis="y", color="#eeeeee", which="both", linewidth=0.6)
    ax.set_axisbelow(True)


def s1_caption(rows: list[dict], vmm_background_cpu_s_per_s: float) -> str:
    """What the bars are, for the caption under the S1 chart."""
    lab = any(r["lab_value"] is not None for r in rows)
    text = ("Grey: S1's host perf on its KVM host (the thread). Orange: the model's kvm-x86 run "
            "over the same window, before = stock mdelay() loop, after = S1's safe_halt(). "
            + ("Blue: a real guest under QEMU on this host, before = stock panic, after = pvpanic "
               "-action panic=pause (S1's patch never merged, so the lab cannot boot it). "
               if lab else "No lab bars: the lab did not run. ")
            + "The model's 'before' matches by construction (the window and host clock are "
            "derived from it). Its 'after' is the vCPUs' own host time after \"end Kernel panic\" "
            "plus the VMM background, which is the lab's measurement "
            f"(vmm_background_cpu_s_per_s = {vmm_background_cpu_s_per_s:g}), not the thread's. "
            "A 0 cannot sit on a log axis: it is labelled at the floor. See reproduce.md.")
    return "\n".join(textwrap.wrap(text, 175))


def s1_host_cpu_figure(rows: list[dict], window_s: float, perf_hz: int, *,
                       vmm_background_cpu_s_per_s: float, dpi: int = 110) -> Figure:
    """S1 before vs after, thread vs model (vs lab when measured), samples and cycles."""
    by_id = {r["id"]: r for r in rows}
    fig = Figure(figsize=(10, 4.6), dpi=dpi)
    FigureCanvasAgg(fig)
    samples, cycles = fig.subplots(1, 2)
    _bars(samples, by_id, ("S1-samples-before", "S1-samples-after"), "perf samples")
    _bars(cycles, by_id, ("S1-cycles-before", "S1-cycles-after"), "cycles")
    samples.set_title(f"perf samples (cycles:P, {perf_hz} Hz)", fontsize=10)
    cycles.set_title("event count (cycles)", fontsize=10)
    handles, labels = samples.get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="upper center", ncol=len(labels), frameon=False,
               bbox_to_anchor=(0.5, 0.935))
    red = by_id["S1-reduction"]
    lab = "" if red["lab_value"] is None else f", lab {red['lab_value']:,.0f}x"
    fig.suptitle(f"S1: host cost of a panicked KVM guest over {window_s:g} s; reduction "
                 f"thread {red['seed_value']:,.0f}x, model {red['model_value']:,.0f}x{lab}",
                 fontsize=11)
    fig.text(0.5, 0.012, s1_caption(rows, vmm_background_cpu_s_per_s), ha="center",
             va="bottom", fontsize=7, color="#444444", linespacing=1.4)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.83, bottom=0.25, wspace=0.28)
    return fig


def s1_host_cpu_png(rows: list[dict], window_s: float, perf_hz: int, *,
                    vmm_background_cpu_s_per_s: float, dpi: int = 110) -> bytes:
    """`s1_host_cpu_figure` as PNG bytes."""
    fig = s1_host_cpu_figure(rows, window_s, perf_hz, dpi=dpi,
                             vmm_background_cpu_s_per_s=vmm_background_cpu_s_per_s)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()
