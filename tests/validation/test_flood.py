"""S2's flood in validate: one measure per quantity on both sides, stand-in lab
results compared by hand, mismatched inputs refused in one line, and the
solved devkmsg_user_ns reproducing the lab's records per drop notice."""

import json

import pytest
from click.testing import CliRunner

from haltlab.errors import ConfigError, UserError
from haltlab.machine.profile import load_profile
from haltlab.validation.calibrate import _with_values
from haltlab.validation.calibrate_flood import calibrate_flood, model_records_per_notice
from haltlab.validation.cases import FLOOD_CASES
from haltlab.validation.flood import (
    check_lab_flood, compare_flood, flood_measures, lab_flood_runs, model_flood_runs, notes_4_holds,
)

CPUS2 = next(c for c in FLOOD_CASES if c.cpus == 2)
OPTIONS = {"line_len": 991, "delay_min_s": 0.5, "delay_max_s": 2.0, "timeout_s": 60.0}


def _run(notices, dropped, end_ms, guard, before=500, delay=1.0, triggered=True, hung=False):
    return {"triggered": triggered, "guard_fired": guard, "drop_notices_after_trigger": notices,
            "dropped_after_trigger": dropped, "trigger_to_end_ns": None if hung else end_ms * 1_000_000,
            "flood_lines_before_trigger": before, "delay_s": delay,
            "outcome": "hung-with-output" if hung else "panicked-and-finished"}


def _lab(runs, cpus=2, **kw):
    return {"experiment": "flood", "cpus": cpus, "options": OPTIONS, "runs": runs, "outcomes": {},
            "n_runs": len(runs), "kernel_release": "6.1.0-57-amd64", "kernel_package": "linux-image-6.1.0-57-amd64",
            "kernel_package_version": "6.1.192-3", "qemu_version": "7.2.22", "accelerator": "tcg",
            "kernel_source": "debian"} | kw


STAND_IN = [_run(0, 0, 10, False, before=400, delay=0.8), _run(12, 240, 400, True, before=600, delay=1.2),
            _run(13, 130, 500, True), _run(0, 0, 30, False), _run(0, 0, 5, False, triggered=False)]


def test_stand_in_lab_measures_by_hand():
    rows = {r["quantity"]: r for r in compare_flood(CPUS2, model_flood_runs(2, seeds=4), _lab(STAND_IN))}
    assert rows["records_per_drop_notice"]["lab_median"] == pytest.approx((20 + 10) / 2)
    assert rows["records_per_drop_notice"]["lab_runs"] == 2 and rows["records_per_drop_notice"]["calibrated_on"]
    assert rows["guard_fired_fraction"]["lab_median"] == 0.5          # the untriggered run is not counted
    assert rows["drop_notices_after_trigger"]["lab_all"] == [0, 0, 12, 13]
    assert rows["trigger_to_end_ns"]["lab_median"] == (30 + 400) / 2 * 1_000_000
    assert rows["flood_records_per_s_before_trigger"]["lab_median"] == 500
    assert not rows["guard_fired_fraction"]["calibrated_on"]
    hang = rows["hang_rate"]                    # 0 of the 4 triggered runs; Wilson's upper bound at 0/4
    assert (hang["lab_median"], hang["lab_runs"], hang["lab_min"]) == (0, 4, 0)
    assert hang["lab_max"] == pytest.approx(0.4899, abs=1e-4)
    for r in rows.values():
        m, lb = r["model"], r["lab_median"]
        assert r["relative_error"] == (pytest.approx((m - lb) / lb) if m is not None and lb else None)


def test_the_model_as_its_own_lab_agrees_exactly():
    """Both sides go through flood_measures(): the model's runs shaped as a lab
    result compare at zero error on every quantity."""
    model = model_flood_runs(2, seeds=6)
    lab = _lab([r | {"triggered": True, "outcome": "hung-with-output" if r["hung"] else "panicked-and-finished"}
                for r in model])
    for row in compare_flood(CPUS2, model, lab):
        assert row["relative_error"] in (0, None), row


def test_flood_measures_fraction_and_empty_spreads():
    m = flood_measures(lab_flood_runs(_lab([_run(0, 0, 10, False)])))
    assert m["guard_fired_fraction"]["median"] == 0 and m["records_per_drop_notice"]["n"] == 0
    assert m["hang_rate"]["median"] == 0 and m["trigger_to_end_ns"]["n"] == 1


