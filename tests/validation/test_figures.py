"""The figure registry and the reproduce report, with the model stubbed where the
point is the plumbing, not the numbers."""

import pytest

from haltlab.errors import UserError
from haltlab.validation import figures
from haltlab.validation.figures import FIGURES, Figure, LabValue, ModelValue, s1_config
from haltlab.report.reproduce import LAB_PENDING, evaluate, fmt_value, markdown


def test_ids_are_unique_and_the_thread_figures_are_the_threads():
    ids = [f.id for f in FIGURES]
    assert len(ids) == len(set(ids))
    seed = {f.id: f.seed_value for f in FIGURES}
    assert seed["S1-samples-before"] == 55_000 and seed["S1-samples-after"] == 51
    assert seed["S1-cycles-before"] == 36_090_772_574 and seed["S1-cycles-after"] == 37_553_709
    assert seed["S1-reduction"] == pytest.approx(961.04, abs=0.01)


def test_s1_window_is_inferred_from_55k_samples_at_4000_hz():
    cfg = s1_config("mdelay")
    assert cfg.observe_ns == 13_750_000_000
    assert (cfg.profile, cfg.others, cfg.cpus) == ("kvm-x86", "idle", None)


def test_model_values_come_from_run_panic(monkeypatch):
    calls = []

    def fake_run_panic(cfg):
        calls.append(cfg.after_panic)
        host = 1000 if cfg.after_panic == "mdelay" else 10
        return {"profile": "kvm-x86", "cpus": 8, "policies": {"after_panic": cfg.after_panic},
                "window_ns": cfg.observe_ns, "config": {"panic_cpu": 0},
                "perf_samples": host, "cycles": host * 7,
                "per_vcpu": [{"perf_samples": 1, "cycles": 7, "wakeups": 0}]}

    monkeypatch.setattr(figures, "run_panic", fake_run_panic)
    figures.reset_caches()
    try:
        values = {f.id: f.model().value for f in FIGURES if f.thread == "S1"}
    finally:
        figures.reset_caches()
    assert values == {"S1-samples-before": 1000, "S1-samples-after": 10,
                      "S1-cycles-before": 7000, "S1-cycles-after": 70, "S1-reduction": 100.0}
    assert sorted(set(calls)) == ["mdelay", "safe_halt"]


def _figure(lab=None) -> Figure:
    return Figure("T-x", "T", "things", "things", 10, "here", "kvm-x86",
                  lambda: ModelValue(12, "why"), lab)


def test_evaluate_row_and_lab_modes():
    row = evaluate(_figure(), "auto")
    assert row["model_value"] == 12 and row["model_over_seed"] == 1.2
    assert row["lab_value"] is None and row["lab_note"] == LAB_PENDING

    def broken_lab():
        raise UserError("qemu-system-x86_64: not installed")

    assert "unavailable" in evaluate(_figure(broken_lab), "auto")["lab_note"]
    assert evaluate(_figure(broken_lab), "skip")["lab_note"] == "skipped (--lab skip)"
    assert evaluate(_figure(lambda: LabValue(11, "measured")), "auto")["lab_value"] == 11


def test_markdown_table_and_numbers():
    report = {"haltlab_version": "0", "profiles": ["kvm-x86"], "lab": "skip",
              "rows": [evaluate(_figure(), "skip")]}
    md = markdown(report)
    assert "| T-x | things | things | 10 | 12 | 1.200 | - | [1] |" in md
    assert "1. **T-x**: thread: here. why Lab:" in md
    assert (fmt_value(36_090_772_574), fmt_value(961.04), fmt_value(1.0006), fmt_value(None)) == \
        ("36,090,772,574", "961.0", "1.001", "-")


def test_a_lab_whose_runs_all_hung_is_a_note_not_a_traceback(monkeypatch):
    """Every lab run hung: no host CPU was measured (None); the row says so."""
    import haltlab.validation.s1_lab as s1_lab
    from haltlab.validation.figures import FIGURES
    monkeypatch.setattr(s1_lab, "s1_lab_run", lambda build: {
        "host_cpu_s_per_s": None, "host_cpu_s_per_s_stats": None, "outcomes": {"hung-silent": 2}})
    fig = next(f for f in FIGURES if f.id == "S1-samples-before")
    v = fig.lab()
    assert v.value is None and "hung-silent 2" in v.note
