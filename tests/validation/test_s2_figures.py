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
                                  "S2-sensitivity-devkmsg-250us", "S2-tcg-s2-petr", "S2-tcg-s2-stephen"]
    assert all(f.seed_value == pytest.approx(200 / 1409) for f in s2[:-1])
    assert s2[-1].seed_value == 0 and "an expectation, not a measurement" in s2[-1].seed_source
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


# --- the lab's builds of S2's kernels beside the model on their specs (issue 9) ---

def _saved(build, outcomes):
    runs = [{"triggered": True, "outcome": o, "guard_fired": False, "drop_notices_after_trigger": 0,
             "dropped_after_trigger": 0, "trigger_to_end_ns": None, "flood_lines_before_trigger": 1,
             "delay_s": 1.0} for o in outcomes]
    return {"experiment": "flood", "cpus": 2, "runs": runs, "n_runs": len(runs), "timeout_ns": 60_000_000_000,
            "options": {"line_len": 991, "delay_min_s": 0.5, "delay_max_s": 2.0, "timeout_s": 60.0},
            "kernel_release": "6.1.192", "accelerator": "tcg", "qemu_version": "7.2.22",
            "kernel_build": {"patch_set": build, "source_package": "linux-source-6.1", "source_version": "6.1.192-3",
                             "config_sha256": "ab" * 32, "gcc_version": "gcc 12.2.0"}}


@pytest.fixture
def lab_results():
    yield s2_figures.set_lab_results
    s2_figures.set_lab_results({})


def test_a_tcg_row_runs_the_builds_spec_and_reads_its_lab_campaign(monkeypatch, lab_results):
    from haltlab.validation.flood import build_model
    monkeypatch.setattr(s2_figures, "S2_TCG_RUNS", 6)
    lab_results({"s2-petr": _saved("s2-petr", ["hung-with-output"] * 3 + ["panicked-and-finished"])})
    (fig,) = [f for f in FIGURES if f.id == "S2-tcg-s2-petr"]
    row = evaluate(fig, "auto")
    m = build_model("s2-petr")
    (v,) = run_campaign(FloodSweep.parse(profile="qemu-tcg-x86", kernels=[m.kernel], runs=6, seed=0, flooders=1))
    assert row["model_value"] == v.hang_rate and m.kernel in row["note"]
    assert row["lab_value"] == 0.75 and "3/4 triggered runs hung" in row["lab_note"]
    assert "patch set s2-petr" in row["lab_note"] and "95% Wilson 30.1-95.4%" in row["lab_note"]
    main = evaluate(next(f for f in FIGURES if f.id == "S2-hang-rate"), "auto")
    assert main["lab_value"] == 0.75 and "lab flood --build s2-petr" in main["lab_note"]


def test_without_a_saved_campaign_the_lab_value_says_how_to_give_one(lab_results):
    (fig,) = [f for f in FIGURES if f.id == "S2-tcg-s2-stephen"]
    lab = fig.lab()
    assert lab.value is None and "--lab-result s2-stephen=FILE" in lab.note


def test_a_campaign_of_another_build_or_an_unknown_name_is_refused(lab_results):
    from haltlab.errors import ConfigError
    with pytest.raises(ConfigError, match="kernel_build.patch_set s2-stephen: the case boots the build s2-petr"):
        lab_results({"s2-petr": _saved("s2-stephen", ["panicked-and-finished"])})
    with pytest.raises(ConfigError, match="no S2 row reads it"):
        lab_results({"stock": _saved("stock", ["panicked-and-finished"])})


def test_the_cli_refuses_a_bad_lab_result_in_one_line(tmp_path):
    import json
    from click.testing import CliRunner
    from haltlab.cli import cli
    path = tmp_path / "petr.json"
    path.write_text(json.dumps(_saved("s2-stephen", ["panicked-and-finished"])))
    for args in (["--lab-result", f"s2-petr={path}"], ["--lab-result", "s2-petr"]):
        r = CliRunner().invoke(cli, ["reproduce", "--out", str(tmp_path / "out"), *args])
        lines = r.output.strip().splitlines()
        assert r.exit_code == 2 and len(lines) == 1 and lines[0].startswith("haltlab: error: "), r.output
    assert not (tmp_path / "out").exists()
