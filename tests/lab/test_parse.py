"""The serial-log parsers on literal logs from real boots (Debian 6.1.0-56-amd64, QEMU TCG)."""

from haltlab.lab import parse
from haltlab.lab.experiments.kexec import kexec_timings

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


def test_dropped_messages():
    assert parse.dropped_messages(PANIC_LOG) == 471
    assert parse.dropped_messages(KEXEC_LOG) == 0


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
