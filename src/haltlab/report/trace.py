"""A panic run kept whole (result, machine, kernel) and its trace files.

`run_panic` returns only the result dict; a trace needs the machine's timeline,
console and interrupt log and the kernel's log buffer too, which
`haltlab.scenarios.panic.simulate_panic` keeps.

Files, as a kernel developer would look at them:

* `dmesg.txt`: the log buffer as `dmesg` prints it with CONFIG_PRINTK_CALLER:
  `[    0.014493][     C0] text`. The model knows the CPU, not the task, so the
  caller id is always the CPU form `C<n>` (printk uses `T<pid>` in task context).
* `console.txt`: each console line with the time its last character left the
  UART, as the lab's serial reader stamps lines with the host's clock.
* `interrupts.txt`: every interrupt taken: time, CPU, vector.
* `timeline.png`: per-CPU hardware states over time (`haltlab.report.timeline`).
* `timeline.json`: the same intervals and marks as Chrome/Perfetto trace-event
  JSON, one track per CPU (`haltlab.report.trace_events`).
* `report.html`: one page to open offline: the summary, zoomable per-CPU
  swimlanes, the marks, and timeline.png embedded (`haltlab.report.page`).
* `result.json`: the result, as `haltlab simulate panic --json` prints it.

The PNG, the JSON and the page all draw from one `Lanes` of the run
(`haltlab.report.lanes`), so they show the same intervals.
"""

from __future__ import annotations

from haltlab.report.lanes import MODEL_CLOCK, Lanes, model_label, model_lanes
from haltlab.results import dumps
from haltlab.scenarios.panic import PanicRun

__all__ = ["dmesg_text", "console_text", "interrupts_text", "timeline_json", "trace_files"]


def _printk_time(ns: int) -> str:
    """`print_time()` in kernel/printk/printk.c: `[%5lu.%06lu]`."""
    us = ns // 1000
    return f"[{us // 1_000_000:5d}.{us % 1_000_000:06d}]"


def dmesg_text(kernel) -> str:
    lines = []
    for seq in sorted(kernel.log):
        ts_ns, cpu, text = kernel.log[seq]
        lines.append(f"{_printk_time(ts_ns)}[{'C' + str(cpu):>6}] {text}")
    return "".join(line + "\n" for line in lines)


def console_text(machine) -> str:
    head = ("# host_s: when the line's last character left the UART (model time since "
            "power-on); cpu: who printed it\n# host_s        cpu   line\n")
    body = [f"{end / 1e9:14.9f}  C{cpu:<4d} {text}\n"
            for _start, end, cpu, text in sorted(machine.console)]
    return head + "".join(body)


def interrupts_text(machine) -> str:
    head = "# every interrupt taken (handler entered)\n# time_s        cpu   vector\n"
    body = [f"{t / 1e9:14.9f}  C{cpu:<4d} {vector}\n" for t, cpu, vector in machine.irq_log]
    return head + "".join(body)


def timeline_json(trace: PanicRun, lanes: Lanes) -> str:
    """The run as trace-event JSON: the model's process, named as its lanes are."""
    from haltlab import __version__
    from haltlab.report.trace_events import trace_event_json
    return trace_event_json((model_label(trace.result), lanes), other_data={
        "haltlab_version": __version__, "clock": MODEL_CLOCK})


def trace_files(trace: PanicRun) -> dict[str, str | bytes]:
    """Every trace file, rendered in memory (written by the caller, all at once)."""
    from haltlab.report.page import panic_html
    from haltlab.report.timeline import timeline_png
    lanes = model_lanes(trace)
    png = timeline_png(trace, lanes)
    return {
        "dmesg.txt": dmesg_text(trace.kernel),
        "console.txt": console_text(trace.machine),
        "interrupts.txt": interrupts_text(trace.machine),
        "timeline.png": png,
        "timeline.json": timeline_json(trace, lanes),
        "report.html": panic_html(trace, lanes, png),
        "result.json": dumps(trace.result),
    }
