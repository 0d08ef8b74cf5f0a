"""Defects #15 and #16: the run's limit follows from its inputs, and inputs past
what the kernel (or the documented window ceiling) accepts are refused.

Before, a fixed 600 s simulator limit made `--panic-timeout 600` report "hung"
and capped `--observe 10000` at about 600 s, and `--panic-timeout 1e20` ran.
"""

import pytest

from haltlab.errors import ConfigError
from haltlab.machine.profile import load_profile
from haltlab.scenarios.panic import PANIC_MSG, PanicConfig, simulate_panic
from haltlab.scenarios.panic_bounds import (
    MAX_OBSERVE_NS, PANIC_TIMEOUT_MAX_S, panic_work_bound_ns,
)

SEC = 1_000_000_000
MS = 1_000_000


@pytest.mark.parametrize("timeout_s", [600, 601])
def test_a_panic_timeout_of_600_s_or_more_reboots_after_it(timeout_s):
    r = simulate_panic(PanicConfig(cpus=2, panic_timeout_s=timeout_s, observe_ns=SEC)).result
    assert r["outcome"] == "rebooted"
    # From panic() entry: the countdown plus the console output before it.
    assert timeout_s * SEC <= r["reboot_after_ns"] <= timeout_s * SEC + 100 * MS
    assert r["limit_ns"] > r["marks_ns"]["emergency_restart"]


def test_an_observation_window_of_10000_s_is_honoured():
    r = simulate_panic(PanicConfig(cpus=2, observe_ns=10_000 * SEC)).result
    assert r["outcome"] == "panicked-and-finished"
    assert r["window_ns"] == 10_000 * SEC
    assert r["end_ns"] == r["marks_ns"]["panic_end"] + 10_000 * SEC


def test_the_largest_window_is_accepted_and_one_nanosecond_more_refused():
    profile = load_profile("kvm-x86")
    PanicConfig(observe_ns=MAX_OBSERVE_NS).validate(2)
    with pytest.raises(ConfigError) as e:
        PanicConfig(observe_ns=MAX_OBSERVE_NS + 1).validate(2)
    assert e.value.field == "observe_ns" and "at most 86400 s" in str(e.value)
    assert PanicConfig(observe_ns=MAX_OBSERVE_NS).limit_ns(profile) > MAX_OBSERVE_NS


@pytest.mark.parametrize("timeout_s", [PANIC_TIMEOUT_MAX_S + 1, 2**31, 10**20])
def test_a_panic_timeout_the_kernel_cannot_count_is_refused_naming_the_field(timeout_s):
    with pytest.raises(ConfigError) as e:
        simulate_panic(PanicConfig(panic_timeout_s=timeout_s))
    assert e.value.field == "panic_timeout_s" and e.value.value == timeout_s
    assert "at most 2147483 s" in str(e.value) and "* 1000" in str(e.value)


def test_the_largest_countable_panic_timeout_is_accepted():
    assert PANIC_TIMEOUT_MAX_S * 1000 <= 2**31 - 1 < (PANIC_TIMEOUT_MAX_S + 1) * 1000
    PanicConfig(panic_timeout_s=PANIC_TIMEOUT_MAX_S).validate(2)


@pytest.mark.parametrize("profile", ["kvm-x86", "qemu-tcg-x86", "arm64-server-24", "xeon-gold-6154"])
def test_the_work_bound_holds_for_every_stop_path_and_is_not_absurdly_loose(profile):
    """Every stop path, the slowest included (x86 1 s then the NMI stage, arm64
    1 s then failure): the end line comes within the bound; and the bound is
    under 3x the slowest of them plus 1 s."""
    bound = panic_work_bound_ns(load_profile(profile), PANIC_MSG)
    took = []
    for others in ("idle", "busy", "irqsoff"):
        for kernel in ("v6.1", "v7.1"):
            cfg = PanicConfig(profile=profile, cpus=4, others=others, kernel=kernel, observe_ns=MS)
            r = simulate_panic(cfg).result
            took.append(r["marks_ns"]["panic_end"] - cfg.trigger_ns)
    assert max(took) <= bound <= 3 * max(took) + SEC
    assert max(took) > SEC                   # the 1 s wait was among them


def test_a_limit_that_would_cut_the_window_is_a_model_bug_not_a_silent_truncation(monkeypatch):
    monkeypatch.setattr(PanicConfig, "limit_ns", lambda self, profile: 1 * SEC)
    with pytest.raises(RuntimeError, match="cut the .* window after the end line"):
        simulate_panic(PanicConfig(cpus=2, observe_ns=10 * SEC))
