"""Parking the x86 APs across kexec: S4's patch and its review's variant (neither merged).

S4 (shenkai, "[PATCH] use x86 cpu park to speedup smp_init in kexec
situation", 2020-12-15; `--bringup park-spin`): on the reboot IPI during a
kexec, an AP calls `cpu_park()` instead of `stop_this_cpu()`'s HLT loop
[inferred: the seed has no process.c hunk; the model calls it where that
loop would start, after the online bit is cleared and the APIC disabled]:
it switches to the kexec control page's tables, leaves long mode and paging,
writes `PARK_MAGIC` into its own `para[cpu].magic` and spins on its own
`para[cpu].exit`, with no IDT. The new kernel's `do_boot_cpu()` calls
`write_park_exit(cpu)`: with the magic there it clears the AP's
`cpu_initialized_mask` bit and writes `park_startup_32` as the exit, so the
AP jumps into the startup path without INIT/SIPI; without it, INIT/SIPI as
usual. The CPU named by `bootcoresibling=` (default 0, the boot CPU itself)
halts as before instead.

The review (Andy Lutomirski, the same day; `--bringup park-mwait`): one wake
word for all parked CPUs and a count of them, MWAIT on the word. The model's
reading [no code was posted]: each AP counts itself in (from
`stop_this_cpu()`, before the write that lets the stopping CPU go on), MWAITs (the
profile's exit latency of the C-state it asks for is paid on waking); the new
kernel, with the parallel bring-up's STARTUP_READ_APICID so that a woken AP
finds its own number, writes the word once before the kick loop and waits
(10 ms) for the count to drop to zero, each AP marking itself out; an AP that
is out needs no INIT/SIPI, any other gets it; a count still above zero is
said on the console. The boot CPU's SMT sibling is found from the topology,
not from a boot option.

What each makes unsafe is kept as violations (`Park.violations`, and ghost
facts for the explorer): a CPU still in the park memory when the new kernel
hands that memory to the page allocator (`park_mm_init()`; S4 keeps it
reserved only if the new kernel's command line has `cpuparkmem=`); a parked
CPU still there after `smp_init()` and not said (`park_check_after_smp_init()`);
an NMI or machine check on a parked CPU (no IDT: a triple fault, the machine
resets; `park_nmi()`); the boot CPU's sibling parked.

Shape: S4's patch as posted against 5.10 (seeds/003: its setup.c, smp.c,
smpboot.c and cpu-park.S hunks), called from the model's 5.17 and 7.1
bring-ups (kernel/arch/x86_smpboot.py); the review's variant posted no code,
so it is the model's reading on 7.1's parallel bring-up (it needs
STARTUP_READ_APICID).
"""

from __future__ import annotations

from haltlab.engine.context import smp_processor_id
from haltlab.engine.memory import for_each_cpu
from haltlab.engine.ops import (
    READ_ONCE, WRITE_ONCE, atomic_add_return, emergency_restart, mwait_until, ndelay, set_bit, spin_until,
)
from haltlab.engine.symmetry import cpu_locals
from haltlab.kernel.policies import Bringup
from haltlab.kernel.printk import printk
from haltlab.kernel.timers import NSEC_PER_MSEC

__all__ = ["PARK_MAGIC", "PARK_STARTUP_32", "Park", "park_init", "cpu_park", "park_count_in", "write_park_exit", "park_wake_all",
           "park_mm_init", "park_check_after_smp_init", "park_nmi", "PARK_DESIGNS"]

PARK_MAGIC = 0x7061726B          # "park", the patch's PARK_MAGIC
PARK_STARTUP_32 = 0x9A000        # stands for real_mode_header->park_startup_32 (any non-zero entry)
PARK_DESIGNS = (Bringup.PARK_SPIN, Bringup.PARK_MWAIT)
PARK_WAIT_MS = 10                # the review variant's bound on the count reaching zero (the model's choice)


class Park:
    """The reserved park section (`struct cpu_park_section`, which survives
    the kexec) and what the new kernel knows of it."""

    def __init__(self, k, design: Bringup, *, boot_core_sibling: int | None, reserved: bool, cstate: str) -> None:
        mem = k.machine.memory
        n = k.machine.ncpus
        self.design = design
        self.spin = design is Bringup.PARK_SPIN
        self.magic = [mem.var(f"park.para[{c}].magic", 0) for c in range(n)] if self.spin else []
        self.exit = [mem.var(f"park.para[{c}].exit", 0) for c in range(n)] if self.spin else []
        self.wake = mem.var("park.wake", 0)
        self.parked_count = mem.var("park.nr_parked", 0)
        self.left_mask = mem.var("park.left", 0)
        self.boot_core_sibling = 0 if boot_core_sibling is None else boot_core_sibling   # bootcoresibling=
        self.reserved = reserved          # the new kernel's cpuparkmem= (memblock_reserve())
        self.cstate = cstate              # the review variant's MWAIT hint
        self.violations: list[str] = []

    def __fingerprint__(self) -> str:
        return "park"

    def violation(self, k, kind: str, cpu: int, text: str) -> None:
        k.ghost_add(f"park_violation:{kind}", cpu)
        self.violations.append(text)


def park_init(k, design: Bringup, **kw) -> Park | None:
    k.park = Park(k, design, **kw) if design in PARK_DESIGNS else None
    return k.park


def _sits_in_park(k, cpu: int) -> bool:
    return cpu in k.ghost.get("parked", ()) and cpu not in k.ghost.get("unparked", ())


