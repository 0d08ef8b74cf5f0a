"""The result schema shared by the simulated scenarios and the lab.

The lab imports nothing from the model and the model nothing from the lab; both
write results through this module so that `validate` and `reproduce` can put a
simulated and a measured figure side by side by field name alone.

Field names carry their unit (`host_cpu_s_per_s`, `panic_to_end_ns`); time is an
integer number of nanoseconds unless the name says otherwise.

Commands check an output path with `check_out_path()` before their work and
write inside `writing_to()`: a path that cannot take the result fails in one
line at once, not in a traceback after a run of minutes. Both live here, with
the writers, because the lab and the model's commands share them. A path no
file system can take (empty, a component over NAME_MAX bytes, the whole over
PATH_MAX) is refused by `path_problem()` before any system call sees it: the
empty string would otherwise mean the current directory to `Path()`, and an
over-long name an `ENAMETOOLONG` wherever it is first touched.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
import types
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from haltlab.errors import UserError

__all__ = ["conforms", "dumps", "write_json_atomic", "write_text_atomic", "write_bytes_atomic",
           "check_out_path", "writing_to", "path_problem", "show_path", "file_kind", "NAME_MAX", "PATH_MAX"]

NAME_MAX = 255      # bytes in one path component (<linux/limits.h>; ext4, xfs, btrfs, tmpfs)
PATH_MAX = 4096     # bytes in a path, with its terminating NUL (<linux/limits.h>)


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


def show_path(text: str | os.PathLike[str], limit: int = 120) -> str:
    """`text` for a one-line message: quoted when empty or padded, and cut in the
    middle when longer than `limit` characters (with the full length said).
    The limit keeps a path a user could have typed whole (a deep temporary
    directory is about 100 characters) and cuts only the absurd ones, a name
    over NAME_MAX or a path near PATH_MAX, whose message would not fit a line."""
    text = os.fspath(text)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if text == "" or text != text.strip():
        return repr(text)
    if len(text) <= limit:
        return text
    half = (limit - 5) // 2
    return f"{text[:half]}...{text[-half:]} ({len(text)} characters)"


def path_problem(text: str | os.PathLike[str]) -> str | None:
    """Why no file system can take `text` as a path, or None.

    Checked on the string, before any system call: the empty string (which
    `Path("")` turns into the current directory), a NUL byte, a component over
    `NAME_MAX` bytes or a path of `PATH_MAX` bytes or more (`ENAMETOOLONG`)."""
    text = os.fspath(text)
    raw = text if isinstance(text, bytes) else os.fsencode(text)
    if not raw:
        return "empty path (give a name; '.' is the current directory)"
    if b"\0" in raw:
        return "a path cannot hold a NUL byte"
    if len(raw) >= PATH_MAX:
        return (f"{os.strerror(errno.ENAMETOOLONG)}: the path is {len(raw)} bytes, "
                f"the limit is {PATH_MAX - 1}")
    longest = max(raw.split(b"/"), key=len)
    if len(longest) > NAME_MAX:
        return (f"{os.strerror(errno.ENAMETOOLONG)}: a component is {len(longest)} bytes, "
                f"the limit is {NAME_MAX}")
    return None


def file_kind(mode: int) -> str:
    """What a non-regular file is, for a message ("a FIFO")."""
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


def check_out_path(path: str | os.PathLike[str], option: str, *, directory: bool) -> Path:
    """Fail now if `path` cannot take the output (a directory, or a file).

    Probes by creating what the writers will need and removing it again, since
    permission bits do not tell: root passes every access() check, yet cannot
    create /proc/x or write to a read-only mount. Every OSError on the way (a
    symlink loop, a name the file system finds too long) is the option's one
    line too."""
    why = path_problem(path)
    if why is not None:
        raise UserError(f"{option} {show_path(path)}: {why}")
    path = Path(path)
    shown = show_path(path)
    try:
        if directory and path.exists() and not path.is_dir():
            raise UserError(f"{option} {shown}: exists and is not a directory")
        if not directory and path.is_dir():
            raise UserError(f"{option} {shown}: is a directory; give a file")
        if not directory and path.exists() and not path.is_file():
            # the atomic writers rename over the target: never over a device or a FIFO
            raise UserError(f"{option} {shown}: exists and is not a regular file "
                            f"({file_kind(path.stat().st_mode)}); give a file")
        folder = path if directory else path.parent
        created = [p for p in (folder, *folder.parents) if not p.exists()]   # deepest first
    except OSError as e:
        raise UserError(f"{option} {shown}: cannot write ({e.strerror or e})") from None
    try:
        with writing_to(option, shown):
            folder.mkdir(parents=True, exist_ok=True)
            tempfile.NamedTemporaryFile(prefix=".haltlab-probe.", dir=folder).close()
    finally:
        for p in created:
            try:
                p.rmdir()
            except OSError:
                pass
    return path


def conforms(value: Any, tp: Any, where: str = "result") -> list[str]:
    """Every way `value` differs from the type `tp` (a TypedDict here, a list,
    dict, union or plain type); empty when it conforms."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return []
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return [] if type(None) in args else [f"{where}: expected a value, got None"]
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return conforms(value, options[0], where)
        if any(not conforms(value, a, where) for a in options):
            return []
        names = " or ".join(getattr(a, "__name__", str(a)) for a in options)
        return [f"{where}: expected {names}, got {type(value).__name__}"]
    if tp is type(None):
        return [] if value is None else [f"{where}: expected None, got {type(value).__name__}"]
    if typing.is_typeddict(tp):
        if not isinstance(value, dict):
            return [f"{where}: expected an object ({tp.__name__}), got {type(value).__name__}"]
        hints = typing.get_type_hints(tp)
        out = [f"{where}: missing {k}" for k in sorted(tp.__required_keys__ - value.keys())]
        out += [f"{where}: unknown field {k}" for k in sorted(value.keys() - hints.keys())]
        for k in sorted(value.keys() & hints.keys()):
            out += conforms(value[k], hints[k], f"{where}.{k}")
        return out
    if origin is list:
        if not isinstance(value, list):
            return [f"{where}: expected a list, got {type(value).__name__}"]
        return [e for i, v in enumerate(value) for e in (conforms(v, args[0], f"{where}[{i}]") if args else [])]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{where}: expected an object, got {type(value).__name__}"]
        return [e for k, v in value.items() for e in (conforms(v, args[1], f"{where}.{k}") if args else [])]
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, tp)
    return [] if ok else [f"{where}: expected {getattr(tp, '__name__', tp)}, got {type(value).__name__}"]