def test_a_lab_hang_is_a_triggered_run_that_never_ended():
    """lab flood's own rule: hung outcomes count only after a trigger; the rate
    is over the triggered runs, with its Wilson interval as min and max."""
    runs = [_run(30, 600, 0, False, hung=True), _run(0, 0, 10, False), _run(0, 0, 0, False, hung=True,
                                                                          triggered=False)]
    m = flood_measures(lab_flood_runs(_lab(runs)))["hang_rate"]
    assert (m["median"], m["n"], m["all"]) == (0.5, 2, [1])
    assert (m["min"], m["max"]) == pytest.approx((0.0945, 0.9055), abs=1e-4)
    assert m["min"] == pytest.approx(1 - m["max"])          # symmetric at 1 of 2


@pytest.mark.parametrize("lab, needle", [
    (_lab(STAND_IN, cpus=4), "cpus 4: the case runs 2 vCPUs"),
    (_lab(STAND_IN, experiment="panic"), "is not a `lab flood` result"),
    (_lab(STAND_IN, options=OPTIONS | {"line_len": 500}), "options.line_len"),
    (_lab(STAND_IN, options=OPTIONS | {"timeout_s": 30.0}), "options.timeout_s"),
    (_lab([_run(0, 0, 1, False, triggered=False)]), "no run reached its trigger"),
    (_lab([{"triggered": True, "dropped_messages": 3}]), "missing"),
])
def test_mismatched_lab_results_are_refused_in_one_line(lab, needle):
    with pytest.raises(ConfigError) as e:
        check_lab_flood(lab, 2)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_the_cli_refuses_a_4_cpu_file_for_the_2_cpu_case(tmp_path):
    from haltlab.cli import cli
    path = tmp_path / "flood4.json"
    path.write_text(json.dumps(_lab(STAND_IN, cpus=4)))
    for args in (["validate", "--case", "flood-cpus2", "--lab-result", f"flood-cpus2={path}"],
                 ["validate", "--case", "flood-cpus2", "--lab-result", f"panic-cpus2={path}"],
                 ["validate", "--lab-result", "flood-cpus2"],
                 ["lab", "calibrate", "--flood", str(path), "--dry-run"]):
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 2, (args, r.output)
        lines = r.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("haltlab: error: "), (args, r.output)


def test_kernel_notes_4_check():
    assert notes_4_holds(STAND_IN[:4]) == {"runs": 4, "fit": 4, "misfits": []}
    assert notes_4_holds([_run(5, 100, 300, False), _run(12, 9, 9, False)])["misfits"] == [0, 1]


def test_the_solved_devkmsg_user_ns_reproduces_the_lab_records_per_notice(tmp_path):
    path = tmp_path / "flood2.json"
    path.write_text(json.dumps(_lab([_run(12, 12 * 30, 400, True), _run(12, 12 * 30, 400, True),
                                     _run(0, 0, 10, False)])))
    result = calibrate_flood(path, write=False, seeds=16)
    solved = result["values"]["devkmsg_user_ns"]
    profile = _with_values(load_profile("qemu-tcg-x86"), {"devkmsg_user_ns": solved}, "test")
    assert model_records_per_notice(profile, solved, 16) == pytest.approx(30, rel=0.05)
    assert result["provenance"].startswith("lab measurement: haltlab lab calibrate --profile qemu-tcg-x86 --flood")


def test_a_campaign_without_drops_cannot_calibrate(tmp_path):
    path = tmp_path / "flood2.json"
    path.write_text(json.dumps(_lab([_run(0, 0, 10, False)])))
    with pytest.raises(UserError, match="keep the estimate"):
        calibrate_flood(path, write=False, seeds=4)


def test_one_flooder_leaves_the_other_cpus_idle_and_bad_counts_are_refused():
    from haltlab.scenarios.printk_flood import PrintkFloodConfig, run_printk_flood
    one = run_printk_flood(PrintkFloodConfig(kernel="debian-6.1.0-56", profile="qemu-tcg-x86", cpus=4, flooders=1))
    every = run_printk_flood(PrintkFloodConfig(kernel="debian-6.1.0-56", profile="qemu-tcg-x86", cpus=4))
    assert one["records_stored"] < every["records_stored"]        # three writers store more than one
    for bad in (0, 4, "1"):
        with pytest.raises(ConfigError, match="flooders"):
            PrintkFloodConfig(cpus=4, flooders=bad).validate()
