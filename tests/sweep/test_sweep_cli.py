"""`haltlab sweep panic`: resumes, refuses bad input and other inputs' rows in one
line before anything runs or is written, and shows progress in a log."""

import functools
import time

import pytest
from click.testing import CliRunner

from haltlab.cli import cli
from haltlab.machine.profile import profiles_dir
from haltlab.sweep import read_inputs, read_sweep
from sweep_helpers import refused

FAST = ("--cpus", "2", "--seeds", "0", "--observe", "0.05", "--workers", "1")


def sweep(out, *args: str):
    return CliRunner().invoke(cli, ["sweep", "panic", "--output", str(out), *args])


def test_sweep_panic_resumes(tmp_path):
    out = tmp_path / "panic.jsonl"
    args = ("--cpus", "4", "--seeds", "0-1", "--observe", "0.2", "--workers", "2")
    first = sweep(out, *args)
    assert first.exit_code == 0, first.output
    rows = read_sweep(out)
    assert len(rows) == 4
    stock = [r["result"] for r in rows if "/mdelay/" in r["key"]]
    halted = [r["result"] for r in rows if "/safe_halt/" in r["key"]]
    assert all(r["host_cpu_s_per_s"] > 0.9 for r in stock)
    assert all(r["host_cpu_s_per_s"] < 0.01 for r in halted)
    assert f"sweep: 4 runs in {out} (4 new)" in first.stdout
    again = sweep(out, *args)
    assert again.exit_code == 0 and f"sweep: 4 runs in {out} (0 new)" in again.stdout
    assert len(out.read_text().splitlines()) == 1 + 4          # nothing ran twice


def test_a_different_observe_window_is_refused_not_reused(tmp_path):
    """#20: --observe 5 after --observe 1 used to report "(0 new)" and the old numbers."""
    out = tmp_path / "s.jsonl"
    assert sweep(out, "--cpus", "2", "--seeds", "0", "--observe", "1").exit_code == 0
    before = out.read_bytes()
    line = refused(sweep(out, "--cpus", "2", "--seeds", "0", "--observe", "5"),
                   f"--output {out}: holds runs made with other inputs",
                   "config.observe_ns 1000000000 there, 5000000000 now", "delete it")
    assert "give another output file" in line
    assert out.read_bytes() == before


def test_a_profile_with_other_values_under_the_same_name_is_refused(tmp_path):
    profile = tmp_path / "kvm-x86.toml"
    text = (profiles_dir() / "kvm-x86.toml").read_text()
    profile.write_text(text)
    out = tmp_path / "s.jsonl"
    assert sweep(out, "--profile", str(profile), *FAST).exit_code == 0
    profile.write_text(text.replace('ipi_latency_ns = { value = "1300 ns"', 'ipi_latency_ns = { value = "9 us"', 1))
    refused(sweep(out, "--profile", str(profile), *FAST), "profile.sha256")


def test_the_default_observe_window_is_simulates(tmp_path):
    out = tmp_path / "s.jsonl"
    assert sweep(out, "--cpus", "2", "--seeds", "0", "--after-panic", "mdelay").exit_code == 0
    assert read_inputs(out)["config"]["observe_ns"] == 10_000_000_000


def test_out_is_a_hidden_alias_of_output(tmp_path):
    out = tmp_path / "s.jsonl"
    result = CliRunner().invoke(cli, ["sweep", "panic", "--out", str(out), *FAST])
    assert result.exit_code == 0, result.output
    assert len(read_sweep(out)) == 2
    help_text = CliRunner().invoke(cli, ["sweep", "panic", "--help"]).stdout
    assert "--output FILE" in help_text and "--out " not in help_text
    refused(CliRunner().invoke(cli, ["sweep", "panic", *FAST]), "--output FILE is required")
    refused(CliRunner().invoke(cli, ["sweep", "panic", "--output", "a", "--out", "b", *FAST]),
            "give the file once")


