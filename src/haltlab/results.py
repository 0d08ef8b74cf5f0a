"""The result schema shared by the simulated scenarios and the lab.

The lab imports nothing from the model and the model nothing from the lab; both
write results through this module so that `validate` and `reproduce` can put a
simulated and a measured figure side by side by field name alone.

Field names carry their unit (`host_cpu_s_per_s`, `panic_to_end_ns`); time is an
integer number of nanoseconds unless the name says otherwise.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["dumps", "write_json_atomic", "write_text_atomic", "write_bytes_atomic"]


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
