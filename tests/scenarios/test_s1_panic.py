"""S1: host CPU burned by a panicked KVM guest, stock `mdelay()` loop vs `safe_halt()`.

Independent truths used here: a vCPU that executes costs one host CPU-second per
second and one that halts costs only its wake-ups (S1's cover letter: 55K perf
samples before, 51 after); the final loop's blink period is 3600 / PANIC_BLINK_SPD
= 200 ms of `i`, advanced by PANIC_TIMER_STEP = 100 per pass (kernel-facts §1.1);
`native_stop_other_cpus()` ends with `disable_local_APIC()` on the panicking CPU
(kernel-facts §3.1 step 6), which masks its LAPIC timer.
"""

import pytest

from haltlab.scenarios.panic import PanicConfig, build_panic, simulate_panic

MS = 1_000_000
SEC = 1_000_000_000
HZ = 250
TICK = SEC // HZ

BASE = dict(cpus=4, others="idle", observe_ns=1 * SEC, seed=0)


@pytest.fixture(scope="module")
def runs():
    return {policy: simulate_panic(PanicConfig(after_panic=policy, **BASE))
            for policy in ("mdelay", "safe_halt")}


def test_stock_loop_burns_one_host_cpu_on_the_panicked_vcpu_only(runs):
    r = runs["mdelay"].result
    assert r["outcome"] == "panicked-and-finished"
    per = {v["cpu"]: v["host_cpu_s_per_s"] for v in r["per_vcpu"]}
    assert per[0] == pytest.approx(1.0, rel=0.02)
    assert all(per[c] < 1e-3 for c in (1, 2, 3))        # stopped: halted with IF=0


def test_safe_halt_cuts_the_whole_guests_host_cpu_at_least_100_fold(runs):
    stock, halted = runs["mdelay"].result, runs["safe_halt"].result
    assert stock["window_ns"] == halted["window_ns"] == 1 * SEC
    assert halted["host_cpu_s_per_s"] * 100 <= stock["host_cpu_s_per_s"]
    assert halted["per_vcpu"][0]["host_cpu_s_per_s"] < 1e-3


def test_policy_acts_only_after_the_end_of_panic_line(runs):
    stock, halted = runs["mdelay"].result, runs["safe_halt"].result
    assert stock["time_to_end_ns"] is not None
    assert stock["time_to_end_ns"] == halted["time_to_end_ns"]
    assert stock["marks_ns"]["panic_end"] == halted["marks_ns"]["panic_end"]


def test_panicking_cpus_lapic_is_off_so_a_halted_vcpu_is_never_woken(runs):
    run = runs["safe_halt"]
    cpu0 = run.machine.cpus[0]
    assert (cpu0.apic_enabled, cpu0.tick_enabled) == (False, False)
    v0 = run.result["per_vcpu"][0]
    assert v0["wakeups"] == 0
    assert v0["exits"] <= 1                      # at most the one HLT exit
    assert run.result["panic_loop_iterations"] == 0
    assert cpu0.state == "halted"


# --- the independent check: with the tick back, a halted CPU still takes interrupts ---

def _with_tick_back(after_panic: str, window_ns: int = 1 * SEC):
    """The panic run, with CPU0's LAPIC and tick re-enabled 1 ms into the final
    loop (as if `disable_local_APIC()` were not called). Returns what happened
    on CPU0 during the `window_ns` after that."""
    run = build_panic(PanicConfig(after_panic=after_panic, **BASE))
    machine, k, sim = run.machine, run.kernel, run.driver
    seen: dict = {}

    def tick_back() -> None:
        seen.update(start=sim.now_ns, wakeups=machine.hyp.vcpus[0].wakeups,
                    exits=machine.hyp.vcpus[0].exits, irqs=len(machine.irq_log),
                    blinks=len(k.blinks))
        machine.set_cpu_state(0, (("apic_enabled", True), ("tick_enabled", True)))
        sim.schedule(sim.now_ns + window_ns, sim.stop)

    def on_mark(name: str, at_ns: int) -> None:
        if name == "panic_loop":
            sim.schedule(at_ns + 1 * MS, tick_back)

    k.on_mark = on_mark
    sim.run(60 * SEC)
    assert sim.now_ns == seen["start"] + window_ns
    v0 = machine.hyp.vcpus[0]
    timer = [t for t, cpu, vec in machine.irq_log[seen["irqs"]:] if cpu == 0 and vec == "LOCAL_TIMER"]
    blinks = k.blinks[seen["blinks"]:]
    return {
        "wakeups": v0.wakeups - seen["wakeups"],
        "exits": v0.exits - seen["exits"],
        "timer_handlers": len(timer),
        "blink_intervals": [b - a for a, b in zip(blinks, blinks[1:])],
        "entry_ns": k.marks["panic_entry"],
        "first_timer": timer[0] if timer else None,
    }


def test_with_the_tick_running_the_halted_vcpu_wakes_hz_times_per_second():
    got = _with_tick_back("safe_halt")
    assert got["wakeups"] == pytest.approx(HZ, rel=0.05)
    assert got["timer_handlers"] == pytest.approx(HZ, rel=0.05)
    assert got["first_timer"] > got["entry_ns"]          # handlers that ran after panic


def test_with_the_tick_running_the_busy_loop_exits_per_tick_but_never_sleeps():
    got = _with_tick_back("mdelay")
    assert got["wakeups"] == 0
    assert got["exits"] == pytest.approx(HZ, rel=0.05)
    assert got["timer_handlers"] == pytest.approx(HZ, rel=0.05)


def test_blink_period_is_200ms_with_mdelay_but_two_ticks_with_safe_halt():
    stock = _with_tick_back("mdelay")["blink_intervals"]
    halted = _with_tick_back("safe_halt")["blink_intervals"]
    assert len(stock) >= 3
    assert all(abs(d - 200 * MS) <= 1 * MS for d in stock)
    # One pass of the loop per tick, `i` += 100 per pass, a toggle every 200:
    # every 2 ticks = 8 ms at HZ=250, 25x faster than the LED was meant to blink.
    assert len(halted) >= 100
    assert all(abs(d - 2 * TICK) <= 10_000 for d in halted)


def test_stock_blink_intervals_in_the_plain_run_are_200ms(runs):
    intervals = runs["mdelay"].result["blink_intervals_ns"]
    assert len(intervals) >= 3
    assert all(abs(d - 200 * MS) <= 1 * MS for d in intervals)
    assert runs["safe_halt"].result["blink_intervals_ns"] == []


@pytest.mark.parametrize("policy", ["mdelay", "safe_halt"])
def test_panic_timeout_reboots_3s_after_the_countdown_starts(policy):
    run = simulate_panic(PanicConfig(after_panic=policy, panic_timeout_s=3, **BASE))
    r, k = run.result, run.kernel
    assert r["outcome"] == "rebooted"
    (countdown_ns,) = [ts for ts, _, text in k.log.values() if text == "Rebooting in 3 seconds.."]
    assert abs(k.marks["emergency_restart"] - countdown_ns - 3 * SEC) <= 50 * MS
    # From panic() entry: the 3 s countdown plus the panic's console output
    # before it (about 12 ms on this profile), so within 100 ms of 3 s.
    assert 3 * SEC <= r["reboot_after_ns"] <= 3 * SEC + 100 * MS
    assert "panic_end" not in k.marks                    # never reached the final loop
