"""The x86 kexec sweep's chart (S4): smp_init() and the whole reboot's downtime
against CPU count per bring-up design, log-log (matplotlib object API on Agg,
no pyplot, as `report.kexec_chart`).

Log-log for the same reason as S3's chart: the CPU counts double and the
designs differ by a factor that grows with them (serial INIT/SIPI is linear
in the APs, the parallel and parked ones much flatter), so slopes read as
growth orders. park-mwait has one line per C-state (the same colour, the
marker by C-state: the deeper state's exit latency is the only difference);
the other designs wait in no C-state of their choosing and have one line. A
configuration without a time (reset or hung) has no point; the legend says
how many a variant lacks.
"""

from __future__ import annotations

from typing import Iterable

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from haltlab.report.kexec_chart import figure_png, log_log_axes
from haltlab.sweep.kexec_x86 import X86KexecGroup

__all__ = ["kexec_x86_sweep_figure", "kexec_x86_sweep_png"]

_COLOUR = {"init-sipi": "#e6550d", "parallel": "#3182bd", "park-spin": "#31a354", "park-mwait": "#756bb1"}
_MARKER = {"-": "o", "C1": "^", "C1E": "s", "C6": "v"}
_DASH = {"-": "-", "C1": "-", "C1E": "--", "C6": ":"}
_PANELS = (("smp_init_ns", "smp_init() (s, log scale)"), ("downtime_ns", "kexec downtime to init (s, log scale)"))


def kexec_x86_sweep_figure(groups: Iterable[X86KexecGroup], profile: str, kernel: str, dpi: int = 110) -> Figure:
    groups = list(groups)
    variants = list(dict.fromkeys((g.bringup, g.cstate) for g in groups))
    fig = Figure(figsize=(10.8, 4.6), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(_PANELS), squeeze=False)[0]
    counts = sorted({g.cpus for g in groups})
    for ax, (field, ylabel) in zip(axes, _PANELS):
        for design, cstate in variants:
            mine = sorted((g for g in groups if (g.bringup, g.cstate) == (design, cstate)), key=lambda g: g.cpus)
            shown = [g for g in mine if getattr(g, field) is not None]
            missing = len(mine) - len(shown)
            label = mine[0].variant + (f" ({missing} without a time)" if missing else "")
            ax.plot([g.cpus for g in shown], [getattr(g, field) / 1e9 for g in shown], marker=_MARKER.get(cstate, "o"),
                    linestyle=_DASH.get(cstate, "-"), color=_COLOUR.get(design, "#636363"), label=label)
        log_log_axes(ax, counts, ylabel)
    fig.suptitle(f"x86 kexec: smp_init() and downtime by bring-up design ({profile}, kernel {kernel}, model)",
                 fontsize=11)
    fig.tight_layout()
    return fig


def kexec_x86_sweep_png(groups: Iterable[X86KexecGroup], profile: str, kernel: str, dpi: int = 110) -> bytes:
    """`kexec_x86_sweep_figure` as PNG bytes (no Software tag: the same sweep, the same bytes)."""
    return figure_png(kexec_x86_sweep_figure(groups, profile, kernel, dpi))
