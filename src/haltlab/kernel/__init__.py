"""The kernel model, written to read like the kernel's own code paths."""

__all__: list[str] = []
