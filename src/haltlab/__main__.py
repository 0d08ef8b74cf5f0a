"""`python -m haltlab`: the same command as the `haltlab` script."""

from haltlab.cli import main

__all__: list[str] = []

main()
