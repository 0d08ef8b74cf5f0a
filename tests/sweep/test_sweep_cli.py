"""`haltlab sweep panic` and the sweep file: an interrupted sweep resumes without
running anything twice; bad input is one line before anything runs."""

import time

import pytest
from click.testing import CliRunner

from haltlab.cli import cli
from haltlab.machine.profile import profiles_dir
from haltlab.sweep import read_sweep


def test_sweep_panic_command_resumes(tmp_path):
    out = tmp_path / "panic.jsonl"
    args = ["sweep", "panic", "--out", str(out), "--cpus", "4", "--seeds", "0-1", "--observe", "0.2",
            "--workers", "2"]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    rows = read_sweep(out)
    assert len(rows) == 4
    stock = [r["result"] for r in rows if "/mdelay/" in r["key"]]
    halted = [r["result"] for r in rows if "/safe_halt/" in r["key"]]
    assert all(r["host_cpu_s_per_s"] > 0.9 for r in stock)
    assert all(r["host_cpu_s_per_s"] < 0.01 for r in halted)
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0
    assert len(out.read_text().splitlines()) == 4          # nothing ran twice


def test_bad_sweep_input_is_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["sweep", "panic", "--out", str(tmp_path / "x"), "--cpus", "8,x"])
    assert result.exit_code == 2 and "--cpus 8,x" in result.stderr
    assert not (tmp_path / "x").exists()


def test_out_that_is_a_directory_is_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["sweep", "panic", "--out", str(tmp_path), "--seeds", "0"])
    assert result.exit_code == 2
    assert "is a directory" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def sweep(out, *args: str):
    return CliRunner().invoke(cli, ["sweep", "panic", "--out", str(out), *args])


def refused(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("haltlab: error: "), result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_an_oversized_sweep_is_one_line_at_once(tmp_path):
    """#4: --seeds 0-999999999999 used to build a list of 2e12 configs first."""
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
    (("--others", ""), "--others ''"),
    (("--cpus", "9000"), "--cpus 9000"),
    (("--cpus", "0"), "--cpus 0"),
    (("--scheduler-timeout", "0"), "--scheduler-timeout 0"),
])
def test_bad_options_fail_before_anything_runs_or_is_written(tmp_path, args, needle):
    out = tmp_path / "s.jsonl"
    refused(sweep(out, "--seeds", "0", *args), needle)
    assert list(tmp_path.iterdir()) == []


def test_out_under_a_file_fails_before_the_sweep(tmp_path):
    (tmp_path / "a-file").write_text("keep me")
    out = tmp_path / "a-file" / "s.jsonl"
    refused(sweep(out, "--seeds", "0"), f"--out {out}: cannot write")
    assert (tmp_path / "a-file").read_text() == "keep me"


@pytest.mark.parametrize("content", [b'{"key":"a","result":{}}\nhello\n', b'hello'])
def test_a_file_that_is_not_a_sweep_file_is_refused_untouched(tmp_path, content):
    out = tmp_path / "notes.txt"
    out.write_bytes(content)
    refused(sweep(out, "--cpus", "2", "--seeds", "0", "--observe", "0.05"), f"--out {out}: line ")
    assert out.read_bytes() == content


def test_profile_given_as_a_path_keys_by_profile_name(tmp_path):
    profile = profiles_dir() / "kvm-x86.toml"
    out = tmp_path / "s.jsonl"
    result = sweep(out, "--profile", str(profile), "--cpus", "2", "--seeds", "0",
                   "--after-panic", "mdelay", "--observe", "0.05", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert [r["key"] for r in read_sweep(out)] == ["kvm-x86/cpus=00002/mdelay/idle/seed=000000"]
    assert "kvm-x86 2 CPUs" in result.stdout and "toml" not in result.stdout
