"""What every experiment shares: its options, its preparation, its result header.

An experiment is `run_<name>(config) -> dict`: validate the config (bad input is
a ConfigError naming the config field; the CLI shows it under its flag), prepare once (kernel, accelerator, initramfs),
run N times, summarize. The CLI is a thin layer over these functions, so
calibration code can call them directly and get the same JSON-able dict.
"""

from __future__ import annotations

import enum
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from haltlab.errors import ConfigError, UserError
from haltlab.lab import images, initramfs, parse, userland
from haltlab.lab.arch import FACTS, Arch, parse_arch
from haltlab.lab.cache import check_cache
from haltlab.lab.lifetime import terminate_cleanly
from haltlab.lab.images import KernelImage
from haltlab.lab.qemu import GuestSpec, kernel_cmdline, pick_accelerator, qemu_version
from haltlab.lab.runner import Guest, sweep_stale_guests
from haltlab.lab.schema import SCHEMA_VERSION

__all__ = ["LabConfig", "Prepared", "prepare", "guest_spec", "header", "outcome_counts", "ProgressFn",
           "elapsed_ns", "repeat", "check_build", "check_guest_cpus", "check_seconds", "check_tcg_cpus", "MAX_SECONDS", "MAX_CPUS_Q35",
           "MAX_CPUS_TCG"]

# Called after each run with (run index, number of runs, that run's dict).
ProgressFn = Callable[[int, int, dict], None]


@dataclass(frozen=True)
class LabConfig:
    """Options every experiment takes (the model's names where it has one: `cpus`;
    the unit in every other name)."""

    cpus: int = 2
    runs: int = 1
    memory_mb: int = 512
    accel: str = "auto"  # auto | kvm | tcg
    bzimage: Path | None = None  # a user's kernel image; None = a Debian kernel package
    modules: Path | None = None  # modules directory for a user bzImage
    kernel_package: str | None = None  # pin: NAME[=VERSION]; None = what linux-image-amd64 depends on
    build: str | None = None  # a patch set (lab/patches/NAME): boot the kernel lab/build.py builds of it
    boot_timeout_s: float = 120.0  # start to the experiment's trigger
    arch: Arch = Arch.X86_64  # the guest's architecture (lab/arch.py); only kexec boots arm64 so far

    # The architectures an experiment can boot.
    ARCHES = (Arch.X86_64,)

    def validate(self) -> None:
        arch = parse_arch(self.arch)
        if arch not in self.ARCHES:
            raise ConfigError("arch", arch.value, f"this experiment boots {', '.join(a.value for a in self.ARCHES)} "
                                                  "only (lab kexec boots arm64)")
        _at_least("cpus", self.cpus, 1)
        if arch is Arch.ARM64:
            _at_least("cpus", self.cpus, 2)  # the experiment is the secondary CPUs' shutdown
            if self.cpus > FACTS[arch].max_cpus:
                raise ConfigError("cpus", self.cpus, f"Debian's arm64 kernel takes at most "
                                                     f"{FACTS[arch].max_cpus} CPUs (NR_CPUS)")
            if self.accel == "kvm":
                raise ConfigError("accel", self.accel, "an arm64 guest runs under TCG on this x86 host")
        if self.cpus > MAX_CPUS_Q35:
            raise ConfigError("cpus", self.cpus, f"QEMU's q35 machine takes at most {MAX_CPUS_Q35} vCPUs")
        if self.accel not in ACCELERATORS:
            raise ConfigError("accel", self.accel, "expected auto, kvm or tcg")
        if self.accel == "tcg" and arch is Arch.X86_64:
            check_tcg_cpus(self.cpus)
        _at_least("runs", self.runs, 1)
        _at_least("memory_mb", self.memory_mb, 128)
        check_seconds("boot_timeout_s", self.boot_timeout_s)
        if self.bzimage is not None:
            images.check_input_path("bzimage", self.bzimage, directory=False)
        if self.modules is not None:
            if self.bzimage is None:
                raise ConfigError("modules", str(self.modules),
                                  "is for a bzimage of your own (a Debian kernel brings its own)")
            images.check_input_path("modules", self.modules, directory=True)
        if self.kernel_package is not None:
            images.check_package_name(self.kernel_package)
            if self.bzimage is not None:
                raise ConfigError("kernel_package", self.kernel_package,
                                  "names a Debian kernel; a bzimage is booted instead")
        if self.build is not None:
            if arch is not Arch.X86_64:
                raise ConfigError("build", self.build, "builds an x86 kernel; an arm64 guest boots Debian's "
                                                       "linux-image-arm64 (or --bzimage, an arm64 Image)")
            check_build(self.build)
            if self.bzimage is not None or self.kernel_package is not None:
                raise ConfigError("build", self.build, "boots a kernel built from source; give it without "
                                                       "--bzimage and --kernel-package")

    def resolve_kernel(self) -> KernelImage:
        """The kernel this config names, resolved now (apt asked once; a build
        from the cache, or built now)."""
        if self.build is not None:
            from haltlab.lab.build import built_kernel
            return built_kernel(self.build)
        bzimage, modules = (Path(self.bzimage) if self.bzimage else None), (Path(self.modules) if self.modules else None)
        arch = parse_arch(self.arch)
        if arch is Arch.X86_64:
            return images.resolve_kernel(bzimage, modules, self.kernel_package)
        return images.resolve_kernel(bzimage, modules, self.kernel_package, arch=arch)

    def options(self) -> dict:
        """The config as JSON-able values, recorded in the result."""
        return {k: (str(v) if isinstance(v, Path) else v.value if isinstance(v, enum.Enum) else v)
                for k, v in asdict(self).items()}


