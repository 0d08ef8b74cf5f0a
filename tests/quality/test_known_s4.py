"""S4's bring-up designs, judged by the explorer (`scenarios/kexec_x86_check.py`, untimed).

* The stock serial INIT/SIPI bring-up and 6.5's parallel one: every property
  holds (nothing parks, so the park properties hold trivially; every CPU is
  online at init; no deadlock; with the NMI source on).

* S4's patch as posted (`park-spin`, no `bootcoresibling=`): the boot CPU's SMT
  sibling parks; an NMI reaching a parked CPU is a triple fault; with
  `maxcpus=` below the parked CPUs one is left spinning and nothing says so;
  without `cpuparkmem=` the park memory goes to the allocator with CPUs in it.
* The review's variant (`park-mwait`, the model's reading): the sibling is
  never parked and every parked CPU is accounted for (what its count and
  topology address); the NMI and the memory are not addressed and fail as
  S4's do. Both end every run without a deadlock at 3 CPUs.
Each violation comes with a choice list that replays to the same violation.
"""

import pytest

from haltlab.checks.properties import Verdict
from haltlab.engine.explorer import replay
from haltlab.scenarios.kexec_x86_check import PROPERTIES, X86KexecCheckConfig, check_kexec_x86, make_run

P = {p.name: p for p in PROPERTIES}
SIBLING, NMI = "the boot CPU's sibling is not parked", "no NMI reaches a parked CPU"
ACCOUNTED, MEMORY = "every parked CPU accounted for", "park memory stays reserved while a CPU sits in it"
TCG = {"profile": "qemu-tcg-x86"}        # no SMT: small state spaces for what the sibling does not decide


def _check(prop: str, **kw):
    cfg = X86KexecCheckConfig(**kw)
    return cfg, check_kexec_x86(cfg, properties=(P[prop],))


def _replays(cfg, out) -> None:
    run = replay(lambda: make_run(cfg), out.choices)
    assert P[out.property.name].failure(run) == out.message


def test_s4_as_posted_parks_the_boot_cpus_sibling():
    cfg, out = _check(SIBLING, bringup="park-spin", cpus=4)
    assert out.verdict is Verdict.VIOLATION and "CPU2, the boot CPU's SMT sibling" in out.message
    _replays(cfg, out)


def test_s4_with_bootcoresibling_keeps_the_sibling_out():
    _, out = _check(SIBLING, bringup="park-spin", cpus=4, boot_core_sibling=2, nmi=False, max_states=3_000)
    assert out.verdict in (Verdict.OK, Verdict.BOUNDED_OK)


@pytest.mark.parametrize("bringup", ["park-spin", "park-mwait"])
def test_an_nmi_on_a_parked_cpu_is_found_in_both_designs(bringup):
    cfg, out = _check(NMI, bringup=bringup, cpus=2, **TCG)
    assert out.verdict is Verdict.VIOLATION and "NMI on CPU1 while parked" in out.message
    _replays(cfg, out)


def test_s4_strands_a_parked_cpu_beyond_maxcpus():
    cfg, out = _check(ACCOUNTED, bringup="park-spin", cpus=2, nmi=False, max_cpus=1, **TCG)
    assert out.verdict is Verdict.VIOLATION and "CPU1 still parked after smp_init()" in out.message
    _replays(cfg, out)


@pytest.mark.parametrize("cpus", [2, 3])
def test_the_review_accounts_for_every_parked_cpu(cpus):
    _, out = _check(ACCOUNTED, bringup="park-mwait", cpus=cpus, nmi=False, max_cpus=cpus - 1, **TCG)
    assert out.verdict is Verdict.OK and not out.exploration.truncated


def test_the_review_never_parks_the_sibling():
    _, out = _check(SIBLING, bringup="park-mwait", cpus=4, nmi=False, max_states=3_000)
    assert out.verdict in (Verdict.OK, Verdict.BOUNDED_OK)


@pytest.mark.parametrize("bringup", ["park-spin", "park-mwait"])
def test_without_cpuparkmem_the_memory_goes_to_the_allocator(bringup):
    cfg, out = _check(MEMORY, bringup=bringup, cpus=2, nmi=False, park_mem_reserved=False, **TCG)
    assert out.verdict is Verdict.VIOLATION and "page allocator" in out.message
    _replays(cfg, out)


@pytest.mark.parametrize("bringup", ["park-spin", "park-mwait"])
def test_both_end_every_run_at_3_cpus(bringup):
    _, out = _check("no deadlock", bringup=bringup, cpus=3, nmi=False, **TCG)
    assert out.verdict is Verdict.OK and not out.exploration.truncated


@pytest.mark.parametrize("bringup, cpus", [("init-sipi", 3), ("parallel", 2)])
def test_the_stock_bring_ups_hold_every_property(bringup, cpus):
    _, out = _check_all(bringup=bringup, cpus=cpus, **TCG)
    assert out.verdict is Verdict.OK and not out.exploration.truncated


def test_a_parked_cpu_found_without_its_magic_is_brought_up_by_init_sipi():
    """S4's stopping CPU waits only for the online bits, so the new kernel may
    find a CPU on its way into the park, before PARK_MAGIC: INIT/SIPI brings it
    up, and it is out of the park (no false 'left behind')."""
    _, out = _check(ACCOUNTED, bringup="park-spin", cpus=3, nmi=False, **TCG)
    assert out.verdict is Verdict.OK and not out.exploration.truncated


def _check_all(**kw):
    cfg = X86KexecCheckConfig(**kw)
    return cfg, check_kexec_x86(cfg)
