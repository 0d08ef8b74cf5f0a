"""The serial-log parsers on literal logs from real boots (Debian 6.1.0-56/57-amd64, QEMU TCG)."""

import os
from pathlib import Path

from haltlab.lab import parse
from haltlab.lab.experiments.kexec import kexec_timings
from haltlab.lab.guest import FLOOD_TAG, is_flood_record
from haltlab.lab.serial import SerialLog

FIXTURES = Path(__file__).parent / "fixtures"


def read_log(name: str) -> list[parse.Line]:
    """A fixture log: `host_ns<TAB>text` lines, `#` lines are comments."""
    out = []
    for line in (FIXTURES / name).read_text().splitlines():
        if not line.startswith("#"):
            ns, text = line.split("\t", 1)
            out.append((int(ns), text))
    return out


# One real flood run (see the file's header): 1 record kept before the sysrq
# line, 18 after it, the run's 12 drop notices (2+5+4+4+12+17+4+3+2+4+1+5),
# then the guard's line and the end of panic.
FLOOD_LOG = read_log("flood_6.1.0-57_2cpu.log")

KEXEC_LOG = [
    (100, "[    0.000000] Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)"),
    (200, "[    0.267429] tsc: Marking TSC unstable due to TSCs unsynchronized"),
    (300, "[    0.673668] smp: Bringing up secondary CPUs ..."),
    (310, "[    0.674000] x86: Booting SMP configuration:"),
    (400, "[    0.773279] smp: Brought up 1 node, 2 CPUs"),
    (1000, "[    4.359620] haltlab: kexec -e"),
    (1061, "[    4.420205] kexec_core: Starting new kernel"),
    (5000, "[    0.000000] Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)"),
    (5600, "[    0.663369] smp: Bringing up secondary CPUs ..."),
    (5700, "[    0.763503] smp: Brought up 1 node, 2 CPUs"),
]

PANIC_LOG = [
    (10, "[    4.752942] sysrq: Trigger a crash"),
    (20, "[    4.787193] Kernel panic - not syncing: sysrq triggered crash"),
    (20, "[    4.788418]  sysrq_handle_crash+0x16/0x20"),
    (25, "** 471 printk messages dropped **"),
    (30, "[    4.790907] ---[ end Kernel panic - not syncing: sysrq triggered crash ]---"),
]


def test_printk_timestamp_in_ns():
    assert parse.printk_ns("[    4.787193] Kernel panic") == 4_787_193_000
    assert parse.printk_ns("[12345.000001] x") == 12_345_000_001_000
    assert parse.printk_ns("no timestamp") is None


def test_printk_timestamp_after_cut_off_user_output():
    # A process's partial line and a kernel record can share one console line.
    assert parse.printk_ns("HB 3[    1.000000] foo") == 1_000_000_000
    assert parse.strip_printk("[    1.000000] foo bar") == "foo bar"


def test_kernel_release_and_boots():
    assert parse.kernel_release(KEXEC_LOG) == "6.1.0-56-amd64"
    assert parse.boot_starts(KEXEC_LOG) == [0, 7]
    assert parse.kernel_release([]) is None


def test_smp_init_spans_per_boot():
    spans = parse.smp_init_spans(KEXEC_LOG)
    assert [s["smp_init_ns"] for s in spans] == [99_611_000, 100_134_000]
    assert [s["cpus"] for s in spans] == [2, 2]
    assert spans[0]["line"] == 4


def test_smp_init_unfinished_bring_up_is_not_a_span():
    log = [(0, "[    0.1] x"), (1, "[    0.500000] smp: Bringing up secondary CPUs ...")]
    assert parse.smp_init_spans(log) == []


def test_smp_init_plural_nodes():
    log = [(0, "[    1.000000] smp: Bringing up secondary CPUs ..."),
           (1, "[    1.210000] smp: Brought up 2 nodes, 72 CPUs")]
    assert parse.smp_init_spans(log)[0] == {"smp_init_ns": 210_000_000, "nodes": 2, "cpus": 72, "line": 1}


