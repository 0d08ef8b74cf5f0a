"""Issue 6 #12: `lab calibrate` on a profile it cannot rewrite says so before any
guest boots, and a write that fails after the measurement never loses it.

The file systems are real (read-only and remounted-read-only tmpfs). The fast
tests stand in for the lab run (it would take ~20 s and is not what they test);
the last test does the real thing: a guest measured, then the profile's mount
made read-only from the progress callback, as if it went so during the run.
"""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from haltlab.cli import cli
from haltlab.lab.images import KernelImage
from haltlab.machine.profile import load_profile, profiles_dir
from haltlab.validation import calibrate as calibrate_mod
from haltlab.validation.save import MeasurementNotWritten

PROFILE = (profiles_dir() / "qemu-tcg-x86.toml").read_bytes()


def _lab_result(runs):
    run = {"panic_console_chars": 2000, "panic_console_lines": 30, "panic_to_end_host_ns": 9_000_000,
           "panic_max_line_gap_ns": 3_000_000, "host_cpu_s_per_s": 1.01,
           "per_vcpu": [{"host_cpu_s_per_s": 1.0}, {"host_cpu_s_per_s": 0.0}]}
    return {"runs": [run] * runs, "panicked_and_finished": runs, "outcomes": {"panicked-and-finished": runs},
            "kernel_release": "6.1.0-57-amd64", "kernel_package": "linux-image-6.1.0-57-amd64",
            "kernel_package_version": "6.1.192-3", "qemu_version": "7.2.22", "accelerator": "tcg",
            "cpus": 2, "n_runs": runs, "host_cpu_s_per_s": 1.01, "panic_to_end_host_ns": None,
            "panic_max_line_gap_ns": None, "panic_console_chars": None}


@pytest.fixture
def lab(monkeypatch, tmp_path):
    """The lab run replaced; `lab.during` runs while it "measures"; calls are counted."""
    calls = []

    def run(config, progress=None, *, kernel=None):
        calls.append(config)
        if lab.during:
            lab.during()
        return _lab_result(config.runs)

    lab.during = None
    lab.calls = calls
    monkeypatch.setattr(calibrate_mod, "lab_panic", run)
    monkeypatch.setattr(calibrate_mod, "resolve_lab_kernel", lambda pkg=None: KernelImage(
        tmp_path / "vmlinuz", None, "6.1.0-57-amd64", "debian:x=1", "linux-image-6.1.0-57-amd64", "6.1.192-3"))
    return lab


def _calibrate(path, *extra):
    return CliRunner().invoke(cli, ["lab", "calibrate", "--profile", str(path), "--runs", "1", *extra])


def _one_line(result) -> str:
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [result.stderr.strip()], result.stderr
    assert result.stderr.startswith("haltlab: error: ") and "Traceback" not in result.output
    return result.stderr.strip()


def test_a_read_only_profile_is_refused_before_anything_boots(tmpfs, lab):
    ro = tmpfs("ro", files={"qemu-tcg-x86.toml": PROFILE}, ro=True)
    line = _one_line(_calibrate(ro / "qemu-tcg-x86.toml"))
    assert f"--profile {ro / 'qemu-tcg-x86.toml'}: cannot write (Read-only file system)" in line
    assert lab.calls == []                      # no guest measured for nothing


def test_a_dry_run_of_a_read_only_profile_is_fine(tmpfs, lab):
    ro = tmpfs("ro", files={"qemu-tcg-x86.toml": PROFILE}, ro=True)
    result = _calibrate(ro / "qemu-tcg-x86.toml", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["written"] is False


def test_a_write_that_fails_after_measuring_keeps_the_measurement_beside(tmpfs, lab, tmp_path, monkeypatch):
    place = tmpfs("place", files={"qemu-tcg-x86.toml": PROFILE})
    lab.during = lambda: tmpfs.readonly(place)  # the mount goes read-only while the guests run
    monkeypatch.chdir(tmp_path)
    line = _one_line(_calibrate(place / "qemu-tcg-x86.toml"))
    kept = tmp_path / "qemu-tcg-x86.calibration.json"
    assert line.endswith(f"cannot write (Read-only file system); the measurement is in {kept}")
    saved = json.loads(kept.read_text())
    assert saved["written"] is False and saved["values"]["console_ns_per_char"] == 3000
    assert saved["provenance"].startswith("lab measurement: haltlab lab calibrate")
    assert (place / "qemu-tcg-x86.toml").read_bytes() == PROFILE   # untouched


def test_with_nowhere_to_keep_it_the_measurement_goes_to_stdout(tmpfs, lab, monkeypatch):
    place = tmpfs("place", files={"qemu-tcg-x86.toml": PROFILE})
    cwd = tmpfs("cwd", ro=True)
    lab.during = lambda: tmpfs.readonly(place)
    monkeypatch.chdir(cwd)
    result = _calibrate(place / "qemu-tcg-x86.toml")
    line = _one_line(result)
    assert line.endswith("cannot write (Read-only file system); the measurement is on stdout above")
    assert json.loads(result.stdout)["values"]["panic_console_lines"] == 30


@pytest.mark.lab
@pytest.mark.slow
def test_a_real_calibration_survives_its_profile_going_read_only(tmpfs, tmp_path, monkeypatch):
    place = tmpfs("place", files={"qemu-tcg-x86.toml": PROFILE})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MeasurementNotWritten) as e:
        calibrate_mod.calibrate(str(place / "qemu-tcg-x86.toml"), runs=1,
                                progress=lambda i, n, run: tmpfs.readonly(place))
    assert e.value.kept_in == tmp_path / "qemu-tcg-x86.calibration.json"
    saved = json.loads(e.value.kept_in.read_text())
    assert saved["values"]["panic_console_chars"] > 500 and saved["lab"]["outcomes"] == {"panicked-and-finished": 1}
    assert load_profile(str(place / "qemu-tcg-x86.toml")).get("panic_console_chars") == \
        load_profile("qemu-tcg-x86").get("panic_console_chars")    # the profile is as it was
