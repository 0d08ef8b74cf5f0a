"""The lab's per-vCPU timeline (lab/timeline.py), from literal sampler readings."""

from haltlab.lab.timeline import PRE_TRIGGER_NS, RUNNING_MIN_SHARE, intervals, lab_timeline

MS = 1_000_000
T = 10 * PRE_TRIGGER_NS            # the trigger, well after the first reading


def _readings(shares: dict[int, list[float]], start_ns: int = T - 30 * MS, step_ns: int = 10 * MS):
    """Readings every `step_ns` where vCPU i ran `shares[i][k]` of interval k."""
    n = len(next(iter(shares.values())))
    run = {c: 0 for c in shares}
    out = [(start_ns, dict(run))]
    for k in range(n):
        run = {c: run[c] + round(shares[c][k] * step_ns) for c in shares}
        out.append((start_ns + (k + 1) * step_ns, dict(run)))
    return out


def test_a_stock_panic_reads_cpu0_spinning_and_cpu1_stopped():
    r = _readings({0: [0.0, 0.02, 1.0, 0.9, 1.0, 1.0], 1: [0.0, 0.02, 0.5, 0.0, 0.0, 0.0]})
    assert intervals(r, 0, T) == [[-30 * MS, -10 * MS, "halted"], [-10 * MS, 30 * MS, "running"]]
    assert intervals(r, 1, T) == [[-30 * MS, -10 * MS, "halted"], [-10 * MS, 0, "running"],
                                  [0, 30 * MS, "halted"]]


def test_the_threshold_is_a_share_of_the_interval():
    below, at = RUNNING_MIN_SHARE * 0.99, RUNNING_MIN_SHARE
    r = _readings({0: [below, at]})
    assert [iv[2] for iv in intervals(r, 0, T)] == ["halted", "running"]


def test_the_timeline_keeps_half_a_second_before_the_trigger_and_exact_marks():
    r = _readings({0: [1.0] * 100}, start_ns=T - 2 * PRE_TRIGGER_NS)
    t = lab_timeline(r, T, {"trigger": T, "panic_line": T + 2_539_092, "end_line": None}, 10 * MS)
    assert t["cpus"] == [{"cpu": 0, "intervals": [[-PRE_TRIGGER_NS, 10 * MS * 100 - 2 * PRE_TRIGGER_NS,
                                                   "running"]]}]
    assert t["marks_ns"] == {"trigger": 0, "panic_line": 2_539_092}   # exact, and only what happened
    assert (t["sample_interval_ns"], t["running_min_share"]) == (10 * MS, RUNNING_MIN_SHARE)


def test_no_trigger_no_timeline():
    assert lab_timeline(_readings({0: [1.0, 1.0]}), None, {}, 10 * MS) is None