def test_panic_facts():
    f = parse.panic_facts(PANIC_LOG)
    assert f["panic_message"] == "sysrq triggered crash"
    assert f["panic_host_ns"] == 20 and f["end_host_ns"] == 30
    assert f["panic_to_end_ns"] == 3_714_000


def test_panic_console_size_and_longest_silence():
    f = parse.panic_facts(PANIC_LOG)
    # panic line through end line: four lines, each with its newline
    assert f["panic_console_lines"] == 4
    assert f["panic_console_chars"] == sum(len(t) + 1 for _, t in PANIC_LOG[1:])
    assert f["panic_max_line_gap_ns"] == 5      # 20 -> 25 and 25 -> 30


def test_panic_facts_without_end():
    f = parse.panic_facts(PANIC_LOG[:3])
    assert f["end_host_ns"] is None and f["panic_to_end_ns"] is None
    assert f["panic_console_chars"] is None and f["panic_max_line_gap_ns"] is None


def test_flood_console_on_a_real_flood_run():
    f = parse.flood_console(FLOOD_LOG, FLOOD_TAG)
    assert f["trigger_marker"] == "sysrq"
    assert (f["drop_notices_before_trigger"], f["dropped_before_trigger"]) == (0, 0)
    assert (f["drop_notices_after_trigger"], f["dropped_after_trigger"]) == (12, 63)
    assert f["guard_fired"] is True
    # the guard's line and the sysrq line, both from CPU 0: [4.356479] - [4.347246]
    assert f["trigger_to_guard_printk_ns"] == 9_233_000
    guard = next(ns for ns, text in FLOOD_LOG if parse.GUARD_LINE in text)
    assert f["guard_host_ns"] == guard
    assert (f["flood_lines_before_trigger"], f["flood_lines_after_trigger"]) == (1, 18)


def _through_serial_log(lines: list[parse.Line]) -> SerialLog:
    """The lines as the lab's reader takes them: flood records counted, not kept."""
    r, w = os.pipe()
    log = SerialLog(r, "console", bulk=is_flood_record)
    os.write(w, "".join(text + "\r\n" for _, text in lines).encode())
    os.close(w)
    log.join()
    return log


def test_flood_console_counts_records_the_reader_did_not_keep():
    log = _through_serial_log(FLOOD_LOG)
    assert log.bulk_lines == 19 and not any(FLOOD_TAG in text for _, text in log.lines)
    kept, before, total = log.snapshot()
    counted = parse.flood_console(kept, FLOOD_TAG, before, total)
    direct = parse.flood_console(FLOOD_LOG, FLOOD_TAG)
    assert {k: v for k, v in counted.items() if k != "guard_host_ns"} == \
           {k: v for k, v in direct.items() if k != "guard_host_ns"}


def test_a_flood_record_is_only_the_record():
    record = next(text for _, text in FLOOD_LOG if FLOOD_TAG in text)
    assert is_flood_record(record) and is_flood_record(FLOOD_TAG + "FFFF")
    assert not is_flood_record(record + "** 3 printk messages dropped **")
    assert not is_flood_record("[    4.347246] sysrq: Trigger a crash" + record)
    assert not is_flood_record("[    4.347246] sysrq: Trigger a crash")


SYSRQ = (10, "[    4.000000] sysrq: Trigger a crash")
GUARD = (30, "[    4.500000] printk: " + parse.GUARD_LINE)


def test_flood_console_without_a_trigger():
    log = [(1, "[    1.000000] HLFLOODFFFF"), (2, "** 3 printk messages dropped **"), GUARD]
    f = parse.flood_console(log, FLOOD_TAG, [0, 1, 1], 5)
    assert f["trigger_marker"] is None and f["guard_fired"] is False
    assert (f["drop_notices_before_trigger"], f["dropped_before_trigger"]) == (1, 3)
    assert f["drop_notices_after_trigger"] == f["dropped_after_trigger"] == 0
    assert (f["flood_lines_before_trigger"], f["flood_lines_after_trigger"]) == (6, 0)
    assert f["trigger_to_guard_printk_ns"] is None and f["guard_host_ns"] is None
    assert parse.flood_console([], FLOOD_TAG)["trigger_marker"] is None


