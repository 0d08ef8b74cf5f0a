"""Bad lab input ends as one line and exit 2, before any guest boots or, for a guest short of
CPUs, as soon as it has booted (no QEMU here)."""

import math
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from haltlab.cli import cli
from haltlab.errors import UserError
from haltlab.lab.experiments import FloodConfig, KexecConfig, PanicConfig, common, flood
from haltlab.lab.experiments.common import Prepared, check_guest_cpus
from haltlab.lab.experiments.flood import MAX_LINE_LEN
from haltlab.lab.images import KernelImage
from haltlab.lab.qemu import GuestSpec
from haltlab.results import dumps

RESULT = {"experiment": "panic", "n_runs": 1}


@pytest.fixture
def runs(monkeypatch):
    """run_panic replaced by a stub that records its calls: no guest ever boots."""
    calls = []

    def fake_run(config, progress=None):
        calls.append(config)
        return dict(RESULT)

    monkeypatch.setattr("haltlab.lab.experiments.panic.run_panic", fake_run)
    return calls


def _one_line_error(result, needle: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("haltlab: error: ") and needle in result.stderr
    assert "Traceback" not in result.output


def test_output_in_a_missing_directory_fails_before_the_runs(runs):
    result = CliRunner().invoke(cli, ["lab", "panic", "--output", "/proc/x/y.json"])
    _one_line_error(result, "--output /proc/x/y.json: ")
    assert runs == []


def test_output_that_is_a_directory_fails_before_the_runs(runs, tmp_path):
    result = CliRunner().invoke(cli, ["lab", "panic", "--output", str(tmp_path)])
    _one_line_error(result, f"--output {tmp_path}: is a directory")
    assert runs == []


def test_output_under_a_file_fails_before_the_runs(runs, tmp_path):
    (tmp_path / "f").write_text("")
    result = CliRunner().invoke(cli, ["lab", "panic", "--output", str(tmp_path / "f" / "r.json")])
    _one_line_error(result, f"--output {tmp_path / 'f' / 'r.json'}: ")
    assert runs == []


def _result_kept_on_stdout(result, needle: str) -> None:
    """Issue 6 #13: the JSON on stdout, then the one error line saying so, exit 2."""
    assert result.exit_code == 2, result.output
    assert result.stdout == dumps(RESULT)
    assert result.stderr.splitlines() == [result.stderr.strip()], result.stderr
    assert result.stderr.startswith("haltlab: error: ") and needle in result.stderr
    assert result.stderr.rstrip().endswith("the result is on stdout above")


@pytest.mark.parametrize("as_json", [["--json"], []])   # a table was asked for: the JSON still survives
def test_a_failing_final_write_keeps_the_result_and_leaves_no_file(monkeypatch, tmp_path, as_json):
    out_dir = tmp_path / "out"
    out_dir.mkdir()

    def run_then_break_the_directory(config, progress=None):
        out_dir.rmdir()
        out_dir.write_text("now a file")   # the atomic write cannot recreate it
        return dict(RESULT)

    monkeypatch.setattr("haltlab.lab.experiments.panic.run_panic", run_then_break_the_directory)
    result = CliRunner().invoke(cli, ["lab", "panic", *as_json, "--output", str(out_dir / "r.json")])
    _result_kept_on_stdout(result, f"--output {out_dir / 'r.json'}: cannot write")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def _fill(folder) -> None:
    """Fill a small file system until a write fails for lack of space."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    with pytest.raises(OSError, match="No space left"):
        while True:
            os.write(fd, b"x" * 4096)
    os.close(fd)


def test_a_full_disk_keeps_the_result_on_stdout(runs, tmpfs):
    """A real full file system: the output's directory takes the probe (an
    empty file needs no data block), not the result."""
    full = tmpfs("full", size_kib=16)
    _fill(full)
    result = CliRunner().invoke(cli, ["lab", "panic", "--json", "--output", str(full / "r.json")])
    _result_kept_on_stdout(result, f"--output {full / 'r.json'}: cannot write (No space left on device)")
    assert sorted(p.name for p in full.iterdir()) == ["filler"]    # no partial result file
    assert len(runs) == 1


def test_a_good_output_is_written(runs, tmp_path):
    result = CliRunner().invoke(cli, ["lab", "panic", "--json", "--output", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r.json").read_text() == result.stdout
    assert len(runs) == 1


@pytest.mark.parametrize("args, needle", [
    (["panic", "--observe", "nan"], "--observe nan: must be a finite number of seconds, > 0 and <= 1e6"),
    (["panic", "--window", "inf"], "--observe inf: must be a finite number of seconds, > 0 and <= 1e6"),
    (["panic", "--settle", "inf"], "--settle inf: must be a finite number of seconds, >= 0 and <= 1e6"),
    (["panic", "--timeout", "nan"], "--timeout nan: must be a finite number of seconds, > 0 and <= 1e6"),
    (["panic", "--boot-timeout", "inf"], "--boot-timeout inf: must be a finite number of seconds, > 0 and <= 1e6"),
    (["kexec", "--timeout", "-inf"], "--timeout -inf: must be a finite number of seconds, > 0 and <= 1e6"),
    (["flood", "--delay-max", "inf"], "--delay-max inf: must be a finite number of seconds, >= 0 and <= 1e6"),
    (["flood", "--delay-min", "nan"], "--delay-min nan: must be a finite number of seconds, >= 0 and <= 1e6"),
    (["panic", "--settle", "1e300"], "--settle 1e+300: must be a finite number of seconds, >= 0 and <= 1e6"),
    (["flood", "--line-len", "992"], "--line-len 992: must be 16..991"),
])
def test_non_finite_and_too_long_options_are_one_line_errors(args, needle):
    _one_line_error(CliRunner().invoke(cli, ["lab", *args]), needle)


@pytest.mark.parametrize("config", [
    PanicConfig(window_s=math.nan), PanicConfig(settle_s=math.inf), PanicConfig(timeout_s=math.nan),
    PanicConfig(boot_timeout_s=math.inf), KexecConfig(timeout_s=math.inf),
    FloodConfig(delay_max_s=math.inf), FloodConfig(timeout_s=math.nan),
    FloodConfig(line_len=MAX_LINE_LEN + 1), KexecConfig(memory_mb=256),
])
def test_configs_refuse_the_same_values_programmatically(config):
    with pytest.raises(UserError):
        config.validate()


def test_limits_that_stay_allowed():
    PanicConfig(settle_s=0).validate()
    FloodConfig(delay_min_s=0, delay_max_s=0, line_len=MAX_LINE_LEN).validate()
    KexecConfig(memory_mb=384).validate()


def test_the_longest_flood_record_fits_a_dev_kmsg_write():
    # devkmsg_write(): at most LOG_LINE_MAX = 1024 - 32 bytes, and echo adds the newline.
    assert MAX_LINE_LEN + 1 == 1024 - 32


def test_validate_on_a_full_disk_keeps_its_result_on_stdout(monkeypatch, tmpfs):
    full = tmpfs("full", size_kib=16)
    _fill(full)
    monkeypatch.setattr("haltlab.validation.validate.validate", lambda cases, **kw: dict(RESULT))
    result = CliRunner().invoke(cli, ["validate", "--output", str(full / "v.json")])
    _result_kept_on_stdout(result, f"--output {full / 'v.json'}: cannot write (No space left on device)")


# -- a guest with fewer CPUs than it was given -----------------------------------

class _ShortGuest:
    """Stands in for runner.Guest: a guest whose kernel brought up fewer CPUs."""

    made: list = []

    def __init__(self, spec, *, progress=None, console=(), **kw):
        self.spec, self.closed = spec, False
        self.progress = SimpleNamespace(lines=progress if progress is not None else [
            (1, f"READY stage=1 release=6.1.0-57-amd64 cpus={spec.cpus - 1}")])
        self.console = SimpleNamespace(lines=list(console))
        _ShortGuest.made.append(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.closed = True


def _spec(cpus: int) -> GuestSpec:
    return GuestSpec(kernel=Path("/k"), initrd=Path("/i"), cmdline="", cpus=cpus)


def test_a_guest_short_of_cpus_is_refused_by_what_it_printed():
    check_guest_cpus(_ShortGuest(_spec(2), progress=[(1, "READY stage=1 cpus=2")]), 0, 1)  # all there
    with pytest.raises(UserError, match=r"^run 2 of 3: the guest brought up 1 of the 2 vCPUs it was given "
                                        r"\(nproc in its init\)"):
        check_guest_cpus(_ShortGuest(_spec(2)), 1, 3)
    # No READY line (a custom init): the kernel's own line is the evidence.
    smp = [(1, "[    0.691137] smp: Brought up 1 node, 3 CPUs")]
    with pytest.raises(UserError, match=r'brought up 3 of the 4 vCPUs .*\("smp: Brought up 1 node, 3 CPUs"\)'):
        check_guest_cpus(_ShortGuest(_spec(4), progress=[], console=smp), 0, 1)
    check_guest_cpus(_ShortGuest(_spec(4), progress=[], console=[]), 0, 1)  # printed neither: nothing to check


def test_a_kexec_whose_second_kernel_is_short_of_cpus_is_refused():
    both = [(1, "READY stage=1 release=6.1.192 cpus=2"), (2, "KEXEC-E"), (3, "READY stage=2 release=6.1.192 cpus=2")]
    check_guest_cpus(_ShortGuest(_spec(2), progress=both), 0, 1)
    second_short = both[:2] + [(3, "READY stage=2 release=6.1.192 cpus=1")]
    with pytest.raises(UserError, match=r"^run 1 of 2: the guest brought up 1 of the 2 vCPUs it was given "
                                        r"\(nproc in its init, kernel 2 of the kexec\)"):
        check_guest_cpus(_ShortGuest(_spec(2), progress=second_short), 0, 2)


def test_lab_flood_refuses_a_short_guest_in_one_line(monkeypatch, tmp_path):
    """Through the CLI: one error line, exit 2, the guest closed, no later run booted."""
    k = KernelImage(tmp_path / "vmlinuz", None, "6.1.0-57-amd64", "debian:p=1", "p", "1")
    monkeypatch.setattr(flood, "prepare", lambda config, entries, kernel=None: Prepared(k, "tcg", "7.2", tmp_path / "i"))
    monkeypatch.setattr(common, "Guest", _ShortGuest)
    monkeypatch.setattr(flood, "flood_once", lambda g, config: {"outcome": "panicked-and-finished", "triggered": True})
    _ShortGuest.made = []
    result = CliRunner().invoke(cli, ["lab", "flood", "--runs", "3"])
    _one_line_error(result, "run 1 of 3: the guest brought up 1 of the 2 vCPUs it was given")
    assert len(_ShortGuest.made) == 1 and _ShortGuest.made[0].closed
