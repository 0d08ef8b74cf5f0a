"""S4: the x86 kexec reboot and the APs' way back up (scenarios/kexec_x86.py).

What the thread argues about, each asserted on the model's own outputs: the
parallel bring-up beats the serial INIT/SIPI one at 72 CPUs; the park designs
skip INIT/SIPI but keep the serialized onlining; S4's patch parks the boot
CPU's sibling unless told not to, the review's variant never does; 5.17 and
7.1 decide init_udelay by family differently; lpj= skips the calibration;
the same inputs give the same bytes; and the bring-up runs on the explorer.
"""

import json

import pytest

from haltlab.engine.explorer import ExplorerDriver, explore
from haltlab.errors import ConfigError
from haltlab.kernel.policies import Bringup
from haltlab.machine.profile import load_profile
from haltlab.results import dumps
from haltlab.scenarios.kexec_x86 import X86KexecConfig, build_kexec_x86, run_kexec_x86
from haltlab.scenarios.kexec_x86_result import PHASES


def run(**kw):
    return run_kexec_x86(X86KexecConfig(**kw))


@pytest.fixture(scope="module")
def at_72():
    return {(b, kern): run(bringup=b, kernel=kern)
            for b, kern in (("init-sipi", "v5.17"), ("park-spin", "v5.17"), ("init-sipi", "v7.1"),
                            ("parallel", "v7.1"), ("park-spin", "v7.1"), ("park-mwait", "v7.1"))}


def test_every_design_reaches_init_with_every_cpu_and_phases_add_up(at_72):
    for r in at_72.values():
        assert r["outcome"] == "init" and r["cpus_online"] == 72
        assert set(r["phases"]) == set(PHASES)
        assert sum(r["phases"].values()) == r["downtime_ns"]
        assert r["smp_init_ns"] == r["phases"]["smp_init"]


def test_parallel_is_faster_than_serial_init_sipi_at_72_cpus(at_72):
    serial, parallel = at_72[("init-sipi", "v7.1")]["smp_init_ns"], at_72[("parallel", "v7.1")]["smp_init_ns"]
    assert parallel < serial / 2


def test_parallel_kicks_every_primary_thread_before_onlining_any(at_72):
    aps = at_72[("parallel", "v7.1")]["per_ap"]
    primaries = [a for a in aps if a["thread"] == 0]
    secondaries = [a for a in aps if a["thread"] == 1]
    assert max(a["kicked_ns"] for a in primaries) < min(a["online_ns"] for a in primaries)
    assert max(a["up_ns"] for a in primaries) < min(a["kicked_ns"] for a in secondaries)


def test_serial_init_sipi_brings_one_ap_up_before_kicking_the_next(at_72):
    aps = sorted(at_72[("init-sipi", "v5.17")]["per_ap"], key=lambda a: a["kicked_ns"])
    assert all(a["up_ns"] <= b["kicked_ns"] for a, b in zip(aps, aps[1:]))


def test_park_designs_skip_init_sipi_but_keep_the_serialized_onlining(at_72):
    for key in (("park-spin", "v5.17"), ("park-mwait", "v7.1")):
        r = at_72[key]
        parked = [a for a in r["per_ap"] if a["parked"]]
        assert parked and all(a["woken_by"] == "park" for a in parked)
        onl = sorted(a["online_ns"] for a in r["per_ap"])
        assert len(set(onl)) == len(onl)                   # one at a time
        assert not any(c["cpu"] in {a["cpu"] for a in parked} and c["woken_by"] == "init-sipi"
                       for c in r["per_ap"])
    assert at_72[("park-spin", "v5.17")]["smp_init_ns"] < at_72[("init-sipi", "v5.17")]["smp_init_ns"]


def test_s4_parks_the_boot_cpus_sibling_unless_told_and_the_review_never_does(at_72):
    sibling = 36                                           # 2 x 18 x 2: CPU0's twin
    s4 = at_72[("park-spin", "v5.17")]
    assert any("CPU36" in v and "sibling" in v for v in s4["park_violations"])
    told = run(bringup="park-spin", kernel="v5.17", boot_core_sibling=sibling)
    assert told["park_violations"] == [] and not told["per_ap"][sibling - 1]["parked"]
    review = at_72[("park-mwait", "v7.1")]
    assert review["park_violations"] == [] and not review["per_ap"][sibling - 1]["parked"]
    assert review["per_ap"][sibling - 1]["woken_by"] == "init-sipi"


def test_s4_strands_parked_cpus_beyond_maxcpus_and_the_review_says_so():
    s4 = run(bringup="park-spin", kernel="v5.17", max_cpus=8, boot_core_sibling=36)
    assert s4["cpus_online"] == 8
    assert any("still parked after smp_init()" in v for v in s4["park_violations"])
    review = run(bringup="park-mwait", max_cpus=8)
    assert review["cpus_online"] == 8 and review["park_violations"] == []


