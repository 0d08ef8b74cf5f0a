"""printk and the console lock during a panic, from `kernel/printk/printk.c`.

Two shapes, chosen by a commit, never by a version number:

* without a699449bb13b ("printk: refactor and rework printing logic", 5.19):
  5.17's `console_unlock()`, one `for (;;)` loop over the global `console_seq`,
  which it advances *before* calling the console driver, then `up()` and a
  retry if records arrived meanwhile;
* with it (6.1, and 6.6-7.1 as far as a legacy console such as the 8250 goes):
  `console_unlock()` around `console_flush_all()`, which emits one record per
  pass with `console_emit_next_record()` and advances the console's own
  `con->seq` *after* the driver call (D13 in kernel-notes §1, mended).

The panic-time rules, each its commit (kernel-facts §2.2, kernel-notes §3a):
dbdda842fe96's owner/waiter hand-over (`console_lock_spinning_enable()`,
`console_lock_spinning_disable_and_check()`, `console_trylock_spinning()`);
d51507098ff9, no spinning while a panic is in progress (or, as the policy
`console_spin=panic-cpu-only`, S2's proposal: only on the panic CPU);
13fb0f74d702's dropped-messages guard and `suppress_panic_printk`;
8ebc476fd51e, a non-panic CPU gives console_sem up after a record
(`other_cpu_in_panic()`, which 5.18-6.5 call `abandon_console_lock_in_panic()`);
51a1d258e50e, `console_trylock()` fails on non-panic CPUs; eacb04ff3c5b,
`console_flush_on_panic()` without console_sem (D2, mended); d04d5882cd67, no
owner advertised in a panic; 779dbc2e78d7, non-panic records dropped at once.

The sections under `console_owner_lock` are one step each after the lock's
own (`engine.ops.raw_spin_section`): `console_owner` is only ever touched
under the lock, and `console_waiter`, which the waiter spins on and the owner
clears outside it, is read at most once in a section; the one section that
also writes it (becoming the waiter) writes only when it finds an owner set,
and the owner clears `console_waiter` only after its own section has cleared
`console_owner`, so that clear cannot fall inside such a section. A CPU
stopped by an NMI between taking the lock and its section still holds it.

There is one console (the machine's UART); a record is printed as its
timestamp prefix and text, after a "** N printk messages dropped **" notice
when the console found a gap. Abridged: no log levels (every record is
printed, as `ignore_loglevel` would), no `printk_delay`, no console
suspension, no `cond_resched()` (printing from printk runs with preemption
off, and the panic paths never reschedule), no nbcon consoles (7.1's 8250 is a
legacy console, kernel-facts §2.5), no deferred printing from NMI context, no
`printk_legacy_allow_panic_sync()` (D8: a legacy-only machine is unaffected).
"""

from __future__ import annotations

from haltlab.engine.context import ktime_get_ns, smp_processor_id
from haltlab.engine.ops import (
    READ_ONCE, WRITE_ONCE, atomic_add_return, local_irq_restore, local_irq_save, ndelay, raw_spin_section,
    spin_until, uart_write,
)
from haltlab.engine.symmetry import cpu_locals
from haltlab.kernel.kernel import PANIC_CPU_INVALID
from haltlab.kernel.locking import UNLOCKED, down_trylock, raw_spin_lock, up
from haltlab.kernel.policies import ConsoleSpin
from haltlab.kernel.printk_ringbuffer import prb_final_commit, prb_read_valid, prb_reserve, seq_locals

__all__ = ["printk", "vprintk_emit", "vprintk_store", "devkmsg_write", "console_trylock",
           "console_trylock_spinning", "console_unlock", "console_flush_on_panic",
           "console_lock_spinning_enable", "console_lock_spinning_disable_and_check",
           "panic_in_progress", "other_cpu_in_panic", "TOO_MANY_DROPPED",
           "dropped_notice", "PANIC_END_PREFIX", "printk_level", "LOGLEVEL_NOTICE", "LOGLEVEL_INFO",
           "LOGLEVEL_WARNING", "LOGLEVEL_ERR", "LOGLEVEL_CRIT"]

TOO_MANY_DROPPED = "Too many dropped messages. Suppress messages on non-panic CPUs to prevent livelock."
PANIC_END_PREFIX = "---[ end Kernel panic"


def dropped_notice(n: int) -> str:
    return f"** {n} printk messages dropped **"


# --- panic_in_progress() and other_cpu_in_panic() ---------------------------------------

