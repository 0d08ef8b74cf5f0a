"""Shared memory: the variables CPUs race on.

Every kernel variable that more than one CPU touches (`panic_cpu`,
`cpus_stop_mask`, `console_owner`, ...) is a `Var` in one `Memory`. Kernel code
reads and writes them only through the operations in `haltlab.engine.ops`, so each
access is a visible scheduling point; the explorer fingerprints the whole `Memory`
as one sorted tuple, which is why values must be immutable and hashable.

cpumasks are plain ints used as bitmaps: hashable, cheap, and `bin(mask).count("1")`
is `cpumask_weight()`.
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["Memory", "Var", "cpumask_of", "cpumask_weight", "for_each_cpu"]


class Var:
    """One shared kernel variable, named as in the kernel (`panic_cpu`).

    Reading `value` is recorded while the memory traces reads (`Memory.traced`):
    that is how the simulator learns which variables a spinner's condition
    depends on, without the kernel code having to say so."""

    __slots__ = ("name", "_value", "memory", "kind")

    def __init__(self, memory: "Memory", name: str, value: Any, kind=None) -> None:
        self.name = name
        self._value = value
        self.memory = memory
        self.kind = kind      # `haltlab.engine.symmetry.VarKind`: CPU, CPUMASK, PLAIN, or None (undeclared)

    @property
    def value(self) -> Any:
        reads = self.memory.reads
        if reads is not None:
            reads.add(self)
        return self._value

    def __repr__(self) -> str:
        return f"<{self.name}={self.value!r}>"


class Memory:
    """All shared variables of one run, plus who watches them.

    `on_write` is called after every store so a driver can re-check CPUs that
    spin or mwait on a condition instead of polling it every nanosecond; with
    `traced()` it re-checks only the CPUs whose condition read that variable.
    """

    def __init__(self) -> None:
        self.vars: dict[str, Var] = {}
        self.on_write: Callable[[Var], None] | None = None
        self.reads: set[Var] | None = None   # set while `traced()` runs

    def var(self, name: str, value: Any, *, kind=None) -> Var:
        """A new shared variable. `kind` says whether it holds a CPU id, a
        cpumask or neither (`haltlab.engine.symmetry`); symmetry refuses an
        int-valued variable without one."""
        if name in self.vars:
            raise ValueError(f"shared variable {name!r} defined twice")
        try:
            hash(value)
        except TypeError:
            raise TypeError(f"shared variable {name!r} must hold a hashable value, got {value!r}")
        v = Var(self, name, value, kind)
        self.vars[name] = v
        return v

    def store(self, var: Var, value: Any) -> None:
        var._value = value
        if self.on_write is not None:
            self.on_write(var)

    def traced(self, cond: Callable[[], Any]) -> tuple[Any, frozenset[Var]]:
        """`cond()` and the variables it read.

        For a condition that reads shared state only through `Var`s, the result
        can change only when one of *these* variables is stored to: with the same
        values it takes the same path and reads the same variables again."""
        outer, self.reads = self.reads, set()
        try:
            result = cond()
            return result, frozenset(self.reads)
        finally:
            self.reads = outer

    def fingerprint(self) -> tuple:
        return tuple((name, v._value) for name, v in sorted(self.vars.items()))


def cpumask_of(*cpus: int) -> int:
    """The mask with bit `cpu` set for each of `cpus`. Built as bytes and
    converted once: or-ing `1 << cpu` into a growing int costs O(N) per CPU, so
    O(N^2) for a whole 8192-CPU machine."""
    if not cpus:
        return 0
    if min(cpus) < 0:
        raise ValueError(f"cpumask_of{cpus}: a CPU number is never negative")
    bits = bytearray((max(cpus) >> 3) + 1)
    for cpu in cpus:
        bits[cpu >> 3] |= 1 << (cpu & 7)
    return int.from_bytes(bits, "little")


def cpumask_weight(mask: int) -> int:
    return mask.bit_count()


def for_each_cpu(mask: int):
    """Yield the CPU numbers set in `mask`, lowest first, as the kernel's macro does.

    Scans the binary digits once (lowest first) rather than clearing the lowest
    bit of an N-bit int N times: O(N) for a whole mask, not O(N^2)."""
    if mask < 0:
        raise ValueError(f"for_each_cpu({mask}): a cpumask is never negative")
    digits = bin(mask)[:1:-1]          # "0b1101" -> "1011": digit i is CPU i
    cpu = digits.find("1")
    while cpu >= 0:
        yield cpu
        cpu = digits.find("1", cpu + 1)
