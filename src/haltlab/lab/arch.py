"""The guest architectures the lab boots, and what each one's guest is made of.

One value per architecture, holding every fact that differs between them, so
the rest of the pipeline asks `arch.X` instead of testing names:

- x86-64: `qemu-system-x86_64 -machine q35`, the 8250 UART ttyS0 as console
  and ttyS1 as the progress channel, isa-debug-exit for init's exit status,
  Debian's `linux-image-amd64`, the host's own busybox and kexec-tools.
- arm64: `qemu-system-aarch64 -machine virt,gic-version=3` under TCG (this host
  is x86, so no KVM), PSCI emulated by QEMU itself (no firmware: with `-kernel`
  and neither EL2 nor EL3 emulated, QEMU answers the guest's PSCI calls on the
  HVC conduit, and the device tree it writes says so), the PL011 UART
  ttyAMA0 as console, and a virtio console (`/dev/hvc0`, virtio-mmio) as the
  progress channel, because QEMU 7.2's virt board has one non-secure UART;
  no isa-debug-exit, so init ends a run by powering off (PSCI SYSTEM_OFF,
  QEMU exits 0) after saying its status on the progress channel.
  Debian's `linux-image-arm64` and busybox and kexec-tools for arm64, which
  lab/userland.py fetches (they cannot be installed beside the host's).

GICv3, not virt's default GICv2: GICv2 addresses at most 8 CPUs, and the
servers the S3 thread is about have GICv3 (as does every arm64 server since
about 2016). Without its ITS (`its=off`): the guest has no MSI device, and
with the ITS the kexec'd kernel hung right after "GICv3: Using preallocated
redistributor tables" (2026-12-01): the first kernel's LPI tables survive a
kexec only in memory reserved through EFI (efi_mem_reserve_persistent()),
and a `-kernel` boot has no EFI. `-cpu cortex-a72`, not `max`: a real server core (the first AWS Graviton's),
and under TCG about 3x faster to boot, because `max` has pointer
authentication, which Debian's kernel uses on every function
(CONFIG_ARM64_PTR_AUTH_KERNEL) and which TCG computes with the QARMA cipher:
one 2-vCPU boot to init took 21.7-26.5 s with `max`, 8.8 s with
`max,pauth-impdef=on` and 6.7 s with `cortex-a72` (2026-12-01, a loaded
host). The shutdown this lab measures barely changed (77 ms per CPU at 2
vCPUs on either: it is mostly waiting, not computing; docs/lab.md keeps the
`max` campaign beside the A72 one). The result records the CPU (`qemu_cpu`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from haltlab.errors import ConfigError

__all__ = ["Arch", "ArchFacts", "FACTS", "parse_arch", "ARCH_NAMES"]


class Arch(enum.Enum):
    """A guest architecture, by the name Linux gives it."""

    X86_64 = "x86_64"
    ARM64 = "arm64"


@dataclass(frozen=True)
class ArchFacts:
    """What one architecture's guest needs, from QEMU's binary to init's devices."""

    qemu: str                     # the QEMU binary
    qemu_package: str             # the Debian package that holds it
    machine: str                  # -machine
    tcg_cpu: str                  # -cpu under TCG
    kvm: bool                     # can this (x86) host run it under KVM
    max_cpus: int                 # what -machine takes under TCG
    console: str                  # the console tty (console=)
    earlycon: str                 # earlycon= (first line as early as the kernel can print)
    progress_tty: str             # init's progress channel in the guest
    debug_exit: bool              # isa-debug-exit: init's exit status as QEMU's
    debian_arch: str              # dpkg's name
    meta_package: str             # Debian's kernel meta package
    release_suffix: str           # how that package's releases end
    progress_modules: tuple[str, ...]  # modules init loads for the progress channel


FACTS: dict[Arch, ArchFacts] = {
    Arch.X86_64: ArchFacts(
        qemu="qemu-system-x86_64", qemu_package="qemu-system-x86", machine="q35", tcg_cpu="max", kvm=True,
        # QEMU 7.2: past 255 vCPUs x2APIC needs KVM's in-kernel irqchip
        max_cpus=255, console="ttyS0,115200", earlycon="uart8250,io,0x3f8,115200", progress_tty="/dev/ttyS1",
        debug_exit=True, debian_arch="amd64", meta_package="linux-image-amd64", release_suffix="-amd64",
        progress_modules=()),
    Arch.ARM64: ArchFacts(
        qemu="qemu-system-aarch64", qemu_package="qemu-system-arm", machine="virt,gic-version=3,its=off", tcg_cpu="cortex-a72",
        # QEMU 7.2's virt board with GICv3: "max_cpus" 512; Debian's arm64 kernel has NR_CPUS=256
        kvm=False, max_cpus=256, console="ttyAMA0,115200", earlycon="pl011,mmio32,0x9000000",
        progress_tty="/dev/hvc0", debug_exit=False, debian_arch="arm64", meta_package="linux-image-arm64",
        release_suffix="-arm64", progress_modules=("virtio_mmio", "virtio_console")),
}

ARCH_NAMES = tuple(a.value for a in Arch)


def parse_arch(value: str | Arch) -> Arch:
    """`arm64` -> Arch.ARM64; anything else is a ConfigError on `arch`."""
    if isinstance(value, Arch):
        return value
    try:
        return Arch(value)
    except ValueError:
        raise ConfigError("arch", value, f"unknown architecture (choose from {', '.join(ARCH_NAMES)})") from None
