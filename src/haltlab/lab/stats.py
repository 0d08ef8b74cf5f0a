"""Summaries of repeated runs: median and min-max, the way every lab figure is reported.

A lab number is never one run: QEMU on a shared host jitters, so each experiment
repeats (`--runs N`) and reports the median (robust to one slow run) beside the
range (so a reader sees the spread instead of trusting a single figure).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable

__all__ = ["summarize"]


def summarize(values: Iterable[float | int | None]) -> dict | None:
    """`{"median", "min", "max", "n"}` over the values that are not None.

    Integers stay integers where the median allows it (the median of an even
    count of ns figures is rounded to the nearest ns), so `_ns` fields keep
    their unit's type. None when no run produced a value.
    """
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    med = statistics.median(vals)
    if all(isinstance(v, int) for v in vals):
        med = int(round(med))
    return {"median": med, "min": min(vals), "max": max(vals), "n": len(vals)}
