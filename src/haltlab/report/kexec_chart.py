"""The kexec sweep's chart: shutdown time against CPU count per design, log-log,
one panel per load (matplotlib object API on Agg, no pyplot, as `report.charts`).

Both axes are logarithmic because the designs differ by orders of magnitude
(S3: about 0.65 s by hotplug, under 5 ms by `smp_send_stop()`) and the CPU
counts double; a design whose time grows linearly with the CPU count then
has slope 1 and a quadratic one slope 2, which the eye reads directly. A
configuration with no shutdown time (it hung, or a BUG() stopped it first) has
no point; the legend says how many each design lacks and how many runs ended in
a BUG() (S3's smp-send-stop on busy CPUs: `idle_task_exit()`'s BUG_ON).
"""

from __future__ import annotations

import io
from typing import Iterable

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from haltlab.sweep.kexec import DESIGNS, KexecGroup

__all__ = ["kexec_sweep_figure", "kexec_sweep_png", "log_log_axes", "figure_png"]

_STYLE = {"hotplug": ("#e6550d", "o"), "smp-send-stop": ("#3182bd", "s"),
          "parallel-hotplug": ("#31a354", "^"), "parallel-hotplug-naive": ("#756bb1", "v")}


def kexec_sweep_figure(groups: Iterable[KexecGroup], profile: str, kernel: str, dpi: int = 110) -> Figure:
    groups = list(groups)
    loads = list(dict.fromkeys(g.others for g in groups))
    fig = Figure(figsize=(5.2 * max(1, len(loads)), 4.4), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, max(1, len(loads)), squeeze=False)[0]
    for ax, load in zip(axes, loads):
        for design in DESIGNS:
            mine = sorted((g for g in groups if g.others == load and g.shutdown == design), key=lambda g: g.cpus)
            if not mine:
                continue
            shown = [g for g in mine if g.shutdown_ns is not None]
            missing = len(mine) - len(shown)
            colour, marker = _STYLE[design]
            bugs = sum(g.outcome == "bug" for g in mine)
            notes = [f"{missing} without a time"] * bool(missing) + [f"{bugs} ended in a BUG()"] * bool(bugs)
            label = design + (f" ({'; '.join(notes)})" if notes else "")
            ax.plot([g.cpus for g in shown], [g.shutdown_ns / 1e9 for g in shown], marker=marker,
                    color=colour, label=label)
        ax.set_title(f"others {load}", fontsize=10)
        log_log_axes(ax, sorted({g.cpus for g in groups if g.others == load}), "shutdown time (s, log scale)")
    fig.suptitle(f"kexec: machine_shutdown() time by design ({profile}, kernel {kernel}, model)", fontsize=11)
    fig.tight_layout()
    return fig


def kexec_sweep_png(groups: Iterable[KexecGroup], profile: str, kernel: str, dpi: int = 110) -> bytes:
    """`kexec_sweep_figure` as PNG bytes (no Software tag: the same sweep, the same bytes)."""
    return figure_png(kexec_sweep_figure(groups, profile, kernel, dpi))


def log_log_axes(ax, counts: list[int], ylabel: str) -> None:
    """A kexec sweep's panel: CPU counts on a log2 axis, ticked at each count, a log y axis, a grid, a legend."""
    ax.set_xscale("log", base=2)
    if counts:
        ax.set_xticks(counts, [str(n) for n in counts])
    ax.minorticks_off() if len(counts) > 1 else None
    ax.set_yscale("log")
    ax.set_xlabel("CPUs")
    ax.set_ylabel(ylabel)
    ax.grid(color="#eeeeee", which="both", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.legend(fontsize=8)


def figure_png(fig: Figure) -> bytes:
    """`fig` as PNG bytes with no Software tag: the same sweep, the same bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()
