"""The locks printk takes: a raw spinlock and a binary semaphore.

`raw_spin_lock()` stands for `arch_spin_lock()` reduced to what a waiter sees:
it spins, with whatever interrupt state its caller set, until the lock is free,
and takes it with one atomic. (x86's queued spinlock hands the lock over in
FIFO order; with at most one contender at a time on printk's locks the order
does not matter.) A holder that is stopped by an NMI never releases it: every
later taker spins forever, which is one of the hazards S2's thread names.

`down_trylock()` / `up()` are `kernel/locking/semaphore.c`'s on a semaphore of
count 1 (`console_sem`): taken or not, no sleeping waiters (printk only ever
try-locks it on the paths modelled). The lock word holds the holder's CPU (or
-1): the kernel keeps no holder, but the explorer's traces and the properties
can then say who holds it; `up()` from any CPU releases it, as the kernel's
`console_flush_on_panic()` relies on.

Shape: 7.1's `raw_spin_lock()`/`down_trylock()`/`up()` as a caller sees them,
the same back to 5.x for what is modelled (no lockdep, no sleeping waiters).
"""

from __future__ import annotations

from haltlab.engine.context import smp_processor_id
from haltlab.engine.ops import WRITE_ONCE, atomic_try_cmpxchg, spin_until
from haltlab.engine.symmetry import cpu_locals

__all__ = ["raw_spin_lock", "raw_spin_unlock", "down_trylock", "up", "UNLOCKED", "C_FILES"]

# The C file each function stands for (read by the explorer's trace view, report/race_trace.py).
C_FILES = {"raw_spin_lock": "kernel/locking/spinlock.c", "raw_spin_unlock": "kernel/locking/spinlock.c"}

UNLOCKED = -1


@cpu_locals(cpu=("this_cpu", "_"))
async def raw_spin_lock(lock) -> None:
    this_cpu = smp_processor_id()
    while True:
        ok, _ = await atomic_try_cmpxchg(lock, UNLOCKED, this_cpu)
        if ok:
            return
        await spin_until(lambda: lock.value == UNLOCKED, what=f"raw_spin_lock({lock.name})")


async def raw_spin_unlock(lock) -> None:
    await WRITE_ONCE(lock, UNLOCKED)


@cpu_locals(cpu=("_",))
async def down_trylock(sem) -> bool:
    """True when the semaphore was taken (the kernel returns 0 then)."""
    ok, _ = await atomic_try_cmpxchg(sem, UNLOCKED, smp_processor_id())
    return ok


async def up(sem) -> None:
    await WRITE_ONCE(sem, UNLOCKED)
