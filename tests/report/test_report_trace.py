"""Traced runs and the trace files, on real runs and on literal inputs."""

from types import SimpleNamespace

import pytest

from haltlab.report.timeline import shown_cpus, timeline_png, zoom_range
from haltlab.report.trace import (
    console_text, dmesg_text, interrupts_text, trace_files,
)
from haltlab.results import dumps
from haltlab.scenarios.panic import PanicConfig, run_panic, simulate_panic


@pytest.mark.parametrize("cfg", [
    PanicConfig(observe_ns=500_000_000),
    PanicConfig(observe_ns=300_000_000, after_panic="safe_halt", others="busy", seed=3),
    PanicConfig(panic_timeout_s=1, others="irqsoff"),
    PanicConfig(profile="arm64-server-24", observe_ns=200_000_000),
])
def test_two_runs_of_one_config_give_the_same_bytes(cfg):
    assert dumps(simulate_panic(cfg).result) == dumps(run_panic(cfg))


def test_dmesg_is_printk_with_caller_id():
    kernel = SimpleNamespace(log={1: (14_493_780, 3, "second"), 0: (10_001_040, 0, "first")})
    assert dmesg_text(kernel) == ("[    0.010001][    C0] first\n"
                                  "[    0.014493][    C3] second\n")


def test_console_and_interrupts_are_stamped_lines():
    machine = SimpleNamespace(console=[(10, 1_500_000_000, 1, "[    1.000000] hello")],
                              irq_log=[(2_000_000, 0, "LOCAL_TIMER")])
    assert console_text(machine).splitlines()[-1] == "   1.500000000  C1    [    1.000000] hello"
    assert interrupts_text(machine).splitlines()[-1] == "   0.002000000  C0    LOCAL_TIMER"


def test_shown_cpus():
    assert shown_cpus(8, 0) == list(range(8))
    assert shown_cpus(32, 31) == list(range(32))
    assert shown_cpus(72, 40) == list(range(16)) + [40]
    assert shown_cpus(72, 3) == list(range(16))


def test_zoom_range_covers_the_panic_padded():
    marks = {"panic_entry": 10_000_000, "panic_end": 22_000_000}
    lo, hi = zoom_range(marks, [], 10**10)
    assert lo < 10_000_000 and 22_000_000 < hi < 30_000_000
    # no "end Kernel panic" (panic_timeout): up to the panic's last console line
    lo, hi = zoom_range({"panic_entry": 10_000_000}, [5_000_000, 12_000_000], 3 * 10**9)
    assert hi < 20_000_000
    assert zoom_range({}, [], 5) == (0, 5)


def test_timeline_of_a_big_machine_is_a_png():
    trace = simulate_panic(PanicConfig(profile="xeon-gold-6154", panic_cpu=40,
                                         observe_ns=100_000_000))
    assert timeline_png(trace, dpi=40).startswith(b"\x89PNG")


def test_trace_files_are_all_rendered_in_memory():
    files = trace_files(simulate_panic(PanicConfig(observe_ns=100_000_000)))
    assert set(files) == {"dmesg.txt", "console.txt", "interrupts.txt", "timeline.png",
                          "timeline.json", "report.html", "result.json"}
    assert isinstance(files["timeline.png"], bytes)
