"""What a timed exploration widens each cost by, and its timing assumptions in words.

Every scenario the explorer checks states the same two things for a verdict
(issue 7: "every verdict states the timing assumptions it rests on"), so they
are said once here: the tolerance is the config's or the profile's
`timing_tolerance` (a labelled estimate, cited there), and the assumptions list
the profile's cost keys the durations come from.
"""

from __future__ import annotations

from functools import lru_cache

from haltlab.engine.timing import Timing
from haltlab.errors import ConfigError
from haltlab.machine.profile import KEYS, load_profile

__all__ = ["profile_of", "tolerance_pct", "assumptions", "check_search_fields"]


@lru_cache(maxsize=8)
def profile_of(name: str):
    """A shipped or user profile by name, loaded once per process."""
    return load_profile(name)


def check_search_fields(cfg) -> None:
    """The fields every explorer scenario's config has: `timing`, `reduce`,
    `tolerance_pct`, `max_states`; a bad one is a `ConfigError` naming it."""
    from haltlab.engine.explorer import Reduce
    if not isinstance(cfg.timing, Timing):
        raise ConfigError("timing", cfg.timing, "choose untimed, timed or widened")
    if not isinstance(cfg.reduce, Reduce):
        raise ConfigError("reduce", cfg.reduce, "choose none, symmetry, por or all")
    if cfg.tolerance_pct is not None and not 0 <= cfg.tolerance_pct <= 100:
        raise ConfigError("tolerance_pct", cfg.tolerance_pct, "a timing tolerance is 0 to 100 %")
    if cfg.max_states < 1:
        raise ConfigError("max_states", cfg.max_states, "must be at least 1")


def tolerance_pct(profile: str, given: int | None) -> int:
    """`given`, or the profile's `timing_tolerance` in percent; a profile
    without one is a `ConfigError` naming `tolerance_pct`."""
    if given is not None:
        return given
    p = profile_of(profile)
    if "timing_tolerance" not in p.params:
        raise ConfigError("tolerance_pct", None, f"profile {profile} has no [costs] timing_tolerance; "
                          "give one, or explore untimed")
    return round(p.get("timing_tolerance") * 100)


def assumptions(profile: str, timing: Timing, given_pct: int | None, *, untimed_rule: str = "",
                durations: str) -> str:
    """A verdict's timing assumptions: untimed, every interleaving (and
    `untimed_rule`, if the scenario has one); timed, every duration within the
    tolerance of its profile cost, the keys named, and what else is timed
    (`durations`)."""
    if timing is Timing.UNTIMED:
        words = "untimed: every interleaving of the CPUs' steps, whatever they cost"
        return f"{words}; {untimed_rule}" if untimed_rule else words
    costs = sorted(k for k in profile_of(profile).params
                   if KEYS[k].section == "costs" and KEYS[k].dimension == "time")
    words = (f"timed: every duration within {tolerance_pct(profile, given_pct)} % of its cost in profile "
             f"{profile} ({', '.join(costs)}; {durations})")
    if timing is Timing.WIDENED:
        words += ("; zones widened where a run comes back to the same state (an over-approximation: ok is a "
                  "proof, a livelock a candidate)")
    return words

