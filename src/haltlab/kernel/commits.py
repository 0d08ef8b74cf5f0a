"""Kernel versions as sets of named commits, and kernel specs built from them.

Following drgn, behaviour that changed between kernels is selected by whether a
commit is present, never by comparing version numbers: a vendor kernel can carry a
backport, and a preset is only a convenient name for a set. A commit is listed
when the model implements it, or when a preset needs it to describe a real kernel
truly; a commit the model has no rule for says so in its `effect`, and no model
code asks for it. Citations use drgn's format, which `validation.lab_kernel`
parses (the id, the subject, "(in vX.Y)").

A kernel *spec* is a preset plus or minus commits, as a kernel developer writes
it: `v5.17+d51507098ff9` is 5.17 with the patch S2 tested, `v6.1-13fb0f74d702`
6.1 without the dropped-messages guard. A commit is named by its id (at least 7
hex digits, as `git log --oneline` abbreviates) or by its key here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from haltlab.errors import ConfigError

__all__ = ["Commit", "COMMITS", "PRESETS", "commit_set", "parse_spec", "find_commit"]


@dataclass(frozen=True)
class Commit:
    key: str
    citation: str
    effect: str

    @property
    def sha(self) -> str | None:
        """The commit id the citation names, if it names one."""
        m = re.match(r"Linux kernel commit ([0-9a-f]{7,40}) ", self.citation)
        return m.group(1) if m else None


COMMITS = {c.key: c for c in (
    Commit("printk_console_owner_handover",
           'Linux kernel commit dbdda842fe96 ("printk: Add console owner and waiter logic to load balance '
           'console writes") (in v4.16)',
           "the CPU printing in console_unlock() advertises itself as console_owner around each record; a "
           "CPU whose console_trylock() fails becomes the console_waiter and spins until the owner hands "
           "console_sem over after its record"),
    Commit("printk_no_spin_in_panic",
           'Linux kernel commit d51507098ff9 ("printk: disable optimistic spin during panic") (in v5.18)',
           "console_trylock_spinning() gives up without spinning when a panic is in progress, on every CPU"),
    Commit("printk_suppress_panic_printk",
           'Linux kernel commit 13fb0f74d702 ("printk: Avoid livelock with heavy printk during panic") (in v5.18)',
           "the console reader counts gaps during a panic; on the 12th (panic_console_dropped++ > 10) it sets "
           "suppress_panic_printk, and vprintk_emit() then drops records from non-panic CPUs"),
    Commit("printk_drop_console_sem_in_panic",
           'Linux kernel commit 8ebc476fd51e ("printk: Drop console_sem during panic") (in v5.18)',
           "a non-panic CPU printing in console_unlock() gives console_sem up after each record once a "
           "panic is in progress (abandon_console_lock_in_panic()), and does not retry"),
    Commit("printk_rework_printing_logic",
           'Linux kernel commit a699449bb13b ("printk: refactor and rework printing logic") (in v5.19)',
           "console_unlock() becomes console_flush_all() over console_emit_next_record(): the position "
           "moves to struct console (con->seq, advanced after the driver call) and the retry loop "
           "re-checks only once everything was flushed"),
    Commit("stop_other_cpus_robust",
           'Linux kernel commit 1f5e7eb7868e ("x86/smp: Make stop_other_cpus() more robust") (in v6.5)',
           "x86 stop waits on cpus_stop_mask, which a stopped CPU clears as its last "
           "write, instead of on num_online_cpus(); only the first caller stops others"),
    Commit("printk_non_panic_cpus_out_of_console_lock",
           'Linux kernel commit 51a1d258e50e ("printk: Keep non-panic-CPUs out of console lock") (in v6.6)',
           "during a panic console_trylock() fails on every CPU but the panic CPU (6.1.y: 6.1.55)"),
    Commit("printk_flush_on_panic_without_console_lock",
           'Linux kernel commit eacb04ff3c5b ("printk: Do not take console lock for console_flush_on_panic()") '
           '(in v6.6)',
           "console_flush_on_panic() flushes with console_flush_all() directly, leaving console_sem to "
           "whoever holds it (before, it took and released it)"),
    Commit("panic_final_flush",
           'Linux kernel commit d988d9a9b9d1 ("panic: Flush kernel log buffer at the end") (in v6.9)',
           "console_flush_on_panic() once more after the end-of-panic line (6.1.y: 6.1.86)"),
    Commit("printk_no_console_owner_in_panic",
           'Linux kernel commit d04d5882cd67 ("printk: Disable passing console lock owner completely '
           'during panic()") (in v6.9)',
           "during a panic console_lock_spinning_enable() never advertises an owner and "
           "console_lock_spinning_disable_and_check() never hands over, so no CPU spins as a waiter "
           "and console_owner_lock is not taken (6.1.y: 6.1.83)"),
    Commit("printk_trylock_spinning_may_schedule",
           'Linux kernel commit 807697246858 ("printk: Update @console_may_schedule in '
           'console_trylock_spinning()") (in v6.9)',
           "No effect in the model: a CPU that got the console lock by hand-over clears "
           "console_may_schedule, and the model's printing never reschedules (6.1.y: 6.1.84)"),
    Commit("printk_non_panic_cpus_out_of_ringbuffer",
           'Linux kernel commit 779dbc2e78d7 ("printk: Avoid non-panic CPUs writing to ringbuffer") (in v6.9)',
           "once a panic is in progress vprintk_emit() drops every record from a non-panic CPU; "
           "suppress_panic_printk goes"),
    Commit("prb_skip_non_finalized_in_panic",
           'Linux kernel commit b1c4c67a5e90 ("printk: ringbuffer: Skip non-finalized records in panic") '
           '(in v6.9)',
           "the panic CPU's reader skips a record a stopped CPU reserved but never finalized, when later "
           "records exist, instead of stopping there"),
    Commit("cpuhp_core_sync_dead",
           '"arm64: smp: Switch to hotplug core state synchronization" (in v6.5), with "cpu/hotplug: Add '
           'CPU state tracking and synchronization" (in v6.5)',
           "the control CPU waits for a dying CPU's death report with cpuhp_bp_sync_dead() (1 ms of "
           "cpu_relax(), then usleep_range(1000, 2000), 10 s budget) instead of 5.x's cpu_wait_death() "
           "(udelay(5), then jiffy sleeps growing by 1.1x, 5 s budget); arm64's __cpu_die() work moves "
           "to arch_cpuhp_cleanup_dead_cpu() (Thomas Gleixner's hotplug series, May 2023, merged for 6.5)"),
    Commit("arm64_stop_irq_then_nmi",
           '"arm64: smp: smp_send_stop() and crash_smp_send_stop() should try non-NMI first" (in v6.12)',
           "arm64 sends IPI_CPU_STOP, waits 1 s, then IPI_CPU_STOP_NMI for 10 ms"),
    Commit("x86_init_udelay_vfm",
           'Linux kernel commit 7a2ad752746b ("x86/smpboot: Fix INIT delay assignment for extended Intel '
           'Families", Sohil Mehta, 2025-02-19, committed 2025-03-18; in v6.15 [release inferred from its '
           'committer date and its 6.12/6.14 stable backports])',
           "smp_set_init_udelay() skips the 10 ms INIT delay on every Intel CPU from the Pentium Pro on "
           "(x86_vfm >= INTEL_PENTIUM_PRO) instead of family 6 only, so families 15, 18 and 19 get 0 too"),
    Commit("arm64_stop_ipis_try_nmi",
           'Linux kernel commit d7402513c935 ("arm64: smp: IPI_CPU_STOP and IPI_CPU_CRASH_STOP should try '
           'for NMI") (in v6.7)',
           "with pseudo-NMIs arm64 sends IPI_CPU_STOP and IPI_CPU_CRASH_STOP as pseudo-NMIs, so a CPU with "
           "interrupts masked is stopped at once; arm64_stop_irq_then_nmi (v6.12) supersedes it (first "
           "release inferred: the series was applied in September 2023, kernel-facts §4.1)"),
)}

_V5_17 = frozenset({"printk_console_owner_handover"})
_V5_18 = _V5_17 | {"printk_no_spin_in_panic", "printk_suppress_panic_printk", "printk_drop_console_sem_in_panic"}
_V6_1 = _V5_18 | {"printk_rework_printing_logic"}
_PRINTK_6_6 = {"printk_non_panic_cpus_out_of_console_lock", "printk_flush_on_panic_without_console_lock"}
_ARM64_6_7 = {"arm64_stop_ipis_try_nmi"}      # d7402513c935, v6.7 (kernel-notes D1)
_PRINTK_6_9 = {"panic_final_flush", "printk_no_console_owner_in_panic", "printk_trylock_spinning_may_schedule",
               "printk_non_panic_cpus_out_of_ringbuffer", "prb_skip_non_finalized_in_panic"}

_CPUHP_6_5 = {"cpuhp_core_sync_dead"}

PRESETS = {
    "v5.17": _V5_17,
    "v5.18": _V5_18,
    "v6.1": _V6_1,
    "v6.6": _V6_1 | {"stop_other_cpus_robust"} | _PRINTK_6_6 | _CPUHP_6_5,
    "v6.9": _V6_1 | {"stop_other_cpus_robust"} | _PRINTK_6_6 | _ARM64_6_7 | _PRINTK_6_9 | _CPUHP_6_5,
    "v7.1": (_V6_1 | {"stop_other_cpus_robust", "arm64_stop_irq_then_nmi", "x86_init_udelay_vfm"} | _PRINTK_6_6
             | _ARM64_6_7 | _PRINTK_6_9 | _CPUHP_6_5),
    # The lab's guest: Debian 12's 6.1 kernels. The changelog of 6.1.0-56-amd64
    # (6.1.192-2; /usr/share/doc/linux-image-6.1.0-56-amd64/changelog.gz) lists, in
    # its 6.1.y entries, the x86 backport "[x86] smp: Make stop_other_cpus() more
    # robust" (6.1.37) and the printk/panic ones: "printk: Keep non-panic-CPUs out
    # of console lock" (6.1.55), "printk: Disable passing console lock owner
    # completely during panic()" (6.1.83), "printk: Update @console_may_schedule in
    # console_trylock_spinning()" (6.1.84), "panic: Flush kernel log buffer at the
    # end" (6.1.86); not eacb04ff3c5b, 779dbc2e78d7 or b1c4c67a5e90 (kernel-notes
    # §4). validation/lab_kernel.py checks the booted package's own changelog
    # against this set, so a kernel the preset does not describe is said.
    "debian-6.1.0-56": _V6_1 | {"stop_other_cpus_robust", "panic_final_flush", "printk_non_panic_cpus_out_of_console_lock",
                                "printk_no_console_owner_in_panic", "printk_trylock_spinning_may_schedule"},
}
PRESETS = {name: frozenset(keys) for name, keys in PRESETS.items()}

_SPEC = re.compile(r"([+-])([^+-]+)")


def find_commit(name: str) -> Commit | None:
    """The commit `name` names: its key, or its id (7 or more hex digits,
    matching the start of the cited id or being longer than it)."""
    if name in COMMITS:
        return COMMITS[name]
    if re.fullmatch(r"[0-9a-f]{7,40}", name):
        for c in COMMITS.values():
            sha = c.sha
            if sha is not None and (sha.startswith(name) or name.startswith(sha)):
                return c
    return None


def parse_spec(spec: str, field: str = "kernel") -> tuple[str, tuple[tuple[str, str], ...]]:
    """`v5.17+d51507098ff9-dbdda842fe96` -> ("v5.17", (("+", key), ("-", key))).
    A bad spec is a `ConfigError` naming `field`."""
    if not isinstance(spec, str) or not spec:
        raise ConfigError(field, spec, "a kernel spec is a preset, optionally +COMMIT or -COMMIT after it")
    # Preset names may hold a '-' (debian-6.1.0-56): take the longest that fits.
    fits = [p for p in PRESETS if spec.startswith(p) and spec[len(p):len(p) + 1] in ("", "+", "-")]
    preset = max(fits, key=len, default=re.match(r"[^+-]*", spec).group(0))
    if preset not in PRESETS:
        raise ConfigError(field, spec, f"unknown kernel preset {preset!r} (choose from {', '.join(PRESETS)}; "
                                       "add or remove commits with +ID or -ID)")
    rest = spec[len(preset):]
    changes, pos = [], 0
    for m in _SPEC.finditer(rest):
        if m.start() != pos:
            break
        c = find_commit(m.group(2))
        if c is None:
            known = ", ".join(sorted(filter(None, (k.sha for k in COMMITS.values()))))
            raise ConfigError(field, spec, f"unknown commit {m.group(2)!r} (the model knows {known}, "
                                           "or their keys in haltlab.kernel.commits)")
        changes.append((m.group(1), c.key))
        pos = m.end()
    if pos != len(rest):
        raise ConfigError(field, spec, f"cannot read {rest[pos:]!r}: write +ID or -ID after the preset")
    return preset, tuple(changes)


@lru_cache(maxsize=256)
def commit_set(spec: str, field: str = "kernel") -> frozenset[str]:
    """The commits of the kernel `spec` (a preset, +/- commits); a bad one is a
    `ConfigError` naming `field` (a scenario's `kernel`, `KernelConfig.version`).
    Adding a commit the preset has, or removing one it lacks, is refused: the
    spec would not say what the user meant."""
    preset, changes = parse_spec(spec, field)
    keys = set(PRESETS[preset])
    for sign, key in changes:
        c = COMMITS[key]
        name = c.sha or key
        if sign == "+":
            if key in keys:
                raise ConfigError(field, spec, f"the kernel already has {name} where the spec adds it")
            keys.add(key)
        else:
            if key not in keys:
                raise ConfigError(field, spec, f"the kernel does not have {name} where the spec removes it")
            keys.discard(key)
    return frozenset(keys)
