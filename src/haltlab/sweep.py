"""Sweeps: many runs (seeds x variants x CPU counts) through one executor.

Any `concurrent.futures.Executor` will do: a local process pool by default, or a
Dask distributed cluster's executor (`Client(address).get_executor()`) when one
machine is not enough; `dask[distributed]` is the optional extra `haltlab[dask]`.
Each finished run is appended to a JSON Lines file at once (one line, written
and flushed whole), so an interrupted sweep resumes where it stopped: runs whose
key is already in the file are not run again. The file is in completion order;
`read_sweep()` returns it in key order, so a resumed sweep reads the same as an
uninterrupted one.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from haltlab.errors import UserError

__all__ = ["executor", "run_sweep", "read_sweep"]


@contextmanager
def executor(scheduler: str | None = None, workers: int | None = None) -> Iterator[Executor]:
    """A process pool, or the executor of the Dask cluster at `scheduler`."""
    if scheduler is None:
        with ProcessPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
            yield pool
        return
    try:
        from distributed import Client
    except ImportError:
        raise UserError(f"--scheduler {scheduler}: needs the dask extra "
                        "(pip install 'haltlab[dask]')") from None
    try:
        client = Client(scheduler, timeout="10s")
    except OSError as e:
        raise UserError(f"--scheduler {scheduler}: cannot reach the Dask scheduler ({e})") from None
    try:
        yield client.get_executor()
    finally:
        client.close()


def run_sweep(fn: Callable[[Any], dict], items: Iterable[tuple[str, Any]], path: str | os.PathLike[str],
              pool: Executor, progress: Callable[[int, int], None] | None = None) -> int:
    """Run `fn(arg)` for each `(key, arg)` not yet in `path`; returns how many ran.

    `fn` must be picklable (a module-level function) and return a JSON-able dict.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"--out {path}: is a directory; give a file for the sweep's JSON Lines")
    _drop_torn_tail(path)
    done = set(_keys(path))
    todo = [(key, arg) for key, arg in items if key not in done]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        out = path.open("a", encoding="utf-8")
    except OSError as e:
        raise UserError(f"--out {path}: cannot write ({e.strerror})") from None
    with out:
        futures = {pool.submit(fn, arg): key for key, arg in todo}
        for n, fut in enumerate(as_completed(futures), 1):
            line = json.dumps({"key": futures[fut], "result": fut.result()}, sort_keys=True,
                              separators=(",", ":"), allow_nan=False)
            out.write(line + "\n")
            out.flush()
            if progress is not None:
                progress(n, len(todo))
    return len(todo)


def read_sweep(path: str | os.PathLike[str]) -> list[dict]:
    """Every complete line of a sweep file, sorted by key; a torn last line
    (the sweep was killed mid-write) is ignored and will be run again."""
    rows = {}
    for row in _rows(Path(path)):
        rows[row["key"]] = row
    return [rows[k] for k in sorted(rows)]


def _rows(path: Path) -> Iterator[dict]:
    if not path.exists():
        return
    with path.open(encoding="utf-8") as f:
        for line in f:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and "key" in row:
                yield row


def _drop_torn_tail(path: Path) -> None:
    """A sweep killed mid-write leaves a last line without its newline; cut it
    off so that the next line appended does not fuse with it."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def _keys(path: Path) -> Iterator[str]:
    for row in _rows(path):
        yield row["key"]