def test_s4_without_cpuparkmem_hands_the_park_memory_to_the_allocator():
    r = run(bringup="park-spin", boot_core_sibling=36, park_mem_reserved=False)
    assert any("page allocator" in v for v in r["park_violations"])


def _init_udelay(family: int, kernel: str, amd: int = 0) -> int:
    profile = load_profile("xeon-gold-6154").with_overrides(x86_family=family, x86_vendor_amd=amd)
    from haltlab.scenarios.kexec_x86 import simulate_kexec_x86
    return simulate_kexec_x86(X86KexecConfig(kernel=kernel, cpus=4), profile).result["init_udelay_us"]


def test_init_udelay_by_family_5_17_against_7_1():
    assert _init_udelay(6, "v5.17") == 0 and _init_udelay(6, "v7.1") == 0
    assert _init_udelay(15, "v5.17") == 10_000 and _init_udelay(15, "v7.1") == 0      # Pentium 4
    assert _init_udelay(19, "v5.17") == 10_000 and _init_udelay(19, "v7.1") == 0      # extended families
    assert _init_udelay(5, "v7.1") == 10_000
    assert _init_udelay(15, "v5.17", amd=1) == 0


def test_the_legacy_init_udelay_costs_10_ms_per_ap():
    fast = run(kernel="v5.17", cpus=8)
    slow = run(kernel="v5.17", cpus=8, cpu_init_udelay=10_000)
    assert slow["smp_init_ns"] - fast["smp_init_ns"] >= 7 * 10_000_000


def test_lpj_skips_the_delay_calibration():
    tcg = run(profile="qemu-tcg-x86", cpus=4)
    assert all(a["calibrate_ns"] for a in tcg["per_ap"])         # no constant TSC: every AP calibrates
    lpj = run(profile="qemu-tcg-x86", cpus=4, lpj=True)
    assert not any(a["calibrate_ns"] for a in lpj["per_ap"])
    assert lpj["smp_init_ns"] < tcg["smp_init_ns"] - 3 * 50_000_000
    xeon_517 = run(kernel="v5.17")                                # the first CPU of socket 1 calibrates in 5.17
    assert [a["cpu"] for a in xeon_517["per_ap"] if a["calibrate_ns"]] == [18]
    assert not any(a["calibrate_ns"] for a in run(kernel="v7.1")["per_ap"])   # 7.1 reuses CPU 0's


def test_tsc_sync_only_for_the_first_cpu_of_the_second_package_with_tsc_adjust(at_72):
    r = at_72[("init-sipi", "v7.1")]
    assert [(a["cpu"], a["tsc_sync_ns"]) for a in r["per_ap"] if a["tsc_sync_ns"]] == [(18, 20_000_000)]


def test_offline_cpus_in_mwait_play_dead_are_kicked_to_hlt_and_brought_back():
    r = run(offline_cpus=36)
    assert r["cpus_online"] == 72
    assert all(a["woken_by"] == "init-sipi" for a in r["per_ap"])


def test_an_nmi_on_a_parked_cpu_resets_the_machine():
    build = build_kexec_x86(X86KexecConfig(bringup="park-spin", kernel="v5.17", cpus=4, boot_core_sibling=2))
    k, sim = build.kernel, build.driver

    def on_mark(name, at_ns):
        if name == "machine_kexec":
            sim.schedule(at_ns, lambda: build.machine.driver.post_interrupt(1, "NMI", 0))
        if name == "init":
            sim.schedule(at_ns, sim.stop)
    k.on_mark = on_mark
    sim.run(10**11)
    assert sim.reset_reason == "triple fault"
    assert any("NMI on CPU1 while parked" in v for v in k.park.violations)


def test_same_inputs_same_bytes():
    cfg = X86KexecConfig(bringup="parallel", cpus=16)
    assert dumps(run_kexec_x86(cfg)) == dumps(run_kexec_x86(cfg))
    json.loads(dumps(run_kexec_x86(cfg)))


def test_bad_config_is_a_config_error():
    with pytest.raises(ConfigError, match="cpuhp_core_sync_dead"):
        run(bringup="parallel", kernel="v5.17")
    with pytest.raises(ConfigError):
        run(cpus=6)
    with pytest.raises(ConfigError):
        run(profile="arm64-server-24")


@pytest.mark.parametrize("bringup", list(Bringup))
def test_the_bring_up_runs_on_the_explorer(bringup):
    """A smoke test at 2 CPUs: every interleaving reaches init or a reset, none deadlocks the engine."""
    cfg = X86KexecConfig(bringup=bringup, cpus=2, profile="qemu-tcg-x86", kernel="v7.1", console_loglevel=0)

    def build():
        r = build_kexec_x86(cfg, make_driver=lambda m: ExplorerDriver(m))
        return r

    ex = explore(build, max_states=20_000)
    assert ex.states > 10 and not ex.truncated
    assert ex.violation is None
