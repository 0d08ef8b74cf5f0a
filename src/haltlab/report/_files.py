"""Writing a set of result files all-or-nothing per file.

Every file haltlab writes goes through `haltlab.results`' atomic writers, so a
crash never leaves a half-written file; commands check the directory first and
write inside `writing_to` (both in `haltlab.results`).
`write_files` takes contents that are already rendered: a command renders every
file first and writes only when all of them exist, so an error while rendering
leaves nothing behind at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from haltlab.results import write_bytes_atomic, write_text_atomic

__all__ = ["write_files"]


def write_files(directory: Path, files: Mapping[str, str | bytes]) -> list[Path]:
    """Write already-rendered `files` (name -> text or bytes) into `directory`."""
    written = []
    for name, content in files.items():
        path = directory / name
        if isinstance(content, bytes):
            write_bytes_atomic(path, content)
        else:
            write_text_atomic(path, content)
        written.append(path)
    return written
