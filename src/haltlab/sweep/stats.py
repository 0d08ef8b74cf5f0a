"""The 95% Wilson score interval of a hang rate (hangs k out of n runs).

Written out rather than taken from statsmodels (`proportion_confint(...,
method="wilson")`): it is four lines, and statsmodels with its SciPy would be
a large dependency for them. The Wilson interval, not the normal ("Wald")
one, because a campaign's rate is often 0 or near it, where Wald's interval
collapses to a point (0/200 would read "0 to 0"); Wilson's stays inside
[0, 1] and has close to its nominal coverage for small n (Brown, Cai and
DasGupta, "Interval Estimation for a Binomial Proportion", Statistical
Science 16(2), 2001, which recommends it).

    centre = (p + z^2 / 2n) / (1 + z^2 / n)
    half   = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / 4n^2)

with p = k / n and z the standard normal quantile of 0.975.
"""

from __future__ import annotations

import math

__all__ = ["wilson_interval", "Z_95"]

Z_95 = 1.959963984540054            # the standard normal's 0.975 quantile


def wilson_interval(k: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """(low, high) of the Wilson score interval for k successes in n trials."""
    if not 0 <= k <= n or n < 1:
        raise ValueError(f"wilson_interval: need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    p, z2 = k / n, z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)
