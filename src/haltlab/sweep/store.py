"""The sweep file: JSON Lines, one row per finished run.

    {"key":"kvm-x86/cpus=00008/mdelay/idle/seed=000000","result":{...}}

Each finished run is appended at once, one whole line per `write()`. A write
that fails (a full disk) is cut back to the last whole line, so the file keeps
only complete rows, and is reported as one line; the same command then resumes.
A line torn by a kill (the one place a file can be torn) is dropped when the
file is next opened, and its run runs again. The file is in completion order;
`read_sweep()` returns rows in key order, so a resumed sweep reads the same as
an uninterrupted one. Anything else in the file (another program's data) is
refused and left as it is. The file is read a line at a time, never whole.
One sweep at a time holds a file (`haltlab.sweep.lock`)."""

from __future__ import annotations

import json
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from haltlab.errors import ConfigError
from haltlab.sweep.lock import locked

__all__ = ["SweepFile", "open_sweep", "read_sweep", "each_row"]

FIELD = "output"                        # the config field every error here names

# How every row starts ("key" sorts first), so that a torn last line can be told
# from the last line of some other file.
_ROW_START = re.compile(rb'\{\s*"key"\s*:')


def _line(obj: dict) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode() + b"\n"


class SweepFile:
    """A sweep file open for appending, locked.

    `done` holds the keys of the rows already in it (a set of strings, about
    130 bytes a key: what bounds a sweep's size, see `panic.MAX_RUNS`)."""

    def __init__(self, path: Path, fd: int, size: int, done: set[str]) -> None:
        self.path, self._fd, self._size, self.done = path, fd, size, done
        self.written = 0

    def append(self, key: str, result: dict) -> None:
        """Append one row, whole or not at all."""
        line = _line({"key": key, "result": result})
        try:
            _write_all(self._fd, line)
        except OSError as e:
            self._cut()
            raise ConfigError(FIELD, str(self.path),
                              f"cannot write ({e.strerror or e}); its {len(self.done)} complete rows are kept "
                              "and the same command resumes once the disk has room") from None
        self._size += len(line)
        self.done.add(key)
        self.written += 1

    def _cut(self) -> None:
        try:
            os.ftruncate(self._fd, self._size)   # shrinking needs no space
        except OSError:
            pass                                 # a torn line left here is dropped on resume


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


@contextmanager
def open_sweep(path: str | os.PathLike[str]) -> Iterator[SweepFile]:
    """The sweep file at `path`, locked for this sweep, open for appending,
    its rows' keys read."""
    path = Path(path)
    with locked(path, FIELD):
        done: set[str] = set()
        size = _scan(path, lambda row: done.add(row["key"]))
        existed = path.exists()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as e:
            raise ConfigError(FIELD, str(path), f"cannot write ({e.strerror})") from None
        try:
            os.ftruncate(fd, size)              # a torn last line would fuse with the next
            os.lseek(fd, size, os.SEEK_SET)
            sweep = SweepFile(path, fd, size, done)
            try:
                yield sweep
            except BaseException:
                if not existed and not sweep.written:
                    path.unlink(missing_ok=True)    # no partial result: it held no run
                raise
        finally:
            os.close(fd)


def read_sweep(path: str | os.PathLike[str]) -> list[dict]:
    """Every complete row of a sweep file, sorted by key (the last of rows with
    one key wins); a torn last line is ignored and will be run again."""
    rows: dict[str, dict] = {}
    _scan(Path(path), lambda row: rows.__setitem__(row["key"], row))
    return [rows[k] for k in sorted(rows)]


def each_row(path: str | os.PathLike[str], on_row: Callable[[dict], None]) -> None:
    """`on_row(row)` for each complete row, in file order, one in memory at a time."""
    _scan(Path(path), on_row)


def _scan(path: Path, on_row: Callable[[dict], None]) -> int:
    """Read `path` a line at a time, passing each row to `on_row`; how many
    bytes are whole lines. Refuses, untouched, anything that is not a sweep file."""
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return 0
    except OSError as e:
        raise ConfigError(FIELD, str(path), f"cannot read ({e.strerror})") from None
    size = 0
    with f:
        for n, line in enumerate(f, 1):
            if not line.endswith(b"\n"):        # the last line, torn or foreign
                if not _ROW_START.match(line):
                    raise _foreign(path, n, "does not end in a newline")
                break
            row = _row(line)
            if row is None:
                raise _foreign(path, n, "is not a sweep row")
            on_row(row)
            size += len(line)
    return size


def _row(line: bytes) -> dict | None:
    row = _json(line)
    if (isinstance(row, dict) and set(row) == {"key", "result"}
            and isinstance(row["key"], str) and isinstance(row["result"], dict)):
        return row
    return None


def _json(line: bytes) -> Any:
    try:
        return json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


def _foreign(path: Path, n: int, why: str) -> ConfigError:
    return ConfigError(FIELD, str(path), f"line {n} {why}: not a haltlab sweep file, left unchanged")
