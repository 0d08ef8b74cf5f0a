"""A run's lanes in the Chrome/Perfetto trace-event JSON format (`timeline.json`).

Opens in https://ui.perfetto.dev (Open trace file) and in chrome://tracing. The
format ("Trace Event Format", the JSON Object Format with `traceEvents`) is:

* one process per source (`pid` 1: the model; `pid` 2: the lab, when its
  timeline is there), named by `process_name` metadata;
* one thread track per CPU, named "CPU n" by `thread_name` metadata and kept in
  CPU order by `thread_sort_index`. The `tid` is n + 1, not n: some Perfetto
  releases merged tid 0 into tid 1 (google/perfetto PR #2278 fixed it in 2025);
* a complete event (`"ph": "X"`) per interval, named by the hardware state;
* a process-scoped instant event (`"ph": "i"`, `"s": "p"`) per mark, named by
  the mark (`panic_entry`, `others_stopped`, `panic_end`, ...).

`ts` and `dur` are microseconds in this format whatever `displayTimeUnit` says
(that only picks the unit chrome://tracing displays; it is "ns" here). The
model's times are integer nanoseconds, so each is written as an exact decimal
with three fractional digits (`10191.200`), never a rounded float or an
exponent: Perfetto reads a double and rounds `ts * 1000` to the nearest ns,
which gives the nanosecond back exactly. Metadata events carry no `ts`.

The text is built here, event by event, with sorted keys: the same lanes give
the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from haltlab.report.lanes import Lanes, marks_in_order

__all__ = ["us", "trace_event_json", "MODEL_PID", "LAB_PID"]

MODEL_PID = 1
LAB_PID = 2


class _Us:
    """Integer ns written as exact decimal microseconds."""

    def __init__(self, ns: int) -> None:
        self.ns = int(ns)

    def __str__(self) -> str:
        sign, ns = ("-", -self.ns) if self.ns < 0 else ("", self.ns)
        return f"{sign}{ns // 1000}.{ns % 1000:03d}"


def us(ns: int) -> str:
    """`10191200` ns -> `"10191.200"`: the JSON number for a `ts` or `dur`."""
    return str(_Us(ns))


def _value(v) -> str:
    if isinstance(v, _Us):
        return str(v)
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {_value(v[k])}" for k in sorted(v)) + "}"
    return json.dumps(v, allow_nan=False)


def _events(pid: int, name: str, sort_index: int, lanes: Lanes) -> list[dict]:
    events: list[dict] = [
        {"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": name}},
        {"name": "process_sort_index", "ph": "M", "pid": pid, "tid": 0,
         "args": {"sort_index": sort_index}},
    ]
    for cpu in sorted(lanes.cpus):
        events += [
            {"name": "thread_name", "ph": "M", "pid": pid, "tid": cpu + 1,
             "args": {"name": f"CPU {cpu}"}},
            {"name": "thread_sort_index", "ph": "M", "pid": pid, "tid": cpu + 1,
             "args": {"sort_index": cpu}},
        ]
    for cpu in sorted(lanes.cpus):
        events += [{"name": state, "cat": "hw_state", "ph": "X", "pid": pid, "tid": cpu + 1,
                    "ts": _Us(start), "dur": _Us(end - start)}
                   for start, end, state in lanes.cpus[cpu]]
    mark_tid = (lanes.panic_cpu if lanes.panic_cpu is not None else 0) + 1
    events += [{"name": name, "cat": "mark", "ph": "i", "s": "p", "pid": pid, "tid": mark_tid,
                "ts": _Us(ns), "args": {"label": label}}
               for name, ns, (label, _colour, _style) in marks_in_order(lanes.marks_ns)]
    return events


def trace_event_json(model: tuple[str, Lanes], lab: tuple[str, Lanes] | None = None,
                     other_data: dict | None = None) -> str:
    """The trace file: the model's lanes (`(process name, lanes)`), the lab's
    beside them when given, and `other_data` (strings) in `otherData`."""
    groups: Sequence[tuple[int, str, Lanes]] = [(MODEL_PID, *model)] + (
        [(LAB_PID, *lab)] if lab is not None else [])
    events = [e for k, (pid, name, lanes) in enumerate(groups) for e in _events(pid, name, k, lanes)]
    body = ",\n".join(_value(e) for e in events)
    head = f'{{"displayTimeUnit": "ns", "otherData": {_value(other_data or {})},\n"traceEvents": [\n'
    return head + body + "\n]}\n"
