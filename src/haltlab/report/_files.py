"""Writing a set of result files all-or-nothing per file.

Every file haltlab writes goes through `haltlab.results` (text) or
`write_bytes_atomic` here (PNG), so a crash never leaves a half-written file.
`write_files` takes contents that are already rendered: a command renders every
file first and writes only when all of them exist, so an error while rendering
leaves nothing behind at all.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from haltlab.errors import UserError
from haltlab.results import write_text_atomic

__all__ = ["write_bytes_atomic", "write_files", "check_out_dir"]


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Binary twin of `haltlab.results.write_text_atomic`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def check_out_dir(directory: str | os.PathLike[str], option: str) -> Path:
    """Fail early, in one line, if `directory` cannot be an output directory."""
    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise UserError(f"{option} {directory}: exists and is not a directory")
    return path


def write_files(directory: Path, files: Mapping[str, str | bytes]) -> list[Path]:
    """Write already-rendered `files` (name -> text or bytes) into `directory`.

    The atomic writers create files through `mkstemp` (mode 0600); results are
    meant to be shared, so each file gets the mode `open()` would have given it.
    """
    mode = 0o666 & ~_umask()
    written = []
    for name, content in files.items():
        path = directory / name
        if isinstance(content, bytes):
            write_bytes_atomic(path, content)
        else:
            write_text_atomic(path, content)
        os.chmod(path, mode)
        written.append(path)
    return written


def _umask() -> int:
    mask = os.umask(0o022)   # the only way to read it is to set it; put it straight back
    os.umask(mask)
    return mask
