"""One option vocabulary (issue 6 #26, cli/options.py): the same word means the
same thing, with the same metavar and type, in every command that has it."""

import click
import pytest

from haltlab.cli import cli
from haltlab.cli.options import PathText
from haltlab.cli.options import KernelSpec
from haltlab.kernel.commits import PRESETS
from haltlab.report.tables import FORMATS

MINE = ["simulate panic", "reproduce", "explore panic-race", "replay panic-race"]


def command(path: str) -> click.Command:
    c = cli
    for name in path.split():
        c = c.commands[name]
    return c


def options(path: str) -> dict[str, click.Option]:
    return {max(p.opts, key=len): p for p in command(path).params if isinstance(p, click.Option)}


@pytest.mark.parametrize("path", MINE)
def test_each_shared_option_is_spelled_and_typed_one_way(path):
    opts = options(path)
    if "--cpus" in opts:
        assert opts["--cpus"].metavar == "N" and isinstance(opts["--cpus"].type, click.types.IntParamType)
    if "--kernel" in opts:
        assert isinstance(opts["--kernel"].type, KernelSpec)
        assert set(opts["--kernel"].type.choices) == set(PRESETS)    # a preset and commits, never a file
    if "--profile" in opts:
        assert opts["--profile"].metavar == "NAME|FILE"
    if "--observe" in opts:
        assert opts["--observe"].metavar == "SECONDS"
    for name in ("--out", "--trace"):
        if name in opts:
            assert opts[name].metavar == "DIR" and isinstance(opts[name].type, PathText)
    if "--output" in opts:
        assert opts["--output"].metavar == "FILE"


@pytest.mark.parametrize("path", ["simulate panic", "reproduce", "explore panic-race"])
def test_every_command_with_json_has_format(path):
    opts = options(path)
    assert list(opts["--format"].type.choices) == list(FORMATS) and opts["--json"].is_flag


def test_kernel_is_a_preset_in_every_command():
    """`--kernel` names a commit set (a preset and +/- commits) everywhere; a
    kernel image is `--bzimage`."""
    def walk(group, prefix=()):
        for name, c in group.commands.items():
            yield from walk(c, (*prefix, name)) if isinstance(c, click.Group) else [(" ".join((*prefix, name)), c)]
    for path, c in walk(cli):
        for p in c.params:
            if "--kernel" in getattr(p, "opts", ()):
                assert isinstance(p.type, KernelSpec), path