@cpu_locals(cpu=("cpu",))
async def panic_in_progress(k) -> bool:
    """77498617857f's helper (5.18): `atomic_read(&panic_cpu) != PANIC_CPU_INVALID`."""
    cpu = await READ_ONCE(k.panic_cpu)
    return cpu != PANIC_CPU_INVALID


@cpu_locals(cpu=("cpu",))
async def other_cpu_in_panic(k) -> bool:
    """A panic is in progress on another CPU (5.18-6.5's
    `abandon_console_lock_in_panic()`, renamed by 132a90d1527f in 6.6)."""
    cpu = await READ_ONCE(k.panic_cpu)
    return cpu != PANIC_CPU_INVALID and cpu != smp_processor_id()


LOGLEVEL_CRIT, LOGLEVEL_ERR, LOGLEVEL_WARNING, LOGLEVEL_NOTICE, LOGLEVEL_INFO = 2, 3, 4, 5, 6


async def printk_level(k, level: int, text: str) -> None:
    """`pr_info()` and friends on the kexec paths: printed when `level` is below
    the console's loglevel (`suppress_message_printing()`). A suppressed record
    costs its store and is not kept in the model's ring, which only S2's
    printk runs read (abridged: the kernel keeps it for `dmesg`)."""
    if level < k.config.console_loglevel:
        await vprintk_emit(k, text)
    else:
        await ndelay(k.machine.cost_ns("printk_store_ns"))


# --- storing a record ---------------------------------------------------------------

async def printk(k, text: str) -> None:
    """`printk()` from kernel code: `vprintk_emit()`."""
    await vprintk_emit(k, text)


@cpu_locals(cpu=("cpu",))
async def vprintk_emit(k, text: str) -> None:
    """Store the record, then print directly if this CPU gets the console."""
    if await READ_ONCE(k.suppress_printk):
        return                                          # "Suppress unimportant messages after panic happens"
    if k.config.has("printk_non_panic_cpus_out_of_ringbuffer"):
        if await other_cpu_in_panic(k):
            return                                      # 779dbc2e78d7 (6.9)
    elif k.config.has("printk_suppress_panic_printk"):
        if await READ_ONCE(k.suppress_panic_printk):
            cpu = await READ_ONCE(k.panic_cpu)
            if cpu != smp_processor_id():
                return                                  # 13fb0f74d702 (5.18-6.8)
    await vprintk_store(k, text)
    if await console_trylock_spinning(k):               # preempt_disable() around it: no effect here
        await console_unlock(k)


@cpu_locals(plain=("flags", "seq"))
@seq_locals("seq")
async def vprintk_store(k, text: str) -> None:
    """Reserve, fill and finalize one record, with interrupts off
    (`printk_enter_irqsave()`): only an NMI can stop a CPU between reserving
    and finalizing, leaving a record that blocks readers."""
    flags = await local_irq_save()
    seq = await prb_reserve(k, text)
    if seq is not None:
        k.log[seq] = (ktime_get_ns(), smp_processor_id(), text)
        await ndelay(k.machine.cost_ns("printk_store_ns"))        # formatting and copying the text
        await prb_final_commit(k, seq)
    await local_irq_restore(flags)


async def devkmsg_write(k, text: str) -> None:
    """A user-space write to /dev/kmsg: one record through `vprintk_emit()`
    (`devkmsg_emit()`; S2's flood, 991 characters, `LOG_LINE_MAX` in 6.1)."""
    await vprintk_emit(k, text)


# --- the console lock and its hand-over -----------------------------------------------------

async def console_trylock(k) -> bool:
    if k.config.has("printk_non_panic_cpus_out_of_console_lock") and await other_cpu_in_panic(k):
        return False                                    # 51a1d258e50e: left to the panic CPU
    return await down_trylock(k.console_sem)


@cpu_locals(cpu=("this_cpu",), plain=("flags", "spin"))
async def console_trylock_spinning(k) -> bool:
    """Take console_sem, or wait for its owner to hand it over after its
    current record (dbdda842fe96); the waiter spins with interrupts off."""
    if await console_trylock(k):
        return True
    this_cpu = smp_processor_id()
    if k.policies.console_spin is ConsoleSpin.PANIC_CPU_ONLY:
        if await READ_ONCE(k.panic_cpu) == this_cpu:
            return False                                # S2's proposal: the panic CPU never spins
    elif k.config.has("printk_no_spin_in_panic") and await panic_in_progress(k):
        return False                                    # d51507098ff9: "Spinning is not safe when the system is stopped"
    if not k.config.has("printk_console_owner_handover"):
        return False
    flags = await local_irq_save()                      # printk_safe_enter_irqsave()
    await raw_spin_lock(k.console_owner_lock)

    def become_waiter(owner, waiter):
        if not waiter and owner != UNLOCKED and owner != this_cpu:
            return ((k.console_waiter, True),), True
        return (), False
    spin = await raw_spin_section(k.console_owner_lock, (k.console_owner, k.console_waiter), become_waiter,
                                  "console_trylock_spinning")
    if not spin:
        await local_irq_restore(flags)
        return False
    await spin_until(lambda: not k.console_waiter.value, what="while (READ_ONCE(console_waiter)) cpu_relax()")
    await local_irq_restore(flags)
    await WRITE_ONCE(k.console_sem, this_cpu)           # the lock is ours, handed over without up()
    return True


