"""`haltlab simulate printk-flood`: one run of S2's stress test, as a table or
the scenario's dict; deterministic; bad input is one line naming the flag."""

import json

import pytest
from click.testing import CliRunner

from haltlab.cli import cli
from haltlab.scenarios.printk_flood import ASSUMPTIONS, PrintkFloodConfig, run_printk_flood


def flood(*args: str):
    return CliRunner().invoke(cli, ["simulate", "printk-flood", *args])


def test_json_is_the_scenarios_run_and_the_same_bytes_each_time():
    first = flood("--json", "--seed", "3")
    assert first.exit_code == 0, first.output
    r = json.loads(first.stdout)
    direct = json.loads(json.dumps(run_printk_flood(PrintkFloodConfig(seed=3))))
    assert {k: v for k, v in r.items() if k != "assumptions"} == direct
    assert r["assumptions"] == ASSUMPTIONS
    assert flood("--json", "--seed", "3").stdout == first.stdout
    assert flood("--json", "--seed", "4").stdout != first.stdout


def test_options_reach_the_config():
    r = json.loads(flood("--json", "--kernel", "v6.1", "--console-spin", "panic-cpu-only", "--cpus", "3",
                         "--hang-after", "30").stdout)
    assert (r["config"]["kernel"], r["config"]["console_spin"], r["config"]["cpus"], r["config"]["hang_after_s"]) \
        == ("v6.1", "panic-cpu-only", 3, 30.0)


def test_table_shows_the_outcome_and_the_assumptions():
    out = CliRunner().invoke(cli, ["simulate", "printk-flood", "--format", "markdown"]).stdout
    r = run_printk_flood(PrintkFloodConfig())
    assert "'end Kernel panic' reached the console" in out
    assert f"{r['trigger_to_end_ns'] / 1e6:,.3f} ms" in out
    assert "assumed: no kdump" in out


@pytest.mark.parametrize("args, needle", [
    (["--cpus", "1"], "--cpus 1: the flood needs 2 to 64 CPUs"),
    (["--hang-after", "0"], "--hang-after 0"),
    (["--kernel", "v5.17+nope"], "unknown commit 'nope'"),
    (["--console-spin", "sometimes"], "'sometimes' is not one of"),
    (["--profile", "no-such-profile"], "profile 'no-such-profile'"),
])
def test_bad_input_is_one_line_naming_the_flag(args, needle):
    result = flood(*args)
    assert result.exit_code == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("haltlab: error: ") and needle in lines[0], result.stderr
