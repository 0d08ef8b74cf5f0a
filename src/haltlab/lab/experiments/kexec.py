"""`haltlab lab kexec`: a kexec reboot into the same kernel, timed (S4's question).

The first kernel's /init loads the same kernel with `kexec -l`, prints a marker
and runs `kexec -e`; the second kernel's /init (told by `haltlab.stage=2`)
reports and exits through isa-debug-exit. Measured per run:
- `kexec_downtime_ns`: host time from the marker line (printed just before
  `kexec -e`) to the second kernel's first console line (`Linux version`,
  printed by earlycon), i.e. shutdown of the old kernel + the jump + early boot;
- `smp_init_first_ns` / `smp_init_second_ns`: each kernel's bring-up of the
  secondary CPUs, by its own printk clock ("Bringing up secondary CPUs" to
  "Brought up"), the quantity S4's 210 ms vs 80 ms is about.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from haltlab.errors import ConfigError, UserError
from haltlab.lab import initramfs
from haltlab.lab.cache import cache_dir
from haltlab.lab.classify import COMPLETED, classify
from haltlab.lab.experiments.common import (
    LabConfig, ProgressFn, check_seconds, elapsed_ns, guest_spec, header, outcome_counts, prepare, repeat,
)
from haltlab.lab.guest import kexec_init
from haltlab.lab.images import KernelImage
from haltlab.lab.parse import boot_starts, find, smp_init_spans
from haltlab.lab.runner import Guest
from haltlab.lab.stats import summarize

__all__ = ["KexecConfig", "run_kexec", "kexec_once", "kexec_timings", "KEXEC_MARKER"]

KEXEC_MARKER = "haltlab: kexec -e"
STARTING = "Starting new kernel"
KEXEC_BINARY = Path("/usr/sbin/kexec")


@dataclass(frozen=True)
class KexecConfig(LabConfig):
    timeout_s: float = 120.0  # whole cycle: boot, kexec, second boot

    def validate(self) -> None:
        super().validate()
        check_seconds("timeout_s", self.timeout_s)
        if self.memory_mb < 384:
            raise ConfigError("memory_mb", self.memory_mb, "kexec needs room for two kernels, at least 384")


def _entries(kernel) -> list[initramfs.Entry]:
    """Outer image: kexec-tools, the kernel, and an inner image for the second kernel."""
    base = initramfs.base_entries(kexec_init())
    inner = initramfs.build(base, cache_dir())
    if not KEXEC_BINARY.is_file():
        raise UserError(f"{KEXEC_BINARY} not found (Debian: apt-get install kexec-tools)")
    return (
        base
        + initramfs.binary_with_libs(KEXEC_BINARY, "/bin/kexec")
        + [
            initramfs.file("/boot/vmlinuz", kernel.vmlinuz.read_bytes()),
            initramfs.file("/boot/initrd.img", inner.read_bytes()),
        ]
    )


def kexec_timings(lines: list[tuple[int, str]], start_ns: int | None = None) -> dict:
    """Downtime and both kernels' smp_init from the console lines (pure).

    `start_ns` (host time QEMU was let run) adds the cold boot's time to its
    first line, the reference the kexec downtime compares with.
    """
    marker = find(lines, KEXEC_MARKER)
    second = next((b for b in boot_starts(lines) if marker is not None and b > marker), None)
    starting = find(lines, STARTING, marker) if marker is not None else None
    first_boot = find(lines, "Linux version")
    spans = smp_init_spans(lines)
    before = [s for s in spans if second is None or s["line"] < second]
    after = [s for s in spans if second is not None and s["line"] > second]

    def at(i: int | None) -> int | None:
        return lines[i][0] if i is not None else None

    return {
        "cold_boot_to_first_line_ns": elapsed_ns(start_ns, at(first_boot)),
        "kexec_downtime_ns": elapsed_ns(at(marker), at(second)),
        "marker_to_starting_ns": elapsed_ns(at(marker), at(starting)),
        "starting_to_first_line_ns": elapsed_ns(at(starting), at(second)),
        "smp_init_first_ns": before[0]["smp_init_ns"] if before else None,
        "smp_init_second_ns": after[0]["smp_init_ns"] if after else None,
        "cpus_first": before[0]["cpus"] if before else None,
        "cpus_second": after[0]["cpus"] if after else None,
    }


def kexec_once(g: Guest, config: KexecConfig) -> dict:
    """One kexec cycle on a started guest."""
    done = g.wait_until(lambda: g.progress.seen("STAGE2") is not None and g.exited(), config.timeout_s)
    run = {"outcome": classify(g.observation(timed_out=not done)), "qemu_pid": g.pid}
    if run["outcome"] != COMPLETED:
        run.update(g.tails())
    run.update(kexec_timings(g.console.lines, g.start_ns))
    prog = g.progress.lines
    ke, s2 = g.progress.seen("KEXEC-E"), g.progress.seen("STAGE2")
    run["kexec_to_second_init_ns"] = elapsed_ns(prog[ke][0] if ke is not None else None,
                                                prog[s2][0] if s2 is not None else None)
    run["boot_to_kexec_ns"] = elapsed_ns(g.start_ns, prog[ke][0] if ke is not None else None)
    return run


def run_kexec(config: KexecConfig, progress: ProgressFn | None = None, *,
              kernel: KernelImage | None = None) -> dict:
    """Run the kexec cycle `config.runs` times; a JSON-able result."""
    config.validate()
    prep = prepare(config, _entries, kernel)
    spec = guest_spec(prep, config)
    runs = repeat(config.runs, spec, lambda g: kexec_once(g, config), progress)
    result = header("kexec", config, prep)
    result["outcomes"] = outcome_counts(runs)
    result["completed"] = sum(r["outcome"] == COMPLETED for r in runs)
    for key in ("cold_boot_to_first_line_ns", "kexec_downtime_ns", "marker_to_starting_ns", "starting_to_first_line_ns",
                "smp_init_first_ns", "smp_init_second_ns", "kexec_to_second_init_ns", "boot_to_kexec_ns"):
        result[key] = summarize(r.get(key) for r in runs)
    result["runs"] = runs
    return result
