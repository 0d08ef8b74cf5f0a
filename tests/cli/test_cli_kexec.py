"""`haltlab simulate kexec`, `explore kexec` and `replay kexec` (S3): the
scenario's result through the CLI, verdicts with replayable counterexamples,
and bad input as one line naming the flag."""

import json
import shlex

import pytest
from click.testing import CliRunner

from cli_helpers import one_line_error
from haltlab.cli import cli
from haltlab.scenarios.kexec import KexecConfig, run_kexec


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_simulate_json_is_the_scenarios_result_and_deterministic():
    first = run("simulate", "kexec", "--cpus", "4", "--json", "--kernel", "v5.17")
    assert first.exit_code == 0, first.output
    r = json.loads(first.stdout)
    assert r == json.loads(json.dumps(run_kexec(KexecConfig(cpus=4, kernel="v5.17"))))
    assert run("simulate", "kexec", "--cpus", "4", "--json", "--kernel", "v5.17").stdout == first.stdout
    assert r["outcome"] == "kexec" and r["shutdown_ns"] > 0


def test_simulate_options_reach_the_config():
    r = json.loads(run("simulate", "kexec", "--cpus", "3", "--shutdown", "smp-send-stop", "--others", "busy",
                       "--freeze", "--loglevel", "4", "--irqs", "6", "--json").stdout)
    cfg = r["config"]
    assert (cfg["shutdown"], cfg["others"], cfg["freeze"], cfg["console_loglevel"], cfg["irqs"]) == \
        ("smp-send-stop", "busy", True, 4, 6)


def test_simulate_table_names_the_design_and_the_hazards():
    out = run("simulate", "kexec", "--cpus", "4", "--shutdown", "smp-send-stop")
    assert out.exit_code == 0, out.output
    assert "smp-send-stop" in out.stdout and "routed to CPU" in out.stdout


@pytest.mark.parametrize("args,needles", [
    (["--cpus", "1"], ["--cpus 1"]),
    (["--arch", "x86", "--shutdown", "hotplug"], ["--shutdown", "arm64"]),
    (["--profile", "kvm-x86"], ["--profile kvm-x86", "arm64"]),
    (["--kernel", "v9.9"], ["--kernel"]),
])
def test_simulate_bad_input_is_one_line(args, needles):
    one_line_error(run("simulate", "kexec", *args), *needles)


def test_explore_finds_s3s_patch_unsafe_and_the_replay_command_replays_it():
    out = run("explore", "kexec", "--shutdown", "smp-send-stop", "--json")
    assert out.exit_code == 1, out.output
    r = json.loads(out.stdout)
    assert r["verdict"] == "violation"
    words = shlex.split(r["violation"]["replay"])
    assert words[:3] == ["haltlab", "replay", "kexec"]
    again = run(*words[1:])
    assert again.exit_code == 1 and "violation" in again.stdout


def test_explore_proves_stock_hotplug_at_two_cpus():
    out = run("explore", "kexec", "--json")
    assert out.exit_code == 0, out.output
    r = json.loads(out.stdout)
    assert r["verdict"] == "ok" and r["timing"] == "timed" and "timed:" in r["timing_assumptions"]


@pytest.mark.parametrize("args,needles", [
    (["--cpus", "5"], ["--cpus 5", "2 to 4"]),
    (["--max-states", "0"], ["--max-states 0"]),
    (["--timing", "widened"], ["--timing"]),
])
def test_explore_bad_input_is_one_line(args, needles):
    one_line_error(run("explore", "kexec", *args), *needles)


def test_the_library_refuses_widening_a_kexec_search():
    from haltlab.errors import ConfigError
    from haltlab.scenarios.kexec_check import KexecCheckConfig
    with pytest.raises(ConfigError) as e:
        KexecCheckConfig(timing="widened").validate()
    assert e.value.field == "timing"
