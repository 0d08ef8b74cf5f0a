"""The CLI's error handling and configs' validation (no QEMU is started)."""

import pytest
from click.testing import CliRunner

from haltlab.cli import cli
from haltlab.errors import ConfigError
from haltlab.cli.lab import lab
from haltlab.lab.experiments import FloodConfig, KexecConfig, PanicConfig


@pytest.mark.parametrize("args, message", [
    (["panic", "--cpus", "0"], "--cpus 0: must be an integer >= 1"),
    (["panic", "--smp", "0"], "--cpus 0: must be an integer >= 1"),          # the hidden alias
    (["panic", "--cpus", "2", "--smp", "3"], "--cpus 2 and --smp 3: --smp is another name for --cpus"),
    (["panic", "--runs", "0"], "--runs 0: must be an integer >= 1"),
    (["panic", "--pvpanic", "shutdown"], "--pvpanic shutdown: expected none or pause"),
    (["panic", "--pvpanic", "pause", "--panic-timeout", "3"], "--panic-timeout 3: a paused guest never resets"),
    (["panic", "--panic-timeout", "-1"], "--panic-timeout -1: must be an integer from 0 (never reset) to 1000000"),
    (["panic", "--cpus", "289"], "--cpus 289: QEMU's q35 machine takes at most 288 vCPUs"),
    (["panic", "--cpus", "256", "--accel", "tcg"], "--cpus 256: TCG takes at most 255 vCPUs"),
    (["panic", "--modules", "/tmp"], "--modules /tmp: is for a bzimage of your own"),
    (["panic", "--bzimage", "/nonexistent/bzImage"], "--bzimage /nonexistent/bzImage: no such file"),
    (["panic", "--accel", "hvf"], "--accel hvf: expected auto, kvm or tcg"),
    (["kexec", "--memory-mb", "256"], "--memory-mb 256: kexec needs room"),
    (["flood", "--cpus", "1"], "--cpus 1: the flood needs a second CPU"),
    (["flood", "--delay-min", "3", "--delay-max", "1"], "--delay-min 3.0: must not exceed the longest delay (1 s)"),
    (["calibrate", "--cpus", "1"], "--cpus 1: calibration needs at least 2 vCPUs"),
    (["panic", "--kernel-package", "bash"], "--kernel-package bash: expected a Debian kernel image package"),
    (["kexec", "--kernel-package", "linux-image-x", "--bzimage", "/bin/sh"],
     "--kernel-package linux-image-x: names a Debian kernel; a bzimage is booted instead"),
    (["calibrate", "--kernel-package", "linux-image-"], "--kernel-package linux-image-: expected"),
])
def test_bad_options_are_one_line_errors(args, message):
    # Through `haltlab`, whose group turns a UserError into the one line.
    result = CliRunner().invoke(cli, ["lab", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output


def test_configs_validate_programmatically():
    # The library names the field; only the CLI knows its flag.
    with pytest.raises(ConfigError, match="^window_s 0: ") as e:
        PanicConfig(window_s=0).validate()
    assert e.value.field == "window_s"
    with pytest.raises(ConfigError, match="^timeout_s -1: "):
        KexecConfig(timeout_s=-1).validate()
    with pytest.raises(ConfigError, match="^cpus 1: "):
        FloodConfig(cpus=1).validate()
    FloodConfig(runs=3, seed=7).validate()


def test_flood_delays_follow_the_seed():
    from haltlab.lab.experiments.flood import run_delays

    a = run_delays(FloodConfig(runs=5, seed=1))
    assert a == run_delays(FloodConfig(runs=5, seed=1)) != run_delays(FloodConfig(runs=5, seed=2))
    assert all(0.5 <= d <= 2.0 for d in a)


def test_help_lists_the_three_experiments():
    out = CliRunner().invoke(lab, ["--help"]).output
    assert all(name in out for name in ("panic", "kexec", "flood"))


@pytest.mark.parametrize("path, has_output", [("lab panic", True), ("lab kexec", True), ("lab flood", True),
                                              ("lab calibrate", False), ("validate", True)])
def test_lab_and_validate_take_the_shared_format_and_output(path, has_output):
    """Issue 6 #23: the same `--format`/`--json` and `--output FILE` as every
    other command (cli/options.py); tests/cli/test_cli_format.py renders them."""
    from haltlab.cli.options import PathText
    from haltlab.report.tables import FORMATS
    command = cli
    for name in path.split():
        command = command.commands[name]
    opts = {max(p.opts, key=len): p for p in command.params}
    assert list(opts["--format"].type.choices) == list(FORMATS) and opts["--format"].default == "table"
    assert opts["--json"].is_flag
    if has_output:
        assert opts["--output"].metavar == "FILE" and isinstance(opts["--output"].type, PathText)
