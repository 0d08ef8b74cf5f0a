"""Writing a set of result files as one: the directory holds the old set or the
new one, never a mix.

`simulate panic --trace DIR` and `reproduce --out DIR` each write several files
that belong together (a dmesg and the result.json of the same run). Writing
them one by one into DIR would leave, after a failure midway (a full disk), the
new run's first files beside the old run's last ones. So `write_files` writes
the whole set into a fresh sibling directory `.DIR.tmp-XXXX` and swaps it into
place; an error while writing leaves DIR exactly as it was.

The swap is one `renameat2(RENAME_EXCHANGE)` where the kernel and file system
have it (Linux 3.15+; ext4, xfs, btrfs, tmpfs): atomic, no moment without DIR.
Elsewhere it is two renames, the old set moved aside to `.DIR.old-XXXX`, the
new one renamed to DIR. A crash between those two renames leaves no DIR at all,
with both complete sets beside it (`.DIR.old-*` the previous one, `.DIR.tmp-*`
the new one, each with its manifest); nothing is mixed, and the user renames
the one they want. A crash before the swap leaves a stale `.DIR.tmp-*` and DIR
untouched; after it, a stale `.DIR.old-*`. Neither is removed automatically:
nothing proves that no other haltlab is writing it.

Each set carries a manifest, `.haltlab-set`, listing its files. A directory is
replaced only if everything in it belongs to a set (the manifest's names, or
the new set's names for a directory written before manifests): a directory
with the user's own files in it is refused, never deleted. The current
directory, or one that holds it, is refused too.

Contents come already rendered: a command renders every file first and
writes only when all of them exist, so an error while rendering leaves nothing
behind at all.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from haltlab.errors import UserError
from haltlab.results import show_path, writing_to

__all__ = ["write_files", "check_set_dir", "MANIFEST"]

MANIFEST = ".haltlab-set"
_RENAME_EXCHANGE = 2            # <linux/fs.h>
_AT_FDCWD = -100


def check_set_dir(directory: str | os.PathLike[str], option: str,
                  names: Iterable[str] = ()) -> None:
    """Fail now, in one line, if `write_files` would refuse `directory`: the
    current directory (or one that holds it), or a directory holding files that
    are neither in its manifest nor among `names`. A directory written before
    manifests existed is judged by `names` only (pass the set's names when the
    command knows them before its work).

    The set is written as a fresh sibling and renamed into place, so the
    parent must take a new directory, and `directory` must not be a mount point
    (the rename would fail with EBUSY, after the work)."""
    directory = Path(directory)
    if os.path.ismount(directory):
        raise UserError(f"{option} {show_path(directory)}: is a mount point; the files are written "
                        "beside it and renamed into place, so give a directory inside it")
    parent = Path(os.path.realpath(directory)).parent
    if parent.is_dir():             # else it will be made, as check_out_path has tried
        with writing_to(option, show_path(directory)):
            os.rmdir(tempfile.mkdtemp(prefix=".haltlab-probe.", dir=parent))
    if not directory.is_dir():
        return
    why = _refusal(Path(os.path.realpath(directory)), set(names), legacy_ok=not names)
    if why is not None:
        raise UserError(f"{option} {show_path(directory)}: {why}")


def write_files(directory: Path, files: Mapping[str, str | bytes]) -> list[Path]:
    """Replace `directory` with exactly `files` (name -> text or bytes), all or
    nothing (see the module docstring). Returns the paths written."""
    directory = Path(os.path.realpath(directory))
    why = _refusal(directory, set(files), legacy_ok=False) if directory.is_dir() else None
    if why is not None:
        raise UserError(f"{show_path(directory)}: {why}")
    directory.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        for name, content in files.items():
            _write(fresh / name, content.encode("utf-8") if isinstance(content, str) else content)
        _write(fresh / MANIFEST, "".join(f"{name}\n" for name in files).encode("utf-8"))
        os.chmod(fresh, 0o777 & ~_umask())          # mkdtemp's is 0700; a plain mkdir's is not
        _fsync_dir(fresh)
        _swap_into_place(fresh, directory)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    return [directory / name for name in files]


def _refusal(directory: Path, names: set[str], *, legacy_ok: bool) -> str | None:
    try:
        cwd = Path(os.path.realpath(os.getcwd()))
    except OSError:                                 # the working directory was removed
        cwd = None
    if cwd is not None and (directory == cwd or directory in cwd.parents):
        return "is the current directory or holds it; give a directory of its own for the files"
    entries = set(os.listdir(directory))
    if not entries:
        return None
    listed = _manifest(directory)
    if listed is None and legacy_ok:
        return None                                 # judged again when the names are known
    foreign = sorted(entries - names - (listed or set()) - {MANIFEST})
    if not foreign:
        return None
    shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
    return (f"holds files that are not a haltlab set ({shown}); it would be replaced whole: "
            "give a new or empty directory")


def _manifest(directory: Path) -> set[str] | None:
    try:
        return set((directory / MANIFEST).read_text("utf-8").splitlines())
    except (OSError, UnicodeDecodeError):
        return None


def _write(path: Path, data: bytes) -> None:
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _swap_into_place(fresh: Path, directory: Path) -> None:
    try:
        os.rename(fresh, directory)                 # no directory yet, or an empty one
        _fsync_dir(directory.parent)
        return
    except OSError as e:
        if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
    if _exchange(fresh, directory):
        old = fresh                                 # the exchange put the old set there
    else:
        old = Path(tempfile.mkdtemp(prefix=f".{directory.name}.old-", dir=directory.parent))
        try:
            os.rename(directory, old)               # onto the empty directory mkdtemp made
        except BaseException:
            os.rmdir(old)
            raise
        try:
            os.rename(fresh, directory)             # a crash between these two: module docstring
        except BaseException:                       # ^C, SIGTERM, an error: the old set goes back
            os.rename(old, directory)
            raise
    _fsync_dir(directory.parent)
    shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap `a` and `b` atomically with renameat2(RENAME_EXCHANGE); False where
    the C library, kernel or file system has no such call."""
    renameat2 = getattr(_libc(), "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


@functools.lru_cache(maxsize=1)
def _libc():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name, use_errno=True) if name else None
    except OSError:
        return None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
