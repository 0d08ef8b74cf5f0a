"""The result schema shared by the simulated scenarios and the lab.

The lab imports nothing from the model and the model nothing from the lab; both
write results through this module so that `validate` and `reproduce` can put a
simulated and a measured figure side by side by field name alone.

Field names carry their unit (`host_cpu_s_per_s`, `panic_to_end_ns`); time is an
integer number of nanoseconds unless the name says otherwise.

Commands check an output path with `check_out_path()` before their work and
write inside `writing_to()`: a path that cannot take the result fails in one
line at once, not in a traceback after a run of minutes. Both live here, with
the writers, because the lab and the model's commands share them.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from haltlab.errors import UserError

__all__ = ["dumps", "write_json_atomic", "write_text_atomic", "write_bytes_atomic",
           "check_out_path", "writing_to"]


def dumps(obj: Any) -> str:
    """Canonical JSON: sorted keys, fixed separators, so equal results are equal bytes."""
    return json.dumps(obj, sort_keys=True, indent=2, separators=(",", ": "), allow_nan=False) + "\n"


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write all of `data` or nothing: a crash never leaves a partial result file.

    The file gets the mode a plain `open()` would give it (0666 less the umask),
    not mkstemp's private 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    write_text_atomic(path, dumps(obj))


@contextmanager
def writing_to(option: str, path: str | os.PathLike[str]) -> Iterator[None]:
    """Report a failed write (full disk, no permission) as the option that named
    the place, in one line."""
    try:
        yield
    except OSError as e:
        raise UserError(f"{option} {path}: cannot write ({e.strerror or e})") from None


def check_out_path(path: str | os.PathLike[str], option: str, *, directory: bool) -> Path:
    """Fail now if `path` cannot take the output (a directory, or a file).

    Probes by creating what the writers will need and removing it again, since
    permission bits do not tell: root passes every access() check, yet cannot
    create /proc/x or write to a read-only mount."""
    path = Path(path)
    if directory and path.exists() and not path.is_dir():
        raise UserError(f"{option} {path}: exists and is not a directory")
    if not directory and path.is_dir():
        raise UserError(f"{option} {path}: is a directory; give a file")
    folder = path if directory else path.parent
    created = [p for p in (folder, *folder.parents) if not p.exists()]   # deepest first
    try:
        with writing_to(option, path):
            folder.mkdir(parents=True, exist_ok=True)
            tempfile.NamedTemporaryFile(prefix=".haltlab-probe.", dir=folder).close()
    finally:
        for p in created:
            try:
                p.rmdir()
            except OSError:
                pass
    return path
