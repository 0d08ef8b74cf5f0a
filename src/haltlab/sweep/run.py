"""The run loop: what is not yet in the sweep file, through an executor, into it.

Items are streamed, never listed: at most about twice the executor's slots are
submitted at a time, more as runs finish, so a sweep of a million runs holds a
few dozen pending calls, not a million. The loop wakes at least every `tick_s`
seconds even when no run finishes, so that progress (a log line every few
seconds) keeps coming for slow runs. It submits from the calling thread, which
the local pool needs (see `executor`). On any exception, runs not yet started
are cancelled; `executor()`'s exit stops those that have.
"""

from __future__ import annotations

import os
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from typing import Any, Callable, Iterable

from haltlab.sweep.executor import slots
from haltlab.sweep.store import SweepFile, open_sweep

__all__ = ["run_sweep", "run_items"]


def run_sweep(fn: Callable[[Any], dict], items: Iterable[tuple[str, Any]], path: str | os.PathLike[str],
              pool: Executor, progress: Callable[[int], None] | None = None, *,
              inputs: dict[str, Any]) -> int:
    """Run `fn(arg)` for each `(key, arg)` not yet in the sweep file at `path`
    (made with `inputs`, which every run shares); returns how many ran.

    `fn` must be picklable (a module-level function) and return a JSON-able dict.
    """
    with open_sweep(path, inputs) as sweep:
        return run_items(fn, items, sweep, pool, progress)


def run_items(fn: Callable[[Any], dict], items: Iterable[tuple[str, Any]], sweep: SweepFile,
              pool: Executor, progress: Callable[[int], None] | None = None, *,
              tick_s: float = 1.0) -> int:
    """`run_sweep` on an open sweep file; `progress(ran)` after each finished
    run and at least every `tick_s` seconds."""
    todo = ((key, arg) for key, arg in items if key not in sweep.done)
    window = 2 * slots(pool)
    pending: dict[Future, str] = {}
    ran = 0
    try:
        while True:
            while len(pending) < window:
                key, arg = next(todo, (None, None))
                if key is None:
                    break
                if key not in pending.values():  # an item listed twice runs once
                    pending[pool.submit(fn, arg)] = key
            if not pending:
                return ran
            finished, _ = wait(pending, timeout=tick_s, return_when=FIRST_COMPLETED)
            failed = None
            for fut in finished:            # keep every row that finished before raising for one
                key = pending.pop(fut)
                if fut.exception() is not None:
                    failed = failed or fut
                    continue
                sweep.append(key, fut.result())
                ran += 1
            if failed is not None:
                failed.result()
            if progress is not None:
                progress(ran)
    finally:
        for fut in pending:
            fut.cancel()
