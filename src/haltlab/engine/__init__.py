"""The engine: virtual time, the operations kernel code awaits, and the two
drivers (the timed simulator and the interleaving explorer) that run it."""

__all__: list[str] = []
