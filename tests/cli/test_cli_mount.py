"""The mount point: `lab` always, `explore`/`replay` only when their module exists."""

import sys
import types

import click
import pytest
from click.testing import CliRunner

import haltlab.cli as hcli


def test_lab_is_mounted():
    assert "lab" in hcli.cli.commands


def test_a_missing_optional_module_is_skipped(monkeypatch):
    monkeypatch.setattr(hcli, "_OPTIONAL", {"haltlab.no_such_module_for_test": ("explore",)})
    before = dict(hcli.cli.commands)
    hcli._mount_subcommands()
    assert hcli.cli.commands == before


def test_a_missing_dependency_of_an_optional_module_is_not_hidden(monkeypatch, tmp_path):
    (tmp_path / "haltlab_fake_explore.py").write_text("import no_such_dependency_for_test\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(hcli, "_OPTIONAL", {"haltlab_fake_explore": ("explore",)})
    with pytest.raises(ModuleNotFoundError):
        hcli._mount_subcommands()


def test_present_commands_are_mounted(monkeypatch):
    module = types.ModuleType("haltlab_fake_cli_explore")

    @click.command()
    def explore():
        click.echo("exploring")

    module.explore = explore                 # no `replay` yet: mount what is there
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(hcli, "_OPTIONAL", {module.__name__: ("explore", "replay")})
    monkeypatch.setattr(hcli.cli, "commands", dict(hcli.cli.commands))
    hcli._mount_subcommands()
    assert CliRunner().invoke(hcli.cli, ["explore"]).stdout == "exploring\n"
    assert hcli.cli.commands.get("replay") is not explore


def test_unknown_command_is_one_line():
    result = CliRunner().invoke(hcli.cli, ["nope"], prog_name="haltlab")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == ["haltlab: error: No such command 'nope'. "
                                          "(see 'haltlab --help')"]
