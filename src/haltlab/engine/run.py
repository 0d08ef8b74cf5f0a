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
from haltlab.engine.timing import Timing

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

    def __post_init__(self) -> None:
        if getattr(self.driver, "timing", None) is Timing.WIDENED:
            self.driver.after_step = self._widen

    @property
    def path_dependent(self) -> bool:
        """Do a state's successors depend on the path the run took to it, not
        only on its fingerprint? Only under `Timing.WIDENED`, whose widening
        reads the run's own history (`Clocks.widen_at`); the explorer then
        replays a state by the search's own path to it (`engine.reach`)."""
        return getattr(self.driver, "timing", None) is Timing.WIDENED

    def _widen(self) -> None:
        """Widen the zone at the discrete state the run is in: its
        fingerprint, the declared abstraction applied, the zone left out."""
        fp = self.fingerprint()
        self.driver.clocks.widen_at((*fp[:5], fp[5][1:], *fp[6:]))

    def fingerprint(self) -> tuple:
        """The explorer's state: the driver's fingerprint (memory, hardware,
        interrupts in flight, stacks, reset) and the ghost state. Only a run
        the explorer drives has one: the simulator keeps no fingerprints."""
        if not hasattr(self.driver, "fingerprint"):
            raise TypeError(f"{type(self.driver).__name__} keeps no state fingerprint; "
                            "only a run the explorer drives has one")
        fp = (*self.driver.fingerprint(), self.ghost() if self.ghost is not None else None)
        return fp if self.abstraction is None else self.abstraction(fp)
