"""The `haltlab` command.

click gives the command tree and option parsing; rich gives tables and progress.
Every `UserError` becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import sys

import click

from haltlab.errors import UserError

__all__ = ["main", "cli"]


class _Group(click.Group):
    """A group that turns user errors into one line instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as e:
            click.echo(f"haltlab: error: {e}", err=True)
            ctx.exit(e.exit_code)


@click.group(cls=_Group)
@click.version_option(package_name="haltlab")
def cli() -> None:
    """Model and measure how Linux stops, halts and parks CPUs around panic and kexec."""


def _mount_subcommands() -> None:
    from haltlab.lab.cli import lab

    cli.add_command(lab)


def main() -> None:
    _mount_subcommands()
    cli(prog_name="haltlab")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