def check_build(name: str) -> None:
    """A patch set the repository has, as a ConfigError on `build` (shown as --build)."""
    from haltlab.lab.patchsets import patch_set_names
    names = patch_set_names()
    if name not in names:
        raise ConfigError("build", name, f"unknown patch set (choose from {', '.join(names)})")


MAX_SECONDS = 10**6  # time.sleep() overflows long before float seconds do
ACCELERATORS = ("auto", "kvm", "tcg")
# QEMU 7.2: "The max CPUs supported by machine 'pc-q35-7.2' is 288"; past 255,
# x2APIC needs KVM's in-kernel irqchip, so TCG stops at 255.
MAX_CPUS_Q35 = 288
MAX_CPUS_TCG = 255


def check_tcg_cpus(cpus: int) -> None:
    if cpus > MAX_CPUS_TCG:
        raise ConfigError("cpus", cpus, f"TCG takes at most {MAX_CPUS_TCG} vCPUs (more need KVM's "
                                        "in-kernel irqchip for x2APIC)")


def check_seconds(field: str, value: float, *, zero_ok: bool = False) -> None:
    """A duration field: NaN slips through `<= 0`, and inf would wait forever."""
    number = isinstance(value, (int, float)) and math.isfinite(value)
    if not (number and (value >= 0 if zero_ok else value > 0) and value <= MAX_SECONDS):
        raise ConfigError(field, value, f"must be a finite number of seconds, {'>=' if zero_ok else '>'} 0 "
                                        "and <= 1e6")


def _at_least(field: str, value: int, low: int) -> None:
    if not isinstance(value, int) or value < low:
        raise ConfigError(field, value, f"must be an integer >= {low}")


@dataclass(frozen=True)
class Prepared:
    """What one experiment computes once and every run reuses."""

    kernel: KernelImage
    accelerator: str
    qemu_version: str
    initrd: Path


def prepare(config: LabConfig, entries: Callable[[KernelImage], list[initramfs.Entry]],
            kernel: KernelImage | None = None) -> Prepared:
    """Resolve the kernel (unless the command resolved it already and passes it
    as `kernel`) and the accelerator, build (or reuse) the initramfs."""
    with terminate_cleanly():  # SIGTERM kills a download or a build the way Ctrl-C does
        cache = check_cache()  # before anything downloads or boots
        _sweep(cache)
        arch = parse_arch(config.arch)
        version = qemu_version() if arch is Arch.X86_64 else qemu_version(arch)
        accelerator = pick_accelerator(config.accel) if FACTS[arch].kvm else "tcg"
        if accelerator == "tcg" and arch is Arch.X86_64:
            check_tcg_cpus(config.cpus)
        kernel = kernel or config.resolve_kernel()
        initrd = initramfs.build(entries(kernel), cache)
    return Prepared(kernel, accelerator, version, initrd)


def _sweep(cache: Path) -> None:
    """What runs killed by SIGKILL left behind and can be proved dead: guest
    directories in the temp dir, half-unpacked kernels, half-written images."""
    sweep_stale_guests()
    images.sweep_stale_unpacks(cache)
    userland.sweep_stale_unpacks(cache)
    initramfs.sweep_partial_images(cache)


