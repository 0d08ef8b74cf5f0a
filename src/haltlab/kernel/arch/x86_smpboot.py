"""x86's part of bringing an AP up: `arch/x86/kernel/smpboot.c`, `tsc_sync.c`, `init/calibrate.c`.

The control CPU: `do_boot_cpu()` wakes the AP with
`wakeup_secondary_cpu_via_init()` (`send_init_sequence()`: INIT asserted,
`udelay(init_udelay)`, INIT deasserted; then two STARTUP IPIs, each followed
by `udelay(10)`, an ICR-idle wait and `udelay(10)`, or 300/200 us when
`init_udelay` is the legacy 10 ms), or, under S4's park, writes the AP's exit
word instead (kernel/arch/x86_park.py). `init_udelay` comes from
`smp_quirk_init_udelay()`: 0 for Intel family 6 (5.17), for every Intel CPU
from the Pentium Pro on since Linux kernel commit "x86/smpboot: Fix INIT
delay assignment for extended Intel Families" (2025, key
`x86_init_udelay_vfm`), and for AMD family 0xF and later; else 10 ms.

In the 5.17 shape (S4's), `native_cpu_up()` then waits for the AP's
`cpu_initialized_mask` bit (10 s budget, `schedule()` in the loop: the
control CPU keeps executing), sets its `cpu_callout_mask` bit, waits for
`cpu_callin_mask`, runs the TSC sync source side and spins until the AP is
online: every step serialized. In the 6.5 shape `native_kick_ap()` only
kicks; the core code waits (kernel/smpboot.py).

The AP: the SIPI starts it in the real-mode trampoline
(`ap_sipi_response_ns`, the hardware's INIT/SIPI handling, then
`trampoline_ns`; with the 6.5 parallel bring-up the trampoline is under its
bit lock, `tr_lock`, so APs pass it one at a time), then `start_secondary()`:
7.1 loads microcode (primary threads) and reports ALIVE before `cpu_init()`,
5.17 waits for the callout bit inside `cpu_init()` first; `smp_callin()`'s or
`ap_starting()`'s set-up (`ap_starting_ns`), `check_tsc_sync_target()`
(skipped when `unsynchronized_tsc()`, or when `tsc_store_and_check_tsc_adjust()`
finds a package sibling already online to compare TSC_ADJUST with; else
`loop_timeout()`: 20 ms for the first CPU of a package, 2 ms otherwise),
`calibrate_delay()` (skipped with `lpj=`, or when `calibrate_delay_is_known()`
finds a value: 7.1 takes CPU 0's when the TSC is constant and stable, 5.17 a
package sibling's when constant; else `calibrate_delay_direct()`, five
samples, each polling jiffies until `start_jiffies + 2 + DELAY_CALIBRATION_TICKS`,
about 4 ticks each at HZ=250), then online.

Simplified: the TSC sync's source side, which runs on the control CPU at the
same time (5.17: in `native_cpu_up()`; 7.1: an IPI to the first online CPU),
is folded into the control CPU's wait; no warp is ever found (no retry).

Shape: arch/x86/kernel/smpboot.c of 7.1, and of 5.17 where the kernel lacks
the 6.5 hotplug series (kernel/smpboot.py says how that is decided).
"""

from __future__ import annotations

from haltlab.engine.context import ktime_get_ns, smp_processor_id
from haltlab.engine.ops import (
    READ_ONCE, clear_bit, native_halt, ndelay, send_IPI_mask, set_bit, set_cpu_state, spin_until,
    test_and_set_bit,
)
from haltlab.engine.symmetry import cpu_locals
from haltlab.kernel import smpboot
from haltlab.kernel.arch import x86_park
from haltlab.kernel.policies import Bringup
from haltlab.kernel.timers import NSEC_PER_MSEC, NSEC_PER_SEC, jiffies

__all__ = ["X86Boot", "x86_boot_init", "smp_set_init_udelay", "parallel_bringup", "native_kick_ap", "native_cpu_up", "do_boot_cpu",
           "wakeup_secondary_cpu_via_init", "send_init_sequence", "x86_init_reset", "wait_for_sipi", "trampoline_start",
           "start_secondary", "check_tsc_sync_target", "calibrate_delay", "calibrate_delay_direct",
           "UDELAY_10MS_LEGACY", "C_FILES"]

