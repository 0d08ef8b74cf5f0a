"""S2's reproduce rows: the thread's 200/1,409 beside the model's campaign, run
for real on a few runs (the run counts are module constants)."""

import pytest

from haltlab.validation.figures import FIGURES    # first: it imports s2_figures at its end
from haltlab.validation import s2_figures
from haltlab.report.reproduce import evaluate
from haltlab.sweep.flood import FloodSweep, run_campaign
from haltlab.machine.profile import load_profile


@pytest.fixture
def few_runs(monkeypatch):
    monkeypatch.setattr(s2_figures, "S2_RUNS", 6)
    monkeypatch.setattr(s2_figures, "S2_SENSITIVITY_RUNS", 6)


def _row(fig_id):
    (fig,) = [f for f in FIGURES if f.id == fig_id]
    return evaluate(fig, "skip")


def test_the_rows_follow_s1_and_carry_the_threads_figure():
    ids = [f.id for f in FIGURES]
    assert ids[:5] == ["S1-samples-before", "S1-samples-after", "S1-cycles-before", "S1-cycles-after",
                       "S1-reduction"]
    s2 = [f for f in FIGURES if f.thread == "S2" and f.unit == "fraction"]
    assert [f.id for f in s2] == ["S2-hang-rate", "S2-sensitivity-devkmsg-50us", "S2-sensitivity-devkmsg-150us",
                                  "S2-sensitivity-devkmsg-250us"]
    assert all(f.seed_value == pytest.approx(200 / 1409) for f in s2)
    verdicts = [f.id for f in FIGURES if f.thread == "S2" and f.unit == "verdict"]
    assert verdicts == ["S2-explore-petr", "S2-explore-kdump-deadlock"]


def test_the_model_value_is_the_campaigns_rate(few_runs):
    row = _row("S2-hang-rate")
    (v,) = run_campaign(FloodSweep.parse(kernels=["v5.17+d51507098ff9"], runs=6, seed=0))
    assert row["model_value"] == v.hang_rate
    assert f"{v.hung}/6 hung" in row["note"] and "95% Wilson" in row["note"] and "KVM assumed" in row["note"]


def test_a_sensitivity_row_overrides_only_devkmsg_user_ns(few_runs):
    row = _row("S2-sensitivity-devkmsg-250us")
    slow = load_profile("kvm-x86").with_overrides(devkmsg_user_ns="250 us")
    (v,) = run_campaign(FloodSweep.parse(profile=slow, kernels=["v5.17+d51507098ff9"], runs=6, seed=0))
    assert row["model_value"] == v.hang_rate > 0     # the slow flood loop hangs, as the note explains
    assert "devkmsg_user_ns = 250 us" in row["note"] and f"{v.decided['livelock']} livelocks proven" in row["note"]