def test_progress_is_logged_when_stderr_is_not_a_terminal(tmp_path, monkeypatch):
    import haltlab.cli.console as console
    import haltlab.cli.sweep as cli_sweep
    monkeypatch.setattr(cli_sweep, "progress", functools.partial(console.progress, every_s=0.0))
    result = sweep(tmp_path / "s.jsonl", "--cpus", "2", "--seeds", "0-3", "--observe", "0.05",
                   "--workers", "1")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines[0] == "haltlab: sweep: 0/8 (0.0 s)" or lines[0].startswith("haltlab: sweep: 0/8 ")
    done = [line for line in lines if line.startswith("haltlab: sweep: 8/8 ")]
    assert done and " runs/s, ETA 0 s (" in done[-1] and done[-1].endswith(", done)")
    assert any(" runs/s, ETA " in line and "/8 " in line and not line.startswith("haltlab: sweep: 8/8")
               for line in lines)                       # lines while it ran, not only at the end


def test_an_oversized_sweep_is_one_line_at_once(tmp_path):
    started = time.monotonic()
    refused(sweep(tmp_path / "s.jsonl", "--seeds", "0-999999999999"),
            "--seeds 0-999999999999: 2,000,000,000,000 runs", "at most 1,000,000")
    assert time.monotonic() - started < 5
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, needle", [
    (("--observe", "nan"), "--observe nan"),
    (("--observe", "inf"), "--observe inf"),
    (("--observe", "1e-12"), "--observe 1e-12"),         # rounds to 0 ns
    (("--seeds", "5-1"), "--seeds 5-1"),
    (("--seeds", "x"), "--seeds x: expected integers"),
    (("--others", ""), "--others ''"),
    (("--after-panic", "spin"), "--after-panic spin: unknown 'spin'"),
    (("--cpus", "9000"), "--cpus 9000"),
    (("--cpus", "0"), "--cpus 0"),
    (("--cpus", "8,x"), "--cpus 8,x"),
    (("--workers", "0"), "--workers 0"),
    (("--scheduler-timeout", "0"), "--scheduler-timeout 0"),
    (("--profile", "nope"), "profile 'nope'"),
])
def test_bad_options_fail_before_anything_runs_or_is_written(tmp_path, args, needle):
    out = tmp_path / "s.jsonl"
    refused(sweep(out, "--seeds", "0", *args), needle)
    assert list(tmp_path.iterdir()) == []


def test_output_that_is_a_directory_is_one_line(tmp_path):
    refused(sweep(tmp_path, "--seeds", "0"), "is a directory")


def test_output_under_a_file_fails_before_the_sweep(tmp_path):
    (tmp_path / "a-file").write_text("keep me")
    out = tmp_path / "a-file" / "s.jsonl"
    refused(sweep(out, "--seeds", "0"), f"--output {out}: cannot write")
    assert (tmp_path / "a-file").read_text() == "keep me"


@pytest.mark.parametrize("content, line", [
    (b'{"key":"a","result":{}}\nhello\n', 1),
    (b'hello', 1),
])
def test_a_file_that_is_not_a_sweep_file_is_refused_untouched(tmp_path, content, line):
    out = tmp_path / "notes.txt"
    out.write_bytes(content)
    refused(sweep(out, *FAST), f"--output {out}:")
    assert out.read_bytes() == content


def test_profile_given_as_a_path_keys_by_profile_name(tmp_path):
    profile = profiles_dir() / "kvm-x86.toml"
    out = tmp_path / "s.jsonl"
    result = sweep(out, "--profile", str(profile), "--cpus", "2", "--seeds", "0",
                   "--after-panic", "mdelay", "--observe", "0.05", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert [r["key"] for r in read_sweep(out)] == ["kvm-x86/cpus=00002/mdelay/idle/seed=000000"]
    assert "kvm-x86 2 CPUs" in result.stdout and "toml" not in result.stdout.replace(str(out), "")
