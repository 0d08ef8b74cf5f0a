"""The x86 kexec reboot without QEMU: lab/parse_x86.py on real consoles
(tests/lab/fixtures/kexec_x86_*, each a `lab kexec` run of 2026-12-02, cut),
the command line an x86 kexec boots with, the host-load record, and the
loader of the saved campaigns (docs/lab-runs/kexec-x86-*)."""

import json
import os
from pathlib import Path

import pytest

from haltlab.errors import UserError
from haltlab.lab import hostload, parse, parse_x86
from haltlab.lab.experiments.common import Prepared
from haltlab.lab.experiments.kexec import (
    KexecConfig, X86_FIELDS, _spec, _x86_summary, kernel_params, load_reboot, load_shutdown, x86_fields,
)
from haltlab.lab.images import KernelImage
from haltlab.lab.schema import KexecResult, KexecRun, conforms

from console_fixtures import read_log

RUNS = Path(__file__).parents[2] / "docs" / "lab-runs"


CALIBRATED = read_log("kexec_x86_6.1.0-57_2cpu.log")
LPJ4 = read_log("kexec_x86_6.1.0-57_4cpu_lpj.log")
EARLYCON4 = read_log("kexec_x86_6.1.0-57_4cpu_earlycon.log")
TRACED = read_log("kexec_x86_6.1.0-57_2cpu_lpj_cpuhp.log")


def _phases(lines):
    return parse_x86.x86_kexec_phases(lines, parse.find(lines, "haltlab: kexec -e"))


def test_the_reboot_by_phase_each_on_its_clock():
    r = _phases(CALIBRATED)
    p, h = r["phases"], r["phases_host"]
    # [7.302728] haltlab: kexec -e ... [7.494056] kexec_core: Starting new kernel (old kernel's printk clock)
    assert p["old_kernel_shutdown_ns"] == 7_494_056_000 - 7_302_728_000
    assert h["old_kernel_shutdown_ns"] == 51949457534251 - 51949265836898
    # Starting new kernel (host 51949457534251) to the decompressor's first warning (51952780194227)
    assert p["jump_and_purgatory_ns"] == h["jump_and_purgatory_ns"] == 51952780194227 - 51949457534251
    assert r["decompressor_line"] == "Invalid physical address chosen!"
    # to the new kernel's "Linux version" (51966416060128), then to "Bringing up" (51968758895541)
    assert p["decompress_ns"] == 51966416060128 - 51952780194227
    assert p["boot_to_smp_init_ns"] == 51968758895541 - 51966416060128
    # [0.884278] Bringing up (host 51968758895541) ... [1.086293] Brought up (51969173846262) ...
    # [6.459194] Run /init as init process (51974826785112): the host's clock, the printk clock counts ticks
    assert p["smp_init_ns"] == r["second"]["smp_init_host_ns"] == 51969173846262 - 51968758895541
    assert parse.smp_init_spans(CALIBRATED)[1]["smp_init_ns"] == 1_086_293_000 - 884_278_000   # the guest's view
    assert p["smp_init_to_init_ns"] == 51974826785112 - 51969173846262
    # the host's view of the whole: marker (51949265836898) to the second Run /init (51974826785112)
    assert r["downtime_ns"] == 51974826785112 - 51949265836898
    assert sum(h.values()) == r["downtime_ns"]
    assert list(p) == list(parse_x86.PHASES) == list(parse_x86.PHASE_CLOCKS)


def test_each_ap_from_its_announcement_when_the_calibration_separates_them():
    r = _phases(EARLYCON4)
    # [0.860625] ... CPUs: #1, [1.082944] #2, [1.224060] #3, [1.395448] Brought up
    assert r["first"]["ap_order"] == [1, 2, 3]
    assert r["first"]["per_ap_bringup_ns"] == [1_082_944_000 - 860_625_000, 1_224_060_000 - 1_082_944_000,
                                               1_395_448_000 - 1_224_060_000]
    assert r["second"]["per_ap_bringup_ns"] == [930_683_000 - 784_757_000, 1_098_707_000 - 930_683_000,
                                                1_182_682_000 - 1_098_707_000]
    # the per-AP times add up to smp_init less its start (Bringing up -> the first announcement)
    assert sum(r["second"]["per_ap_bringup_ns"]) == 1_182_682_000 - 784_757_000
    # each AP calibrated and the direct method failed for CPUs 1 and 2; CPU 3's succeeded (no line)
    assert r["first"]["calibration"]["ap_direct_failures"] == 3
    assert r["second"]["calibration"]["ap_direct_failures"] == 2


