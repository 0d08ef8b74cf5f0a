"""`haltlab reproduce`: every figure of the seed threads, model (and lab) beside it.

A pipeline of small steps: evaluate each `Figure` of the registry into a row,
render the files (JSON, markdown, plots, the HTML page, a trace-event JSON per
run) in memory, and let the caller write them. The JSON holds no timestamps or
paths, only inputs (haltlab version, profile names, lab mode) and results, so
the same inputs give the same bytes; so do the page and the trace files.

`RUNS` names the runs the figures rest on: the model's configuration, the lab
experiment beside it, and the rows that use both. The page draws their lanes
side by side; the lab's appear when its result carries a `lab_timeline` and
the rows did measure it (a lab that could not run is never started again here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from haltlab import __version__
from haltlab.errors import UserError
from haltlab.results import dumps
from haltlab.scenarios.panic import PanicConfig
from haltlab.validation.figures import (
    FIGURES, S1_PROFILE, Figure, LabValue, reset_caches, s1_config, s1_perf_hz,
)

__all__ = ["LAB_MODES", "LAB_PENDING", "RUNS", "ReportRun", "evaluate", "run_reproduce",
           "markdown", "step_count", "fmt_value", "trace_file_name"]

LAB_MODES = ("auto", "skip")
LAB_PENDING = "no lab measurement of this figure yet"
LAB_CLOCK = "lab time (the sampler's clock)"


def _s1_lab(pvpanic: str) -> Callable[[], dict]:
    def lab() -> dict:
        from haltlab.validation.s1_lab import s1_lab_run
        return s1_lab_run(pvpanic)
    return lab


@dataclass(frozen=True)
class ReportRun:
    """A run the report's figures rest on, model and lab."""

    name: str                       # file stem: <name>_timeline.json
    title: str
    config: Callable[[], PanicConfig]
    lab: Callable[[], dict]         # the lab result (cached: the rows already ran it)
    rows: tuple[str, ...]           # the figures that use this run


RUNS = (
    ReportRun("s1_before", "S1 before: the stock mdelay() loop (lab: stock panic)",
              lambda: s1_config("mdelay"), _s1_lab("none"),
              ("S1-samples-before", "S1-cycles-before")),
    ReportRun("s1_after", "S1 after: safe_halt(), S1's patch (lab: pvpanic -action panic=pause)",
              lambda: s1_config("safe_halt"), _s1_lab("pause"),
              ("S1-samples-after", "S1-cycles-after")),
)
TIMELINE_PNG_RUN = "s1_after"       # s1_timeline.png is this run's timeline


def trace_file_name(run: ReportRun) -> str:
    return f"{run.name}_timeline.json"


FILES = ("reproduce.json", "reproduce.md", "report.html", "s1_host_cpu.png", "s1_timeline.png",
         *(trace_file_name(run) for run in RUNS))


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
    return len(FIGURES) + 2 + len(RUNS)


def run_reproduce(lab_mode: str = "auto", *, step: Callable[[str], None] = lambda _d: None,
                  kernel_package: str | None = None, lab_results: dict[str, dict] | None = None
                  ) -> tuple[dict, dict[str, str | bytes]]:
    """Run every figure; return the report and its files, rendered, not yet written.
    `lab_results`: saved `lab flood --build NAME` campaigns for S2's rows and
    `lab kexec --arch arm64` campaigns for S3's (NAME -> result)."""
    from haltlab.validation.s2_figures import set_lab_results
    from haltlab.validation.s3_figures import set_s3_lab_results, split_lab_results
    if lab_mode not in LAB_MODES:
        raise UserError(f"--lab {lab_mode}: choose from {', '.join(LAB_MODES)}")
    s2, s3 = split_lab_results(lab_results or {})
    set_lab_results(s2)
    set_s3_lab_results(s3)
    reset_caches(kernel_package)
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


def _lab_lanes(run: ReportRun, rows: dict[str, dict], lab_mode: str):
    """The lab's lanes for `run` and their heading, or None and why there are none."""
    from haltlab.report.lanes import lab_lanes, lab_timeline_of
    if lab_mode == "skip":
        return None, "no lab run (--lab skip)"
    measured = [i for i in run.rows if rows[i]["lab_value"] is not None]
    if not measured:
        return None, f"no lab run: {rows[run.rows[0]]['lab_note']}"
    try:
        result = run.lab()
    except (UserError, OSError) as e:   # cached runs do not raise; say so if one does
        return None, f"no lab run: {' '.join(str(e).split())}"
    timeline = lab_timeline_of(result)
    label = (f"lab: kernel {result.get('kernel_release')}, {result.get('accelerator')}, "
             f"QEMU {result.get('qemu_version')}, {result.get('cpus')} vCPUs")
    if timeline is None:
        return None, f"{label}: this lab result has no lab_timeline (no per-CPU sampling)"
    return (lab_lanes(timeline), label), ""


def _run_files(run: ReportRun, rows: dict[str, dict], lab_mode: str):
    """One run: its trace, its trace-event JSON, and its page section."""
    from haltlab.report.lanes import MODEL_CLOCK, model_label, model_lanes
    from haltlab.report.swimlanes import absent_panel, panel
    from haltlab.report.trace_events import trace_event_json
    from haltlab.scenarios.panic import simulate_panic
    trace = simulate_panic(run.config())
    lanes = model_lanes(trace)
    lab, why = _lab_lanes(run, rows, lab_mode)
    lab = (lab[1], lab[0]) if lab else None     # (name, lanes), as the model's below
    model_name = model_label(trace.result)
    trace_json = trace_event_json((model_name, lanes), lab, other_data={
        "haltlab_version": __version__, "clock": MODEL_CLOCK, "run": run.title})
    panels = [panel(model_name, MODEL_CLOCK, lanes),
              panel(lab[0], LAB_CLOCK, lab[1]) if lab else absent_panel("lab", why)]
    return trace, lanes, trace_json, (run.title, trace_file_name(run), panels)


def _render(report: dict, step: Callable[[str], None]) -> dict[str, str | bytes]:
    from haltlab.machine.profile import load_profile
    from haltlab.report.charts import s1_host_cpu_png
    from haltlab.report.page import reproduce_html
    from haltlab.report.timeline import timeline_png
    rows = {r["id"]: r for r in report["rows"]}
    files: dict[str, str | bytes] = {"reproduce.json": dumps(report), "reproduce.md": markdown(report)}
    step("s1_host_cpu.png: thread vs model")
    vmm = load_profile(S1_PROFILE).get("vmm_background_cpu_s_per_s")
    files["s1_host_cpu.png"] = s1_host_cpu_png(
        report["rows"], s1_config("mdelay").observe_ns / 1e9, s1_perf_hz(),
        vmm_background_cpu_s_per_s=vmm)
    sections = []
    for run in RUNS:
        step(f"{trace_file_name(run)}: simulate and trace the run")
        trace, lanes, files[trace_file_name(run)], section = _run_files(run, rows, report["lab"])
        sections.append(section)
        if run.name == TIMELINE_PNG_RUN:
            files["s1_timeline.png"] = timeline_png(trace, lanes)
    step("report.html")
    images = [("s1_host_cpu.png", files["s1_host_cpu.png"], "S1's host cost before and after, "
               "thread vs model (vs lab); the caption under the bars says what each is"),
              ("s1_timeline.png", files["s1_timeline.png"], "per-CPU states of the S1 'after' "
               "run (safe_halt); its lanes are below, zoomable")]
    files["report.html"] = reproduce_html(report, images, sections)
    return {name: files[name] for name in FILES}


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
