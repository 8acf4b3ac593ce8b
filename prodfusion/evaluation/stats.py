"""Statistics for rates and A/B tests: proportion intervals, two-proportion test, SRM check.

Used by the A/B report of the service (CTR = clicks / views, JR = jumps / views) and by the
offline evaluation. All functions take plain counts and return plain Python floats, so their
results can go straight into JSON.

Examples
--------
>>> lo, hi = proportion_ci(143, 10_000)
>>> round(lo, 5), round(hi, 5)
(0.01215, 0.01682)
>>> t = two_proportion_test(143, 10_000, 317, 10_000)
>>> round(t["rel_lift"], 4), t["p_value"] < 1e-15
(1.2168, True)
>>> srm_check([5_000, 5_000], [0.5, 0.5])["flagged"]
False
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

from prodfusion._checks import check_int, check_real
from prodfusion.errors import param_error

__all__ = ["proportion_ci", "two_proportion_test", "srm_check", "SRM_ALPHA"]

#: p-value below which :func:`srm_check` flags a sample-ratio mismatch (as in the A/B literature:
#: a mismatch this unlikely under the configured split means the assignment or logging is broken).
SRM_ALPHA = 0.001

CIMethod = Literal["wilson", "normal"]


def _check_counts(where: str, **counts: object) -> None:
    for name, value in counts.items():
        check_int(value, name, where, low=0, expected="a non-negative int")


def _check_alpha(alpha: float, where: str) -> float:
    return check_real(alpha, "alpha", where, low=0.0, high=1.0, low_open=True, high_open=True,
                      expected="a float in (0, 1)")


def _z(alpha: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(1.0 - alpha / 2.0))


def proportion_ci(
    successes: int, trials: int, alpha: float = 0.05, method: CIMethod = "wilson"
) -> tuple[float, float]:
    """Two-sided confidence interval of a binomial proportion ``successes / trials``.

    Parameters
    ----------
    successes, trials : int
        Counts, ``0 <= successes <= trials``.
    alpha : float, default 0.05
        1 − confidence level (0.05 gives a 95 % interval).
    method : {"wilson", "normal"}, default "wilson"
        ``"wilson"``: Wilson score interval (good coverage even for rates near 0 such as CTR,
        never leaves [0, 1]). ``"normal"``: Wald interval ``p ± z·sqrt(p(1−p)/n)`` clipped to
        [0, 1] (textbook; poor for small counts).

    Returns
    -------
    (lo, hi) : tuple of float
        ``(nan, nan)`` when ``trials == 0`` (no data, no interval).

    Examples
    --------
    >>> [round(x, 4) for x in proportion_ci(10, 100)]
    [0.0552, 0.1744]
    >>> [round(x, 4) for x in proportion_ci(10, 100, method="normal")]
    [0.0412, 0.1588]
    """
    where = "proportion_ci()"
    _check_counts(where, successes=successes, trials=trials)
    if successes > trials:
        raise param_error("successes", where, f"an int in [0, trials={trials}]", successes)
    alpha = _check_alpha(alpha, where)
    if method not in ("wilson", "normal"):
        raise param_error("method", where, "one of 'wilson', 'normal'", method)
    if trials == 0:
        return (math.nan, math.nan)
    n = float(trials)
    p = successes / n
    z = _z(alpha)
    if method == "normal":
        half = z * math.sqrt(p * (1.0 - p) / n)
        return (max(0.0, p - half), min(1.0, p + half))
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2.0 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denom
    # Exact ends at the boundaries (the formula gives them up to rounding).
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == trials else min(1.0, centre + half)
    return (lo, hi)


def two_proportion_test(
    x_a: int, n_a: int, x_b: int, n_b: int, alpha: float = 0.05
) -> dict[str, float]:
    """Compare two proportions ``p_a = x_a/n_a`` (control) and ``p_b = x_b/n_b`` (treatment).

    The test is the classic two-sided two-proportion z-test with the pooled standard error
    ``sqrt(p(1−p)(1/n_a + 1/n_b))``, ``p = (x_a + x_b)/(n_a + n_b)`` (identical to the
    chi-square test of the 2×2 table without continuity correction). The interval of the
    difference uses the unpooled (Wald) standard error ``sqrt(p_a(1−p_a)/n_a + p_b(1−p_b)/n_b)``.

    Parameters
    ----------
    x_a, n_a : int
        Successes and trials of the control (A).
    x_b, n_b : int
        Successes and trials of the treatment (B).
    alpha : float, default 0.05
        For the ``(1 − alpha)`` interval of the difference.

    Returns
    -------
    dict
        ``diff`` = p_b − p_a; ``diff_ci_lo``, ``diff_ci_hi``; ``rel_lift`` = p_b/p_a − 1
        (nan when p_a = 0); ``z``; ``p_value`` (two-sided). Undefined quantities (no trials,
        or both rates 0 or 1 so that the standard error is 0) are nan, never an exception.

    Examples
    --------
    >>> r = two_proportion_test(10, 100, 20, 100)
    >>> round(r["diff"], 3), round(r["z"], 4), round(r["p_value"], 4)
    (0.1, 1.9803, 0.0477)
    """
    where = "two_proportion_test()"
    _check_counts(where, x_a=x_a, n_a=n_a, x_b=x_b, n_b=n_b)
    if x_a > n_a:
        raise param_error("x_a", where, f"an int in [0, n_a={n_a}]", x_a)
    if x_b > n_b:
        raise param_error("x_b", where, f"an int in [0, n_b={n_b}]", x_b)
    alpha = _check_alpha(alpha, where)
    nan = math.nan
    if n_a == 0 or n_b == 0:
        return dict(diff=nan, diff_ci_lo=nan, diff_ci_hi=nan, rel_lift=nan, z=nan, p_value=nan)
    from scipy.stats import norm

    p_a, p_b = x_a / n_a, x_b / n_b
    diff = p_b - p_a
    rel_lift = (p_b / p_a - 1.0) if p_a > 0 else nan
    pooled = (x_a + x_b) / (n_a + n_b)
    se_pooled = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b))
    if se_pooled > 0:
        z = diff / se_pooled
        p_value = float(2.0 * norm.sf(abs(z)))
    else:  # both rates are 0 or both are 1: no variation, no test
        z, p_value = nan, nan
    se = math.sqrt(p_a * (1.0 - p_a) / n_a + p_b * (1.0 - p_b) / n_b)
    zc = _z(alpha)
    return dict(
        diff=float(diff),
        diff_ci_lo=float(diff - zc * se),
        diff_ci_hi=float(diff + zc * se),
        rel_lift=float(rel_lift),
        z=float(z),
        p_value=p_value,
    )


def srm_check(
    observed_counts: Sequence[int], weights: Sequence[float], alpha: float = SRM_ALPHA
) -> dict[str, float | bool]:
    """Sample-ratio-mismatch check: chi-square goodness of fit of counts to configured weights.

    Parameters
    ----------
    observed_counts : sequence of int
        Units (visitors, or views) observed per variant.
    weights : sequence of float
        Configured traffic weights per variant, same order; any positive scale (normalised here).
    alpha : float, default 0.001
        ``flagged`` is True when ``p_value < alpha``.

    Returns
    -------
    dict
        ``chi2``, ``p_value`` (``scipy.stats.chisquare`` with ``len(weights) − 1`` degrees of
        freedom) and ``flagged``. With no observations the statistic is nan and nothing is flagged.

    Examples
    --------
    >>> r = srm_check([5_100, 4_900], [1, 1])
    >>> round(r["chi2"], 3), round(r["p_value"], 4), r["flagged"]
    (4.0, 0.0455, False)
    """
    where = "srm_check()"
    obs = list(observed_counts)
    w = list(weights)
    if len(obs) != len(w) or len(obs) < 2:
        raise param_error(
            "weights", where, f"a sequence as long as observed_counts ({len(obs)}, at least 2)", w
        )
    for c in obs:
        _check_counts(where, observed_counts=c)
    for x in w:
        if (
            isinstance(x, bool)
            or not isinstance(x, (int, float, np.number))
            or not x > 0
            or not math.isfinite(x)
        ):
            raise param_error("weights", where, "positive finite numbers", w)
    alpha = _check_alpha(alpha, where)
    total = sum(int(c) for c in obs)
    if total == 0:
        return dict(chi2=math.nan, p_value=math.nan, flagged=False)
    from scipy.stats import chisquare

    wsum = float(sum(w))
    expected = np.array([total * x / wsum for x in w], dtype=np.float64)
    res = chisquare(np.asarray(obs, dtype=np.float64), expected)
    p = float(res.pvalue)
    return dict(chi2=float(res.statistic), p_value=p, flagged=bool(p < alpha))
