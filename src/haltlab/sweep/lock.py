"""One sweep per output file: an exclusive `flock()` on a sidecar `FILE.lock`.

Two sweeps appending to one file would each run nearly everything (each read
the file before the other wrote) and write every row twice. The second is
refused at once instead, told who holds the file: the holder writes its pid,
host and start time into the lock file.

The lock is on a sidecar, not on the sweep file, so that the holder's identity
has a place to live and the sweep file holds rows only. The kernel drops an
`flock()` when its holder dies however it dies, so a lock file left by a killed
sweep is stale, not binding: the next sweep takes it over. The holder removes
the file when it is done, while still holding the lock; a sweep that opened it
just before, and locks it just after, finds the name gone or pointing at a new
file, and tries again on the name (the usual unlink-race check). The
descriptor is close-on-exec: a worker process must not inherit the lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from haltlab.errors import ConfigError

__all__ = ["locked", "lock_path"]


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


@contextmanager
def locked(path: Path, field: str = "output") -> Iterator[None]:
    """Hold the lock of sweep file `path` for the length of the `with`, or
    raise a `ConfigError` on `field` naming who holds it."""
    name = lock_path(path)
    fd = _acquire(path, name, field)
    try:
        _record_holder(fd, path, field)
        yield
    finally:
        try:
            os.unlink(name)
        except OSError:
            pass
        os.close(fd)


def _acquire(path: Path, name: Path, field: str) -> int:
    while True:
        try:
            fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as e:
            raise ConfigError(field, str(path), f"cannot create the lock file {name} ({e.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise ConfigError(field, str(path), f"in use by another sweep ({holder}, lock {name}); "
                              "wait for it to finish or give another output file") from None
        if _still_named(fd, name):
            return fd
        os.close(fd)                        # its holder removed it between our open and flock


def _still_named(fd: int, name: Path) -> bool:
    try:
        st = os.stat(name)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def _record_holder(fd: int, path: Path, field: str) -> None:
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": started})
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, record.encode() + b"\n", 0)
    except OSError as e:
        raise ConfigError(field, str(path), f"cannot write the lock file ({e.strerror})") from None


def _holder(fd: int) -> str:
    """'pid 123 on host since ...', from what the holder recorded (it may not
    have written it yet: it locks first, then writes)."""
    try:
        record = json.loads(os.pread(fd, 4096, 0) or b"null")
        return f"pid {int(record['pid'])} on {record['host']} since {record['started']}"
    except (OSError, ValueError, TypeError, KeyError):
        return "holder not yet recorded"
