"""Human-readable view of the reproduce report: one rich table, then the notes."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from haltlab.report.reproduce import fmt_value

__all__ = ["reproduce_table", "print_reproduce"]


def _ratio_style(r: float | None) -> str:
    if r is None:
        return ""
    return "green" if 0.5 <= r <= 2 else "yellow" if 0.1 <= r <= 10 else "red"


def reproduce_table(report: dict) -> Table:
    t = Table(title=f"haltlab {report['haltlab_version']} reproduce: the threads' figures "
                    f"vs the model (profiles: {', '.join(report['profiles'])})",
              title_justify="left")
    for col in ("id", "quantity", "unit", "thread", "model", "model/thread", "lab", "note"):
        t.add_column(col, justify="right" if col in ("thread", "model", "model/thread", "lab")
                     else "left")
    for n, r in enumerate(report["rows"], 1):
        ratio = r["model_over_seed"]
        t.add_row(r["id"], r["quantity"], r["unit"], fmt_value(r["seed_value"]),
                  fmt_value(r["model_value"]),
                  "-" if ratio is None else f"[{_ratio_style(ratio)}]{ratio:.3f}[/]",
                  fmt_value(r["lab_value"]), f"[{n}]")
    return t


def print_reproduce(report: dict, out_dir: Path, console: Console | None = None) -> None:
    console = console or Console()
    console.print(reproduce_table(report))
    for n, r in enumerate(report["rows"], 1):
        console.print(f"[{n}] {r['id']}: thread: {r['seed_source']}. {r['note']} "
                      f"Lab: {r['lab_note']}.", highlight=False, markup=False)
    console.print(f"\nwritten to {out_dir}/: " + ", ".join(report["files"]), highlight=False)
