"""Rich consoles and progress for the commands: tables on stdout, progress on stderr.

A console on a pipe or a file gets a fixed width (`$COLUMNS`, else 120) so that
output does not depend on the terminal a job was started from.

Progress shows wherever stderr goes. On a terminal it is a rich bar that
erases itself; anywhere else (`2> log`, CI, `nohup`) it is a plain line at the
start, then at most one every `LOG_EVERY_S` seconds, then one at the end, so a
log says what a long command was doing and how fast, and an error that follows
is still the only line the command adds after it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console

__all__ = ["console", "progress", "with_progress", "Progress", "LOG_EVERY_S", "say", "run_lines"]

LOG_EVERY_S = 5.0


def console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    columns = os.environ.get("COLUMNS", "")
    width = None if stream.isatty() else int(columns) if columns.isdigit() else 120
    return Console(stderr=stderr, width=width)


class Progress:
    """`update(done, what=..., **figures)` as work goes on; `figures` (a rate, a
    queue depth) are printed as `name value` pairs after the count, the name's
    `_per_` as `/` (`states_per_s=533` is `states/s 533`)."""

    def __init__(self, label: str, total: int | None, *, clock: Callable[[], float] = time.monotonic,
                 every_s: float | None = None) -> None:
        self.label, self.total, self.clock = label, total, clock
        self.every_s = LOG_EVERY_S if every_s is None else every_s
        self.started = clock()
        self.done, self.what, self.figures = 0, "", {}
        self._last_line = None
        self._bar = None

    def update(self, done: int | None = None, what: str | None = None, **figures) -> None:
        if done is not None:
            self.done = done
        if what is not None:
            self.what = what
        self.figures.update(figures)
        if self._bar is not None:
            bar, task = self._bar
            bar.update(task, completed=self.done, description=self._text(count=False))
        elif self._last_line is None or self.clock() - self._last_line >= self.every_s:
            self._log()

    def _text(self, *, count: bool = True) -> str:
        parts = [self.label]
        if count:
            parts.append(f"{self.done}/{self.total}" if self.total is not None else str(self.done))
        if self.what:
            parts.append(self.what)
        parts += [f"{k.replace('_per_', '/').replace('_', ' ')} {v}" for k, v in self.figures.items()]
        return ": ".join(parts[:2]) + (" " + ", ".join(parts[2:]) if parts[2:] else "")

    def _log(self, final: bool = False) -> None:
        self._last_line = self.clock()
        elapsed = self._last_line - self.started
        line = f"haltlab: {self._text()} ({elapsed:.1f} s{', done' if final else ''})"
        try:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass

    @contextmanager
    def _running(self) -> Iterator["Progress"]:
        if sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as Bar
            columns = (TextColumn("{task.description:<56}"), BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn())
            with Bar(*columns, console=console(stderr=True), transient=True) as bar:
                self._bar = (bar, bar.add_task(self.label, total=self.total))
                yield self
            return
        self._log()
        ok = False
        try:
            yield self
            ok = True
        finally:
            if ok:
                self._log(final=True)


@contextmanager
def progress(label: str, total: int | None = None, **kw) -> Iterator[Progress]:
    """A `Progress` shown on stderr for the length of the `with`."""
    with Progress(label, total, **kw)._running() as p:
        yield p


def with_progress(work, total: int, label: str):
    """Run `work(step)` under `progress()`; `step(description)` starts the next step."""
    with progress(label, total) as p:
        started: list[str] = []

        def step(description: str) -> None:
            p.update(len(started), description)
            started.append(description)

        result = work(step)
        p.update(total, "")
    return result


def say(text: str) -> None:
    """One `haltlab: ...` progress line on stderr, terminal or log alike."""
    try:
        sys.stderr.write(f"haltlab: {text}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def run_lines(label: str) -> Callable[[int, int, dict], None]:
    """The per-run progress of a lab command (`progress(i, n, run)`): one line
    per finished run, none held back, since each run takes seconds."""
    def report(i: int, n: int, run: dict) -> None:
        say(f"{label}: run {i + 1}/{n}: {run.get('outcome')}")
    return report