def guest_spec(prep: Prepared, config: LabConfig, *, panic_timeout_s: int = 0,
               pvpanic: str | None = None, params: dict | None = None, extra: tuple[str, ...] = (),
               early_console: str | None = None) -> GuestSpec:
    arch = parse_arch(config.arch)
    cmdline = (kernel_cmdline(panic_timeout_s=panic_timeout_s, params=params)
               if arch is Arch.X86_64 and not extra and early_console is None
               else kernel_cmdline(panic_timeout_s=panic_timeout_s, params=params, arch=arch, extra=extra,
                                   early_console=early_console))
    return GuestSpec(
        kernel=prep.kernel.vmlinuz,
        initrd=prep.initrd,
        cmdline=cmdline,
        cpus=config.cpus,
        memory_mb=config.memory_mb,
        accelerator=prep.accelerator,
        pvpanic=pvpanic,
        arch=arch,
    )


def header(experiment: str, config: LabConfig, prep: Prepared) -> dict:
    """The fields every lab result starts with: what ran, on what."""
    return {
        "schema_version": SCHEMA_VERSION,
        "experiment": experiment,
        "source": "lab",
        "kernel_release": prep.kernel.release,
        "kernel_package": prep.kernel.package,
        "kernel_package_version": prep.kernel.package_version,
        "kernel_source": prep.kernel.source,
        "kernel_build": prep.kernel.build,
        "accelerator": prep.accelerator,
        "qemu_version": prep.qemu_version,
        "cpus": config.cpus,
        "n_runs": config.runs,
        "options": config.options(),
    }


def outcome_counts(runs: list[dict]) -> dict[str, int]:
    return dict(sorted(Counter(r["outcome"] for r in runs).items()))


def elapsed_ns(a: int | None, b: int | None) -> int | None:
    """b - a when both host stamps exist."""
    return b - a if a is not None and b is not None else None


# A run whose guest never reached its trigger measured nothing about the panic
# (the guest hung or crawled while booting: TCG on a loaded host); it is run again
# this many times, and the discarded attempts stay in the result.
BOOT_RETRIES = 1


def check_guest_cpus(g: Guest, run: int, n: int) -> None:
    """Refuse a run whose guest came up with fewer CPUs than it was given.

    QEMU starts the vCPUs, but only the kernel decides how many it brings up:
    one built without ACPI finds only the boot CPU in QEMU's MP table, and
    `maxcpus=` caps the rest. Such a guest runs, and panics, but measures
    something else (the flood's `taskset -c 1` fails and nothing floods; a
    panic has no CPU to stop), so it is an error, not a result. The count is
    what the guest printed: its init's `nproc` (the READY line on the
    progress port; a kexec run's second kernel prints its own, checked too),
    else the kernel's "smp: Brought up N node(s), M CPU(s)";
    when it printed neither (a boot that never got that far) there is
    nothing to check.
    """
    asked = g.spec.cpus
    readies = parse.ready_cpus_each(g.progress.lines)
    for stage, seen in readies:     # every kernel of the run: a kexec's second one too
        if seen < asked:
            where = "nproc in its init" + (f", kernel {stage} of the kexec" if len(readies) > 1 or stage != "1" else "")
            _short(run, n, seen, asked, where)
    if not readies and (up := parse.brought_up_cpus(g.console.lines)) and up[0] < asked:
        _short(run, n, up[0], asked, f'"{up[1]}"')


def _short(run: int, n: int, seen: int, asked: int, said: str) -> None:
    raise UserError(f"run {run + 1} of {n}: the guest brought up {seen} of the {asked} vCPUs it was given "
                    f"({said}); the run needs them all (a kernel built without ACPI finds only the boot CPU)")


def repeat(n: int, spec: GuestSpec | Callable[[int], GuestSpec], once: Callable[[Guest], dict],
           progress: ProgressFn | None, *, bulk: Callable[[str], bool] | None = None,
           trace_vcpus: bool = False) -> list[dict]:
    """Boot a fresh guest `n` times, measure each with `once(guest)`.

    `spec` is one GuestSpec for every run or a function of the run index.
    `once` marks a run that never reached its trigger with `triggered: False`;
    such a run is booted again up to BOOT_RETRIES times, so a boot hang is not
    counted as a panic hang, and the attempts it replaced are kept under
    `boot_retries` (with their console tails), never dropped silently.
    """
    runs = []
    with terminate_cleanly():  # SIGTERM stops the guest the way Ctrl-C does, then exits
        for i in range(n):
            discarded = []
            for attempt in range(BOOT_RETRIES + 1):
                with Guest(spec(i) if callable(spec) else spec, bulk=bulk, trace_vcpus=trace_vcpus) as g:
                    run = once(g)
                    check_guest_cpus(g, i, n)
                if run.get("triggered", True) or attempt == BOOT_RETRIES:
                    break
                discarded.append(run)
            if discarded:
                run["boot_retries"] = discarded
            runs.append(run)
            if progress:
                progress(i, n, run)
    return runs
