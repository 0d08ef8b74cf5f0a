"""The panic scenario of `haltlab.scenarios.panic` (others idle, x86, v7.1 stop
path), written idiomatically on SimPy: the peer that `bench_vs_simpy.py` times
haltlab against.

One SimPy process per CPU. The panic CPU runs the shell's trigger delay, then
`panic()`: printk lines, `smp_send_stop()` (REBOOT IPIs after `ipi_latency_ns`),
waits on an event that the last stopping CPU triggers (`cpumask_empty(&cpus_stop_mask)`,
with the kernel's 1 s timeout), prints the end line, then the stock after-panic
loop of `mdelay(100)`. Each idle CPU halts until interrupted (the IPI is a
`Process.interrupt()`), takes the irq entry cost and runs `stop_this_cpu()`.

Costs come from the same profile (`load_profile("kvm-x86")`), and the peer keeps
haltlab's event granularity: one SimPy timeout for every operation that costs
time in haltlab (a 40 ns atomic, a printk store, one console line, the 5 us
`mcheck_cpu_clear()`, one 100 ms `mdelay`). Zero-cost operations (`READ_ONCE`,
`local_irq_disable`) are no events in either.

Left out on purpose, so the timed work is the stop path itself: the panic CPU's
periodic tick (in haltlab about four ticks before and one pending tick taken
after the end line, roughly 20 events in all; none of them moves
`time_to_end_ns`), hypervisor and per-state accounting.
"""

from __future__ import annotations

import simpy

# What the panic prints is data, not engine: the peer prints the same text as the
# model (the dump sized from the profile's measured console output, and x86's
# "Kernel Offset" line), so both sides time the same console work.
from haltlab.kernel.arch.x86 import PANIC_NOTIFIER_LINES
from haltlab.kernel.panic import dump_stack_lines

__all__ = ["PanicPeer", "run_peer"]

PANIC_TIMER_STEP_NS = 100 * 1_000_000
STOP_TIMEOUT_NS = 1_000_000_000     # native_stop_other_cpus(): 1 s for the REBOOT stage


class Costs:
    """The profile's costs, read once (plain ints, as haltlab's Machine caches them)."""

    def __init__(self, profile) -> None:
        c = profile.cost_ns
        self.atomic = c("atomic_op_ns")
        self.store = c("printk_store_ns")
        self.per_char = c("console_ns_per_char")
        self.ipi = c("ipi_latency_ns")
        self.irq_entry = c("irq_entry_exit_ns")
        self.stop_this_cpu = c("stop_this_cpu_ns")


