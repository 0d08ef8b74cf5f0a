"""`haltlab sweep printk-flood`: the campaign table per variant, JSON, resume,
progress on stderr, bad input refused in one line before anything runs."""

import json

import pytest
from click.testing import CliRunner

from haltlab.cli import cli
from haltlab.sweep import read_sweep

FAST = ("--runs", "3", "--workers", "1")


def sweep(out, *args: str):
    return CliRunner().invoke(cli, ["sweep", "printk-flood", "--output", str(out), *args])


def test_variants_resume_and_json(tmp_path):
    out = tmp_path / "flood.jsonl"
    first = sweep(out, *FAST, "--kernel", "v5.17+d51507098ff9", "--kernel", "v6.1", "--json")
    assert first.exit_code == 0, first.output
    s = json.loads(first.stdout)
    assert [v["kernel"] for v in s["variants"]] == ["v5.17+d51507098ff9", "v6.1"]
    assert s["new_runs"] == 6 and all(v["runs"] == 3 == sum(v["decided"].values()) for v in s["variants"])
    assert "haltlab: sweep" in first.stderr               # progress, as a log line off a terminal
    rows = read_sweep(out)
    assert len(rows) == 6
    again = sweep(out, *FAST, "--kernel", "v5.17+d51507098ff9,v6.1", "--json")
    assert json.loads(again.stdout) == {**s, "new_runs": 0}
    more = sweep(out, "--runs", "4", "--workers", "1", "--kernel", "v6.1", "--json")
    assert json.loads(more.stdout)["new_runs"] == 1 and len(read_sweep(out)) == 7


def test_table_names_each_variant_and_the_assumptions(tmp_path):
    result = sweep(tmp_path / "f.jsonl", *FAST, "--console-spin", "stock,panic-cpu-only", "--format", "markdown")
    assert result.exit_code == 0, result.output
    assert "v5.17+d51507098ff9 console_spin=stock" in result.stdout
    assert "v5.17+d51507098ff9 console_spin=panic-cpu-only" in result.stdout
    assert "95% Wilson" in result.stdout and "assumed: no kdump" in result.stdout


@pytest.mark.parametrize("args, needle", [
    (["--runs", "0"], "--runs 0: must be at least 1"),
    (["--kernel", "v9"], "unknown kernel preset 'v9'"),
    (["--kernel", "v6.1,v5.17+nope"], "unknown commit 'nope'"),
    (["--console-spin", "stock,x"], "--console-spin stock,x: unknown 'x'"),
    (["--cpus", "65"], "--cpus 65"),
    (["--hang-after", "-1"], "--hang-after -1"),
    (["--workers", "0"], "--workers 0"),
    (["--scheduler", "nope://x"], "--scheduler nope://x"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, args, needle):
    out = tmp_path / "f.jsonl"
    result = sweep(out, *args)
    assert result.exit_code == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("haltlab: error: ") and needle in lines[0], result.stderr
    assert not out.exists()


def test_output_is_required():
    result = CliRunner().invoke(cli, ["sweep", "printk-flood"])
    assert result.exit_code == 2 and "--output FILE is required" in result.stderr
