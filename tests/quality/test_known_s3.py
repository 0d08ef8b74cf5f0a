"""S3's designs, judged by the explorer: the known bugs of S3's patch and of a
naive parallel hotplug are found, stock hotplug and the parallel design pass.

* `smp-send-stop` (S3's patch): each CPU calls CPU_OFF from the stop IPI with
  its interrupts still routed to it (PSCI §5.5.2); the boot CPU jumps as soon
  as the online mask says one CPU, before the others have left the kernel;
  on a CPU running a user task `cpu_die()` BUGs in `idle_task_exit()`; a CPU
  with interrupts off is never stopped and `machine_kexec()` BUGs after the
  bounded wait.
* `parallel-hotplug-naive`: a dying CPU hands its interrupt to another dying
  CPU still marked online.
* `hotplug` and `parallel-hotplug`: every property holds.
Each with reductions off and with the partial-order reduction (the kexec
scenario declares no symmetry: SPI n is routed to CPU n), but the 3-CPU
proof of the parallel design, which runs with the partial-order reduction
only (its size is in the test).
"""

import pytest

from haltlab.checks.properties import Verdict
from haltlab.engine.explorer import replay
from haltlab.scenarios.kexec_check import KexecCheckConfig, check_kexec, make_run, property_named

REDUCTIONS = ["none", "por"]


def _check(prop: str | None = None, **kw):
    cfg = KexecCheckConfig(**kw)
    props = (property_named(prop),) if prop else None
    out = check_kexec(cfg, properties=props) if props else check_kexec(cfg)
    return cfg, out


@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_s3_patch_calls_cpu_off_with_an_interrupt_still_routed_to_the_cpu(reduce):
    cfg, out = _check("interrupts migrated before CPU_OFF", shutdown="smp-send-stop", reduce=reduce)
    assert out.verdict is Verdict.VIOLATION
    assert "SPI 33 still routed to CPU1" in out.message
    run = replay(lambda: make_run(cfg), out.choices)
    assert 1 in run.kernel.ghost["cpu_off"]


@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_s3_patch_jumps_before_every_cpu_has_left(reduce):
    _, out = _check("every CPU left at the jump", shutdown="smp-send-stop", reduce=reduce)
    assert out.verdict is Verdict.VIOLATION
    assert "CPU1 has not executed CPU_OFF" in out.message


@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_s3_patch_bugs_in_idle_task_exit_on_a_busy_cpu(reduce):
    _, out = _check("no BUG()", shutdown="smp-send-stop", others="busy", reduce=reduce)
    assert out.verdict is Verdict.VIOLATION
    assert "idle_task_exit" in out.message


@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_s3_patch_bugs_in_machine_kexec_when_a_cpu_has_interrupts_off(reduce):
    _, out = _check("no BUG()", shutdown="smp-send-stop", others="irqsoff", reduce=reduce)
    assert out.verdict is Verdict.VIOLATION
    assert "machine_kexec" in out.message


@pytest.mark.parametrize("timing", ["timed", "untimed"])
@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_stock_hotplug_is_safe(reduce, timing):
    _, out = _check(shutdown="hotplug", reduce=reduce, timing=timing)
    assert out.verdict is Verdict.OK, out.message


def test_parallel_hotplug_is_safe_in_every_interleaving():
    """Three CPUs (two taken down together, so the barrier matters), untimed:
    every interleaving, whatever the costs. About 15,000 states with the
    partial-order reduction; without it the search is several times longer,
    which the 2-CPU cases above already compare."""
    _, out = _check(cpus=3, shutdown="parallel-hotplug", timing="untimed", reduce="por")
    assert out.verdict is Verdict.OK, out.message


@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_naive_parallel_hotplug_strands_an_interrupt(reduce):
    cfg, out = _check("interrupts migrated before CPU_OFF", cpus=3, shutdown="parallel-hotplug-naive",
                      reduce=reduce)
    assert out.verdict is Verdict.VIOLATION
    assert "still routed to CPU2" in out.message