class PanicPeer:
    """One run: `env`, one process per CPU, and the marks haltlab records."""

    def __init__(self, env: simpy.Environment, profile, ncpus: int, *,
                 trigger_ns: int = 10_000_000, observe_ns: int = 10**9, panic_cpu: int = 0) -> None:
        self.env = env
        self.cost = Costs(profile)
        self.dump_stack = dump_stack_lines(profile, "sysrq triggered crash")
        self.ncpus = ncpus
        self.panic_cpu = panic_cpu
        self.trigger_ns = trigger_ns
        self.observe_ns = observe_ns
        self.cpus_stop_mask = 0
        self.stopped = env.event()          # cpumask_empty(&cpus_stop_mask)
        self.end = env.event()              # the observation window is over
        self.marks: dict[str, int] = {}
        self.console: list[str] = []
        self.panicking = False                      # panic_cpu claimed: no console owner advertised (d04d5882cd67)
        self.loop_iterations = 0
        self.procs = [env.process(self.panic_task() if cpu == panic_cpu else self.idle(cpu))
                      for cpu in range(ncpus)]

    def mark(self, name: str) -> None:
        self.marks.setdefault(name, self.env.now)

    # --- the panic CPU ---------------------------------------------------------

    def panic_task(self):
        env, atomic = self.env, self.cost.atomic
        yield env.timeout(self.trigger_ns)
        yield from self.printk("sysrq: Trigger a crash")
        yield env.timeout(atomic)                       # panic_try_start(): cmpxchg
        self.panicking = True
        self.mark("panic_entry")
        msg = "sysrq triggered crash"
        yield from self.printk(f"Kernel panic - not syncing: {msg}")
        for text in self.dump_stack:
            yield from self.printk(text)
        yield from self.smp_send_stop()
        for text in PANIC_NOTIFIER_LINES:               # x86's dump_kernel_offset() notifier
            yield from self.printk(text)
        yield from self.console_flush()
        yield from self.printk(f"---[ end Kernel panic - not syncing: {msg} ]---")
        yield env.timeout(atomic)                       # WRITE_ONCE(suppress_printk, 1)
        yield from self.console_flush()                 # "panic: Flush kernel log buffer at the end"
        while True:                                     # the stock after-panic loop
            yield env.timeout(PANIC_TIMER_STEP_NS)      # mdelay(PANIC_TIMER_STEP)
            self.loop_iterations += 1

    def printk(self, text: str):
        """v7.1's `vprintk_emit()` for a CPU that always gets console_sem and
        finds nothing else pending: reserve, store, commit, trylock, then one
        record through `console_flush_all()`, advertised as the console owner
        (a raw-lock step and a section step on each side of the record) only
        before the panic (d04d5882cd67), then `up()`."""
        env, atomic = self.env, self.cost.atomic
        yield env.timeout(atomic)                       # prb_reserve()
        ts = env.now
        yield env.timeout(self.cost.store)              # vprintk_store(): the text
        yield env.timeout(atomic)                       # prb_final_commit()
        yield env.timeout(atomic)                       # console_trylock(): down_trylock()
        if not self.panicking:
            yield env.timeout(atomic)                   # console_lock_spinning_enable(): raw_spin_lock()
            yield env.timeout(atomic)                   # ... the section
        line = f"[{ts // 1_000_000_000:5d}.{ts // 1000 % 1_000_000:06d}] {text}"
        self.console.append(line)
        yield env.timeout((len(line) + 1) * self.cost.per_char)   # the UART
        if text.startswith("---[ end Kernel panic"):
            self.mark("panic_end")
            env.timeout(self.observe_ns).callbacks.append(lambda _: self.end.succeed())
        yield env.timeout(atomic)                       # WRITE_ONCE(con->seq, seq + 1)
        if not self.panicking:
            yield env.timeout(atomic)                   # console_lock_spinning_disable_and_check(): raw_spin_lock()
            yield env.timeout(atomic)                   # ... the section
        yield env.timeout(atomic)                       # up_console_sem()

    def console_flush(self):
        """`console_flush_on_panic()` with nothing pending: since eacb04ff3c5b it
        takes no console_sem, and finding nothing costs no time (only reads)."""
        return
        yield

    def smp_send_stop(self):
        env, atomic = self.env, self.cost.atomic
        self.mark("smp_send_stop")
        yield env.timeout(atomic)                       # cmpxchg(stopping_cpu)
        others = ((1 << self.ncpus) - 1) & ~(1 << self.panic_cpu)
        self.cpus_stop_mask = others
        yield env.timeout(atomic)                       # WRITE_ONCE(cpus_stop_mask)
        if others:
            for cpu in range(self.ncpus):               # apic_send_IPI_allbutself()
                if cpu != self.panic_cpu:
                    env.timeout(self.cost.ipi, value=cpu).callbacks.append(self.deliver)
            yield env.timeout(atomic)                   # the ICR write
            yield self.stopped | env.timeout(STOP_TIMEOUT_NS)
        yield env.timeout(self.cost.stop_this_cpu)      # own disable_local_APIC(), mcheck_cpu_clear()
        yield env.timeout(atomic)                       # cpumask_clear(&cpus_stop_mask)

    def deliver(self, event) -> None:
        self.procs[event.value].interrupt("REBOOT")

    # --- every other CPU ---------------------------------------------------------

    def idle(self, cpu: int):
        env, atomic = self.env, self.cost.atomic
        try:
            yield env.event()                           # safe_halt(), until an interrupt
        except simpy.Interrupt:
            pass
        yield env.timeout(self.cost.irq_entry)          # REBOOT_VECTOR entry
        yield env.timeout(atomic)                       # set_cpu_online(cpu, false)
        yield env.timeout(self.cost.stop_this_cpu)      # disable_local_APIC(), mcheck_cpu_clear()
        self.cpus_stop_mask &= ~(1 << cpu)              # clear_bit(cpu, &cpus_stop_mask):
        if not self.cpus_stop_mask:                     # visible when the atomic starts,
            self.stopped.succeed()                      # as in haltlab's _Rmw.start()
        yield env.timeout(atomic)
        if not self.cpus_stop_mask:
            self.mark("others_stopped")                 # the last other CPU reaches its halt loop
        yield env.event()                               # native_halt() with IF=0, forever


class CountingEnvironment(simpy.Environment):
    """Counts processed events; for the equivalence check, not for timing."""

    events_run = 0

    def step(self) -> None:
        self.events_run += 1
        super().step()


def run_peer(profile, ncpus: int, *, observe_ns: int = 10**9, trigger_ns: int = 10_000_000,
             count_events: bool = False) -> PanicPeer:
    env = CountingEnvironment() if count_events else simpy.Environment()
    peer = PanicPeer(env, profile, ncpus, trigger_ns=trigger_ns, observe_ns=observe_ns)
    env.run(until=peer.end)
    return peer
