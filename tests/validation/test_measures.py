"""One implementation per measure: the model's lines go through the lab's parser,
stamped as the lab stamps a guest's (when the last character arrives)."""

from types import SimpleNamespace

from haltlab.lab.parse import panic_facts
from haltlab.validation.cases import CASES
from haltlab.validation.measures import console_lines, model_panic_facts
from haltlab.validation.validate import model_facts

# (start_ns, end_ns, cpu, text) as the machine records them: a line's start is
# when its first character went out, its end when its last one did.
CONSOLE = [
    (0, 100, 0, "[    0.000001] sysrq: Trigger a crash"),
    (110, 300, 0, "[    0.000002] Kernel panic - not syncing: sysrq triggered crash"),
    (310, 500, 0, "[    0.000003] CPU: 0 PID: 1 Comm: sh"),
    (3_500, 3_600, 0, "[    0.000004] Kernel Offset: disabled"),       # after smp_send_stop() waited
    (3_610, 3_900, 0, "[    0.000005] ---[ end Kernel panic - not syncing: sysrq triggered crash ]---"),
]


def test_the_model_is_stamped_by_arrival_like_the_lab():
    run = SimpleNamespace(machine=SimpleNamespace(console=CONSOLE))
    assert [ns for ns, _ in console_lines(run)] == [100, 300, 500, 3_600, 3_900]
    facts = model_panic_facts(run)
    assert facts["panic_max_line_gap_ns"] == 3_600 - 500          # arrival to arrival
    assert facts["end_host_ns"] - facts["panic_host_ns"] == 3_900 - 300
    assert facts == panic_facts([(e, t) for _s, e, _c, t in CONSOLE])


def test_validation_reads_the_model_with_the_lab_parser():
    case = next(c for c in CASES if c.name == "panic-cpus2")
    from haltlab.scenarios.panic import PanicConfig, simulate_panic
    from haltlab.validation.lab_kernel import LAB_KERNEL_PRESET
    from haltlab.validation.validate import LAB_WINDOW_NS, PROFILE
    run = simulate_panic(PanicConfig(profile=PROFILE, cpus=case.cpus, kernel=LAB_KERNEL_PRESET, pvpanic=case.pvpanic,
                                     observe_ns=LAB_WINDOW_NS, timeline=False))
    facts, lab_side = model_facts(case), panic_facts(console_lines(run))
    assert facts["stop_gap_ns"] == lab_side["panic_max_line_gap_ns"] > 1_000_000   # the stop round trip
    assert facts["panic_to_end_ns"] == lab_side["end_host_ns"] - lab_side["panic_host_ns"]
