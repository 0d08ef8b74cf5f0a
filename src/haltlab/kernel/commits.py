"""Kernel versions as sets of named commits.

Following drgn, behaviour that changed between kernels is selected by whether a
commit is present, never by comparing version numbers: a vendor kernel can carry a
backport, and a preset is only a convenient name for a set. A commit is listed
when the model implements it, or when a preset needs it to describe a real kernel
truly (the lab's Debian kernel carries printk backports the model has no rules
for yet, D3 in the kernel notes): such a commit's `effect` begins "Not modelled
yet", and no model code asks for it. Citations use drgn's format.
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
           'Linux kernel commit d988d9a9b9d1 ("panic: Flush kernel log buffer at the end") (in v6.9)',
           "console_flush_on_panic() once more after the end-of-panic line (6.1.y: 6.1.86)"),
    Commit("printk_non_panic_cpus_out_of_console_lock",
           'Linux kernel commit 51a1d258e50e ("printk: Keep non-panic-CPUs out of console lock") (in v6.6)',
           "Not modelled yet (no printk rules for non-panic CPUs): during a panic console_trylock() "
           "fails and console_lock() sleeps forever on every CPU but the panic CPU (6.1.y: 6.1.55)"),
    Commit("printk_no_console_owner_in_panic",
           'Linux kernel commit d04d5882cd67 ("printk: Disable passing console lock owner completely '
           'during panic()") (in v6.9)',
           "Not modelled yet (the model has no console-lock hand-over): during a panic the console "
           "owner is never advertised, so no CPU spins waiting for a hand-over (6.1.y: 6.1.83)"),
    Commit("printk_trylock_spinning_may_schedule",
           'Linux kernel commit 807697246858 ("printk: Update @console_may_schedule in '
           'console_trylock_spinning()") (in v6.9)',
           "Not modelled yet (no hand-over, no rescheduling in the console loop): a CPU that got the "
           "console lock by hand-over clears console_may_schedule (6.1.y: 6.1.84)"),
    Commit("arm64_stop_irq_then_nmi",
           '"arm64: smp: smp_send_stop() and crash_smp_send_stop() should try non-NMI first" (in v6.12)',
           "arm64 sends IPI_CPU_STOP, waits 1 s, then IPI_CPU_STOP_NMI for 10 ms"),
    Commit("arm64_stop_ipis_try_nmi",
           'Linux kernel commit d7402513c935 ("arm64: smp: IPI_CPU_STOP and IPI_CPU_CRASH_STOP should try '
           'for NMI") (in v6.7)',
           "with pseudo-NMIs arm64 sends IPI_CPU_STOP and IPI_CPU_CRASH_STOP as pseudo-NMIs, so a CPU with "
           "interrupts masked is stopped at once; arm64_stop_irq_then_nmi (v6.12) supersedes it (first "
           "release inferred: the series was applied in September 2023, kernel-facts §4.1)"),
)}

_PRINTK_6_6 = {"printk_non_panic_cpus_out_of_console_lock"}
_PRINTK_6_9 = _PRINTK_6_6 | {"printk_no_console_owner_in_panic", "printk_trylock_spinning_may_schedule"}

PRESETS = {
    "v6.1": frozenset(),
    "v6.6": frozenset({"stop_other_cpus_robust"} | _PRINTK_6_6),
    "v6.9": frozenset({"stop_other_cpus_robust", "panic_final_flush"} | _PRINTK_6_9),
    "v7.1": frozenset({"stop_other_cpus_robust", "panic_final_flush", "arm64_stop_irq_then_nmi"} | _PRINTK_6_9),
    # The lab's guest: Debian 12's 6.1 kernels. The changelog of 6.1.0-56-amd64
    # (6.1.192-2; /usr/share/doc/linux-image-6.1.0-56-amd64/changelog.gz) lists, in
    # its 6.1.y entries, the x86 backport "[x86] smp: Make stop_other_cpus() more
    # robust" (6.1.37) and the printk/panic ones: "printk: Keep non-panic-CPUs out
    # of console lock" (6.1.55), "printk: Disable passing console lock owner
    # completely during panic()" (6.1.83), "printk: Update @console_may_schedule in
    # console_trylock_spinning()" (6.1.84), "panic: Flush kernel log buffer at the
    # end" (6.1.86). validation/lab_kernel.py checks the booted package's own
    # changelog against this set, so a kernel the preset does not describe is said.
    "debian-6.1.0-56": frozenset({"stop_other_cpus_robust", "panic_final_flush"} | _PRINTK_6_9),
}


# d7402513c935 is in every kernel from v6.7 on (kernel-notes D1); added here, not
# in the sets above, to keep this change apart from theirs.
for _preset in ("v6.9", "v7.1"):
    PRESETS[_preset] = PRESETS[_preset] | {"arm64_stop_ipis_try_nmi"}
del _preset


def commit_set(preset: str, field: str = "kernel") -> frozenset[str]:
    """The commits of `preset`; an unknown one is a `ConfigError` naming `field`
    (a scenario's `kernel`, `KernelConfig.version`)."""
    try:
        return PRESETS[preset]
    except (KeyError, TypeError):
        raise ConfigError(field, preset, f"unknown kernel preset (choose from {', '.join(PRESETS)})") from None
