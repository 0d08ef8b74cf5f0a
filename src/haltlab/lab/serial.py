"""A serial port read through a pipe, every line stamped with the host's clock.

QEMU writes each guest serial port into a pipe; a thread reads it and stamps
each complete line with `time.monotonic_ns()` when it arrives, so host-side
durations (kexec downtime, time to the end of panic) need no guest clock.

A console flood can bring megabytes per second. Lines the caller marks as bulk
(the flood's own records) are counted, not kept, so memory stays bounded and
every other line (the kernel's messages) is kept in order, with the number of
bulk lines that came before it (`bulk_before`), so a parser can still tell how
many flood records the console printed after a given kernel line.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

__all__ = ["SerialLog", "split_lines"]


def split_lines(pending: bytes, chunk: bytes) -> tuple[list[str], bytes]:
    """Complete lines in `pending + chunk` (decoded, line ending removed) and the rest."""
    data = pending + chunk
    *complete, rest = data.split(b"\n")
    return [c.rstrip(b"\r").decode("utf-8", "replace") for c in complete], rest


class SerialLog:
    """Lines from one pipe: `lines` is a list of `(host_ns, text)`.

    `bulk(text)` returning True means count the line instead of keeping it;
    `bulk_before[i]` is how many were counted before `lines[i]` arrived.
    The reader thread ends at EOF (QEMU exited or was killed).
    """

    def __init__(self, fd: int, name: str, bulk: Callable[[str], bool] | None = None):
        self.name = name
        self.lines: list[tuple[int, str]] = []
        self.bulk_before: list[int] = []
        self.bulk_lines = 0
        self.bytes = 0
        self.last_ns: int | None = None
        self._fd = fd
        self._bulk = bulk
        self._cursor: dict[str, int] = {}
        self._hits: dict[str, int] = {}
        self._lock = threading.Lock()  # between a chunk's lines and snapshot()
        self._thread = threading.Thread(target=self._run, name=f"serial-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pending = b""
        try:
            while chunk := os.read(self._fd, 1 << 16):
                now = time.monotonic_ns()
                self.bytes += len(chunk)
                lines, pending = split_lines(pending, chunk)
                self._add(now, lines)
            if pending:
                self._add(time.monotonic_ns(), [pending.decode("utf-8", "replace")])
        finally:
            os.close(self._fd)

    def _add(self, now: int, lines: list[str]) -> None:
        with self._lock:
            for text in lines:
                self.last_ns = now
                if self._bulk is not None and self._bulk(text):
                    self.bulk_lines += 1
                else:
                    self.bulk_before.append(self.bulk_lines)
                    self.lines.append((now, text))

    def snapshot(self) -> tuple[list[tuple[int, str]], list[int], int]:
        """`(lines, bulk_before, bulk_lines)` as of one moment, consistent with
        each other while the reader still runs (a hung guest keeps printing)."""
        with self._lock:
            return list(self.lines), list(self.bulk_before), self.bulk_lines

    def seen(self, needle: str) -> int | None:
        """Index of the first kept line containing `needle`, scanning only new lines."""
        if needle in self._hits:
            return self._hits[needle]
        lines, start = self.lines, self._cursor.get(needle, 0)
        end = len(lines)
        for i in range(start, end):
            if needle in lines[i][1]:
                self._hits[needle] = i
                return i
        self._cursor[needle] = end
        return None

    def join(self, timeout: float = 5.0) -> None:
        """Wait for EOF (call after QEMU has exited)."""
        self._thread.join(timeout)
