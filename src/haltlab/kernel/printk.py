"""printk and the console, abridged from `kernel/printk/printk.c`.

Shape: the pre-5.10 one (a single `console_unlock()` loop over the log, no
owner/waiter hand-over, no per-version panic checks); issue 8 replaces it with
5.17's, 6.1's and 7.1's, named as the kernel names them.

What is modelled: every record is stored in the ring buffer with a timestamp, then
the caller tries to take console_sem and, if it gets it, prints every pending
record on the console (`console_unlock()`), each at the console's speed, and
re-checks for records that arrived while it was printing. That is the loop S2's
livelock lives in.

Abridged here: the owner/waiter hand-over of `console_trylock_spinning()` and the
panic-time checks that differ by version (kernel-facts §2.2) come with the S2
issue; no log levels or console filtering (every record is printed); no
`printk_delay`; the ring buffer never overflows.
"""

from __future__ import annotations

from haltlab.engine.context import ktime_get_ns, smp_processor_id
from haltlab.engine.ops import READ_ONCE, WRITE_ONCE, atomic_add_return, atomic_try_cmpxchg, ndelay, uart_write
from haltlab.engine.symmetry import cpu_locals

__all__ = ["printk", "console_trylock", "console_unlock", "console_flush_on_panic"]


async def printk(k, text: str) -> None:
    """`vprintk_emit()`: store the record, then print directly if we get the console."""
    if await READ_ONCE(k.suppress_printk):
        return
    await vprintk_store(k, text)
    if await console_trylock(k):
        await console_unlock(k)


@cpu_locals(plain=("seq",))
async def vprintk_store(k, text: str) -> int:
    await ndelay(k.machine.cost_ns("printk_store_ns"))
    seq = await atomic_add_return(k.log_next_seq, 1) - 1
    k.log[seq] = (ktime_get_ns(), smp_processor_id(), text)
    return seq


@cpu_locals(plain=("_",))
async def console_trylock(k) -> bool:
    ok, _ = await atomic_try_cmpxchg(k.console_sem, 0, 1)
    return ok


@cpu_locals(plain=("seq",))
async def console_unlock(k) -> None:
    """Print every pending record, release console_sem, and retry if more came."""
    while True:
        while True:
            seq = await READ_ONCE(k.console_seq)
            if seq >= await READ_ONCE(k.log_next_seq):
                break
            await call_console_driver(k, seq)
            await WRITE_ONCE(k.console_seq, seq + 1)
        await WRITE_ONCE(k.console_sem, 0)      # up_console_sem()
        if await READ_ONCE(k.console_seq) >= await READ_ONCE(k.log_next_seq):
            return
        if not await console_trylock(k):
            return


@cpu_locals(cpu=("_",), plain=("seq", "ts_ns"))
async def call_console_driver(k, seq: int) -> None:
    ts_ns, _, text = k.log[seq]
    line = f"[{ts_ns // 1_000_000_000:5d}.{ts_ns // 1000 % 1_000_000:06d}] {text}"
    await uart_write(line)
    if text.startswith("---[ end Kernel panic"):
        k.mark("panic_end", ktime_get_ns())


async def console_flush_on_panic(k) -> None:
    """Print what is pending whoever holds console_sem (the holder may be stopped)."""
    await WRITE_ONCE(k.console_sem, 1)
    await console_unlock(k)
