"""`smp_send_stop()`: the generic entry to each architecture's stop path.

x86 is `smp_ops.stop_other_cpus(0)` = `native_stop_other_cpus()`
(`arch/x86/kernel/smp.c`); arm64 is its own `smp_send_stop()`
(`arch/arm64/kernel/smp.c`). Both live under `haltlab.kernel.arch`. Shape:
7.1's `include/linux/smp.h` and `arch/x86/include/asm/smp.h`.
"""

from __future__ import annotations

__all__ = ["smp_send_stop"]

C_FILE = "include/linux/smp.h"      # the generic declaration (read by report/race_trace.py)


async def smp_send_stop(k) -> None:
    """Panic path: stop the others without waiting forever (x86 `wait = 0`)."""
    await k.arch.smp_send_stop(k)
