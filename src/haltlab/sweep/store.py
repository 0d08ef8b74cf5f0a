"""The sweep file (JSON Lines, one row per finished run) and the run loop.

Each finished run is appended to a JSON Lines file at once (one line, written
and flushed whole), so an interrupted sweep resumes where it stopped: runs whose
key is already in the file are not run again. The file is in completion order;
`read_sweep()` returns it in key order, so a resumed sweep reads the same as an
uninterrupted one.
"""

from __future__ import annotations

import json
import os
import re
from concurrent.futures import Executor, as_completed
from pathlib import Path
from typing import Any, Callable, Iterable

from haltlab.errors import UserError
from haltlab.results import writing_to

__all__ = ["run_sweep", "read_sweep"]


def run_sweep(fn: Callable[[Any], dict], items: Iterable[tuple[str, Any]], path: str | os.PathLike[str],
              pool: Executor, progress: Callable[[int, int], None] | None = None) -> int:
    """Run `fn(arg)` for each `(key, arg)` not yet in `path`; returns how many ran.

    `fn` must be picklable (a module-level function) and return a JSON-able dict.
    """
    path = Path(path)
    rows, complete = _load(path)
    todo = [(key, arg) for key, arg in items if key not in rows]
    with writing_to("--out", path):
        path.parent.mkdir(parents=True, exist_ok=True)
        out = path.open("ab")
        out.truncate(complete)              # a torn last line would fuse with the next
    with out:
        futures = {pool.submit(fn, arg): key for key, arg in todo}
        for n, fut in enumerate(as_completed(futures), 1):
            line = json.dumps({"key": futures[fut], "result": fut.result()}, sort_keys=True,
                              separators=(",", ":"), allow_nan=False)
            with writing_to("--out", path):
                out.write(line.encode() + b"\n")
                out.flush()
            if progress is not None:
                progress(n, len(todo))
    return len(todo)


def read_sweep(path: str | os.PathLike[str]) -> list[dict]:
    """Every complete line of a sweep file, sorted by key; a torn last line
    (the sweep was killed mid-write) is ignored and will be run again."""
    rows, _ = _load(Path(path))
    return [rows[k] for k in sorted(rows)]


# How every row starts ("key" sorts first), so that a torn last line can be told
# from the last line of some other file.
_ROW_START = re.compile(rb'\{\s*"key"\s*:')


def _load(path: Path) -> tuple[dict[str, dict], int]:
    """The rows of an existing sweep file by key, and how many of its bytes are
    whole lines. Anything else is refused, untouched: the sweep would append to
    it, or cut its last line as torn."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}, 0
    except OSError as e:
        raise UserError(f"--out {path}: cannot read ({e.strerror})") from None
    lines = data.split(b"\n")
    tail = lines.pop()                      # b"" when the file ends in a newline
    rows = {}
    for n, line in enumerate(lines, 1):
        row = _row(line)
        if row is None:
            raise _foreign(path, n, "is not a sweep row")
        rows[row["key"]] = row
    if tail and not _ROW_START.match(tail):
        raise _foreign(path, len(lines) + 1, "does not end in a newline")
    return rows, len(data) - len(tail)     # a torn last line goes; its run runs again


def _row(line: bytes) -> dict | None:
    try:
        row = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if (isinstance(row, dict) and set(row) == {"key", "result"}
            and isinstance(row["key"], str) and isinstance(row["result"], dict)):
        return row
    return None


def _foreign(path: Path, n: int, why: str) -> UserError:
    return UserError(f"--out {path}: line {n} {why}: not a haltlab sweep file, left unchanged")
