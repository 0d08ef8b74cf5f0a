"""timeline.json: the Chrome/Perfetto trace-event format, checked against the run.

Parsed with exact decimals (`parse_float=Decimal`) so a nanosecond lost to
rounding anywhere would show as a mismatch with the result's `state_ns`."""

import json
import re
from collections import defaultdict
from decimal import Decimal

import pytest

from haltlab.report.lanes import lab_lanes, model_lanes
from haltlab.report.trace import timeline_json, trace_files
from haltlab.report.trace_events import LAB_PID, MODEL_PID, trace_event_json, us
from haltlab.scenarios.panic import PanicConfig, simulate_panic

REQUIRED = {"X": {"name", "cat", "ph", "ts", "dur", "pid", "tid"},
            "i": {"name", "cat", "ph", "ts", "pid", "tid", "s"},
            "M": {"name", "ph", "pid", "tid", "args"}}
CONFIGS = [
    PanicConfig(observe_ns=300_000_000),
    PanicConfig(observe_ns=200_000_000, others="busy", after_panic="safe_halt", seed=2),
    PanicConfig(profile="arm64-server-24", others="irqsoff", observe_ns=100_000_000),
    PanicConfig(profile="xeon-gold-6154", panic_cpu=40, observe_ns=100_000_000),
    PanicConfig(panic_timeout_s=1),
]


def _ns(us_value: Decimal) -> int:
    ns = us_value * 1000
    assert ns == ns.to_integral_value(), us_value     # three decimals: whole ns
    return int(ns)


def _parse(text: str) -> dict:
    return json.loads(text, parse_float=Decimal)


def test_us_is_exact_decimal_microseconds():
    assert (us(10_191_200), us(7), us(0), us(1_000_000_000_000_001)) == \
        ("10191.200", "0.007", "0.000", "1000000000000.001")


@pytest.mark.parametrize("cfg", CONFIGS)
def test_timeline_json_is_the_run(cfg):
    trace = simulate_panic(cfg)
    text = trace_files(trace)["timeline.json"]
    doc = _parse(text)
    assert doc["displayTimeUnit"] == "ns"
    events = doc["traceEvents"]
    for e in events:
        assert REQUIRED[e["ph"]] <= set(e), e
        assert e["pid"] == MODEL_PID
    assert not re.search(r'"(ts|dur)": [^,}]*[eE]', text)      # never an exponent
    names = {e["tid"]: e["args"]["name"] for e in events
             if e["ph"] == "M" and e["name"] == "thread_name"}
    ncpus = trace.result["cpus"]
    assert names == {cpu + 1: f"CPU {cpu}" for cpu in range(ncpus)}
    # per CPU: complete events in order, touching, never overlapping
    spans = defaultdict(list)
    for e in events:
        if e["ph"] == "X":
            spans[e["tid"] - 1].append((_ns(e["ts"]), _ns(e["ts"]) + _ns(e["dur"]), e["name"]))
    assert set(spans) == set(range(ncpus))
    sums: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for cpu, xs in spans.items():
        for (s0, e0, _), (s1, _e1, _) in zip(xs, xs[1:]):
            assert e0 <= s1, (cpu, e0, s1)
        for s, e, state in xs:
            sums[cpu][state] += e - s
    for cpu, states in trace.result["state_ns"].items():
        assert dict(sums[int(cpu)]) == {s: ns for s, ns in states.items() if ns}
    marks = {e["name"]: _ns(e["ts"]) for e in events if e["ph"] == "i"}
    assert marks == trace.result["marks_ns"]
    assert all(e["s"] == "p" for e in events if e["ph"] == "i")


def test_same_run_same_bytes():
    cfg = PanicConfig(observe_ns=200_000_000, others="busy", seed=5)
    a, b = simulate_panic(cfg), simulate_panic(cfg)
    assert timeline_json(a, model_lanes(a)) == timeline_json(b, model_lanes(b))


def test_the_lab_is_a_second_process_beside_the_model():
    trace = simulate_panic(PanicConfig(cpus=2, observe_ns=100_000_000))
    lab = lab_lanes({"cpus": [{"cpu": 0, "intervals": [[5_000, 9_000, "running"],
                                                        [9_000, 20_000, "halted"]]},
                              {"cpu": 1, "intervals": [[5_000, 20_000, "halted"]]}],
                     "marks_ns": {"panic_entry": 8_000, "panic_end": 15_000}})
    doc = _parse(trace_event_json(("model", model_lanes(trace)), ("lab: TCG", lab)))
    by_pid = defaultdict(list)
    for e in doc["traceEvents"]:
        by_pid[e["pid"]].append(e)
    assert set(by_pid) == {MODEL_PID, LAB_PID}
    lab_events = by_pid[LAB_PID]
    assert [e["args"]["name"] for e in lab_events if e["name"] == "process_name"] == ["lab: TCG"]
    assert [(e["tid"], _ns(e["ts"]), _ns(e["dur"]), e["name"])
            for e in lab_events if e["ph"] == "X"] == [
        (1, 5_000, 4_000, "running"), (1, 9_000, 11_000, "halted"), (2, 5_000, 15_000, "halted")]
    assert {e["name"]: _ns(e["ts"]) for e in lab_events if e["ph"] == "i"} == \
        {"panic_entry": 8_000, "panic_end": 15_000}
