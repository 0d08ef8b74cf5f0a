"""Kernel versions as sets of named commits.

Following drgn, behaviour that changed between kernels is selected by whether a
commit is present, never by comparing version numbers: a vendor kernel can carry a
backport, and a preset is only a convenient name for a set. Only commits the model
implements are listed. Citations use the kernel's own format.
"""

from __future__ import annotations

from dataclasses import dataclass

from haltlab.errors import ConfigError

__all__ = ["Commit", "COMMITS", "PRESETS", "commit_set"]


@dataclass(frozen=True)
class Commit:
    key: str
    citation: str
    effect: str


COMMITS = {c.key: c for c in (
    Commit("stop_other_cpus_robust",
           'Linux kernel commit 1f5e7eb7868e ("x86/smp: Make stop_other_cpus() more robust") (in v6.5)',
           "x86 stop waits on cpus_stop_mask, which a stopped CPU clears as its last "
           "write, instead of on num_online_cpus(); only the first caller stops others"),
    Commit("panic_final_flush",
           '"panic: Flush kernel log buffer at the end" (in v6.9)',
           "console_flush_on_panic() once more after the end-of-panic line"),
    Commit("arm64_stop_irq_then_nmi",
           '"arm64: smp: smp_send_stop() and crash_smp_send_stop() should try non-NMI first" (in v6.12)',
           "arm64 sends IPI_CPU_STOP, waits 1 s, then IPI_CPU_STOP_NMI for 10 ms"),
)}

PRESETS = {
    "v6.1": frozenset(),
    "v6.6": frozenset({"stop_other_cpus_robust"}),
    "v6.9": frozenset({"stop_other_cpus_robust", "panic_final_flush"}),
    "v7.1": frozenset({"stop_other_cpus_robust", "panic_final_flush", "arm64_stop_irq_then_nmi"}),
    # The lab's guest: Debian 12's 6.1.0-56-amd64 (6.1.192-2). Its changelog
    # (/usr/share/doc/linux-image-6.1.0-56-amd64/changelog.gz) lists both x86
    # backports from the 6.1.y stable series: "[x86] smp: Make stop_other_cpus()
    # more robust" and "panic: Flush kernel log buffer at the end".
    "debian-6.1.0-56": frozenset({"stop_other_cpus_robust", "panic_final_flush"}),
}


def commit_set(preset: str, field: str = "kernel") -> frozenset[str]:
    """The commits of `preset`; an unknown one is a `ConfigError` naming `field`
    (a scenario's `kernel`, `KernelConfig.version`)."""
    try:
        return PRESETS[preset]
    except (KeyError, TypeError):
        raise ConfigError(field, preset, f"unknown kernel preset (choose from {', '.join(PRESETS)})") from None