def test_earlycon_shows_no_decompressor_so_the_jump_and_decompression_stay_unsplit():
    r = _phases(EARLYCON4)
    assert r["decompressor_line"] is None
    assert r["phases"]["jump_and_purgatory_ns"] is None and r["phases"]["decompress_ns"] is None
    assert r["phases"]["old_kernel_shutdown_ns"] == 10_283_763_000 - 10_120_380_000
    assert r["downtime_ns"] == 51793778048777 - 51774665559645


def test_lpj_skips_every_calibration_and_joins_the_announcements():
    r = _phases(LPJ4)
    for kernel in ("first", "second"):
        c = r[kernel]["calibration"]
        assert c == {"bsp_line": "Calibrating delay loop (skipped) preset value.. 4200.00 BogoMIPS (lpj=8400000)",
                     "ap_direct_failures": 0, "tsc_unstable_reason": "TSCs unsynchronized"}
        # ".... node  #0, CPUs:      #1 #2 #3": one record, so no AP is timed from the console
        assert r[kernel]["ap_order"] == [1, 2, 3] and r[kernel]["per_ap_bringup_ns"] == [None, None, None]
    # [0.421676] Bringing up (host 52092669634606) ... [0.506545] Brought up (52092772617703)
    assert r["phases"]["smp_init_ns"] == 52092772617703 - 52092669634606
    without = _phases(CALIBRATED)["first"]["calibration"]
    assert without["bsp_line"].startswith("Calibrating delay loop (skipped), value calculated using timer frequency")
    assert without["ap_direct_failures"] == 1


def test_the_cpuhp_trace_times_each_ap_when_lpj_joins_the_announcements():
    r = _phases(TRACED)
    (up,) = r["second"]["cpuhp_up"]
    # [0.759979] cpuhp_enter cpu 1 step 1 (smpboot_create_threads) ... [0.777764] enter step 91 (bringup_cpu)
    # ... [0.798705] cpuhp_exit cpu 1 state 236 step 91: the AP is online
    assert up == {"cpu": 1, "prepare_ns": 777_764_000 - 759_979_000, "bringup_cpu_ns": 798_705_000 - 777_764_000,
                  "cpu_up_ns": 798_705_000 - 759_979_000}
    assert r["first"]["cpuhp_up"][0]["bringup_cpu_ns"] == 601_842_000 - 581_858_000
    assert _phases(CALIBRATED)["second"]["cpuhp_up"] == []


def test_a_reboot_that_never_reached_the_second_kernel():
    cut = CALIBRATED[:next(i for i, (_, t) in enumerate(CALIBRATED) if "Physical KASLR" in t) + 1]
    r = _phases(cut)
    assert r["phases"]["jump_and_purgatory_ns"] == 51952780194227 - 51949457534251
    assert r["phases"]["decompress_ns"] is None and r["downtime_ns"] is None and r["second"] is None
    assert parse_x86.x86_kexec_phases(CALIBRATED, None)["downtime_ns"] is None


def test_the_run_fields_and_summary_conform():
    runs = [{"outcome": "completed", "qemu_pid": 1, **dict.fromkeys(
        ("cold_boot_to_first_line_ns", "kexec_downtime_ns", "marker_to_starting_ns", "starting_to_first_line_ns",
         "smp_init_first_ns", "smp_init_second_ns", "cpus_first", "cpus_second", "kexec_to_second_init_ns",
         "boot_to_kexec_ns")), **x86_fields(log)} for log in (CALIBRATED, EARLYCON4)]
    assert set(X86_FIELDS) <= set(runs[0])
    assert all(conforms(r, KexecRun) == [] for r in runs)
    s = _x86_summary(runs, KexecConfig(cpus=2))
    assert s["phases"]["jump_and_purgatory_ns"]["n"] == 1   # the earlycon run has no such phase
    assert s["phases"]["smp_init_ns"]["n"] == 2
    assert s["per_ap_bringup_ns_second_all"] == [178_007_000, 145_926_000, 168_024_000, 83_975_000]