C_FILES = {"check_tsc_sync_target": "arch/x86/kernel/tsc_sync.c", "calibrate_delay": "init/calibrate.c",
           "calibrate_delay_direct": "init/calibrate.c"}

UDELAY_10MS_LEGACY = 10_000
DELAY_CALIBRATION_RETRIES = 5           # MAX_DIRECT_CALIBRATION_RETRIES
INTEL_PENTIUM_PRO_FAMILY = 6


class X86Boot:
    """The new kernel's command line and what its boot CPU decided from it:
    `lpj=` (`preset_lpj`), `tsc=reliable`, `cpu_init_udelay=`, and
    `init_udelay` as `smp_set_init_udelay()` leaves it. Per CPU, the C-state
    the old kernel left it in (`C1` for HLT, or an MWAIT hint), whose exit
    latency the CPU pays when INIT/SIPI or its park word wakes it."""

    def __init__(self, k, *, preset_lpj: bool, tsc_reliable: bool, cpu_init_udelay: int | None) -> None:
        self.preset_lpj = preset_lpj
        self.tsc_reliable = tsc_reliable
        self.cpu_init_udelay = cpu_init_udelay
        self.init_udelay = 0
        self.cstate = ["C1"] * k.machine.ncpus

    def __fingerprint__(self) -> str:
        return "x86_boot"      # its C-states only price delays, which an untimed exploration does not time

    def wake_latency_ns(self, k, cpu: int) -> int:
        return k.machine.cost_ns(f"{self.cstate[cpu].lower()}_exit_latency_ns")


def x86_boot_init(k, **cmdline) -> X86Boot:
    k.x86_boot = X86Boot(k, **cmdline)
    return k.x86_boot


def _feature(k, key: str) -> bool:
    params = k.machine.profile.params
    return key in params and bool(params[key].value)


def smp_set_init_udelay(k) -> int:
    """`init_udelay` in us: `cpu_init_udelay=` wins (`k.x86_boot.cpu_init_udelay`),
    else 0 on the CPUs the kernel calls modern, else the legacy 10 ms."""
    if k.x86_boot.cpu_init_udelay is not None:
        return k.x86_boot.cpu_init_udelay
    family = int(k.machine.profile.get("x86_family"))
    if _feature(k, "x86_vendor_amd"):
        modern = family >= 0xF
    elif k.config.has("x86_init_udelay_vfm"):
        modern = family >= INTEL_PENTIUM_PRO_FAMILY     # x86_vfm >= INTEL_PENTIUM_PRO
    else:
        modern = family == 6
    return 0 if modern else UDELAY_10MS_LEGACY


def parallel_bringup(k) -> bool:
    """`arch_cpuhp_init_parallel_bringup()`, as the policy chooses: parallel
    and the review's park (whose one wake word needs APs that find their own
    number, STARTUP_READ_APICID)."""
    return k.policies.bringup in (Bringup.PARALLEL, Bringup.PARK_MWAIT)


# --- the control CPU ------------------------------------------------------------------------

@cpu_locals(cpu=("cpu",))
async def native_kick_ap(k, cpu: int) -> int:
    """CPUHP_BP_KICK_AP (6.5+): `common_cpu_up()`, `do_boot_cpu()`."""
    return await do_boot_cpu(k, cpu)


@cpu_locals(cpu=("cpu",), plain=("err",))
async def do_boot_cpu(k, cpu: int) -> int:
    sb = k.smpboot
    sb.note(cpu, "kicked")
    if not sb.core_sync:
        await clear_bit(cpu, sb.cpu_initialized_mask)
    if await x86_park.write_park_exit(k, cpu) == 0:      # S4: the parked AP leaves by its exit word
        return 0
    return await wakeup_secondary_cpu_via_init(k, cpu)


@cpu_locals(cpu=("cpu",), plain=("init_udelay", "icr_ns"))
async def wakeup_secondary_cpu_via_init(k, cpu: int) -> int:
    """The delays between two ICR writes are one `ndelay()` each: nothing
    else runs on this CPU between them (interrupts off, no shared access)."""
    init_udelay = k.x86_boot.init_udelay
    icr_ns = k.machine.cost_ns("apic_icr_write_ns")
    await send_init_sequence(k, cpu, init_udelay)
    for _ in range(2):                                  # num_starts = 2 (integrated APIC)
        await ndelay(icr_ns)                            # apic_write(APIC_ESR, 0)
        await send_IPI_mask(1 << cpu, "SIPI")           # APIC_DM_STARTUP | (start_ip >> 12)
        # udelay(10) (300 legacy), safe_apic_wait_icr_idle(), udelay(10) (200 legacy)
        await ndelay((20 if init_udelay == 0 else 500) * 1000 + icr_ns)
    return 0


