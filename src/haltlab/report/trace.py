"""A panic run kept whole (result, machine, kernel) and its trace files.

`run_panic` returns only the result dict; a trace needs the machine's timeline,
console and interrupt log and the kernel's log buffer too. `run_panic_traced`
runs the same steps as `haltlab.scenarios.panic.run_panic` (a test checks that
both give the same result) and keeps the objects.

Files, as a kernel developer would look at them:

* `dmesg.txt`: the log buffer as `dmesg` prints it with CONFIG_PRINTK_CALLER:
  `[    0.014493][     C0] text`. The model knows the CPU, not the task, so the
  caller id is always the CPU form `C<n>` (printk uses `T<pid>` in task context).
* `console.txt`: each console line with the time its last character left the
  UART, as the lab's serial reader stamps lines with the host's clock.
* `interrupts.txt`: every interrupt taken: time, CPU, vector.
* `timeline.png`: per-CPU hardware states over time (`haltlab.report.timeline`).
* `result.json`: the result, as `haltlab simulate panic --json` prints it.
"""

from __future__ import annotations

from dataclasses import dataclass

from haltlab.results import dumps
from haltlab.scenarios.panic import PanicConfig, _result, _Window, build_panic

__all__ = ["Trace", "run_panic_traced", "dmesg_text", "console_text",
           "interrupts_text", "trace_files"]


@dataclass
class Trace:
    """One finished run: its result and the model objects behind it."""

    config: PanicConfig
    result: dict
    machine: object
    kernel: object


def run_panic_traced(cfg: PanicConfig) -> Trace:
    """`run_panic(cfg)`, keeping the machine and kernel for traces and plots."""
    machine, k, sim = build_panic(cfg)
    window: dict[str, _Window | None] = {}

    def on_mark(name: str, at_ns: int) -> None:
        if name == "panic_end":   # the observation window opens, as in run_panic
            window["start"] = _Window(machine, at_ns) if machine.hyp else None
            sim.schedule(at_ns + cfg.observe_ns, sim.stop)

    k.on_mark = on_mark
    sim.run(cfg.limit_ns)
    machine.close(sim.now_ns)
    result = _result(cfg, machine, k, sim, window.get("start"), sim.now_ns)
    return Trace(cfg, result, machine, k)


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


def trace_files(trace: Trace) -> dict[str, str | bytes]:
    """Every trace file, rendered in memory (written by the caller, all at once)."""
    from haltlab.report.timeline import timeline_png
    return {
        "dmesg.txt": dmesg_text(trace.kernel),
        "console.txt": console_text(trace.machine),
        "interrupts.txt": interrupts_text(trace.machine),
        "timeline.png": timeline_png(trace),
        "result.json": dumps(trace.result),
    }
