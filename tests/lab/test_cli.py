"""The CLI's error handling and configs' validation (no QEMU is started)."""

import pytest
from click.testing import CliRunner

from haltlab.cli import cli
from haltlab.errors import UserError
from haltlab.cli.lab import lab
from haltlab.lab.experiments import FloodConfig, KexecConfig, PanicConfig


@pytest.mark.parametrize("args, message", [
    (["panic", "--smp", "0"], "--smp: must be an integer >= 1, got 0"),
    (["panic", "--runs", "0"], "--runs: must be an integer >= 1, got 0"),
    (["panic", "--pvpanic", "shutdown"], "--pvpanic: expected none or pause"),
    (["panic", "--pvpanic", "pause", "--panic-timeout", "3"], "--panic-timeout: needs --pvpanic none"),
    (["panic", "--bzimage", "/nonexistent/bzImage"], "--bzimage: no such file: /nonexistent/bzImage"),
    (["kexec", "--memory-mb", "256"], "--memory-mb: kexec needs room"),
    (["flood", "--smp", "1"], "--smp: the flood needs a second CPU"),
    (["flood", "--delay-min", "3", "--delay-max", "1"], "--delay-min/--delay-max"),
])
def test_bad_options_are_one_line_errors(args, message):
    # Through `haltlab`, whose group turns a UserError into the one line.
    result = CliRunner().invoke(cli, ["lab", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output


def test_configs_validate_programmatically():
    with pytest.raises(UserError, match="--window"):
        PanicConfig(window_s=0).validate()
    with pytest.raises(UserError, match="--timeout"):
        KexecConfig(timeout_s=-1).validate()
    FloodConfig(runs=3, seed=7).validate()


def test_flood_delays_follow_the_seed():
    from haltlab.lab.experiments.flood import run_delays

    a = run_delays(FloodConfig(runs=5, seed=1))
    assert a == run_delays(FloodConfig(runs=5, seed=1)) != run_delays(FloodConfig(runs=5, seed=2))
    assert all(0.5 <= d <= 2.0 for d in a)


def test_help_lists_the_three_experiments():
    out = CliRunner().invoke(lab, ["--help"]).output
    assert all(name in out for name in ("panic", "kexec", "flood"))