@cpu_locals(cpu=("cpu",), plain=("init_udelay", "icr_ns"))
async def send_init_sequence(k, cpu: int, init_udelay: int) -> None:
    icr_ns = k.machine.cost_ns("apic_icr_write_ns")
    await ndelay(icr_ns)                                # clear the ESR
    await send_IPI_mask(1 << cpu, "INIT")              # APIC_INT_LEVELTRIG | APIC_INT_ASSERT | APIC_DM_INIT
    # safe_apic_wait_icr_idle(), udelay(init_udelay), INIT deassert and its wait
    await ndelay(2 * icr_ns + init_udelay * 1000)


@cpu_locals(cpu=("cpu",))
async def native_cpu_up(k, cpu: int) -> int:
    """5.17: `do_boot_cpu()` and its waits, the TSC source side, the online spin."""
    sb = k.smpboot
    await do_boot_cpu(k, cpu)
    if not await spin_until(lambda: sb.cpu_initialized_mask.value >> cpu & 1,
                            timeout_ns=10 * NSEC_PER_SEC, what=f"cpu_initialized_mask(CPU{cpu})"):
        return -5                                        # -EIO: "CPU%d failed to report alive state"
    await set_bit(cpu, sb.cpu_callout_mask)              # "Tell AP to proceed with initialization"
    await spin_until(lambda: sb.cpu_callin_mask.value >> cpu & 1, what=f"cpu_callin_mask(CPU{cpu})")
    await spin_until(lambda: sb.cpu_online_mask.value >> cpu & 1, what=f"cpu_online(CPU{cpu})")
    return 0


# --- the AP ----------------------------------------------------------------------------------

def x86_init_reset(k, cpu: int):
    """INIT accepted: the CPU's wait-for-SIPI, as the frame it runs until the
    SIPI's goes on above it (only INIT and SIPI reach it now,
    machine.Machine.raise_interrupt). What INIT does to the CPU is done here,
    at acceptance, not in that frame, which a SIPI already pending preempts
    before it runs: the CPU is the new kernel's from now on, and INIT takes it
    out of whatever it ran, the park loop too (one the new kernel found
    without its PARK_MAGIC yet: it went on into the park after clearing its
    online bit, which is all the stopping CPU waits for, and gets INIT/SIPI)."""
    k.ghost_add("new_kernel", cpu)
    if cpu in k.ghost.get("parked", ()):
        k.ghost_add("unparked", cpu)
    return wait_for_sipi()


async def wait_for_sipi() -> None:
    while True:
        await native_halt()


@cpu_locals(cpu=("cpu",))
async def trampoline_start(k, cpu: int) -> None:
    """The SIPI's vector: real-mode `trampoline_start` to `secondary_startup_64`."""
    await ndelay(k.x86_boot.wake_latency_ns(k, cpu) + k.machine.cost_ns("ap_sipi_response_ns"))
    if parallel_bringup(k):
        tr_lock = k.smpboot.trampoline_lock
        while await test_and_set_bit(0, tr_lock):        # the real-mode stack's bit lock
            await spin_until(lambda: not tr_lock.value & 1, what="tr_lock")
        await ndelay(k.machine.cost_ns("trampoline_ns"))
        await clear_bit(0, tr_lock)
    else:
        await ndelay(k.machine.cost_ns("trampoline_ns"))
    await start_secondary(k)