@cpu_locals(cpu=("this_cpu",))
async def console_lock_spinning_enable(k) -> None:
    if not k.config.has("printk_console_owner_handover"):
        return
    if k.config.has("printk_no_console_owner_in_panic") and await panic_in_progress(k):
        return                                          # d04d5882cd67: never advertise an owner in panic
    this_cpu = smp_processor_id()
    await raw_spin_lock(k.console_owner_lock)
    await raw_spin_section(k.console_owner_lock, (), lambda: (((k.console_owner, this_cpu),), None),
                           "console_lock_spinning_enable")


@cpu_locals(plain=("waiter",))
async def console_lock_spinning_disable_and_check(k) -> bool:
    """Stop advertising; True when a waiter took console_sem over (the
    caller must then not touch the console again)."""
    if not k.config.has("printk_console_owner_handover"):
        return False
    if k.config.has("printk_no_console_owner_in_panic") and await panic_in_progress(k):
        return False                                    # d04d5882cd67 (console_owner is left as it is)
    await raw_spin_lock(k.console_owner_lock)
    waiter = await raw_spin_section(k.console_owner_lock, (k.console_waiter,),
                                    lambda waiter: (((k.console_owner, UNLOCKED),), waiter),
                                    "console_lock_spinning_disable_and_check")
    if not waiter:
        return False
    await WRITE_ONCE(k.console_waiter, False)
    return True


# --- printing -------------------------------------------------------------------------------

@seq_locals("seq", "r", dropped=("dropped",))
@cpu_locals(plain=("dropped", "seq", "r", "fire"))
async def console_read_next(k, seq: int):
    """`prb_read_valid(prb, seq, &r)` plus the gap check every shape makes: the
    record to print (None if there is none), counting a gap as dropped and,
    with 13fb0f74d702, setting `suppress_panic_printk` on the 12th gap seen
    during a panic."""
    r = await prb_read_valid(k, seq, skip_non_finalized=await _skip_non_finalized(k))
    if r is None:
        return None
    if r.seq != seq:
        dropped = await READ_ONCE(k.console_dropped)
        await WRITE_ONCE(k.console_dropped, dropped + r.seq - seq)
        await WRITE_ONCE(k.console_seq, r.seq)
        if k.config.has("printk_suppress_panic_printk") and await panic_in_progress(k):
            # panic_console_dropped++ > 10: the old value, so the 12th gap fires.
            # (A plain static int in the kernel; only the console_sem holder
            # touches it, so one read-modify-write step is the same.)
            fire = await atomic_add_return(k.panic_console_dropped, 1) - 1 > 10
            if fire:
                await WRITE_ONCE(k.suppress_panic_printk, 1)
                if not await READ_ONCE(k.too_many_dropped_warned):   # pr_warn_once()
                    await WRITE_ONCE(k.too_many_dropped_warned, True)
                    k.mark("suppress_panic_printk", ktime_get_ns())
                    await printk(k, TOO_MANY_DROPPED)
    return r


async def _skip_non_finalized(k) -> bool:
    """b1c4c67a5e90 (6.9): the panic CPU passes over a record a stopped CPU
    never finalized."""
    if not k.config.has("prb_skip_non_finalized_in_panic"):
        return False
    return await READ_ONCE(k.panic_cpu) == smp_processor_id()


@seq_locals("r", dropped=("dropped",))
@cpu_locals(plain=("dropped", "ts_ns", "r"))
async def call_console_driver(k, r) -> None:
    """The console's `write()` for one record, after the dropped notice if
    the console found a gap (6.1's `dropped_text`, 5.17's prefix in `text`)."""
    dropped = await READ_ONCE(k.console_dropped)
    if dropped:
        await WRITE_ONCE(k.console_dropped, 0)
        k.dropped_notices.append((ktime_get_ns(), dropped))
        await uart_write(dropped_notice(dropped))
    ts_ns = k.log[r.seq][0]
    await uart_write(f"[{ts_ns // 1_000_000_000:5d}.{ts_ns // 1000 % 1_000_000:06d}] {r.text}")
    if r.text.startswith(PANIC_END_PREFIX):
        k.mark("panic_end", ktime_get_ns())
        k.ghost_add("end_printed", smp_processor_id())


