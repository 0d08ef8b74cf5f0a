"""`panic()` and what follows it, from `kernel/panic.c` (7.1 `vpanic()`).

The steps keep the kernel's order (kernel-facts §1.2); numbers in comments are
that list's. Abridged: no `panic_on_warn` (1), no `panic_force_cpu=` redirection
(3), no kgdb (8), no `sys_info()` or `kmsg_dump` (13-14), no sparc/s390 hooks
(22). The crash kexec (9 and 15) is `crash_core.__crash_kexec()`: with a crash
kernel loaded (`KernelConfig.kdump`) the run ends in the kdump kernel, before the
stop or, with `crash_kexec_post_notifiers`, after the notifiers; post-notifiers
also makes the stop (10) `crash_smp_send_stop()`. Of the panic
notifiers (12) two are modelled, in priority order: pvpanic's (priority INT_MAX,
`pvpanic_panic_nb` in `drivers/misc/pvpanic/pvpanic.c`, 6.1.20 and 6.1.158 as
later), which tells the hypervisor, and
the arch's own (priority 0: x86's `dump_kernel_offset()`, arm64's
`arm64_panic_block_dump()`, both in `arch/*/kernel/setup.c`; their lines are the
arch module's PANIC_NOTIFIER_LINES), which is why real panics print lines after
the stop gap.

The size of what a panic prints comes from the profile (`panic_console_lines`,
`panic_console_chars`, measured by the lab on a real kernel): the console time of
a panic is most of its duration, so the model prints as many characters as the
real kernel does, as filler lines of the right length.

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
    local_irq_enable, mdelay, pvpanic_event, safe_halt,
)
from haltlab.engine.symmetry import cpu_locals
from haltlab.kernel.arch import arch_ops
from haltlab.kernel.crash_core import __crash_kexec, crash_smp_send_stop
from haltlab.kernel.kernel import PANIC_CPU_INVALID
from haltlab.kernel.policies import AfterPanic, PanicStart
from haltlab.kernel.printk import console_flush_on_panic, printk
from haltlab.kernel.smp import smp_send_stop

__all__ = ["panic", "panic_try_start", "panic_on_other_cpu", "PANIC_TIMER_STEP", "PANIC_BLINK_SPD"]

PANIC_TIMER_STEP = 100   # ms, kernel/panic.c
PANIC_BLINK_SPD = 18     # kernel/panic.c: next blink at i + 3600 / PANIC_BLINK_SPD ms
PRINTK_PREFIX = len("[    2.479056] ")       # print_time(): "[%5lu.%06lu] "


@cpu_locals(cpu=("this_cpu",), plain=("timeout_s", "i", "i_next"))
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
    await dump_stack(k, msg)                                           # (7)
    if not k.config.crash_kexec_post_notifiers:                        # (9)
        await __crash_kexec(k)
    await panic_other_cpus_shutdown(k, k.config.crash_kexec_post_notifiers)   # (10)
    await atomic_notifier_call_chain_panic(k)                          # (12)
    if k.config.crash_kexec_post_notifiers:                            # (15)
        await __crash_kexec(k)
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


@cpu_locals(cpu=("this_cpu", "_"))
async def panic_try_start(k, this_cpu: int) -> bool:
    """Claim `panic_cpu` for this CPU; the policy can break it for the explorer."""
    if k.policies.panic_start is PanicStart.LOAD_STORE:
        if await READ_ONCE(k.panic_cpu) != PANIC_CPU_INVALID:
            return False
        await WRITE_ONCE(k.panic_cpu, this_cpu)
        return True
    ok, _ = await atomic_try_cmpxchg(k.panic_cpu, PANIC_CPU_INVALID, this_cpu)
    return ok


@cpu_locals(cpu=("this_cpu", "cpu"))
async def panic_on_other_cpu(k, this_cpu: int) -> bool:
    cpu = await READ_ONCE(k.panic_cpu)
    return cpu != PANIC_CPU_INVALID and cpu != this_cpu


async def dump_stack(k, msg: str) -> None:
    for text in dump_stack_lines(k.machine.profile, msg, k.config.dump_stack_lines):
        await printk(k, text)


def dump_stack_lines(profile, msg: str, fixed_lines: int | None = None) -> list[str]:
    """Filler for `dump_stack()`: as many lines and characters as the real kernel
    prints for the whole panic, less the lines the model prints for real; or
    `fixed_lines` short lines when the run fixes the count (the explorer's 0)."""
    if fixed_lines is not None:
        return [f" <frame {i}>" for i in range(fixed_lines)]
    real = [f"Kernel panic - not syncing: {msg}", *arch_ops(profile.arch).PANIC_NOTIFIER_LINES,
            f"---[ end Kernel panic - not syncing: {msg} ]---"]
    n = int(profile.get("panic_console_lines")) - len(real)
    if n <= 0:
        return []
    chars = int(profile.get("panic_console_chars")) - sum(PRINTK_PREFIX + len(t) + 1 for t in real)
    width, extra = divmod(max(chars - n * (PRINTK_PREFIX + 1), n), n)
    sizes = [width + (i < extra) for i in range(n)]
    return [f" <frame {i}>"[:w].ljust(w, ".") for i, w in enumerate(sizes)]


async def atomic_notifier_call_chain_panic(k) -> None:
    """The panic notifier chain, highest priority first."""
    if k.machine.pvpanic is not None:
        k.mark("pvpanic", ktime_get_ns())
        await pvpanic_event("PVPANIC_PANICKED")                       # pvpanic_panic_notify()
    if k.config.dump_stack_lines is None or k.config.notifier_lines:   # a fixed-size dump: only if asked
        for text in k.arch.PANIC_NOTIFIER_LINES:                       # the arch's notifier
            await printk(k, text)


async def panic_other_cpus_shutdown(k, crash_kexec: bool) -> None:
    """No all-CPU backtrace (panic_print unset); `smp_send_stop()`, or with
    post-notifiers `crash_smp_send_stop()`. Marks the stop's call and return."""
    if crash_kexec:
        return await crash_smp_send_stop(k)
    k.stop_called(smp_processor_id(), ktime_get_ns())
    await smp_send_stop(k)
    k.stop_returned(ktime_get_ns())


def panic_blink_step(k, i: int, i_next: int) -> tuple[int, int]:
    """The loop's blink bookkeeping: `no_blink` spends 0 ms, so only the toggle
    time is recorded. Pure computation, so not a scheduling point."""
    if i >= i_next:
        k.blinks.append(ktime_get_ns())
        i_next = i + 3600 // PANIC_BLINK_SPD
    return i, i_next


async def cpu_halt_after_panic(k) -> None:
    """S1's hook: the weak default keeps the stock busy delay; x86 halts."""
    if k.policies.after_panic is AfterPanic.SAFE_HALT:
        await safe_halt()
    else:
        await mdelay(PANIC_TIMER_STEP)
