"""The QEMU command line, built as a pure function of what the run needs.

Each group of arguments carries the reason it is there; tests check the groups
without starting QEMU (tests/lab/test_qemu_args.py). Starting and stopping the
process is runner.py's job.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from haltlab.errors import ConfigError, UserError
from haltlab.lab import lifetime
from haltlab.lab.arch import FACTS, Arch

__all__ = [
    "QEMU",
    "DEBUG_EXIT_PORT",
    "GuestSpec",
    "cpu_flags",
    "kvm_usable",
    "pick_accelerator",
    "qemu_version",
    "kernel_cmdline",
    "build_args",
]

QEMU = "qemu-system-x86_64"
DEBUG_EXIT_PORT = 0xF4


@dataclass(frozen=True)
class GuestSpec:
    """Everything that decides the QEMU command line of one run."""

    kernel: Path
    initrd: Path
    cmdline: str
    cpus: int = 2
    memory_mb: int = 512
    accelerator: str = "kvm"  # "kvm" or "tcg"
    pvpanic: str | None = None  # None: no device; else the `-action panic=` value
    arch: Arch = Arch.X86_64


def cpu_flags(cpuinfo: str) -> set[str]:
    """The first `flags` line of /proc/cpuinfo as a set."""
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def kvm_usable() -> bool:
    """True when /dev/kvm opens read-write and the CPU shows vmx or svm.

    Openable is not enough: a VM without nested virtualization may still have a
    /dev/kvm whose guests hang in the kernel's decompressor (seen on an AMD EPYC
    cloud VM whose cpuinfo had neither flag). The flag is the host kernel's
    statement that hardware virtualization is really there.
    """
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC))
        flags = cpu_flags(Path("/proc/cpuinfo").read_text())
    except OSError:
        return False
    return bool(flags & {"vmx", "svm"})


def pick_accelerator(requested: str = "auto") -> str:
    """"kvm" if asked for or available, else "tcg"; asking for kvm without it is an error."""
    if requested not in ("auto", "kvm", "tcg"):
        raise ConfigError("accel", requested, "expected auto, kvm or tcg")
    if requested == "kvm" and not kvm_usable():
        raise ConfigError("accel", requested, "/dev/kvm is not usable here (use auto or tcg)")
    if requested == "auto":
        return "kvm" if kvm_usable() else "tcg"
    return requested


def qemu_version(arch: Arch = Arch.X86_64) -> str:
    """`7.2.22` from `qemu-system-x86_64 --version` (or the arch's QEMU); a
    missing QEMU is a user error."""
    qemu, package = FACTS[arch].qemu, FACTS[arch].qemu_package
    if not shutil.which(qemu):
        raise UserError(f"{qemu} not found (Debian: apt-get install {package})")
    out = lifetime.run([qemu, "--version"], capture_output=True, text=True, check=True, timeout_s=60).stdout
    m = re.search(r"version (\S+)", out)
    return m.group(1) if m else out.strip()


def kernel_cmdline(*, panic_timeout_s: int = 0, params: dict[str, object] | None = None,
                   arch: Arch = Arch.X86_64, extra: tuple[str, ...] = (), early_console: str | None = None) -> str:
    """The guest kernel's command line.

    - console=ttyS0: the console is the first serial port, piped to the host.
    - earlycon: print from setup_arch() on, so a kexec'd kernel's first line is
      close to when it started (the real console would replay it much later).
    - printk.time=1: guest timestamps on every line, for smp_init and panic().
    - printk.devkmsg=on: /dev/kmsg writes are rate-limited by default (10 per 5 s),
      which would turn the flood into a trickle.
    - panic=N: panic_timeout (seconds); 0 waits forever, N>0 resets after N s.
    - haltlab.*: parameters for /init (see guest.py).
    On arm64 the console is the PL011 (ttyAMA0, earlycon at virt's 0x9000000);
    `extra` are an experiment's own kernel parameters (the arm64 kexec's
    `ignore_loglevel`), before the haltlab ones. `early_console` replaces
    `earlycon=...` (the x86 kexec's `earlyprintk=serial,ttyS0,115200`, which the
    decompressor reads too, so a kexec'd kernel's decompressor prints).
    """
    facts = FACTS[arch]
    parts = [
        f"console={facts.console}",
        early_console or f"earlycon={facts.earlycon}",
        "printk.time=1",
        "printk.devkmsg=on",
        f"panic={panic_timeout_s}",
        *extra,
    ]
    parts += [f"haltlab.{k}={v}" for k, v in (params or {}).items()]
    return " ".join(parts)


def build_args(spec: GuestSpec, *, console_fd: int, progress_fd: int, qmp_path: Path) -> list[str]:
    """The full argv for one run."""
    arm64 = spec.arch is Arch.ARM64
    args = [FACTS[spec.arch].qemu]
    # Machine and accelerator: KVM runs vCPUs on the host CPU; TCG translates,
    # one host thread per vCPU with thread=multi, so per-thread CPU time still
    # means per-vCPU CPU time. arm64: the virt board with GICv3 (GICv2 stops at
    # 8 CPUs) under TCG. No firmware there: QEMU loads the kernel itself and,
    # with neither EL2 nor EL3 emulated, implements PSCI (CPU_ON, CPU_OFF,
    # AFFINITY_INFO, SYSTEM_OFF) on the HVC conduit its device tree names.
    if spec.accelerator == "kvm" and not arm64:
        args += ["-machine", "q35", "-accel", "kvm", "-cpu", "host"]
    else:
        args += ["-machine", FACTS[spec.arch].machine, "-accel", "tcg,thread=multi", "-cpu", FACTS[spec.arch].tcg_cpu]
    args += ["-smp", str(spec.cpus), "-m", str(spec.memory_mb)]
    # Nothing we did not ask for: no default NIC, VGA, monitor, serial, disk,
    # and no host file sharing; the initramfs is the guest's whole file system.
    args += ["-nodefaults", "-no-user-config", "-nic", "none", "-display", "none"]
    # -no-reboot: a guest reset (panic=N running out, or a reboot) makes QEMU
    # exit, so "time to reset" is the host seeing the process end.
    args += ["-no-reboot"]
    # -S: start paused, so the host can read the vCPU threads over QMP and
    # then `cont`; nothing runs before the host is listening.
    args += ["-S", "-qmp", f"unix:{qmp_path},server=on,wait=off"]
    args += ["-kernel", str(spec.kernel), "-initrd", str(spec.initrd), "-append", spec.cmdline]
    # ttyS0 (arm64: ttyAMA0, the board's PL011) = console, ttyS1 = progress
    # channel; each a pipe inherited from the host (opened through /dev/fd), so
    # no file is left on disk. The virt board has one UART, so an arm64 guest's
    # progress channel is a virtio console on virtio-mmio (/dev/hvc0).
    args += ["-chardev", f"file,id=console,path=/dev/fd/{console_fd}", "-serial", "chardev:console"]
    args += ["-chardev", f"file,id=progress,path=/dev/fd/{progress_fd}"]
    if arm64:
        return args + ["-device", "virtio-serial-device", "-device", "virtconsole,chardev=progress"]
    args += ["-serial", "chardev:progress"]
    # isa-debug-exit: /init ends the run with an exit status of its choosing.
    args += ["-device", f"isa-debug-exit,iobase={DEBUG_EXIT_PORT:#x},iosize=0x04"]
    # pvpanic: the guest's panic notifier tells QEMU (GUEST_PANICKED on QMP);
    # -action panic=pause is the host-side remedy for a spinning panicked guest.
    if spec.pvpanic is not None:
        args += ["-device", "pvpanic-pci", "-action", f"panic={spec.pvpanic}"]
    return args
