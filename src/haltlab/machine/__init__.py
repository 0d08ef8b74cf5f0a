"""The machine model: CPUs, interrupts, the tick, the console, the hypervisor's
accounting, and the profiles that price them."""

__all__: list[str] = []