def test_an_x86_kexec_boots_with_earlyprintk_lpj_and_the_trace(tmp_path):
    k = KernelImage(tmp_path / "vmlinuz", None, "6.1.0-57-amd64", "debian:p=1", "p", "1")
    prep = Prepared(k, "tcg", "7.2.22", tmp_path / "i")
    line = _spec(prep, KexecConfig(lpj=8400000, cpuhp_trace=True)).cmdline.split()
    assert "earlyprintk=serial,ttyS0,115200" in line and not any(p.startswith("earlycon=") for p in line)
    assert {"lpj=8400000", "trace_event=cpuhp:*", "tp_printk", "loglevel=8"} <= set(line)
    assert "lpj=8400000" not in _spec(prep, KexecConfig()).cmdline
    assert kernel_params(KexecConfig(arch="arm64")) == ("loglevel=8",)   # arm64's, as before


def test_host_load_from_proc_stat():
    stat = "cpu  100 5 50 1000 20 3 2 1 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\n"
    assert hostload.busy_jiffies(stat) == 100 + 5 + 50 + 3 + 2 + 1
    assert hostload.busy_jiffies("intr 1 2\n") is None
    hz = os.sysconf("SC_CLK_TCK")
    a = hostload.Snapshot(0, 0, 1.0, 0.5)
    b = hostload.Snapshot(2_000_000_000, 2 * 3 * hz, 2.0, 1.5)   # 2 s at 3 CPUs busy; QEMU used 1 CPU-s
    load = hostload.host_load(a, b)
    assert load["host_busy_cpus"] == 3.0 and load["qemu_cpus"] == 0.5 and load["other_busy_cpus"] == 2.5
    assert (load["host_loadavg_1m_start"], load["host_loadavg_1m_end"]) == (0.5, 1.5)
    s = hostload.snapshot()
    assert s.busy_jiffies is not None and s.loadavg_1m is not None   # this host has /proc


CAMPAIGNS = sorted(RUNS.glob("kexec-x86-*-2026-12-02.json"))


@pytest.mark.skipif(not CAMPAIGNS, reason="no saved x86 kexec campaign")
@pytest.mark.parametrize("path", CAMPAIGNS, ids=lambda p: p.name)
def test_the_saved_campaigns_load_and_their_phases_add_up(path):
    raw = json.loads(path.read_text())
    assert all(conforms(r, KexecResult) == [] for r in (raw if isinstance(raw, list) else [raw]))
    results = load_reboot(path)
    assert results and all(r["kernel_release"] == "6.1.0-57-amd64" and r["accelerator"] == "tcg" for r in results)
    for r in results:
        assert r["downtime_ns"], f"{path.name}: {r['cpus']} vCPUs completed no run"
        for down, host in zip(r["downtime_ns"], r["phases_host"]):
            if None not in host.values():
                assert sum(host.values()) == down
        # calibrating (or traced), each AP's announcement has its own line; with lpj= alone they share one
        separate = r["lpj"] is None or r["cpuhp_trace"] or r["cpus"] == 2
        for aps in r["per_ap_bringup_ns_second"]:
            assert len(aps) == r["cpus"] - 1
            assert (None not in aps) == separate
        for ups in r["cpuhp_up_second"]:   # the trace times every AP, in bring-up order
            assert [u["cpu"] for u in ups] == (list(range(1, r["cpus"])) if r["cpuhp_trace"] else [])


def test_the_loaders_refuse_each_others_files(tmp_path):
    arm64 = RUNS / "kexec-arm64-idle-2026-12-01.json"
    with pytest.raises(UserError, match="not an x86 lab kexec result with phases"):
        load_reboot(arm64)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(UserError, match="cannot read a lab kexec result"):
        load_reboot(tmp_path / "bad.json")
    if CAMPAIGNS:
        with pytest.raises(UserError, match="not an arm64 lab kexec result"):
            load_shutdown(CAMPAIGNS[0])


@pytest.mark.skipif(not CAMPAIGNS, reason="no saved x86 kexec campaign")
def test_the_table_shows_the_phases_in_the_reboots_order():
    from haltlab.cli.lab import _kexec_tables
    result = json.loads((RUNS / "kexec-x86-lpj-2026-12-02.json").read_text())[0]
    labels = [row[0] for row in _kexec_tables(result)[0].rows]
    phases = [label for label in labels if label.startswith("  ")]
    assert phases == [f"  {k.removesuffix('_ns').replace('_', ' ')} ({result['phase_clocks'][k]} clock), ms"
                      for k in parse_x86.PHASES]
    assert phases[0] == "  old kernel shutdown (printk clock), ms" and phases[-1].startswith("  smp init to init")
