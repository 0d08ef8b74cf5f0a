"""`haltlab simulate kexec --arch x86` (S4): the scenario's result through the
CLI, the text view's phases and per-AP rows, the defaults per arch, and bad
input as one line naming the flag."""

import json

import pytest
from click.testing import CliRunner

from cli_helpers import one_line_error
from haltlab.cli import cli
from haltlab.scenarios.kexec_x86 import X86KexecConfig, run_kexec_x86


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_json_is_the_scenarios_result_and_deterministic():
    args = ("simulate", "kexec", "--arch", "x86", "--bringup", "park-mwait", "--cpus", "8", "--json")
    first = run(*args)
    assert first.exit_code == 0, first.output
    r = json.loads(first.stdout)
    assert r == json.loads(json.dumps(run_kexec_x86(X86KexecConfig(bringup="park-mwait", cpus=8))))
    assert run(*args).stdout == first.stdout
    assert r["profile"] == "xeon-gold-6154" and r["downtime_ns"] == sum(r["phases"].values())
    assert len(r["per_ap"]) == 7 and r["smp_init_ns"] > 0


def test_options_reach_the_config():
    r = json.loads(run("simulate", "kexec", "--arch", "x86", "--profile", "qemu-tcg-x86", "--cpus", "4", "--lpj",
                       "--bringup", "parallel", "--kernel", "v6.6", "--json").stdout)
    assert r["config"]["lpj"] is True and r["config"]["bringup"] == "parallel" and r["kernel"] == "v6.6"
    assert r["profile"] == "qemu-tcg-x86"


def test_the_text_view_shows_the_phases_and_each_ap():
    out = run("simulate", "kexec", "--arch", "x86", "--cpus", "4", "--format", "csv")
    assert out.exit_code == 0, out.output
    for text in ("image copy and purgatory", "smp_init()", "smp_init() to init", "APs woken by", "init-sipi"):
        assert text in out.stdout


def test_arm64_stays_the_default():
    r = json.loads(run("simulate", "kexec", "--cpus", "3", "--json").stdout)
    assert r["profile"] == "arm64-server-24" and "per_cpu" in r


@pytest.mark.parametrize("args, flag", [
    (("--arch", "x86", "--shutdown", "hotplug"), "--shutdown"),
    (("--bringup", "parallel"), "--bringup"),
    (("--lpj",), "--lpj"),
    (("--arch", "x86", "--bringup", "parallel", "--kernel", "v5.17"), "--bringup"),
    (("--arch", "x86", "--cpus", "7"), "--cpus"),
    (("--arch", "x86", "--profile", "arm64-server-24"), "--profile"),
    (("--arch", "x86", "--boot-core-sibling", "99", "--cpus", "8"), "--boot-core-sibling"),
])
def test_bad_input_is_one_line(args, flag):
    result = run("simulate", "kexec", *args)
    assert result.exit_code == 2
    assert flag in one_line_error(result)


def test_explore_x86_finds_s4s_sibling_with_a_replay_that_reproduces_it():
    out = run("explore", "kexec", "--arch", "x86", "--bringup", "park-spin", "--json")
    assert out.exit_code == 1, out.output
    r = json.loads(out.stdout)
    assert r["cpus"] == 4 and r["verdict"] == "violation"
    v = r["violation"]
    assert v["property"] == "the boot CPU's sibling is not parked"
    words = v["replay"].split()
    assert words[:3] == ["haltlab", "replay", "kexec"]
    again = run(*words[1:])
    assert again.exit_code == 1 and "CPU2, the boot CPU's SMT sibling, is parked" in again.stdout


def test_explore_refuses_the_other_archs_options():
    one_line_error(run("explore", "kexec", "--arch", "x86", "--freeze"), "--freeze")
    one_line_error(run("explore", "kexec", "--bringup", "park-spin"), "--bringup")
