"""One implementation per measure: the model's run read the way the lab reads a guest.

The lab stamps each console line with the host's clock when it arrives and
derives its panic figures from those stamps (lab/parse.py `panic_facts`: the
panic line and the end line, the characters between them, the longest silence).
The model records, for each console line, when its last character left the
UART: the same event. So the model's figures come from the lab's own parser
run over the model's lines, and a measure cannot mean two things on two sides.
"""

from __future__ import annotations

from haltlab.lab.parse import Line, panic_facts

__all__ = ["console_lines", "model_panic_facts"]


def console_lines(run) -> list[Line]:
    """A simulated run's console as the lab sees a guest's: `(arrival ns, text)`."""
    return [(end_ns, text) for _start_ns, end_ns, _cpu, text in run.machine.console]


def model_panic_facts(run) -> dict:
    """`lab.parse.panic_facts` of a simulated run (`panic_max_line_gap_ns`,
    `panic_host_ns`, `end_host_ns`, `panic_console_chars`, ...)."""
    return panic_facts(console_lines(run))
