"""The sweep file: JSON Lines, a header line, then one row per finished run.

    {"haltlab_sweep":1,"inputs":{...what every run shares...}}
    {"key":"kvm-x86/cpus=00008/mdelay/idle/seed=000000","result":{...}}

A row is reused on resume only if its key is asked for again *and* the header
records the same inputs: the key names what varies between a sweep's runs, the
header everything they share (options, the profile's content, the model's
version; see `haltlab.sweep.inputs`). A file whose header differs is refused,
naming what differs, and is never appended to: its rows answer another
question. So is a file of rows with no header (an older haltlab's).

Each finished run is appended at once, one whole line per `write()`. A write
that fails (a full disk) is cut back to the last whole line, so the file keeps
only complete rows, and is reported as one line; the same command then resumes.
A line torn by a kill (the one place a file can be torn) is dropped when the
file is next opened, and its run runs again. The file is in completion order;
`read_sweep()` returns rows in key order, so a resumed sweep reads the same as
an uninterrupted one. Anything else in the file (another program's data) is
refused and left as it is.
"""

from __future__ import annotations

import json
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from haltlab.errors import ConfigError
from haltlab.sweep.lock import locked

__all__ = ["SweepFile", "open_sweep", "read_sweep", "read_inputs", "each_row", "FORMAT"]

FORMAT = 1                              # the header's "haltlab_sweep" value
FIELD = "output"                        # the config field every error here names

# How rows and the header start (sorted keys put these first), so that a torn
# last line can be told from the last line of some other file.
_ROW_START = re.compile(rb'\{\s*"key"\s*:')
_HEADER_START = re.compile(rb'\{\s*"haltlab_sweep"\s*:')


def _line(obj: dict) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode() + b"\n"


class SweepFile:
    """A sweep file open for appending, locked, its header checked.

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
def open_sweep(path: str | os.PathLike[str], inputs: dict[str, Any]) -> Iterator[SweepFile]:
    """The sweep file at `path`, locked for this sweep, for runs with `inputs`
    (JSON-able). A new file gets the header; an existing one must have it."""
    path = Path(path)
    inputs = json.loads(_line(inputs))      # as the header will read back (lists, not tuples)
    with locked(path, FIELD):
        done: set[str] = set()
        header, size = _scan(path, lambda row: done.add(row["key"]))
        if header is not None and header != inputs:
            raise _other_inputs(path, header, inputs)
        existed = path.exists()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as e:
            raise ConfigError(FIELD, str(path), f"cannot write ({e.strerror})") from None
        try:
            sweep = _ready(path, fd, header is None, size, done, inputs, existed)
            try:
                yield sweep
            except BaseException:
                if not existed and not sweep.written:
                    path.unlink(missing_ok=True)    # no partial result: it held no run
                raise
        finally:
            os.close(fd)


def _ready(path: Path, fd: int, new: bool, size: int, done: set[str], inputs: dict, existed: bool) -> SweepFile:
    """Cut a torn last line (it would fuse with the next row) and, for a new
    file, write the header; a new file that cannot take it is removed."""
    try:
        os.ftruncate(fd, size)
        os.lseek(fd, size, os.SEEK_SET)
        if new:
            header = _line({"haltlab_sweep": FORMAT, "inputs": inputs})
            _write_all(fd, header)
            size = len(header)
    except OSError as e:
        if new and not existed:
            path.unlink(missing_ok=True)
        raise ConfigError(FIELD, str(path), f"cannot write ({e.strerror or e})") from None
    return SweepFile(path, fd, size, done)


def read_sweep(path: str | os.PathLike[str]) -> list[dict]:
    """Every complete row of a sweep file, sorted by key (the last of rows with
    one key wins); a torn last line is ignored and will be run again."""
    rows: dict[str, dict] = {}
    _scan(Path(path), lambda row: rows.__setitem__(row["key"], row))
    return [rows[k] for k in sorted(rows)]


def each_row(path: str | os.PathLike[str], on_row: Callable[[dict], None]) -> None:
    """`on_row(row)` for each complete row, in file order, one in memory at a time."""
    _scan(Path(path), on_row)


def read_inputs(path: str | os.PathLike[str]) -> dict | None:
    """The inputs a sweep file's header records (None for a missing or empty file)."""
    return _scan(Path(path), lambda row: None)[0]


def _scan(path: Path, on_row: Callable[[dict], None]) -> tuple[dict | None, int]:
    """Read `path` a line at a time, passing each row to `on_row`: (the
    header's inputs, how many bytes are whole lines). Refuses, untouched,
    anything that is not a sweep file."""
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return None, 0
    except OSError as e:
        raise ConfigError(FIELD, str(path), f"cannot read ({e.strerror})") from None
    header, size, n = None, 0, 0
    with f:
        for n, line in enumerate(f, 1):
            if not line.endswith(b"\n"):        # the last line, torn or foreign
                if not (_ROW_START.match(line) or (n == 1 and _HEADER_START.match(line))):
                    raise _foreign(path, n, "does not end in a newline")
                break
            if n == 1:
                header = _header(path, line)
            else:
                row = _row(line)
                if row is None:
                    raise _foreign(path, n, "is not a sweep row")
                on_row(row)
            size += len(line)
    return header, size


def _header(path: Path, line: bytes) -> dict:
    obj = _json(line)
    if (isinstance(obj, dict) and set(obj) == {"haltlab_sweep", "inputs"}
            and obj["haltlab_sweep"] == FORMAT and isinstance(obj["inputs"], dict)):
        return obj["inputs"]
    if _row(line) is not None:
        raise ConfigError(FIELD, str(path), "has rows but no header recording their inputs (an older "
                          "haltlab's file), so they cannot be checked against this sweep; "
                          "give another output file or delete it")
    raise _foreign(path, 1, "is not a sweep header")


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


def _other_inputs(path: Path, there: dict, here: dict) -> ConfigError:
    diffs = _differences(there, here)
    shown = "; ".join(f"{name} {a} there, {b} now" for name, a, b in diffs[:3])
    more = f" (and {len(diffs) - 3} more)" if len(diffs) > 3 else ""
    return ConfigError(FIELD, str(path), f"holds runs made with other inputs ({shown}{more}); its rows are "
                       "not reused: give another output file or delete it")


def _differences(a: Any, b: Any, name: str = "") -> list[tuple[str, str, str]]:
    """(dotted name, value in a, value in b) for each leaf where a and b differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            sub = f"{name}.{k}" if name else k
            out += _differences(a.get(k, "(none)"), b.get(k, "(none)"), sub)
        return out
    return [] if a == b else [(name or "inputs", _short(a), _short(b))]


def _short(v: Any) -> str:
    text = v if isinstance(v, str) else json.dumps(v)
    return text if len(text) <= 24 else text[:12] + "..."