def test_a_guard_line_before_the_trigger_is_not_this_panics_guard():
    f = parse.flood_console([GUARD, SYSRQ, (40, "** 2 printk messages dropped **")], FLOOD_TAG)
    assert f["guard_fired"] is False and f["trigger_to_guard_printk_ns"] is None
    assert (f["drop_notices_after_trigger"], f["dropped_after_trigger"]) == (1, 2)


def test_the_panic_line_stands_in_for_a_missing_sysrq_line():
    f = parse.flood_console(PANIC_LOG[1:], FLOOD_TAG)
    assert f["trigger_marker"] == "panic"
    assert (f["drop_notices_after_trigger"], f["dropped_after_trigger"]) == (1, 471)
    f = parse.flood_console(PANIC_LOG, FLOOD_TAG)
    assert f["trigger_marker"] == "sysrq" and f["dropped_after_trigger"] == 471


def test_notices_and_the_guard_split_across_lines():
    log = [SYSRQ, (20, "** 12 printk mes"), (21, "sages dropped **"),
           (22, "** 3 printk messages dropped **** 4 printk messages dropped **"),  # two on one line
           (30, "[    4.500000] printk: Too many dropped messages. Suppress mess"),
           (31, "ages on non-panic CPUs to prevent livelock.")]
    f = parse.flood_console(log, FLOOD_TAG)
    assert (f["drop_notices_after_trigger"], f["dropped_after_trigger"]) == (3, 19)
    assert f["guard_fired"] and f["guard_host_ns"] == 30 and f["trigger_to_guard_printk_ns"] == 500_000_000
    # A flood record the reader counted between the halves: they were not one line.
    f = parse.flood_console(log, FLOOD_TAG, [0, 0, 1, 1, 1, 2], 2)
    assert (f["drop_notices_after_trigger"], f["dropped_after_trigger"]) == (2, 7)
    assert not f["guard_fired"]
    assert (f["flood_lines_before_trigger"], f["flood_lines_after_trigger"]) == (0, 2)


def test_notices_on_the_trigger_line_are_ordered_by_column():
    log = [(10, "** 2 printk messages dropped **[    4.000000] sysrq: Trigger a crash** 5 printk messages dropped **")]
    f = parse.flood_console(log, FLOOD_TAG)
    assert (f["dropped_before_trigger"], f["dropped_after_trigger"]) == (2, 5)


def test_ready_cpus_from_the_progress_port():
    progress = [(1, "HB 0"), (2, "READY stage=1 release=6.1.0-57-amd64 cpus=2"), (3, "READY stage=2 cpus=1")]
    assert parse.ready_cpus(progress) == 2  # the first boot's
    assert parse.ready_cpus([(1, "HB 0")]) is None
    assert parse.ready_cpus([(1, "READY stage=1")]) is None


def test_brought_up_cpus_from_the_console():
    assert parse.brought_up_cpus(FLOOD_LOG) == (2, "smp: Brought up 1 node, 2 CPUs")
    assert parse.brought_up_cpus(KEXEC_LOG)[0] == 2 and parse.brought_up_cpus(PANIC_LOG) is None


def test_kexec_timings():
    t = kexec_timings(KEXEC_LOG, start_ns=40)
    assert t["cold_boot_to_first_line_ns"] == 60
    assert t["kexec_downtime_ns"] == 4000
    assert t["marker_to_starting_ns"] == 61
    assert t["starting_to_first_line_ns"] == 3939
    assert t["smp_init_first_ns"] == 99_611_000
    assert t["smp_init_second_ns"] == 100_134_000


def test_kexec_timings_when_second_kernel_never_came():
    t = kexec_timings(KEXEC_LOG[:7])
    assert t["kexec_downtime_ns"] is None and t["smp_init_second_ns"] is None
    assert t["smp_init_first_ns"] == 99_611_000
