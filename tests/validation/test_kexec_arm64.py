"""validate's arm64 kexec cases: the calibrated qemu-tcg-arm64 model beside saved `lab kexec` campaigns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from haltlab.cli.root import cli
from haltlab.errors import ConfigError
from haltlab.kernel.idle import Others
from haltlab.validation.calibrate_flood import read_lab_result
from haltlab.validation.cases import KEXEC_CASES, KexecCase
from haltlab.validation.kexec_arm64 import QUANTITIES, check_lab_kexec, model_kexec_facts
from haltlab.validation.validate import validate

RUNS = Path(__file__).parents[2] / "docs" / "lab-runs"
IDLE = RUNS / "kexec-arm64-idle-2026-12-01.json"          # 2, 4 and 8 vCPUs, untraced
BUSY = RUNS / "kexec-arm64-busy-2026-12-01.json"          # 2 and 4
TRACED = RUNS / "kexec-arm64-cpuhp-cpus2-2026-12-02.json"
CASE = {c.name: c for c in KEXEC_CASES}


def test_only_the_calibration_configuration_is_marked():
    assert [c.name for c in KEXEC_CASES if c.calibrated] == ["kexec-arm64-cpus2", "kexec-arm64-phases-cpus2"]
    assert {(c.cpus, c.others) for c in KEXEC_CASES if not c.traced} == {
        (2, Others.IDLE), (4, Others.IDLE), (8, Others.IDLE), (2, Others.BUSY), (4, Others.BUSY)}
    assert {c.cpus for c in KEXEC_CASES if c.traced} == {2, 4, 8}


def test_the_phase_case_at_2_vcpus_is_the_fit_itself():
    """The calibration's spans come back as the 2-vCPU phase case's medians:
    the same measure (calibrate_kexec.trace_free) on both, by construction."""
    from haltlab.validation.calibrate_kexec import calibrate_kexec
    fitted = calibrate_kexec([TRACED], write=False)
    name = "kexec-arm64-phases-cpus2"
    r = validate((CASE[name],), lab_results={name: read_lab_result(TRACED, campaigns_ok=True)})
    for row in r["rows"]:
        assert row["lab_median"] == fitted["lab_spans"][row["quantity"]]
        assert abs(row["model"] - row["lab_median"]) <= 1, row["quantity"]
        assert row["lab_runs"] == 5 and row["calibrated_on"] is True


def test_the_model_is_read_by_the_labs_parser():
    """The model's figures come from its console, as the lab's do: the total
    spans "Starting new kernel" to "Bye!", one interval per secondary CPU."""
    facts = model_kexec_facts(CASE["kexec-arm64-cpus4"])
    assert facts["outcome"] == "kexec"
    assert 0 < facts["per_cpu_shutdown_ns"] < facts["shutdown_ns"]
    assert facts["psci_polled_ms"] == 0


def test_saved_campaigns_give_the_rows():
    saved = {"kexec-arm64-cpus4": read_lab_result(IDLE, campaigns_ok=True),
             "kexec-arm64-cpus8": read_lab_result(IDLE, campaigns_ok=True),
             "kexec-arm64-busy-cpus2": read_lab_result(BUSY, campaigns_ok=True)}
    cases = tuple(CASE[n] for n in saved)
    r = validate(cases, lab_results=saved)
    campaigns = {(x["cpus"], x["others"]): x for x in json.loads(IDLE.read_text()) + json.loads(BUSY.read_text())}
    assert [row["quantity"] for row in r["rows"]] == list(QUANTITIES) * 3
    for row in r["rows"]:
        lab = campaigns[(row["cpus"], row["others"])][row["quantity"]]
        assert (row["lab_median"], row["lab_min"], row["lab_max"], row["lab_runs"]) == \
               (lab["median"], lab["min"], lab["max"], lab["n"])
        assert row["model"] == model_kexec_facts(CASE[row["case"]])[row["quantity"]]
        if row["lab_median"]:
            assert row["relative_error"] == pytest.approx((row["model"] - row["lab_median"]) / row["lab_median"])
        assert row["calibrated_on"] is False
    assert r["kexec_arm64"]["profile"] == "qemu-tcg-arm64"
    assert r["kexec_arm64"]["lab"]["kernel_release"] == "6.1.0-57-arm64"
    assert "preset_matches_kernel" not in r              # no amd64 kernel was resolved


@pytest.mark.parametrize("name, path, says", [
    ("kexec-arm64-cpus4", TRACED, "has no untraced result of 4 vCPUs, others idle"),
    ("kexec-arm64-phases-cpus8", IDLE, "has no traced result of 8 vCPUs, others idle"),
    ("kexec-arm64-busy-cpus4", IDLE, "has no untraced result of 4 vCPUs, others busy"),
    ("kexec-arm64-cpus2", RUNS / "flood-cpus2-2026-12-01.json", "is not an arm64 lab kexec result"),
])
def test_a_saved_file_of_another_case_is_refused(name, path, says):
    with pytest.raises(ConfigError, match=says):
        check_lab_kexec(read_lab_result(path, campaigns_ok=True), CASE[name], f"lab result for {name}")


def test_cli_refuses_a_mismatched_file_before_anything_runs():
    r = CliRunner().invoke(cli, ["validate", "--case", "kexec-arm64-cpus8", "--lab-result",
                                 f"kexec-arm64-cpus8={TRACED}"])
    assert r.exit_code == 2 and r.output.count("\n") == 1
    assert "lab result for kexec-arm64-cpus8" in r.output and "has no untraced result of 8 vCPUs" in r.output


def test_cli_table_says_calibrated_on():
    r = CliRunner(env={"COLUMNS": "100"}).invoke(cli, [
        "validate", "--case", "kexec-arm64-cpus2", "--case", "kexec-arm64-cpus8", "--format", "markdown",
        "--lab-result", f"kexec-arm64-cpus2={IDLE}", "--lab-result", f"kexec-arm64-cpus8={IDLE}"])
    assert r.exit_code == 0, r.output
    assert "kexec-arm64-cpus2: arm64 kexec shutdown, 2 vCPUs, others idle (calibration's configuration" in r.stdout
    assert "kexec-arm64-cpus8: arm64 kexec shutdown, 8 vCPUs, others idle\n" in r.stdout
    assert "profile qemu-tcg-arm64" in r.stdout and "6.1.0-57-arm64" in r.stdout
