"""One table model, four renderings: what `--format {table,markdown,csv,json}` prints.

A view builds `Table`s (title, columns, rows of already formatted strings, and
notes that belong under it) from a result dict; `render()` turns them into a
rich table for a terminal, a Markdown table, or CSV. `json` is not a table: it
is the result itself, canonical (`results.dumps`), and the views are not asked.

Numbers are never cut: a numeric column does not wrap and is as wide as its
widest cell (rich's `min_width`), and when the terminal is narrow the text
columns fold instead; a table that cannot fit that way is printed as one block
per row (each column's name beside its value), which fits any terminal. Cells are plain text: rich reads no markup or emoji codes
in them (a model location such as `panic_on_other_cpu:100:` stays itself).

CSV of several tables (`simulate panic` has five): each starts with a `# title`
line and ends with a blank line; notes follow as `# ` lines. A reader that
wants one table takes the block after its title.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.console import Console, Group
from rich.table import Table as RichTable
from rich.text import Text

__all__ = ["Column", "Table", "FORMATS", "render", "print_tables", "rich_table", "min_width"]

FORMATS = ("table", "markdown", "csv", "json")


@dataclass(frozen=True)
class Column:
    name: str
    numeric: bool = False       # right-aligned, never wrapped or truncated
    whole: bool = False         # an identifier (a figure's id): left-aligned, never folded either


@dataclass
class Table:
    title: str
    columns: Sequence[Column]
    rows: list[Sequence[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)      # lines that belong under the table
    show_header: bool = True
    bold_rows: frozenset[int] = frozenset()             # row indexes shown bold on a terminal
    cell_styles: dict[tuple[int, int], str] = field(default_factory=dict)   # (row, column) -> rich style

    def __rich_console__(self, console: Console, options):
        """The rich table with its notes under it, as `--format table` prints it."""
        yield rich_table(self, options.max_width)
        for note in self.notes:
            yield Text(note)

    def add_row(self, *cells: str) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{self.title}: {len(cells)} cells for {len(self.columns)} columns")
        self.rows.append(cells)


TEXT_MIN_WIDTH = 12     # a text column folds, but not narrower than this (or its longest word)


def _min_widths(t: Table) -> list[int]:
    """Per column: a numeric column's widest cell (a number is never cut); a text
    column's longest word, at most TEXT_MIN_WIDTH (the rest folds)."""
    widths = []
    for i, col in enumerate(t.columns):
        cells = [*(r[i] for r in t.rows), *([col.name] if t.show_header else [])]
        if col.numeric or col.whole:
            widths.append(max(map(len, cells), default=1))
        else:
            words = [w for cell in cells for w in cell.split()]
            widths.append(min(max(map(len, words), default=1), TEXT_MIN_WIDTH))
    return widths


def min_width(t: Table) -> int:
    """The narrowest the grid can be drawn with every number whole: each column's
    minimum plus its padding and rule (3), plus the outer rule."""
    return sum(w + 3 for w in _min_widths(t)) + 1


def rich_table(t: Table, width: int | None = None):
    """`t` for a console `width` columns wide (None: as wide as it likes): a grid,
    or, where the grid cannot fit with its numbers whole, one block per row
    (column name, value), which fits any terminal and cuts nothing."""
    if width is not None and t.show_header and min_width(t) > width:
        return _records(t)
    out = RichTable(title=Text(t.title), title_justify="left", show_header=t.show_header)
    for i, (col, least) in enumerate(zip(t.columns, _min_widths(t))):
        if col.numeric:
            out.add_column(Text(col.name), justify="right", no_wrap=True, min_width=least)
        elif col.whole:
            out.add_column(Text(col.name), no_wrap=True, min_width=least)
        else:
            out.add_column(Text(col.name), overflow="fold", min_width=least,
                           style="bold" if i == 0 and not t.show_header else None)
    for n, row in enumerate(t.rows):
        out.add_row(*(Text(cell, style=t.cell_styles.get((n, i), "")) for i, cell in enumerate(row)),
                    style="bold" if n in t.bold_rows else None)
    return out


def _records(t: Table) -> Group:
    parts: list = [Text(t.title)]
    for n, row in enumerate(t.rows):
        block = RichTable(show_header=False, box=None, padding=(0, 1), title=Text(row[0], style="bold"),
                          title_justify="left")
        block.add_column(no_wrap=True, style="dim")
        block.add_column(overflow="fold")
        for i, (col, cell) in enumerate(zip(t.columns[1:], row[1:]), 1):
            block.add_row(Text(col.name), Text(cell, style=t.cell_styles.get((n, i), "")))
        parts.append(block)
    return Group(*parts)


def _markdown(t: Table) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")
    lines = [f"### {t.title}", ""]
    header = [c.name for c in t.columns] if t.show_header else [""] * len(t.columns)
    lines.append("| " + " | ".join(cell(h) for h in header) + " |")
    lines.append("| " + " | ".join("---:" if c.numeric else "---" for c in t.columns) + " |")
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in t.rows]
    if t.notes:
        lines.append("")
        lines += t.notes
    return "\n".join(lines) + "\n"


def _csv(t: Table) -> str:
    buf = io.StringIO()
    buf.write(f"# {t.title}\n")
    w = csv.writer(buf, lineterminator="\n")
    if t.show_header:
        w.writerow([c.name for c in t.columns])
    w.writerows(t.rows)
    for note in t.notes:
        buf.write(f"# {note}\n")
    return buf.getvalue()


def render(tables: Sequence[Table], fmt: str) -> str:
    """`tables` as Markdown or CSV text (the terminal form is `print_tables`)."""
    if fmt == "markdown":
        return "\n".join(_markdown(t) for t in tables)
    if fmt == "csv":
        return "\n".join(_csv(t) for t in tables)
    raise ValueError(f"render: no text form for {fmt!r}")


def print_tables(tables: Sequence[Table], fmt: str, console: Console) -> None:
    """Print `tables` in `fmt` ("table", "markdown" or "csv") on `console`."""
    if fmt != "table":
        console.file.write(render(tables, fmt))
        return
    for t in tables:
        console.print(t, crop=False)
