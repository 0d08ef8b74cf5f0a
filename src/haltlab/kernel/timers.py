"""Sleeping for a while: `usleep_range()`, `schedule_timeout()` and jiffies.

The hotplug waits sleep on timers, so their granularity is part of the
shutdown time:

* `usleep_range(min, max)` arms an hrtimer with soft expiry `min` and hard
  expiry `max` (`hrtimer_set_expires_range_ns()`); the clock event is
  programmed for the hard expiry (`hrtimer_reprogram()` uses
  `hrtimer_get_expires()`), and the timer fires earlier only when another
  timer's interrupt comes between the two. On a CPU with nothing else to do
  the sleep therefore lasts `max` [inferred from kernel/time/hrtimer.c]; the
  model sleeps `max`.
* `schedule_timeout(j)` arms a timer-wheel timer `j` jiffies ahead, which
  fires on a tick: the sleep ends between `j - 1` and `j` jiffies later
  depending on where in the current jiffy it began; the model sleeps to the
  `j`-th tick boundary after now (jiffies counted from time 0, one per
  `1/HZ`).

Shape: kernel/time/timer.c and kernel/time/hrtimer.c of 7.1 (the same in
5.10 for these calls).
"""

from __future__ import annotations

from haltlab.engine.context import ktime_get_ns
from haltlab.engine.ops import sleep_until

__all__ = ["jiffies", "jiffies_to_msecs", "msecs_to_jiffies", "usleep_range", "schedule_timeout_uninterruptible",
           "NSEC_PER_USEC", "NSEC_PER_MSEC", "NSEC_PER_SEC"]

NSEC_PER_USEC = 1_000
NSEC_PER_MSEC = 1_000_000
NSEC_PER_SEC = 1_000_000_000


def _never() -> bool:
    return False


def jiffies(k) -> int:
    return ktime_get_ns() // k.machine.tick_period_ns


def jiffies_to_msecs(k, j: int) -> int:
    return j * k.machine.tick_period_ns // NSEC_PER_MSEC


def msecs_to_jiffies(k, ms: int) -> int:
    """Rounded up, as the kernel's is."""
    return -(-ms * NSEC_PER_MSEC // k.machine.tick_period_ns)


async def usleep_range(k, min_us: int, max_us: int) -> None:
    await sleep_until(_never, timeout_ns=max_us * NSEC_PER_USEC, what=f"usleep_range({min_us}, {max_us})")


async def schedule_timeout_uninterruptible(k, timeout_jiffies: int) -> None:
    period = k.machine.tick_period_ns
    now = ktime_get_ns()
    until = (now // period + timeout_jiffies) * period
    await sleep_until(_never, timeout_ns=until - now, what=f"schedule_timeout({timeout_jiffies})")