@cpu_locals(cpu=("cpu",))
async def start_secondary(k) -> None:
    cpu = smp_processor_id()
    sb = k.smpboot
    k.ghost_add("new_kernel", cpu)
    if sb.core_sync:
        if sb.topo.is_primary_thread(cpu):
            await ndelay(k.machine.cost_ns("load_ucode_ap_ns"))
        await smpboot.cpuhp_ap_sync_alive(k)
        await set_cpu_state(apic_enabled=True)           # cpu_init() ... ap_starting(): apic_ap_setup()
        await ndelay(k.machine.cost_ns("ap_starting_ns"))
        await check_tsc_sync_target(k)
        await calibrate_delay(k)                          # ap_calibrate_delay()
    else:
        await set_bit(cpu, sb.cpu_initialized_mask)      # cpu_init(): wait_for_master_cpu()
        sb.note(cpu, "alive")
        await spin_until(lambda: sb.cpu_callout_mask.value >> cpu & 1, what="cpu_callout_mask")
        if sb.topo.is_primary_thread(cpu):
            await ndelay(k.machine.cost_ns("load_ucode_ap_ns"))
        await set_cpu_state(apic_enabled=True)           # smp_callin(): apic_ap_setup()
        await ndelay(k.machine.cost_ns("ap_starting_ns"))
        await calibrate_delay(k)
        await set_bit(cpu, sb.cpu_callin_mask)
        await check_tsc_sync_target(k)
    await set_bit(cpu, sb.cpu_online_mask)                # set_cpu_online(), under vector_lock
    sb.note(cpu, "online")
    await smpboot.cpuhp_online_idle(k)


def _package_sibling_online(k, cpu: int) -> bool:
    """Whether another CPU of `cpu`'s package is online (`topology_core_cpumask()`
    has a second CPU): pure, on the online mask as last read."""
    topo = k.smpboot.topo
    online = k.smpboot.cpu_online_mask.value
    first = topo.package_of(cpu) * topo.cores_per_socket
    for t in range(topo.threads_per_core):
        base = first + t * topo.ncores
        if online >> base & ((1 << topo.cores_per_socket) - 1):
            return True
    return False


def unsynchronized_tsc(k) -> bool:
    if _feature(k, "x86_feature_constant_tsc") or k.x86_boot.tsc_reliable:
        return False
    return _feature(k, "x86_vendor_amd") and k.machine.ncpus > 1     # "assume multi socket systems are not synchronized"


@cpu_locals(cpu=("cpu",), plain=("timeout_ms", "t0"))
async def check_tsc_sync_target(k) -> None:
    cpu = smp_processor_id()
    if unsynchronized_tsc(k):
        return
    await READ_ONCE(k.smpboot.cpu_online_mask)
    sibling = _package_sibling_online(k, cpu)
    if (_feature(k, "x86_feature_tsc_adjust") and sibling) or k.x86_boot.tsc_reliable:
        return                           # tsc_store_and_check_tsc_adjust(false) || tsc_clocksource_reliable
    timeout_ms = 2 if sibling else 20    # loop_timeout()
    t0 = ktime_get_ns()
    await ndelay(timeout_ms * NSEC_PER_MSEC)   # check_tsc_warp(), with the source spinning beside it
    k.smpboot.timeline.setdefault(cpu, {})["tsc_sync_ns"] = ktime_get_ns() - t0


@cpu_locals(cpu=("cpu",))
async def calibrate_delay(k) -> None:
    """init/calibrate.c: the first test that finds a value wins."""
    cpu = smp_processor_id()
    if k.x86_boot.preset_lpj:                           # lpj=
        return
    if _feature(k, "x86_feature_constant_tsc"):         # calibrate_delay_is_known()
        if k.smpboot.core_sync and not unsynchronized_tsc(k):
            return                                       # 7.1: cpu_data(0).loops_per_jiffy
        await READ_ONCE(k.smpboot.cpu_online_mask)
        if _package_sibling_online(k, cpu):
            return                                       # a package sibling's value
    await calibrate_delay_direct(k)


@cpu_locals(cpu=("cpu",), plain=("i", "start_jiffies", "ticks", "t0", "period", "now"))
async def calibrate_delay_direct(k) -> None:
    """Five samples, each from a jiffy edge (`start_jiffies + 1`) to
    `DELAY_CALIBRATION_TICKS` (HZ/100, at least 1) jiffies later, read off the
    TSC in a busy loop: about 5 x (2 + HZ/100) ticks."""
    hz = int(k.machine.profile.get("hz"))
    ticks = 1 if hz < 100 else hz // 100
    period = k.machine.tick_period_ns
    t0 = ktime_get_ns()
    for _ in range(DELAY_CALIBRATION_RETRIES):
        start_jiffies = jiffies(k)
        now = ktime_get_ns()
        await ndelay((start_jiffies + 2 + ticks) * period - now)   # until jiffies > start + 1 + ticks
    k.smpboot.timeline.setdefault(smp_processor_id(), {})["calibrate_ns"] = ktime_get_ns() - t0
