"""`haltlab reproduce`: every figure of the seed threads, model (and lab) beside it.

A pipeline of small steps: evaluate each `Figure` of the registry into a row,
render the files (JSON, markdown, plots) in memory, and let the caller write
them. The JSON holds no timestamps or paths, only inputs (haltlab version,
profile names, lab mode) and results, so the same inputs give the same bytes.
"""

from __future__ import annotations

from typing import Callable

from haltlab import __version__
from haltlab.errors import UserError
from haltlab.report.figures import (
    FIGURES, S1_PROFILE, Figure, LabValue, reset_caches, s1_config, s1_perf_hz,
)
from haltlab.results import dumps

__all__ = ["LAB_MODES", "LAB_PENDING", "evaluate", "run_reproduce", "markdown", "step_count",
           "fmt_value"]

LAB_MODES = ("auto", "skip")
LAB_PENDING = "no lab measurement of this figure yet"
FILES = ("reproduce.json", "reproduce.md", "s1_host_cpu.png", "s1_timeline.png")


def _lab(fig: Figure, mode: str) -> LabValue:
    if fig.lab is None:
        return LabValue(None, LAB_PENDING)
    if mode == "skip":
        return LabValue(None, "skipped (--lab skip)")
    try:
        return fig.lab() or LabValue(None, "lab: no measurement for this figure")
    except (UserError, OSError) as e:   # the lab is unavailable here: say why, go on
        return LabValue(None, f"lab unavailable: {' '.join(str(e).split())}")


def evaluate(fig: Figure, lab_mode: str) -> dict:
    """One row: the thread's figure, the model's, the lab's, and how they compare."""
    model = fig.model()
    lab = _lab(fig, lab_mode)
    return {
        "id": fig.id, "thread": fig.thread, "quantity": fig.quantity, "unit": fig.unit,
        "seed_value": fig.seed_value, "seed_source": fig.seed_source,
        "model_value": model.value,
        "model_over_seed": model.value / fig.seed_value if fig.seed_value else None,
        "lab_value": lab.value, "lab_note": lab.note, "note": model.note,
    }


def step_count() -> int:
    return len(FIGURES) + 3


def run_reproduce(lab_mode: str = "auto", *, step: Callable[[str], None] = lambda _d: None
              ) -> tuple[dict, dict[str, str | bytes]]:
    """Run every figure; return the report and its files, rendered, not yet written."""
    if lab_mode not in LAB_MODES:
        raise UserError(f"--lab {lab_mode}: choose from {', '.join(LAB_MODES)}")
    reset_caches()
    rows = []
    for fig in FIGURES:
        step(f"{fig.id}: model" + ("" if fig.lab is None or lab_mode == "skip" else " and lab"))
        rows.append(evaluate(fig, lab_mode))
    report = {
        "haltlab_version": __version__,
        "profiles": sorted({f.profile for f in FIGURES}),
        "lab": lab_mode,
        "threads": sorted({f.thread for f in FIGURES}),
        "files": list(FILES),
        "rows": rows,
    }
    return report, _render(report, step)


def _render(report: dict, step: Callable[[str], None]) -> dict[str, str | bytes]:
    from haltlab.machine.profile import load_profile
    from haltlab.report.charts import s1_host_cpu_png
    from haltlab.report.timeline import timeline_png
    from haltlab.scenarios.panic import simulate_panic
    step("s1_host_cpu.png: thread vs model")
    vmm = load_profile(S1_PROFILE).get("vmm_background_cpu_s_per_s")
    host = s1_host_cpu_png(report["rows"], s1_config("mdelay").observe_ns / 1e9, s1_perf_hz(),
                           vmm_background_cpu_s_per_s=vmm)
    step("s1_timeline.png: simulate the safe_halt run")
    trace = simulate_panic(s1_config("safe_halt"))
    step("s1_timeline.png: plot")
    timeline = timeline_png(trace)
    return {"reproduce.json": dumps(report), "reproduce.md": markdown(report),
            "s1_host_cpu.png": host, "s1_timeline.png": timeline}


def fmt_value(v: float | int | None) -> str:
    if v is None:
        return "-"
    if isinstance(v, int) or float(v).is_integer() and abs(v) >= 1000:
        return f"{int(v):,}"
    return f"{v:,.1f}" if abs(v) >= 100 else f"{v:.4g}"


def _ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def markdown(report: dict) -> str:
    lines = [
        "# haltlab reproduce",
        "",
        f"haltlab {report['haltlab_version']}; profiles: {', '.join(report['profiles'])}; "
        f"lab: {report['lab']}.",
        "",
        "| id | quantity | unit | thread | model | model / thread | lab | notes |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for n, r in enumerate(report["rows"], 1):
        lines.append(f"| {r['id']} | {r['quantity']} | {r['unit']} | {fmt_value(r['seed_value'])} "
                     f"| {fmt_value(r['model_value'])} | {_ratio(r['model_over_seed'])} "
                     f"| {fmt_value(r['lab_value'])} | [{n}] |")
    lines += ["", "## Notes", ""]
    for n, r in enumerate(report["rows"], 1):
        lines.append(f"{n}. **{r['id']}**: thread: {r['seed_source']}. {r['note']} "
                     f"Lab: {r['lab_note']}.")
    return "\n".join(lines) + "\n"
