"""`haltlab lab ...` commands."""

import click

__all__ = ["lab"]


@click.group()
def lab() -> None:
    """Boot real kernels under QEMU and measure the panic and kexec CPU paths."""
