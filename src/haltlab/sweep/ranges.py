"""Lists of integers and names as a sweep's options give them: `0-9`, `8,64,512`,
`mdelay,safe_halt`.

Integer lists stay ranges: `0-999999999999` is one `range`, counted in constant
time, so that an oversized sweep is refused before anything is built, and a
large one is walked, never listed. Overlaps are merged (`0-3,2` is seeds 0 to
3, once each), so no run is asked for twice.
"""

from __future__ import annotations

from typing import Collection, Iterator

from haltlab.errors import ConfigError

__all__ = ["parse_ints", "parse_names", "count", "walk"]


def parse_ints(field: str, text: str) -> tuple[range, ...]:
    """`text` as ascending, disjoint, non-empty ranges; a `ConfigError` on
    `field` for anything else."""
    spans = []
    for part in text.split(","):
        lo, sep, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi if sep else lo)
        except ValueError:
            raise ConfigError(field, text, "expected integers like 0-9 or 8,64,512") from None
        if first > last:
            raise ConfigError(field, text, f"{part} is an empty range")
        spans.append((first, last))
    merged: list[list[int]] = []
    for first, last in sorted(spans):
        if merged and first <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    return tuple(range(first, last + 1) for first, last in merged)


def parse_names(field: str, text: str, allowed: Collection[str]) -> tuple[str, ...]:
    """`text` as names from `allowed`, each once, in the order given."""
    names = list(dict.fromkeys(n for n in text.split(",") if n))
    choose = ", ".join(sorted(allowed))
    if not names:
        raise ConfigError(field, text, f"give at least one of {choose}")
    for n in names:
        if n not in allowed:
            raise ConfigError(field, text, f"unknown {n!r} (choose from {choose})")
    return tuple(names)


def count(ranges: tuple[range, ...]) -> int:
    return sum(len(r) for r in ranges)


def walk(ranges: tuple[range, ...]) -> Iterator[int]:
    for r in ranges:
        yield from r
