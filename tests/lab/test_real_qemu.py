"""The lab on real QEMU with Debian's kernel: short runs, one each.

Each test checks that the QEMU process it started is gone afterwards (by PID,
not by name: other QEMUs on the host are none of our business).
"""

import dataclasses
import os
import shutil
from pathlib import Path

import pytest

from haltlab.errors import UserError
from haltlab.lab import guest, initramfs
from haltlab.lab.classify import COMPLETED, HUNG_OUTPUT, HUNG_SILENT, PANICKED
from haltlab.lab.experiments import FloodConfig, KexecConfig, PanicConfig, run_flood, run_kexec, run_panic
from haltlab.lab.experiments.common import BOOT_RETRIES, guest_spec, prepare, repeat
from haltlab.lab.experiments.flood import flood_once
from haltlab.lab.runner import Guest
from haltlab.lab.schema import FloodResult, KexecResult, PanicResult, conforms

pytestmark = [pytest.mark.lab, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def lab_tools():
    missing = [t for t in ("qemu-system-x86_64", "busybox", "apt-get", "dpkg-deb") if not shutil.which(t)]
    if missing:
        pytest.skip(f"lab tools missing: {', '.join(missing)} (bin/test installs them as root)")


def assert_gone(pid: int) -> None:
    assert not Path(f"/proc/{pid}").exists(), f"QEMU {pid} still exists"


def share(intervals: list, state: str, lo: int, hi: int) -> float:
    """The part of [lo, hi] a lane spends in `state`."""
    return sum(max(0, min(e, hi) - max(s, lo)) for s, e, st in intervals if st == state) / (hi - lo)


def pids(result: dict) -> list[int]:
    return [r["qemu_pid"] for r in result["runs"]]


def test_stock_panic_burns_one_host_cpu():
    r = run_panic(PanicConfig(cpus=2, window_s=2.0, settle_s=0.3))
    assert r["runs"][0]["outcome"] == PANICKED, r["runs"][0]
    assert r["kernel_release"] and r["accelerator"] in ("kvm", "tcg")
    assert r["kernel_source"] == f"debian:{r['kernel_package']}={r['kernel_package_version']}"
    # The busy mdelay() loop of one vCPU wants a whole host CPU. What it gets
    # depends on what else this 2-core host runs, so the firm check is on
    # demand (CPU + run-queue wait); CPU time itself must be clearly non-zero.
    busiest = max(r["per_vcpu"], key=lambda v: v["host_cpu_demand_s_per_s"]["median"])
    assert 0.8 < busiest["host_cpu_demand_s_per_s"]["median"] < 1.2
    assert 0.3 < r["host_cpu_s_per_s"] < 1.3
    assert r["perf_samples_per_s"]["median"] > 0.3 * 4000
    assert conforms(r, PanicResult) == []
    # The lanes over the sampling window: CPU 0 spins in panic()'s mdelay()
    # loop (a sample may read halted when this shared host starves it: hence
    # most, not all); CPU 1 was stopped by smp_send_stop() and stays halted.
    lanes = {c["cpu"]: c["intervals"] for c in r["lab_timeline"]["cpus"]}
    marks = r["lab_timeline"]["marks_ns"]
    assert marks["trigger"] == 0 < marks["panic_line"] < marks["end_line"] < marks["window_start"]
    window = (marks["window_start"], marks["window_end"])
    assert share(lanes[0], "running", *window) > 0.7
    assert share(lanes[1], "halted", *window) == 1.0
    for pid in pids(r):
        assert_gone(pid)


def test_pvpanic_pause_brings_it_near_zero():
    r = run_panic(PanicConfig(cpus=2, pvpanic="pause", window_s=2.0, settle_s=0.3))
    assert r["runs"][0]["outcome"] == PANICKED, r["runs"][0]
    assert r["runs"][0]["pvpanic_event"] == "pause"
    assert r["host_cpu_s_per_s"] < 0.05
    assert r["vcpu_demand_s_per_s"]["median"] < 0.05
    assert conforms(r, PanicResult) == []
    marks = r["lab_timeline"]["marks_ns"]
    assert "end_line" not in marks and marks["pvpanic"] > 0   # the host paused it before the end line
    for c in r["lab_timeline"]["cpus"]:                        # both vCPUs halted through the window
        assert share(c["intervals"], "halted", marks["window_start"], marks["window_end"]) == 1.0
    for pid in pids(r):
        assert_gone(pid)


def test_kexec_cycle_completes_and_parses_by_phase_with_lpj():
    # One boot for both: the cycle, and S4's phases with lpj= (the x86 reboot, lab/parse_x86.py).
    r = run_kexec(KexecConfig(cpus=2, timeout_s=300, lpj=8400000))
    run = r["runs"][0]
    assert run["outcome"] == COMPLETED, run
    assert 0 < run["kexec_downtime_ns"] < 300e9
    assert 0 < run["smp_init_first_ns"] < 5e9 and 0 < run["smp_init_second_ns"] < 5e9
    assert run["cpus_first"] == run["cpus_second"] == 2
    # every phase seen, the decompressor's line among them, and the host's phases add up
    assert None not in run["phases"].values(), run["phases"]
    assert run["decompressor_line"] in ("Invalid physical address chosen!",
                                        "Physical KASLR disabled: no suitable memory region!")
    assert sum(run["phases_host"].values()) == run["downtime_ns"] > run["kexec_downtime_ns"]
    assert run["phases"]["smp_init_ns"] == run["smp_init_second_host_ns"] > 0   # the host clock (parse_x86)
    for kernel in ("first", "second"):   # lpj= took the place of every calibration
        cal = run[f"calibration_{kernel}"]
        assert cal["bsp_line"].startswith("Calibrating delay loop (skipped) preset value")
        assert "lpj=8400000" in cal["bsp_line"]
        assert cal["ap_direct_failures"] == 0 and len(run[f"per_ap_bringup_ns_{kernel}"]) == 1
    assert r["lpj"] == 8400000 and "lpj=8400000" in r["kernel_params"]
    assert run["qemu_cpus"] > 0
    assert conforms(r, KexecResult) == []
    for pid in pids(r):
        assert_gone(pid)


def test_flood_run_completes():
    r = run_flood(FloodConfig(cpus=2, timeout_s=30, delay_min_s=0.5, delay_max_s=1.0))
    run = r["runs"][0]
    assert run["outcome"] == PANICKED, run
    assert run["flood_lines_before_trigger"] > 10  # the flood really flowed
    assert r["hangs"] == 0 and r["trigger_to_end_ns"]["n"] == 1
    assert conforms(r, FloodResult) == []
    # printk's ring as the console showed it (kernel-notes section 4's prediction for 6.1):
    # found by the sysrq line; before the trigger the writer prints its own
    # records, so nothing is dropped; after it the ring drains onto the console.
    assert run["trigger_marker"] == "sysrq"
    assert run["drop_notices_before_trigger"] == run["dropped_before_trigger"] == 0
    assert run["flood_lines_after_trigger"] > 0
    assert run["flood_lines_before_trigger"] + run["flood_lines_after_trigger"] == run["flood_lines_total"]
    assert run["dropped_messages"] == run["dropped_after_trigger"]
    assert r["guard_fired_runs"] == int(run["guard_fired"])
    assert r["drop_notices_after_trigger_all"] == [run["drop_notices_after_trigger"]]
    if run["guard_fired"]:
        # 13fb0f74d702 fires at the 12th gap seen during the panic, and each gap
        # is printed as one notice, so at least 12 came after the trigger;
        # its line comes before the end of panic.
        assert run["drop_notices_after_trigger"] >= 12, run
        assert 0 < run["trigger_to_guard_ns"] < run["trigger_to_end_ns"]
        assert run["trigger_to_guard_printk_ns"] >= 0
    else:
        assert run["trigger_to_guard_ns"] is None and run["trigger_to_guard_printk_ns"] is None
    for pid in pids(r):
        assert_gone(pid)


def test_a_guest_short_of_cpus_is_refused():
    """`maxcpus=1` makes the kernel bring up one of the two vCPUs QEMU gives it,
    as a kernel without ACPI does; the lab refuses the run instead of measuring it."""
    config = FloodConfig(cpus=2)
    prep = prepare(config, lambda k: initramfs.base_entries(guest.custom_init("finish 0\n")))
    spec = guest_spec(prep, config)
    spec = dataclasses.replace(spec, cmdline=spec.cmdline + " maxcpus=1")
    seen = []

    def once(g):
        g.wait_until(g.exited, config.boot_timeout_s)
        seen.append(g.pid)
        return {"triggered": True}

    with pytest.raises(UserError, match=r"^run 1 of 1: the guest brought up 1 of the 2 vCPUs .*nproc in its init"):
        repeat(1, spec, once, None)
    assert len(seen) == 1
    assert_gone(seen[0])


# A panic that never finishes: the panic line is printed, the end marker never.
NEVER_ENDS = {
    HUNG_OUTPUT: 'echo "Kernel panic - not syncing: haltlab test" > /dev/kmsg\n'
                 'progress TRIGGER\nwhile :; do echo "still printing" > /dev/kmsg; sleep 0.05; done\n',
    HUNG_SILENT: 'echo "Kernel panic - not syncing: haltlab test" > /dev/kmsg\n'
                 'progress TRIGGER\nwhile :; do sleep 1; done\n',
}


@pytest.mark.parametrize("expected", [HUNG_OUTPUT, HUNG_SILENT])
def test_unfinished_panic_is_hung_and_killed(expected):
    config = FloodConfig(cpus=2, timeout_s=3.0)
    prep = prepare(config, lambda k: initramfs.base_entries(guest.custom_init(NEVER_ENDS[expected])))
    with Guest(guest_spec(prep, config)) as g:
        run = flood_once(g, config)
        pid = g.pid
        assert os.path.exists(f"/proc/{pid}")  # still running until close
    assert run["outcome"] == expected
    assert g.killed and g.proc.returncode is not None  # killed by us and reaped
    assert_gone(pid)
    assert not g._tmp.exists()  # the private QMP directory is gone


def test_guest_that_never_triggers_is_booted_again_and_kept():
    """A boot hang is not a panic hang: retried, and the attempt it replaced is kept."""
    # Long enough for the kernel's first lines (4-8 s to the first one under TCG
    # on a loaded host), too short for the init that never triggers anyway.
    config = FloodConfig(cpus=2, boot_timeout_s=12.0, timeout_s=3.0)
    prep = prepare(config, lambda k: initramfs.base_entries(guest.custom_init("while :; do sleep 1; done\n")))
    runs = repeat(1, guest_spec(prep, config), lambda g: flood_once(g, config), None)
    run = runs[0]
    assert run["triggered"] is False and run["outcome"] in (HUNG_OUTPUT, HUNG_SILENT)
    assert len(run["boot_retries"]) == BOOT_RETRIES
    for attempt in [run, *run["boot_retries"]]:
        assert attempt["console_tail"] and "progress_tail" in attempt, attempt  # what it was doing
        assert_gone(attempt["qemu_pid"])
