"""Run outcomes from the host's channels; console silence alone never decides."""

import pytest

from haltlab.lab.classify import (
    COMPLETED, FAILED, HUNG_OUTPUT, HUNG_SILENT, PANICKED, Observation, classify, debug_exit_code,
)

S = 1_000_000_000


def obs(**kw):
    base = dict(exit_status=None, timed_out=False, panic_seen=False, end_marker_seen=False,
                pvpanic_action=None, deadline_ns=100 * S, last_console_ns=None)
    return Observation(**{**base, **kw})


def test_debug_exit_codes():
    assert debug_exit_code(1) == 0
    assert debug_exit_code(7) == 3
    assert debug_exit_code(0) is None and debug_exit_code(None) is None and debug_exit_code(-9) is None


@pytest.mark.parametrize("o, outcome", [
    (obs(exit_status=1), COMPLETED),  # init wrote 0 to isa-debug-exit
    (obs(exit_status=0), COMPLETED),  # power-off
    (obs(exit_status=7), FAILED),  # init's code 3: the panic trigger did not panic
    (obs(panic_seen=True, end_marker_seen=True), PANICKED),
    (obs(panic_seen=True, pvpanic_action="pause"), PANICKED),
    (obs(exit_status=0, panic_seen=True), PANICKED),  # panic=N reset under -no-reboot
])
def test_finished_runs(o, outcome):
    assert classify(o) == outcome


def test_flooding_console_is_hung_with_output_not_alive():
    # A console that talked 10 ms before the deadline: still a hang.
    o = obs(timed_out=True, panic_seen=True, last_console_ns=100 * S - 10_000_000)
    assert classify(o) == HUNG_OUTPUT


def test_quiet_console_is_hung_silent():
    assert classify(obs(timed_out=True, panic_seen=True, last_console_ns=90 * S)) == HUNG_SILENT
    assert classify(obs(timed_out=True)) == HUNG_SILENT


def test_pvpanic_report_only_is_not_finished():
    # action "run" (panic=none) means the host only heard of the panic.
    assert classify(obs(timed_out=True, panic_seen=True, pvpanic_action="run")) == HUNG_SILENT


def test_end_marker_wins_over_timeout():
    assert classify(obs(timed_out=True, end_marker_seen=True)) == PANICKED
