"""Calibration: the solved IPI latency really reproduces the measured stop gap,
measurements carry their provenance, and a real guest calibrates in one run."""

import pytest

from haltlab.machine.profile import load_profile
from haltlab.validation.calibrate import _measure, _solve_ipi_latency, _with_values, calibrate, model_max_line_gap_ns
from haltlab.validation.cases import CASES
from haltlab.validation.validate import model_facts, validate


def _run(**kw):
    base = {"panic_console_chars": 2000, "panic_console_lines": 30, "panic_to_end_host_ns": 9_000_000,
            "panic_max_line_gap_ns": 3_000_000, "host_cpu_s_per_s": 1.01,
            "per_vcpu": [{"host_cpu_s_per_s": 1.0}, {"host_cpu_s_per_s": 0.0}]}
    return base | kw


def test_measure_takes_medians_and_separates_the_stop_gap():
    values, gap = _measure({"runs": [_run(), _run(panic_to_end_host_ns=11_000_000), _run()]})
    assert gap == 3_000_000
    assert values["console_ns_per_char"] == (9_000_000 - 3_000_000) // 2000
    assert values["vmm_background_cpu_s_per_s"] == pytest.approx(0.01)
    assert values["panic_console_lines"] == 30


def test_the_solved_latency_reproduces_the_lab_gap():
    profile = load_profile("qemu-tcg-x86")
    measured = {"console_ns_per_char": 3000}
    latency = _solve_ipi_latency(profile, 2, measured, lab_gap_ns=2_500_000)
    solved = _with_values(profile, measured | {"ipi_latency_ns": latency}, "test")
    assert abs(model_max_line_gap_ns(solved, 2) - 2_500_000) < 50_000


def test_the_stop_gap_grows_with_the_ipi_latency():
    profile = load_profile("qemu-tcg-x86")
    slow = _with_values(profile, {"ipi_latency_ns": 5_000_000}, "test")
    fast = _with_values(profile, {"ipi_latency_ns": 1_000}, "test")
    assert model_max_line_gap_ns(slow, 2) > model_max_line_gap_ns(fast, 2) + 4_000_000


def test_values_keep_their_provenance():
    p = _with_values(load_profile("qemu-tcg-x86"), {"console_ns_per_char": 1234}, "lab measurement: X")
    assert p.get("console_ns_per_char") == 1234
    assert p.source("console_ns_per_char").startswith("lab measurement: X")


def test_model_facts_cover_every_quantity_of_every_case():
    for case in CASES:
        facts = model_facts(case)
        for q in case.quantities():
            assert facts[q] is not None, (case.name, q)


@pytest.mark.lab
def test_calibrate_dry_run_on_a_real_guest():
    result = calibrate("qemu-tcg-x86", runs=1, write=False)
    v = result["values"]
    assert v["panic_console_lines"] > 10 and v["panic_console_chars"] > 500
    assert 100 < v["console_ns_per_char"] < 100_000
    assert result["lab"]["outcomes"] == {"panicked-and-finished": 1}
    assert "lab measurement: haltlab lab calibrate" in result["provenance"]


@pytest.mark.lab
def test_validate_one_case_against_a_real_guest():
    case = next(c for c in CASES if c.name == "pause-cpus2")
    result = validate((case,), runs=1)
    (row,) = result["rows"]
    assert row["quantity"] == "host_cpu_s_per_s" and not row["calibrated_on"]
    assert row["model"] < 0.01 and row["lab_median"] < 0.01    # the paused guest costs nothing
    assert result["lab"]["kernel_package"] and result["preset_matches_kernel"] is True, result["preset_match_reason"]


def test_bad_calibrate_and_validate_input_is_one_line():
    from click.testing import CliRunner

    from haltlab.cli import cli
    for args, needle in ((["validate", "--case", "nope"], "--case nope"),
                         (["lab", "calibrate", "--smp", "1"], "--cpus 1"),
                         (["lab", "calibrate", "--profile", "xeon-gold-6154", "--runs", "1"], "bare metal"),
                         (["validate", "--kernel-package", "bash"], "--kernel-package bash: expected"),
                         (["reproduce", "--lab", "skip", "--kernel-package", "x"], "--kernel-package x: expected")):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, args
        assert needle in result.stderr and len(result.stderr.strip().splitlines()) == 1
