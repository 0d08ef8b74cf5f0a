"""haltlab: an executable model of how Linux stops, halts, parks and restarts CPUs
around panic and kexec, with a lab that measures the same things on real kernels."""

__version__ = "0.1.0"

__all__ = ["__version__"]
