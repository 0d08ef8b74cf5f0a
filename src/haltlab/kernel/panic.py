"""`panic()` and what follows it, from `kernel/panic.c` (7.1 `vpanic()`).

The steps keep the kernel's order (kernel-facts §1.2); numbers in comments are
that list's. Abridged: no `panic_on_warn` (1), no `panic_force_cpu=` redirection
(3), no kgdb (8), no kdump (9 and 15: no crash kernel is loaded in these runs), no
notifiers, `sys_info()` or `kmsg_dump` (12-14), no sparc/s390 hooks (22).

The after-panic loop (27) is a policy: the stock busy `mdelay(PANIC_TIMER_STEP)`,
or S1's `safe_halt()`. With `safe_halt()` each pass of the loop lasts until the
next interrupt (a tick, every 1/HZ) rather than 100 ms, yet `i` still advances by
PANIC_TIMER_STEP, so the blink period the loop computes no longer matches elapsed
time; `k.blinks` records when the LED would toggle so a scenario can show it.
"""

from __future__ import annotations

from haltlab.engine.context import ktime_get_ns, smp_processor_id
from haltlab.engine.ops import (
    READ_ONCE, WRITE_ONCE, atomic_try_cmpxchg, emergency_restart, local_irq_disable,
    local_irq_enable, mdelay, safe_halt,
)
from haltlab.kernel.kernel import PANIC_CPU_INVALID
from haltlab.kernel.printk import console_flush_on_panic, printk
from haltlab.kernel.smp import smp_send_stop

__all__ = ["panic", "panic_try_start", "panic_on_other_cpu", "PANIC_TIMER_STEP", "PANIC_BLINK_SPD"]

PANIC_TIMER_STEP = 100   # ms, kernel/panic.c
PANIC_BLINK_SPD = 18     # kernel/panic.c: next blink at i + 3600 / PANIC_BLINK_SPD ms


async def panic(k, msg: str) -> None:
    """Halt the system. Never returns (it ends in a loop or a reset)."""
    this_cpu = smp_processor_id()
    await local_irq_disable()                                          # (2)
    if not await panic_try_start(k, this_cpu):                         # (4)
        if await panic_on_other_cpu(k, this_cpu):
            k.mark("panic_self_stop", ktime_get_ns())
            k.ghost_add("self_stopped", this_cpu)
            await k.arch.panic_smp_self_stop(k)
    k.ghost_add("panic_owners", this_cpu)
    k.mark("panic_entry", ktime_get_ns())
    await printk(k, f"Kernel panic - not syncing: {msg}")              # (6)
    await dump_stack(k, this_cpu)                                      # (7)
    await panic_other_cpus_shutdown(k)                                 # (10)
    k.mark("others_stopped", ktime_get_ns())
    await console_flush_on_panic(k)                                    # (17)
    timeout_s = k.config.panic_timeout_s
    if timeout_s > 0:                                                  # (20)
        await printk(k, f"Rebooting in {timeout_s} seconds..")
        i, i_next = 0, 0
        while i < timeout_s * 1000:
            i, i_next = panic_blink_step(k, i, i_next)
            await mdelay(PANIC_TIMER_STEP)
            i += PANIC_TIMER_STEP
    if timeout_s != 0:                                                 # (21)
        k.mark("emergency_restart", ktime_get_ns())
        await emergency_restart("panic_timeout")
    await printk(k, f"---[ end Kernel panic - not syncing: {msg} ]---")   # (23)
    await WRITE_ONCE(k.suppress_printk, 1)                             # (24)
    if k.config.has("panic_final_flush"):                              # (25)
        await console_flush_on_panic(k)
    await local_irq_enable()                                           # (26)
    k.mark("panic_loop", ktime_get_ns())
    k.ghost_add("in_panic_loop", this_cpu)
    i, i_next = 0, 0
    while True:                                                        # (27)
        i, i_next = panic_blink_step(k, i, i_next)
        await cpu_halt_after_panic(k)
        k.panic_loop_iterations += 1
        i += PANIC_TIMER_STEP


async def panic_try_start(k, this_cpu: int) -> bool:
    """Claim `panic_cpu` for this CPU; the policy can break it for the explorer."""
    if k.policies.panic_start == "load-store":
        if await READ_ONCE(k.panic_cpu) != PANIC_CPU_INVALID:
            return False
        await WRITE_ONCE(k.panic_cpu, this_cpu)
        return True
    ok, _ = await atomic_try_cmpxchg(k.panic_cpu, PANIC_CPU_INVALID, this_cpu)
    return ok


async def panic_on_other_cpu(k, this_cpu: int) -> bool:
    cpu = await READ_ONCE(k.panic_cpu)
    return cpu != PANIC_CPU_INVALID and cpu != this_cpu


async def dump_stack(k, cpu: int) -> None:
    await printk(k, f"CPU: {cpu} PID: 1 Comm: sh Not tainted (haltlab model)")
    await printk(k, "Call Trace:")
    for n in range(max(0, k.config.dump_stack_lines - 2)):
        await printk(k, f" <TASK> frame {n}")


async def panic_other_cpus_shutdown(k) -> None:
    """No all-CPU backtrace (panic_print unset) and no kdump: `smp_send_stop()`."""
    await smp_send_stop(k)


def panic_blink_step(k, i: int, i_next: int) -> tuple[int, int]:
    """The loop's blink bookkeeping: `no_blink` spends 0 ms, so only the toggle
    time is recorded. Pure computation, so not a scheduling point."""
    if i >= i_next:
        k.blinks.append(ktime_get_ns())
        i_next = i + 3600 // PANIC_BLINK_SPD
    return i, i_next


async def cpu_halt_after_panic(k) -> None:
    """S1's hook: the weak default keeps the stock busy delay; x86 halts."""
    if k.policies.after_panic == "safe_halt":
        await safe_halt()
    else:
        await mdelay(PANIC_TIMER_STEP)
