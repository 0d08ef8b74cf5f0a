"""S3 in the timed simulator: how long each shutdown design takes, and what it
leaves behind (scenarios/kexec.py on arm64-server-24)."""

import json

import pytest

from haltlab.errors import ConfigError
from haltlab.kernel.rcu import jiffies_till_first_fqs
from haltlab.results import conforms
from haltlab.scenarios.kexec import KexecConfig, run_kexec, simulate_kexec
from haltlab.scenarios.kexec_result import KexecResult


def _run(**kw):
    return run_kexec(KexecConfig(**{"kernel": "v5.17", **kw}))


def test_hotplug_takes_every_cpu_down_in_turn_and_safely():
    r = _run(cpus=8)
    assert conforms(r, KexecResult) == []
    assert r["outcome"] == "kexec" and not r["bugs"]
    assert r["spis_routed_to_dead_cpus"] == [] and r["cpus_running_at_jump"] == []
    offs = [c["cpu_off_at_ns"] for c in r["per_cpu"]]
    assert offs == sorted(offs)                           # one after the other
    for c in r["per_cpu"]:                                 # each waits a grace period in sched_cpu_deactivate()
        assert c["phases_ns"]["synchronize_rcu"] == r["rcu_gp_ns"]
        assert c["down_ns"] > r["rcu_gp_ns"]
    assert sum(c["down_ns"] for c in r["per_cpu"]) <= r["shutdown_ns"]


def test_hotplug_time_grows_with_the_cpus_it_takes_down():
    t4, t16 = _run(cpus=4)["shutdown_ns"], _run(cpus=16)["shutdown_ns"]
    assert 4.0 < t16 / t4 < 6.0                            # 15 CPUs against 3, plus the one-off rcu_sync


def test_smp_send_stop_is_fast_and_leaves_cpus_behind():
    stock, patched = _run(), _run(shutdown="smp-send-stop")
    assert patched["shutdown_ns"] < 5_000_000 < stock["shutdown_ns"]     # S3: "less than 5 msecs"
    # no interrupt migration before CPU_OFF, and no wait for the firmware's word
    assert patched["spis_routed_to_dead_cpus"]
    assert patched["cpus_running_at_jump"]


def test_smp_send_stop_on_busy_cpus_bugs_in_idle_task_exit():
    r = _run(shutdown="smp-send-stop", others="busy")
    assert r["outcome"] == "bug"
    assert "idle_task_exit" in r["bugs"][0]


def test_smp_send_stop_freezing_first_avoids_that_bug():
    r = _run(shutdown="smp-send-stop", others="busy", freeze=True)
    assert r["outcome"] == "kexec" and not r["bugs"]
    assert r["phases_ns"]["freeze_processes"] > 0


def test_smp_send_stop_with_a_cpu_irqs_off_bugs_after_the_bounded_waits():
    r = _run(shutdown="smp-send-stop", others="irqsoff")
    assert r["outcome"] == "bug" and "machine_kexec" in r["bugs"][0]
    # smp_send_stop()'s own second, then the patch's second
    assert 2_000_000_000 <= r["marks_ns"]["bug"] - r["marks_ns"]["machine_shutdown"] < 2_100_000_000


def test_hotplug_never_ends_against_a_cpu_with_interrupts_off():
    r = _run(cpus=4, others="irqsoff")
    assert r["outcome"] == "hung" and r["shutdown_ns"] is None


def test_parallel_hotplug_is_faster_and_as_safe():
    stock, par = _run(), _run(shutdown="parallel-hotplug")
    assert par["shutdown_ns"] < stock["shutdown_ns"] / 2
    assert par["outcome"] == "kexec" and not par["spis_routed_to_dead_cpus"] and not par["cpus_running_at_jump"]


def test_parallel_hotplug_without_its_barrier_can_strand_an_interrupt():
    r = _run(shutdown="parallel-hotplug-naive")
    assert r["spis_routed_to_dead_cpus"]


def test_busy_cpus_cost_context_switches_not_seconds():
    """The model's CFS rule (kernel/sched.py): a woken cpuhp/N preempts a user task at once."""
    idle, busy = _run(cpus=8), _run(cpus=8, others="busy")
    assert 0 <= busy["shutdown_ns"] - idle["shutdown_ns"] < 1_000_000


def test_the_grace_period_grows_with_nr_cpu_ids():
    assert jiffies_till_first_fqs(250, 24) == 1
    assert jiffies_till_first_fqs(250, 256) == 2
    assert jiffies_till_first_fqs(1000, 24) == 3
    assert _run()["rcu_gp_ns"] == 8_000_000           # (1 + 1) jiffies at HZ=250


def test_quiet_console_is_faster():
    loud, quiet = _run(), _run(console_loglevel=4)
    assert quiet["shutdown_ns"] < loud["shutdown_ns"]
    assert not any("killed" in line for line in quiet["console"])
    assert sum("killed (polled" in line for line in loud["console"]) == 23


def test_v7_1_waits_for_the_death_report_with_cpuhp_bp_sync_dead():
    r = _run(kernel="v7.1", cpus=4)
    assert r["outcome"] == "kexec" and not r["bugs"]


def test_same_seed_same_bytes():
    a = json.dumps(_run(cpus=6, others="busy", seed=3), sort_keys=True)
    b = json.dumps(_run(cpus=6, others="busy", seed=3), sort_keys=True)
    assert a == b


@pytest.mark.parametrize("field,value,kw", [
    ("cpus", 1, {"cpus": 1}),
    ("shutdown", "fast", {"shutdown": "fast"}),
    ("others", "sleepy", {"others": "sleepy"}),
    ("irqs", 2000, {"irqs": 2000}),
    ("profile", "kvm-x86", {"profile": "kvm-x86"}),
])
def test_bad_config_names_its_field(field, value, kw):
    with pytest.raises(ConfigError) as e:
        simulate_kexec(KexecConfig(**kw))
    assert e.value.field == field
