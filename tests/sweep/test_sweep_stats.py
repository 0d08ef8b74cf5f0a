"""The Wilson interval against values worked by hand from the formula (to six
places, with z^2 = 3.841459), and the closed form of k = 0: high = z^2 / (n + z^2)."""

import pytest

from haltlab.sweep.stats import wilson_interval


@pytest.mark.parametrize("k, n, low, high", [
    (200, 1409, 0.124694, 0.161142),      # S2's 200 hangs in 1,409 runs
    (0, 200, 0.0, 0.018845),              # no hang: 3.8415 / (200 + 3.8415)
    (25, 100, 0.175454, 0.343046),
    (5, 10, 0.236593, 0.763407),          # symmetric about 1/2
    (10, 10, 0.722467, 1.0),
])
def test_known_values(k, n, low, high):
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=2e-6) and hi == pytest.approx(high, abs=2e-6)


def test_it_brackets_the_rate_and_narrows_with_n():
    for k, n in [(1, 3), (14, 100), (140, 1000)]:
        lo, hi = wilson_interval(k, n)
        assert lo < k / n < hi
    assert wilson_interval(140, 1000)[1] - wilson_interval(140, 1000)[0] < wilson_interval(14, 100)[1] - wilson_interval(14, 100)[0]


@pytest.mark.parametrize("k, n", [(-1, 5), (6, 5), (0, 0)])
def test_refuses_what_is_not_a_count(k, n):
    with pytest.raises(ValueError):
        wilson_interval(k, n)
