"""The `haltlab` command line: one module per command group.

`root` holds the group and how every command fails (one line, a status);
`options` the shared option vocabulary and the field-to-flag map; `console`
the rich consoles and progress. Each command module is a thin layer: options
in, a config dataclass to the library, a result out.
"""

from haltlab.cli.root import cli, main

__all__ = ["cli", "main"]


def _mount() -> None:
    from haltlab.cli.explore import explore, replay
    from haltlab.cli import explore_kexec  # noqa: F401  (registers explore kexec, replay kexec)
    from haltlab.cli.lab import lab
    from haltlab.cli.reproduce import reproduce
    from haltlab.cli.simulate import simulate
    from haltlab.cli.sweep import sweep
    from haltlab.cli.validate import calibrate, validate

    lab.add_command(calibrate)      # measured by the lab, written into a model profile
    for command in (simulate, reproduce, explore, replay, sweep, validate, lab):
        cli.add_command(command)


_mount()
