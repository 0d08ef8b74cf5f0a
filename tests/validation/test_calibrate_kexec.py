"""`lab calibrate --arch arm64`: the per-phase fit from a saved traced campaign (no QEMU).

The campaigns are real: docs/lab-runs/kexec-arm64-cpuhp-*-2026-12-02.json, each
CPU's phases as lab/parse.py cut them from the console.
"""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import pytest
from click.testing import CliRunner

from haltlab.cli.root import cli
from haltlab.errors import UserError
from haltlab.machine.profile import load_profile, shipped_profiles_dir
from haltlab.validation.calibrate_kexec import (
    KEXEC_KEYS, SPANS, calibrate_kexec, model_phases, _with_kexec_values,
)

RUNS = Path(__file__).parents[2] / "docs" / "lab-runs"
IDLE = RUNS / "kexec-arm64-cpuhp-cpus2-2026-12-02.json"
BUSY = RUNS / "kexec-arm64-cpuhp-busy-cpus2-2026-12-02.json"
OLD = RUNS / "kexec-arm64-cpuhp-2026-12-01.json"          # before the trace's characters were counted
UNTRACED = RUNS / "kexec-arm64-idle-2026-12-01.json"


def _cpus(path: Path) -> list[dict]:
    return [c for r in json.loads(path.read_text())["runs"] for c in r["cpuhp_phases"]]


@pytest.fixture(scope="module")
def fitted():
    return calibrate_kexec([IDLE, BUSY], write=False)


def test_each_span_is_the_lab_median_without_its_trace(fitted):
    cpus = _cpus(IDLE)
    per_char = statistics.median(c["trace_ns_per_char"] for c in cpus)
    assert fitted["lab_spans"]["trace_ns_per_char"] == per_char
    assert fitted["lab_spans"]["samples"] == 5
    for s in SPANS:
        free = statistics.median(c[f"{s}_ns"] - per_char * c[f"{s}_trace_chars"] for c in cpus)
        assert fitted["lab_spans"][f"{s}_ns"] == round(free)
        assert 0 < free < statistics.median(c[f"{s}_ns"] for c in cpus)   # the trace cost something


def test_the_calibrated_model_recovers_every_measured_span(fitted):
    """The profile with the fitted values, run again from scratch, gives the
    lab's spans: each key fixed by its own span, none left over."""
    for span, v in fitted["fit"].items():
        if span.endswith("_ns"):
            assert abs(v["model"] - v["lab"]) <= 1, span
    profile = _with_kexec_values(load_profile("qemu-tcg-arm64"), fitted["values"], "test")
    again = model_phases(profile)
    for s in SPANS:
        assert abs(again[f"{s}_ns"] - fitted["lab_spans"][f"{s}_ns"]) <= 1, s
    assert again["psci_polled_ms"] == [0]             # the lab's kills: every one 'polled 0 ms'


def test_only_the_measured_keys_are_fitted(fitted):
    assert tuple(fitted["values"]) == KEXEC_KEYS
    assert "shutdown_ns" not in json.dumps(fitted["values"])
    assert fitted["values"]["nmi_latency_ns"] == fitted["values"]["ipi_latency_ns"]
    assert fitted["written"] is False


def test_busy_runs_are_checked_not_fitted(fitted):
    alone = calibrate_kexec([IDLE], write=False)
    assert alone["values"] == fitted["values"] and alone["busy_check"] is None
    b = fitted["busy_check"]
    assert b["samples"] == 5
    # the boot CPU's DEAD states share CPU 0 with the spinners: the model has no key for that
    assert b["busy_bp_dead_ns"] > 3 * b["idle_bp_dead_ns"]


def test_write_rewrites_only_the_fitted_keys(tmp_path):
    copy = tmp_path / "qemu-tcg-arm64.toml"
    shutil.copy(shipped_profiles_dir() / "qemu-tcg-arm64.toml", copy)
    before = load_profile(copy)
    result = calibrate_kexec([IDLE], str(copy), write=True)
    after = load_profile(copy)
    for key, p in after.params.items():
        if key in KEXEC_KEYS:
            assert p.value == result["values"][key]
            assert p.source.startswith("lab measurement: haltlab lab calibrate --arch arm64")
            assert "kexec-arm64-cpuhp-cpus2-2026-12-02.json" in p.source
        else:
            assert p == before.params[key], key


@pytest.mark.parametrize("path, says", [
    (OLD, "run 0 CPU1: no trace_ns_per_char"),
    (UNTRACED, "no result of 2 vCPUs with the cpuhp trace"),
])
def test_a_file_the_fit_cannot_read_is_named(path, says):
    with pytest.raises(UserError, match=says) as e:
        calibrate_kexec([path], write=False)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_busy_alone_is_refused():
    with pytest.raises(UserError, match="no completed idle run of 2 vCPUs"):
        calibrate_kexec([BUSY], write=False)


def test_a_field_of_the_wrong_type_is_named(tmp_path):
    data = json.loads(IDLE.read_text())
    data["runs"][2]["cpuhp_phases"][0]["bp_dead_trace_chars"] = "3696"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(UserError, match=r"bad.json: run 2 CPU1: no bp_dead_trace_chars"):
        calibrate_kexec([bad], write=False)


def _cli(*args):
    return CliRunner().invoke(cli, ["lab", "calibrate", *args])


@pytest.mark.parametrize("args, says", [
    (["--arch", "arm64", "--kexec", "/nonexistent.json", "--dry-run"], "--kexec /nonexistent.json: cannot read"),
    (["--arch", "arm64", "--kexec", str(UNTRACED.parent / "flood-cpus2-2026-12-01.json"), "--dry-run"],
     "not an arm64 lab kexec result"),
    (["--arch", "arm64", "--cpus", "4", "--dry-run"], "--cpus 4: the arm64 calibration fits 2 vCPUs"),
    (["--kexec", str(IDLE), "--dry-run"], "--kexec: only with --arch arm64"),
    (["--arch", "arm64", "--flood", str(IDLE)], "--arch arm64: --flood is for the x86 calibrations"),
    (["--arch", "riscv"], "--arch riscv: expected x86_64 or arm64"),
    (["--arch", "arm64", "--runs", "0", "--dry-run"], "runs"),
    (["--arch", "arm64", "--profile", "qemu-tcg-x86-nope", "--kexec", str(IDLE), "--dry-run"], "qemu-tcg-x86-nope"),
    (["--arch", "arm64", "--profile", "arm64-server-24", "--kexec", str(IDLE), "--dry-run"],
     "the arm64 calibration fits an arm64 guest profile"),
    (["--arch", "arm64", "--profile", "qemu-tcg-x86", "--kexec", str(IDLE), "--dry-run"],
     "the arm64 calibration fits an arm64 guest profile"),
])
def test_cli_errors_are_one_line(args, says):
    r = _cli(*args)
    assert r.exit_code == 2, r.output
    assert says in r.output
    assert r.output.count("\n") == 1 and "Traceback" not in r.output


def test_cli_dry_run_prints_the_fit():
    r = CliRunner().invoke(cli, ["lab", "calibrate", "--arch", "arm64", "--kexec", str(IDLE), "--kexec", str(BUSY),
                                 "--dry-run", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["written"] is False and out["profile"] == "qemu-tcg-arm64"
    assert set(out["values"]) == set(KEXEC_KEYS)
