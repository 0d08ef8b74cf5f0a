"""The command tree: every group is mounted, unknown commands fail in one line."""


from click.testing import CliRunner

import haltlab.cli as hcli


def test_lab_is_mounted():
    assert "lab" in hcli.cli.commands


def test_every_command_group_is_mounted():
    assert {"simulate", "reproduce", "explore", "replay", "sweep", "lab"} <= set(hcli.cli.commands)


def test_unknown_command_is_one_line():
    result = CliRunner().invoke(hcli.cli, ["nope"], prog_name="haltlab")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == ["haltlab: error: No such command 'nope'. "
                                          "(see 'haltlab --help')"]
