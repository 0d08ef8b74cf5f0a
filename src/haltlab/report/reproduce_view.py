"""Human-readable view of the reproduce report: one table, then the notes.

A `report.tables.Table` model, so `--format markdown` and `csv` print the same
rows; on a terminal the model/thread ratio is coloured (green within 2x, yellow
within 10x, red beyond).
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.text import Text

from haltlab.report.reproduce import fmt_value
from haltlab.report.tables import Column, Table, print_tables

__all__ = ["reproduce_table", "print_reproduce"]

_NUMERIC = ("thread", "model", "model/thread", "lab")


def _ratio_style(r: float | None) -> str:
    if r is None:
        return ""
    return "green" if 0.5 <= r <= 2 else "yellow" if 0.1 <= r <= 10 else "red"


def reproduce_table(report: dict) -> Table:
    t = Table(f"haltlab {report['haltlab_version']} reproduce: the threads' figures "
              f"vs the model (profiles: {', '.join(report['profiles'])})",
              [Column(c, numeric=c in _NUMERIC, whole=c == "id") for c in
               ("id", "quantity", "unit", "thread", "model", "model/thread", "lab", "note")])
    for n, r in enumerate(report["rows"], 1):
        ratio = r["model_over_seed"]
        t.add_row(r["id"], r["quantity"], r["unit"], fmt_value(r["seed_value"]),
                  fmt_value(r["model_value"]), "-" if ratio is None else f"{ratio:.3f}",
                  fmt_value(r["lab_value"]), f"[{n}]")
        t.cell_styles[(n - 1, 5)] = _ratio_style(ratio)
        t.notes.append(f"[{n}] {r['id']}: thread: {r['seed_source']}. {r['note']} Lab: {r['lab_note']}.")
    return t


def print_reproduce(report: dict, out_dir: Path, console: Console | None = None,
                    fmt: str = "table") -> None:
    console = console or Console()
    print_tables([reproduce_table(report)], fmt, console)
    if fmt == "table":
        console.print(Text(f"\nwritten to {out_dir}/: " + ", ".join(report["files"])))
