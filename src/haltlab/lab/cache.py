"""The lab's cache: where downloaded kernels and built initramfs images live.

`$HALTLAB_CACHE`, else `$XDG_CACHE_HOME/haltlab`, else `~/.cache/haltlab`; never
the repository. Every experiment writes there (an initramfs at least), so the
place is checked before anything boots, by creating a file in it: permission
bits do not tell (root passes every access() check, yet cannot write to a
read-only mount or under /proc). A failure names the environment variable and
the path in one line, and so does a write that fails later (a full disk).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from haltlab.results import check_out_path, writing_to

__all__ = ["ENV", "cache_dir", "cache_label", "check_cache", "writing_cache"]

ENV = "HALTLAB_CACHE"


def cache_dir() -> Path:
    """Where the lab caches what it downloads and builds."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "haltlab"


def cache_label(cache: Path) -> str:
    """How an error names the cache: by the variable when the user set it."""
    if os.environ.get(ENV) and Path(os.environ[ENV]) == cache:
        return ENV
    return f"the lab cache ({ENV} unset)"


def check_cache(cache: Path | None = None) -> Path:
    """The cache directory, or a one-line UserError if the lab cannot write there."""
    cache = cache or cache_dir()
    check_out_path(cache, cache_label(cache), directory=True)
    return cache


@contextmanager
def writing_cache(cache: Path) -> Iterator[None]:
    """A failed write under the cache (a full disk, a mount gone read-only since
    the check) as one line naming the cache."""
    with writing_to(cache_label(cache), cache):
        yield
