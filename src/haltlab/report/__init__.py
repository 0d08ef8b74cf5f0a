"""Tables, plots, traces and the reproduce report: what haltlab shows a person.

Sits on top of everything else (scenarios, machine, kernel); nothing imports it
but the CLI. Plots use matplotlib's object API on the Agg canvas, never pyplot.
"""

from haltlab.report.reproduce import run_reproduce
from haltlab.report.trace import trace_files
from haltlab.validation.figures import FIGURES, Figure, LabValue, ModelValue  # the registry lives in validation

__all__ = ["FIGURES", "Figure", "LabValue", "ModelValue", "run_reproduce", "trace_files"]
