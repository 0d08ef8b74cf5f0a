"""What a Debian kernel package says it carries: its changelog, parsed (pure).

Each Debian kernel package ships `usr/share/doc/<package>/changelog.gz`: entries
`linux (6.1.192-1) bookworm-security; urgency=high` followed by items, among
them every upstream stable release merged and the commits it brought
(`    - printk: Keep non-panic-CPUs out of console lock`). The changelog goes back
through the package's whole history (5.x, 6.0, 6.1 release candidates), so a
commit counts as carried only when an entry of the kernel's own stable series
lists it (`6.1.N-...`): that series starts from the upstream release and
takes its backports in those entries.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

__all__ = ["Entry", "parse_entries", "series_items", "read_changelog", "series_of"]

_HEADER = re.compile(r"^(\S+) \(([^)\s]+)\) [^;]*;", re.M)

Entry = tuple[str, str, list[str]]  # (source package, version, item lines)


def parse_entries(text: str) -> list[Entry]:
    """The entries of a Debian changelog, newest first, each with its item lines."""
    heads = list(_HEADER.finditer(text))
    entries = []
    for head, nxt in zip(heads, heads[1:] + [None]):
        body = text[head.end(): nxt.start() if nxt else len(text)]
        items = [line.strip().lstrip("*-").strip() for line in body.splitlines() if line.strip()[:1] in "*-"]
        entries.append((head.group(1), head.group(2), items))
    return entries


def series_of(version: str) -> str | None:
    """`6.1` from a package version `6.1.192-3` (or `6.1.192+3`), else None."""
    m = re.match(r"(\d+\.\d+)\.\d+", version or "")
    return m.group(1) if m else None


def series_items(text: str, series: str) -> list[str]:
    """The item lines of the entries of one stable series (`6.1.N...`), newest first;
    release candidates (`6.1~rc5`) and older series are left out."""
    stable = re.compile(re.escape(series) + r"\.\d+")
    return [item for _, version, items in parse_entries(text) if stable.match(version) for item in items]


def read_changelog(path: Path) -> str:
    """A changelog.gz as text (it is UTF-8; a stray byte is replaced, not fatal)."""
    return gzip.decompress(path.read_bytes()).decode("utf-8", "replace")
