"""A run of the model, as one record: the machine, the kernel on it, the driver
that runs it, and the ghost state its properties read.

Scenarios build a `Run`; the explorer's `explore()`, `replay()` and `shrink()`
take a function that builds one, and properties are functions of one. Nothing is
attached to the driver from outside: what a run is made of is these four fields.
The engine does not know the machine's or the kernel's types (it is the bottom
layer), so they are typed loosely here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

from haltlab.engine.core import Driver

__all__ = ["Run"]


@dataclass
class Run:
    """`ghost()`, when given, returns the model's ghost state as a hashable value
    (facts kept for properties, such as which CPUs passed the `panic_cpu` claim):
    part of the explorer's state, so that pruning stays sound. `symmetry`, when
    given, declares interchangeable CPUs (used by `explore(reduce=...)`)."""

    machine: Any
    kernel: Any
    driver: Driver
    ghost: Callable[[], Hashable] | None
    symmetry: Any = field(default=None, kw_only=True)   # `haltlab.engine.symmetry.CpuSymmetry`: the CPUs a scenario declares interchangeable
    # A declared abstraction of the state (`fp -> fp`, written with
    # `engine.fingerprint.rewrite_state`): printk's sequence numbers relative
    # to the ring's tail (`kernel.printk_ringbuffer.SeqWindow`). The scenario
    # that declares one argues why merged states have the same future.
    abstraction: Callable[[tuple], tuple] | None = field(default=None, kw_only=True)

    def fingerprint(self) -> tuple:
        """The explorer's state: the driver's fingerprint (memory, hardware,
        interrupts in flight, stacks, reset) and the ghost state. Only a run
        the explorer drives has one: the simulator keeps no fingerprints."""
        if not hasattr(self.driver, "fingerprint"):
            raise TypeError(f"{type(self.driver).__name__} keeps no state fingerprint; "
                            "only a run the explorer drives has one")
        fp = (*self.driver.fingerprint(), self.ghost() if self.ghost is not None else None)
        return fp if self.abstraction is None else self.abstraction(fp)
