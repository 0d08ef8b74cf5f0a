"""S2's known bugs, found by the explorer, and a fixed kernel that passes.

* `v5.17+d51507098ff9` (the patch S2 tested): no CPU spins during a panic, so
  once the panic CPU holds console_sem in `console_unlock()` the flooder only
  stores and returns: a fair livelock, with a lasso that replays.
* `v5.17` with kdump loaded and `crash_kexec_post_notifiers` (d51507098ff9's own
  commit message): the flooder is NMI-stopped as the console owner; the panic
  CPU's notifier printk then waits as the console waiter forever: a deadlock.
* `v7.1`: non-panic CPUs' records are dropped once a panic is in progress
  (779dbc2e78d7) and no owner is advertised (d04d5882cd67): the panic always
  finishes, in every interleaving; and at 3 CPUs with widened zones, where the
  judge must refuse the Zeno cycle two flooders make (docs/design.md, "Timed
  lassos").
Each with every reduction setting; under `por` and `all` liveness is judged on
the reduced graph itself (the cycle and visibility provisos, docs/design.md).
"""

import pytest

from haltlab.checks.properties import Verdict
from haltlab.engine.explorer import Timing, replay
from haltlab.scenarios.printk_flood_check import PrintkFloodCheckConfig, check_printk_flood, make_run, panic_finished

REDUCTIONS = ["none", "symmetry", "por", "all"]


@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_the_patch_s2_tested_livelocks_and_its_lasso_replays(reduce):
    cfg = PrintkFloodCheckConfig(kernel="v5.17+d51507098ff9", reduce=reduce)
    out = check_printk_flood(cfg)
    assert out.verdict is Verdict.LIVELOCK, out.message
    assert out.exploration.stopped_at_component       # at the first fair component (one flooder: no symmetry)
    lasso = out.lasso
    assert {"c0", "c1"} <= set(lasso.cycle)                  # fair: both CPUs step in the cycle
    make = lambda: make_run(cfg)                            # noqa: E731
    once = replay(make, list(lasso.prefix) + list(lasso.cycle))
    twice = replay(make, list(lasso.prefix) + list(lasso.cycle) * 2)
    assert once.fingerprint() == twice.fingerprint()
    assert not panic_finished(once)
    assert "smp_send_stop" not in once.kernel.marks        # CPU0 never gets past its printks to the stop


@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_kdump_with_post_notifiers_deadlocks_on_the_stopped_owner(reduce):
    cfg = PrintkFloodCheckConfig(kernel="v5.17", kdump=True, post_notifiers=True, reduce=reduce)
    out = check_printk_flood(cfg)
    assert out.verdict is Verdict.DEADLOCK, out.message
    run = replay(lambda: make_run(cfg), out.choices)
    k = run.kernel
    assert k.console_sem.value == 1                     # the NMI-stopped flooder holds console_sem
    # and CPU0 waits for it forever: as the waiter of the owner it advertised, or on
    # console_owner_lock, which the flooder was stopped holding
    assert (k.console_owner.value == 1 and k.console_waiter.value is True) or k.console_owner_lock.value == 1
    assert not run.driver.choices()


@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_v7_1_always_finishes_the_panic(reduce):
    out = check_printk_flood(PrintkFloodCheckConfig(kernel="v7.1", reduce=reduce))
    assert out.verdict is Verdict.OK, out.message


# Timed, the partial-order reduction is off (it says so), so `por` is `none`
# and `all` is `symmetry`: two settings cover the four, at 3 CPUs' cost.
@pytest.mark.parametrize("reduce", ["none", "all"])
def test_v7_1_at_3_cpus_widened_finishes_the_panic(reduce):
    # Two flooders: before the time conditions of docs/design.md ("Timed
    # lassos"), the zone graph's cycle in which they take turns at steps of no
    # cost (time never passes; CPU0's console line never comes due) was
    # reported as a livelock. It is no run, and the kernel has none.
    cfg = PrintkFloodCheckConfig(kernel="v7.1", cpus=3, timing=Timing.WIDENED, reduce=reduce)
    out = check_printk_flood(cfg)
    assert out.verdict is Verdict.OK, (out.message, out.lasso)
    assert any(r.startswith("por off: timing widened") for r in out.exploration.reductions) or reduce == "none"