async def console_unlock(k) -> None:
    """Print every pending record, release console_sem, retry if more came."""
    if k.config.has("printk_rework_printing_logic"):
        await console_unlock_flush_all(k)
    else:
        await console_unlock_5_17(k)


@seq_locals("seq", "next_seq", "r")
@cpu_locals(plain=("flags", "seq", "next_seq", "handover", "r"))
async def console_unlock_5_17(k) -> None:
    """5.17's `console_unlock()` (5.18 adds 8ebc476fd51e's two checks)."""
    while True:                                         # again:
        while True:                                     # for (;;)
            seq = await READ_ONCE(k.console_seq)
            r = await console_read_next(k, seq)
            if r is None:
                break
            await WRITE_ONCE(k.console_seq, r.seq + 1)  # console_seq++ before the driver, as 5.17 does
            flags = await local_irq_save()              # printk_safe_enter_irqsave()
            await console_lock_spinning_enable(k)
            await call_console_driver(k, r)
            handover = await console_lock_spinning_disable_and_check(k)
            await local_irq_restore(flags)
            if handover:
                return
            if k.config.has("printk_drop_console_sem_in_panic") and await other_cpu_in_panic(k):
                break                                   # 8ebc476fd51e: abandon_console_lock_in_panic()
        next_seq = await READ_ONCE(k.console_seq)
        await up(k.console_sem)                         # console_locked = 0; up_console_sem()
        if await prb_read_valid(k, next_seq) is None:
            return
        if k.config.has("printk_drop_console_sem_in_panic") and await other_cpu_in_panic(k):
            return
        if not await console_trylock(k):
            return


@seq_locals("next_seq")
@cpu_locals(plain=("flushed", "next_seq", "handover"))
async def console_unlock_flush_all(k) -> None:
    """6.1's `console_unlock()`: flush, unlock, and retry only when all was
    flushed and a record came after."""
    while True:
        flushed, next_seq, handover = await console_flush_all(k)
        if not handover:
            await up(k.console_sem)                     # __console_unlock()
        if not flushed:
            return
        if await prb_read_valid(k, next_seq) is None:
            return
        if not await console_trylock(k):
            return


@seq_locals("next_seq", "seq")
@cpu_locals(plain=("progress", "handover", "next_seq", "seq"))
async def console_flush_all(k) -> tuple[bool, int, bool]:
    """One record per pass of the (single) console until a pass makes no
    progress; (flushed, next_seq, handover). The kernel starts `*next_seq`
    at 0 and keeps the highest `con->seq` it sees; with one console that is
    the last one read, so the model starts from the first read instead of an
    absolute 0 (which the explorer's `SeqWindow` could not place)."""
    next_seq = None
    while True:
        progress, handover = await console_emit_next_record(k)
        if handover:
            return False, next_seq, True
        seq = await READ_ONCE(k.console_seq)
        next_seq = seq if next_seq is None else max(next_seq, seq)
        if not progress:
            return True, next_seq, False
        if k.config.has("printk_drop_console_sem_in_panic") and await other_cpu_in_panic(k):
            return False, next_seq, False               # "Allow panic_cpu to take over the consoles safely"


@seq_locals("seq", "r")
@cpu_locals(plain=("flags", "seq", "handover", "r"))
async def console_emit_next_record(k) -> tuple[bool, bool]:
    """(progress, handover): print the console's next record, if any."""
    seq = await READ_ONCE(k.console_seq)
    r = await console_read_next(k, seq)
    if r is None:
        return False, False
    flags = await local_irq_save()                      # printk_safe_enter_irqsave()
    await console_lock_spinning_enable(k)
    await call_console_driver(k, r)
    await WRITE_ONCE(k.console_seq, r.seq + 1)          # con->seq++ after the driver
    handover = await console_lock_spinning_disable_and_check(k)
    await local_irq_restore(flags)
    return True, handover


async def console_flush_on_panic(k) -> None:
    """Print what is pending whoever holds console_sem (its holder may be
    stopped). Before eacb04ff3c5b (6.6) by taking the lock if it can and
    unlocking it regardless; after, with `console_flush_all()` alone."""
    if k.config.has("printk_flush_on_panic_without_console_lock"):
        await console_flush_all(k)
        return
    await console_trylock(k)                            # the result is ignored
    await console_unlock(k)
