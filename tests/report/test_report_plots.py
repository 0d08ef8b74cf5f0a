"""Defect #27's plot parts: the S1 caption says what the bars are, a 0 bar is
labelled at the log axis' floor, and the timeline draws the run's own marks."""

import pytest

from haltlab.report.charts import s1_caption, s1_host_cpu_figure
from haltlab.report.lanes import MARK_STYLES, model_lanes, state_totals
from haltlab.report.timeline import timeline_figure
from haltlab.scenarios.panic import PanicConfig, simulate_panic


def _rows(after_model: float, lab: bool = False) -> list[dict]:
    values = (("S1-samples-before", 55_000, 55_000, 54_988), ("S1-samples-after", 51, after_model, 0),
              ("S1-cycles-before", 36e9, 35.7e9, 35.6e9), ("S1-cycles-after", 37e6, 13_520, 0),
              ("S1-reduction", 961.0, 2.6e6, None))
    return [{"id": i, "seed_value": s, "model_value": m, "lab_value": lv if lab else None}
            for i, s, m, lv in values]


def _texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def test_a_zero_bar_is_labelled_at_the_axis_floor():
    fig = s1_host_cpu_figure(_rows(after_model=0), 13.75, 4000, vmm_background_cpu_s_per_s=0, dpi=40)
    samples, cycles = fig.axes
    assert _texts(samples).count("0") == 1          # the model's "after" samples
    assert "0" not in _texts(cycles)                # 13,520 cycles: a bar with its value
    # with the lab's zeros as well: the lab's "after" samples and cycles
    fig = s1_host_cpu_figure(_rows(after_model=0, lab=True), 13.75, 4000,
                             vmm_background_cpu_s_per_s=0, dpi=40)
    samples, cycles = fig.axes
    assert _texts(samples).count("0") == 2 and _texts(cycles).count("0") == 1


def test_caption_says_what_the_bars_are_and_where_after_comes_from():
    text = " ".join(s1_caption(_rows(0), 0.0033).split())
    assert "taken from the thread" not in text
    assert "vmm_background_cpu_s_per_s = 0.0033" in text and "lab's measurement" in text
    assert "No lab bars" in text and "pvpanic" not in text
    with_lab = " ".join(s1_caption(_rows(0, lab=True), 0).split())
    assert "pvpanic -action panic=pause" in with_lab and "No lab bars" not in with_lab


def _legend_labels(fig) -> list[str]:
    return [t.get_text() for t in fig.legends[0].get_texts()]


def test_timeline_draws_the_runs_marks_by_name():
    """A run whose stop failed marks that, not `others_stopped`: the plot must
    show the failure, not "other CPUs stopped" (arm64 with --others irqsoff)."""
    trace = simulate_panic(PanicConfig(observe_ns=50_000_000))
    marks = dict(trace.kernel.marks)
    marks["stop_failed"] = marks.pop("others_stopped")
    trace.kernel.marks = marks
    labels = _legend_labels(timeline_figure(trace, dpi=30))
    assert MARK_STYLES["stop_failed"][0] in labels
    assert MARK_STYLES["others_stopped"][0] not in labels
    assert MARK_STYLES["panic_entry"][0] in labels and MARK_STYLES["panic_end"][0] in labels


@pytest.mark.parametrize("cfg", [
    PanicConfig(observe_ns=200_000_000, others="busy"),
    PanicConfig(profile="arm64-server-24", others="irqsoff", observe_ns=100_000_000),
    PanicConfig(profile="xeon-gold-6154", panic_cpu=40, observe_ns=100_000_000),
    PanicConfig(observe_ns=100_000_000, pvpanic="pause"),
])
def test_lanes_are_the_machines_accounting(cfg):
    """The one source of intervals sums to the result's `state_ns`, per CPU and
    state, with no gap or overlap from 0 to the end of the machine's time."""
    trace = simulate_panic(cfg)
    lanes = model_lanes(trace)
    totals = state_totals(lanes)
    for cpu, states in trace.result["state_ns"].items():
        assert {s: ns for s, ns in states.items() if ns} == totals[int(cpu)]
    ends = {iv[-1][1] for iv in lanes.cpus.values()}
    assert len(ends) == 1
    for intervals in lanes.cpus.values():
        assert intervals[0][0] == 0
        assert all(a[1] == b[0] for a, b in zip(intervals, intervals[1:]))
    assert lanes.marks_ns == trace.result["marks_ns"]
    assert lanes.start_ns <= lanes.zoom_ns[0] < lanes.zoom_ns[1] <= lanes.end_ns

