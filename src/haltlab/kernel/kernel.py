"""The kernel of one run: its shared variables, configuration and boot.

Global variables of the C kernel become attributes of a `Kernel` (`k.panic_cpu`
for `panic_cpu`), each a `Var` in the machine's shared memory so every access is a
visible operation. Kernel functions take `k` as their first argument; that one
difference from C keeps runs independent in one process.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from haltlab.engine.memory import cpumask_of
from haltlab.engine.symmetry import CPU, CPUMASK, PLAIN, Items, SetOf
from haltlab.errors import ConfigError
from haltlab.kernel.commits import commit_set
from haltlab.kernel.locking import UNLOCKED
from haltlab.kernel.policies import Policies
from haltlab.kernel.printk_ringbuffer import Ring, ring_sizes

__all__ = ["Kernel", "KernelConfig", "PANIC_CPU_INVALID", "log_buf_shift", "LOG_BUF_SHIFT_DEFAULT", "SystemState"]

PANIC_CPU_INVALID = -1


class SystemState(enum.IntEnum):
    """`enum system_states` (include/linux/kernel.h), the states the modelled
    paths compare against: a panic happens while RUNNING; a reboot or kexec
    sets RESTART in `kernel_restart_prepare()`."""

    RUNNING = 3
    RESTART = 6


@dataclass(frozen=True)
class KernelConfig:
    """Boot parameters and build options that the modelled paths read."""

    version: str = "v7.1"
    panic_timeout_s: int = 0            # panic= / CONFIG_PANIC_TIMEOUT (default 0)
    # Lines dump_stack() prints; None sizes the whole panic output from the
    # profile's measured panic_console_lines/chars (the explorer uses 0).
    dump_stack_lines: int | None = None
    # With a fixed-size dump the arch's panic notifier prints nothing unless
    # this is set (the printk-flood explorer keeps that line: it is printed
    # after the stop, where S2's deadlock happens).
    notifier_lines: bool = False
    pseudo_nmi: bool = False            # arm64: irqchip.gicv3_pseudo_nmi=1
    smp_no_nmi_ipi: bool = False        # x86 boot option nonmi_ipi
    # CONFIG_LOG_BUF_SHIFT; None takes the profile's log_buf_shift. The
    # explorer sets log_buf_bytes instead: a ring of a few records
    # (scenarios/printk_flood.py says why that keeps its verdicts).
    log_buf_shift: int | None = None
    log_buf_bytes: int | None = None
    # A crash kernel is loaded (`kexec -p`, so kexec_crash_image is set), and the
    # boot option crash_kexec_post_notifiers (kernel/crash_core.py).
    kdump: bool = False
    crash_kexec_post_notifiers: bool = False
    # arm64: CONFIG_HOTPLUG_CPU with a cpu_die method (PSCI CPU_OFF), which a
    # crash-stopped CPU calls before its park loop; False: spin-table firmware.
    hotplug_cpu: bool = True
    # The console's loglevel (`loglevel=`, `quiet`; CONFIG_CONSOLE_LOGLEVEL_DEFAULT
    # is 7): a record of level >= it is stored but not printed
    # (`printk_level()`). Only the kexec paths print by level.
    console_loglevel: int = 7
    policies: Policies = field(default_factory=Policies)

    def __post_init__(self) -> None:
        # Refuse an unknown preset now, not mid-run; and keep its commits, which
        # `has()` asks for at nearly every branch of printk (thousands a run).
        object.__setattr__(self, "_commits", commit_set(self.version, "version"))
        if self.log_buf_shift is not None and not 12 <= self.log_buf_shift <= 25:
            raise ConfigError("log_buf_shift", self.log_buf_shift, "CONFIG_LOG_BUF_SHIFT is 12 to 25 (init/Kconfig)")
        if self.log_buf_bytes is not None and self.log_buf_bytes < 64:
            # The ring must hold the panic's longest line ("Kernel panic - not syncing: sysrq
            # triggered crash" takes a 56-byte block), or the panic could print nothing.
            raise ConfigError("log_buf_bytes", self.log_buf_bytes,
                              "a ring of at least 64 bytes (it must hold the panic's own lines)")
        if not isinstance(self.console_loglevel, int) or not 0 <= self.console_loglevel <= 15:
            raise ConfigError("console_loglevel", self.console_loglevel, "a loglevel is 0 to 15 (loglevel=)")
        for name in ("kdump", "crash_kexec_post_notifiers", "hotplug_cpu"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(name, getattr(self, name), "must be true or false")

    @property
    def crash_stop_possible(self) -> bool:
        """Whether panic() can take a crash stop path (`crash_smp_send_stop()`):
        with a crash kernel loaded, or with post-notifiers (then panic() calls it
        instead of `smp_send_stop()`, kernel/panic.c). Pure configuration, so the
        runs without either keep the schedule points they had before the crash
        paths were modelled (the handlers test it before any crash variable)."""
        return self.kdump or self.crash_kexec_post_notifiers

    @property
    def commits(self) -> frozenset[str]:
        return commit_set(self.version)

    def has(self, commit: str) -> bool:
        return commit in self._commits


LOG_BUF_SHIFT_DEFAULT = 17     # init/Kconfig: config LOG_BUF_SHIFT ... default 17


def log_buf_shift(config: KernelConfig, profile) -> int:
    """The run's CONFIG_LOG_BUF_SHIFT: the config's, the profile's, or Kconfig's default."""
    if config.log_buf_shift is not None:
        return config.log_buf_shift
    if "log_buf_shift" in profile.params:
        return int(profile.get("log_buf_shift"))
    return LOG_BUF_SHIFT_DEFAULT


class Kernel:
    """Shared state and configuration of the modelled kernel."""

    def __init__(self, machine, config: KernelConfig) -> None:
        self.machine = machine
        self.config = config
        self.arch_name = machine.profile.arch
        mem = machine.memory
        all_cpus = cpumask_of(*range(machine.ncpus))
        self.all_cpus_mask = all_cpus
        # kind=: which variables hold CPU ids or masks, for symmetry (engine.symmetry).
        self.panic_cpu = mem.var("panic_cpu", PANIC_CPU_INVALID, kind=CPU)
        self.cpu_online_mask = mem.var("cpu_online_mask", all_cpus, kind=CPUMASK)
        self.stopping_cpu = mem.var("stopping_cpu", -1, kind=CPU)
        self.cpus_stop_mask = mem.var("cpus_stop_mask", 0, kind=CPUMASK)
        self.stop_in_progress = mem.var("stop_in_progress", 0, kind=PLAIN)
        self.nmi_stop_registered = mem.var("nmi_stop_registered", False, kind=PLAIN)
        self.suppress_printk = mem.var("suppress_printk", 0, kind=PLAIN)
        # printk (kernel/printk.py): the ring buffer, the console's position
        # and drop count (5.17's globals; struct console's seq and dropped in
        # 6.1), console_sem and the hand-over's owner, waiter and raw lock (a
        # lock word holds its holder's CPU, or -1), and 13fb0f74d702's guard.
        data_bytes, descs = ring_sizes(log_buf_shift(config, machine.profile))
        if config.log_buf_bytes is not None:
            data_bytes = config.log_buf_bytes
        self.prb = mem.var("prb", Ring(data_bytes, descs), kind=PLAIN)
        # The crash stop (kernel/crash_core.py; x86 arch/x86/kernel/reboot.c and
        # crash.c, arm64 arch/arm64/kernel/smp.c). `cpus_stopped` is the static
        # once-only flag of crash_smp_send_stop() (x86; arm64 before 6.12),
        # `crash_stop` arm64's since 6.12; `emerg_handler` says whether
        # crash_nmi_callback() is installed as x86's emergency NMI handler.
        self.cpus_stopped = mem.var("cpus_stopped", 0, kind=PLAIN)
        self.crash_stop = mem.var("crash_stop", 0, kind=PLAIN)
        self.crashing_cpu = mem.var("crashing_cpu", -1, kind=CPU)
        self.waiting_for_crash_ipi = mem.var("waiting_for_crash_ipi", 0, kind=PLAIN)
        self.crash_ipi_issued = mem.var("crash_ipi_issued", 0, kind=PLAIN)
        self.emerg_handler = mem.var("emerg_handler", False, kind=PLAIN)
        self.console_seq = mem.var("console_seq", 0, kind=PLAIN)
        self.console_dropped = mem.var("console_dropped", 0, kind=PLAIN)
        self.console_sem = mem.var("console_sem", UNLOCKED, kind=CPU)
        self.console_owner = mem.var("console_owner", UNLOCKED, kind=CPU)
        self.console_waiter = mem.var("console_waiter", False, kind=PLAIN)
        self.console_owner_lock = mem.var("console_owner_lock", UNLOCKED, kind=CPU)
        self.suppress_panic_printk = mem.var("suppress_panic_printk", 0, kind=PLAIN)
        self.panic_console_dropped = mem.var("panic_console_dropped", 0, kind=PLAIN)
        self.too_many_dropped_warned = mem.var("too_many_dropped_warned", False, kind=PLAIN)
        # Side records no kernel code reads back (not state): every record
        # stored, as seq -> (timestamp, CPU, text), and each dropped notice
        # the console printed, as (when, N).
        self.log: dict[int, tuple[int, int, str]] = {}
        self.dropped_notices: list[tuple[int, int]] = []
        # What a run wants to know afterwards; written by kernel code, read by scenarios.
        self.marks: dict[str, int] = {}
        self.on_mark = None          # scenario hook: called as on_mark(name, at_ns)
        self.blinks: list[int] = []
        # Ghost state: facts about the run kept for properties; kernel code
        # reads it only to place marks. Part of the explorer's state, so
        # pruning stays sound.
        self.ghost: dict[str, set[int]] = {}
        # CPUs parked in a stop routine's final loop, and who called the stop:
        # they feed the `others_stopped` mark only (like marks, not state).
        self.parked: set[int] = set()
        self._stopper: int | None = None
        self.panic_loop_iterations = 0
        # `system_state`: written once, by the CPU that reboots, before anything
        # reads it on that CPU (so its stack position says it: no Var needed).
        self.system_state = SystemState.RUNNING
        # CPU hotplug and kexec (kernel/sched.py, cpuhp.py, stop_machine.py,
        # irq.py, kexec.py): set up only by the runs that take CPUs down, so
        # the others keep their state and their schedule points.
        self.sched = None
        self.cpuhp = None
        self.stop_machine = None
        self.irq = None
        self.csd = None
        self.kexec_in_progress = None
        self.park = None             # S4's park section (kernel/arch/x86_park.py), x86 kexec runs only
        self.mwait_dead = None       # offline CPUs in mwait_play_dead() (kernel/arch/x86_kexec.py)
        self.freezing = None
        self.frozen = None
        self.bugs: list[tuple[int, int, str]] = []      # (when, CPU, what): side record of BUG()s
        from haltlab.kernel.arch import arch_ops
        self.arch = arch_ops(self.arch_name)

    def __fingerprint__(self) -> str:
        return "k"

    @property
    def policies(self) -> Policies:
        return self.config.policies

    def mark(self, name: str, at_ns: int) -> None:
        """Record the first time something happened (`panic_entry`, `panic_end`)."""
        if name not in self.marks:
            self.marks[name] = at_ns
            if self.on_mark is not None:
                self.on_mark(name, at_ns)

    # --- the stop, as marks: smp_send_stop, others_stopped, stop_failed ------------

    def stop_called(self, cpu: int, at_ns: int) -> None:
        """`cpu` calls `smp_send_stop()` (mark `smp_send_stop`)."""
        self.mark("smp_send_stop", at_ns)
        self._stopper = cpu
        self._all_parked(at_ns)

    def note_parked(self, cpu: int, at_ns: int) -> None:
        """`cpu` has reached its stop routine's final halt loop: it is stopped.
        Once every CPU but the stopper is, mark `others_stopped`."""
        self.parked.add(cpu)
        self._all_parked(at_ns)

    def stop_returned(self, at_ns: int) -> None:
        """`smp_send_stop()` returned. A CPU that has not even entered its stop
        routine by now will not be stopped (arm64 without pseudo-NMI, x86 with
        `nonmi_ipi`, against a CPU with interrupts off): mark `stop_failed`. One
        in the middle of it (pre-6.5 x86 may return that early) still parks."""
        entered = self.ghost.get("stopped", set())
        others_entered = len(entered) - (self._stopper in entered)
        if others_entered < self.machine.ncpus - 1:
            self.mark("stop_failed", at_ns)

    def _all_parked(self, at_ns: int) -> None:
        others = len(self.parked) - (self._stopper in self.parked)
        if self._stopper is not None and others == self.machine.ncpus - 1:
            self.mark("others_stopped", at_ns)

    def ghost_add(self, name: str, cpu: int) -> None:
        self.ghost.setdefault(name, set()).add(cpu)

    GHOST_KIND = Items(SetOf(CPU))
    """For symmetry: every ghost fact is a set of CPUs (`ghost_fingerprint()`)."""

    def ghost_fingerprint(self) -> tuple:
        return tuple((name, frozenset(cpus)) for name, cpus in sorted(self.ghost.items()))

    def boot(self) -> None:
        """Install the interrupt handlers (stop IPI, timer, NMI), as the arch's
        SMP and timer setup do: their priorities are the arch's."""
        self.arch.setup_irqs(self)
