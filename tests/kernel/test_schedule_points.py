"""Where the explorer may switch CPUs in a kernel path, pinned.

In the spirit of Trio's `assert_checkpoints`: every race window is a branch
operation, so the list of branch operations of a path is its list of windows. A
refactor that adds one (splitting an atomic) or removes one (folding a store into
a local computation) changes these lists and fails here, instead of silently
changing what the explorer can find.
"""

import pytest

from haltlab.engine.explorer import ExplorerDriver
from haltlab.kernel.arch.x86 import native_stop_other_cpus, stop_this_cpu
from haltlab.kernel.kernel import Kernel, KernelConfig
from haltlab.kernel.panic import panic_try_start
from haltlab.kernel.policies import Policies
from haltlab.machine.machine import Machine


class _Recorder(ExplorerDriver):
    """The explorer, noting every operation it starts."""

    def __init__(self, machine) -> None:
        self.ops: list = []
        super().__init__(machine)

    def on_op(self, s, op) -> None:
        super().on_op(s, op)
        self.ops.append(op)


def run_alone(profile, coro_factory, *, config=KernelConfig(), cpu=0, ncpus=2, setup=None):
    """Run `coro_factory(k)` on `cpu` under the explorer, alone, taking its own
    steps (and timeouts, once nothing else can happen) until it finishes or
    waits for good. Returns (driver, kernel)."""
    machine = Machine(profile, ncpus, record_timeline=False)
    k = Kernel(machine, config)
    k.boot()
    if setup is not None:
        setup(k)
    run = _Recorder(machine)
    run.start_task(cpu, coro_factory(k))
    for _ in range(10_000):
        mine = [c for c in run.choices() if c in (f"c{cpu}", f"t{cpu}")]
        if not mine:
            return run, k
        run.step(mine[0])
    raise AssertionError("the path did not settle in 10000 steps")


def branch_ops(profile, coro_factory, **kw) -> list[str]:
    """`describe()` of each branch operation of the path, in order."""
    run, _ = run_alone(profile, coro_factory, **kw)
    return [op.describe() for op in run.ops if op.branch]


def _writes(ops) -> list[str]:
    return [op.describe() for op in ops if getattr(op, "writes", False)]


# --- panic_try_start() ---------------------------------------------------------------

def test_panic_try_start_cmpxchg_is_one_window(kvm):
    assert branch_ops(kvm, lambda k: panic_try_start(k, 0)) == ["atomic_try_cmpxchg(panic_cpu)"]


def test_panic_try_start_load_store_is_two_windows(kvm):
    cfg = KernelConfig(policies=Policies(panic_start="load-store"))
    assert branch_ops(kvm, lambda k: panic_try_start(k, 0), config=cfg) == [
        "READ_ONCE(panic_cpu)", "WRITE_ONCE(panic_cpu)"]


@pytest.mark.parametrize("variant", ["cmpxchg", "load-store"])
def test_panic_try_start_claims_panic_cpu(kvm, variant):
    cfg = KernelConfig(policies=Policies(panic_start=variant))
    _, k = run_alone(kvm, lambda k: panic_try_start(k, 1), config=cfg, cpu=1)
    assert k.panic_cpu.value == 1


# --- stop_this_cpu() -------------------------------------------------------------------

def test_stop_this_cpu_with_the_robust_stop_commit(kvm):
    run, k = run_alone(kvm, stop_this_cpu, config=KernelConfig(version="v7.1"), cpu=1)
    assert [op.describe() for op in run.ops if op.branch] == [
        "clear_bit(cpu_online_mask)", "ndelay(5000)", "clear_bit(cpus_stop_mask)"]
    described = [op.describe() for op in run.ops]
    # "I'm done" is the last write, after the online bit and the APIC, right
    # before the halt loop (kernel-facts §3.2): the stopping CPU may proceed as
    # soon as it sees it, so nothing may follow it but halting.
    assert _writes(run.ops)[-1] == "clear_bit(cpus_stop_mask)"
    assert described[-2:] == ["clear_bit(cpus_stop_mask)", "native_halt"]
    assert described.index("set_cpu_state") < described.index("clear_bit(cpus_stop_mask)")
    assert run.strands[1].status == "waiting"
    assert k.machine.cpus[1].irqs_enabled is False and k.machine.cpus[1].apic_enabled is False
    assert k.cpu_online_mask.value == 0b01


