"""The crash (kdump) path of `panic()`: `kernel/crash_core.c` (7.1) and the stop
entry `crash_smp_send_stop()` whose weak default lives in `kernel/panic.c`.

With a crash kernel loaded (`kexec -p`, `KernelConfig.kdump`), `__crash_kexec()`
shuts the machine down for the crash kernel (`machine_crash_shutdown()`, the
arch's: it stops the other CPUs with `crash_smp_send_stop()`) and jumps into it
(`machine_kexec()`): the run of this kernel ends there, with the mark
`crash_kexec` ("panic finished: the kdump kernel runs") and the ghost fact of
the same name, which an explorer's goal can read (marks are not state).
`panic()` calls it
before the stop, or after the notifiers with `crash_kexec_post_notifiers`.

Abridged: no `kexec_trylock()` (nothing else takes kexec_lock in these runs:
no `kexec_load()` races the panic), no `crash_setup_regs()` /
`crash_save_vmcoreinfo()` / `crash_save_cpu()` (they write memory no other CPU
reads here), no `crash_cma_clear_pending_dma()` (its 10 s wait needs a
crashkernel CMA reservation, which these runs do not have). Without a crash
kernel `__crash_kexec()` only takes and drops kexec_lock, so the model returns
at once and a run without kdump keeps its schedule points.
"""

from __future__ import annotations

from haltlab.engine.context import ktime_get_ns, smp_processor_id

__all__ = ["__crash_kexec", "crash_smp_send_stop", "C_FILE"]

C_FILE = "kernel/crash_core.c"


async def __crash_kexec(k) -> None:
    """The crash kexec of `panic()` (steps 9 and 15). Returns only when no crash
    kernel is loaded."""
    if not k.config.kdump:                      # kexec_crash_image == NULL
        return
    await k.arch.machine_crash_shutdown(k)
    k.mark("crash_kexec", ktime_get_ns())       # machine_kexec() entered: the kdump kernel is next
    k.ghost_add("crash_kexec", smp_processor_id())   # the same, as state: an explorer's goal
    await k.arch.machine_kexec(k)


async def crash_smp_send_stop(k) -> None:
    """Stop the other CPUs for a crash dump (the arch's override: x86's NMI
    shoot-down, arm64's crash stop IPI), once; the stop's marks as for
    `smp_send_stop()` (`Kernel.stop_called()` / `stop_returned()`)."""
    k.stop_called(smp_processor_id(), ktime_get_ns())
    await k.arch.crash_smp_send_stop(k)
    k.stop_returned(ktime_get_ns())