def _stays_out(k, cpu: int) -> bool:
    """S4: the CPU `bootcoresibling=` names; the review: the boot CPU's SMT siblings."""
    p = k.park
    if p.spin:
        return cpu == p.boot_core_sibling
    return cpu in k.smpboot.topo.sibling_of(0)


# --- the old kernel: the AP parks -----------------------------------------------------------

@cpu_locals(cpu=("cpu",))
async def cpu_park(k) -> None:
    """Returns only for a CPU that stays out of the park (it halts as before);
    a parked CPU leaves into the new kernel's `start_secondary()`."""
    cpu = smp_processor_id()
    p = k.park
    if _stays_out(k, cpu):
        return
    k.ghost_add("parked", cpu)
    if cpu in k.smpboot.topo.sibling_of(0):
        p.violation(k, "sibling", cpu, f"CPU{cpu}, the boot CPU's SMT sibling, is parked")
    await ndelay(k.machine.cost_ns("park_startup_ns"))     # park_cpu(): CR3, CR0, EFER, CR4
    if p.spin:
        await WRITE_ONCE(p.magic[cpu], PARK_MAGIC)
        await spin_until(lambda: p.exit[cpu].value != 0, what="park exit word")
    else:
        k.x86_boot.cstate[cpu] = p.cstate
        await mwait_until(lambda: p.wake.value != 0, what="park wake word")
        await ndelay(k.x86_boot.wake_latency_ns(k, cpu))
        await set_bit(cpu, p.left_mask)
        await atomic_add_return(p.parked_count, -1)
    k.ghost_add("unparked", cpu)
    await ndelay(k.machine.cost_ns("park_startup_ns"))     # park_startup_32 to secondary_startup_64
    await k.arch_smpboot.start_secondary(k)


@cpu_locals(cpu=("cpu",))
async def park_count_in(k) -> None:
    """The review variant: a CPU that will park counts itself in from
    `stop_this_cpu()` before its "I'm done" write, so the count is complete
    when the stopping CPU goes on to the jump (the model's reading: a count
    the new kernel can rely on has to be)."""
    cpu = smp_processor_id()
    p = k.park
    if p.spin or _stays_out(k, cpu) or not await READ_ONCE(k.kexec_in_progress):
        return
    await atomic_add_return(p.parked_count, 1)


# --- the new kernel ----------------------------------------------------------------------------

@cpu_locals(cpu=("cpu",))
async def write_park_exit(k, cpu: int) -> int:
    """0 if `cpu` leaves the park by this call (or already has), else -EPERM."""
    p = k.park
    if p is None:
        return -1
    if p.spin:
        if await READ_ONCE(p.magic[cpu]) == PARK_MAGIC:
            await WRITE_ONCE(p.exit[cpu], PARK_STARTUP_32)
            return 0
        return -1
    return 0 if await READ_ONCE(p.left_mask) >> cpu & 1 else -1


@cpu_locals(plain=("n", "ok"))
async def park_wake_all(k) -> None:
    """The review variant, before the kick loop: one write wakes every parked
    CPU; wait for the count, say what is missing."""
    p = k.park
    if p is None or p.spin:
        return
    n = await READ_ONCE(p.parked_count)
    if not n:
        return
    await WRITE_ONCE(p.wake, PARK_STARTUP_32)
    ok = await spin_until(lambda: p.parked_count.value == 0, timeout_ns=PARK_WAIT_MS * NSEC_PER_MSEC,
                          what="nr_parked == 0")
    if not ok:
        n = await READ_ONCE(p.parked_count)
        await printk(k, f"cpu park: {n} parked CPUs did not leave the park")
        for cpu in range(k.machine.ncpus):
            if _sits_in_park(k, cpu):
                k.ghost_add("park_reported", cpu)


def park_mm_init(k) -> None:
    """`mm_init()` -> `memblock_free_all()`: what is not reserved goes to the
    page allocator; the park section too unless `cpuparkmem=` reserved it."""
    p = k.park
    if p is None or p.reserved:
        return
    for cpu in range(k.machine.ncpus):
        if _sits_in_park(k, cpu):
            p.violation(k, "memory", cpu, f"the park memory went to the page allocator with CPU{cpu} in it")


def park_check_after_smp_init(k) -> None:
    """Every CPU that parked has left, or the new kernel said it has not."""
    p = k.park
    if p is None:
        return
    for cpu in range(k.machine.ncpus):
        if _sits_in_park(k, cpu) and cpu not in k.ghost.get("park_reported", ()):
            p.violation(k, "accounting", cpu, f"CPU{cpu} still parked after smp_init(), and nothing said so")


async def park_nmi(k, cpu: int, do_nmi) -> None:
    """The NMI vector, reached while the CPU may be parked with no IDT: a
    triple fault resets the machine. Else the old kernel's `do_nmi()`, or, on
    a CPU already in the new kernel, nothing modelled."""
    if k.park is not None and _sits_in_park(k, cpu):
        k.park.violation(k, "nmi", cpu, f"NMI on CPU{cpu} while parked (no IDT): triple fault")
        await emergency_restart("triple fault")
    if cpu in k.ghost.get("new_kernel", ()):
        return
    await do_nmi(k)


def parked_cpus(k) -> list[int]:
    return sorted(for_each_cpu(sum(1 << c for c in k.ghost.get("parked", ()))))