def test_stop_this_cpu_before_6_5_has_no_stop_mask_report(kvm):
    run, _ = run_alone(kvm, stop_this_cpu, config=KernelConfig(version="v6.1"), cpu=1)
    assert [op.describe() for op in run.ops if op.branch] == [
        "clear_bit(cpu_online_mask)", "ndelay(5000)"]
    # Pre-6.5 the online bit is the only report, and it is written FIRST: the
    # stopping CPU could proceed while this one still runs (the reason for
    # commit 1f5e7eb7868e).
    assert _writes(run.ops) == ["clear_bit(cpu_online_mask)"]
    assert [op.describe() for op in run.ops][-1] == "native_halt"


# --- native_stop_other_cpus(): a CPU that finds another already stopping --------------

def _someone_else_is_stopping(k) -> None:
    k.machine.memory.store(k.stopping_cpu, 1)


def test_robust_stop_loser_returns_after_the_cmpxchg(kvm):
    run, k = run_alone(kvm, lambda k: native_stop_other_cpus(k, wait=False),
                       config=KernelConfig(version="v7.1"), setup=_someone_else_is_stopping)
    assert [op.describe() for op in run.ops if op.branch] == ["atomic_try_cmpxchg(stopping_cpu)"]
    assert run.strands[0].status == "done" and not run.inflight


def test_pre_6_5_stop_loser_returns_after_the_cmpxchg(kvm):
    run, k = run_alone(kvm, lambda k: native_stop_other_cpus(k, wait=False),
                       config=KernelConfig(version="v6.1"), setup=_someone_else_is_stopping)
    assert [op.describe() for op in run.ops if op.branch] == [
        "READ_ONCE(cpu_online_mask)", "atomic_try_cmpxchg(stopping_cpu)"]
    assert run.strands[0].status == "done" and not run.inflight
    assert k.machine.cpus[0].apic_enabled is True


# --- the crash stop: x86 crash_smp_send_stop() and crash_nmi_callback() -----------------

_KDUMP = KernelConfig(version="v7.1", kdump=True)


def test_x86_crash_stop_windows_and_its_once_only_guard(kvm):
    from haltlab.kernel.arch.x86_crash import crash_nmi_callback, crash_smp_send_stop
    run, k = run_alone(kvm, crash_smp_send_stop, config=_KDUMP)
    # The handler is installed before the NMI goes out, and the counter set
    # before both: a CPU taking the NMI finds crash_nmi_callback() and a count.
    # (CPU1 never runs here, so CPU0 stays in the wait for its count.)
    assert [op.describe() for op in run.ops if op.branch] == [
        "READ_ONCE(cpus_stopped)", "READ_ONCE(crash_ipi_issued)", "WRITE_ONCE(crashing_cpu)",
        "READ_ONCE(cpu_online_mask)", "WRITE_ONCE(waiting_for_crash_ipi)", "WRITE_ONCE(emerg_handler)",
        "send_IPI_mask", "WRITE_ONCE(crash_ipi_issued)", "READ_ONCE(waiting_for_crash_ipi)",
        "mdelay(1)", "spin_until(atomic_read(&waiting_for_crash_ipi) == 0)"]
    assert run.strands[0].status == "waiting" and k.waiting_for_crash_ipi.value == 1
    again, _ = run_alone(kvm, crash_smp_send_stop, config=_KDUMP,
                         setup=lambda k: k.machine.memory.store(k.cpus_stopped, 1))
    assert [op.describe() for op in again.ops if op.branch] == ["READ_ONCE(cpus_stopped)"]
    # The receiver: its count is its only shared write, and then it halts.
    cb, k = run_alone(kvm, crash_nmi_callback, config=_KDUMP, cpu=1,
                      setup=lambda k: k.machine.memory.store(k.waiting_for_crash_ipi, 1))
    assert _writes(cb.ops) == ["atomic_add_return(waiting_for_crash_ipi)"]
    assert [op.describe() for op in cb.ops][-1] == "native_halt"
    assert k.waiting_for_crash_ipi.value == 0 and k.machine.cpus[1].apic_enabled is False
