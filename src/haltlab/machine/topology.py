"""Which package, core and SMT thread each CPU number is (x86, S4).

The bring-up decides on it: 6.5's parallel bring-up kicks the primary
threads first, the TSC sync check and the delay calibration of the first
CPU of a package differ from the rest, and S4's park must leave the boot
CPU's sibling out. Linux numbers CPUs in the order the firmware lists them
(ACPI MADT); the model takes the order most two-socket Intel servers' MADT
has, every core's first thread (package by package) before any second
thread, so on S4's 2 x 18 x 2 machine CPU 0's sibling is CPU 36
[inferred: the 6154's MADT is not in the thread].

The profile gives `sockets` and `threads_per_core` (default 1 each); the
cores per package follow from the CPU count, which must divide evenly.
"""

from __future__ import annotations

from dataclasses import dataclass

from haltlab.errors import ConfigError

__all__ = ["Topology", "topology_of"]


@dataclass(frozen=True)
class Topology:
    ncpus: int
    sockets: int
    threads_per_core: int

    def __fingerprint__(self) -> str:
        return f"topology({self.ncpus},{self.sockets},{self.threads_per_core})"

    @property
    def cores_per_socket(self) -> int:
        return self.ncpus // (self.sockets * self.threads_per_core)

    @property
    def ncores(self) -> int:
        return self.ncpus // self.threads_per_core

    def thread_of(self, cpu: int) -> int:
        return cpu // self.ncores

    def core_of(self, cpu: int) -> int:
        """The core's number over the whole machine."""
        return cpu % self.ncores

    def package_of(self, cpu: int) -> int:
        return self.core_of(cpu) // self.cores_per_socket

    def is_primary_thread(self, cpu: int) -> bool:
        """`topology_is_primary_thread()`: the first thread of its core."""
        return self.thread_of(cpu) == 0

    def primary_mask(self) -> int:
        """`cpu_primary_thread_mask`."""
        return (1 << self.ncores) - 1

    def sibling_of(self, cpu: int) -> list[int]:
        """The other threads of `cpu`'s core (`topology_sibling_cpumask()` less itself)."""
        core = self.core_of(cpu)
        return [core + t * self.ncores for t in range(self.threads_per_core) if core + t * self.ncores != cpu]

    def first_of_package(self, cpu: int) -> int:
        """The lowest-numbered CPU of `cpu`'s package: the one the serial
        bring-up brings up first there."""
        return self.package_of(cpu) * self.cores_per_socket


def topology_of(profile, ncpus: int) -> Topology:
    params = profile.params
    sockets = int(params["sockets"].value) if "sockets" in params else 1
    threads = int(params["threads_per_core"].value) if "threads_per_core" in params else 1
    if ncpus % (sockets * threads):
        raise ConfigError("cpus", ncpus, f"a multiple of {sockets * threads} on {profile.name} "
                                         f"({sockets} sockets x {threads} threads per core)")
    return Topology(ncpus, sockets, threads)
