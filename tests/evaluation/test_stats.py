"""prodfusion.evaluation.stats against hand-computed values."""

from __future__ import annotations

import math

import pytest

from prodfusion.errors import ParameterError
from prodfusion.evaluation.stats import proportion_ci, srm_check, two_proportion_test

Z95 = 1.959963984540054  # norm.ppf(0.975)


def test_wilson_interval_hand_computed():
    # p = 0.1, n = 100, z² = 3.8414588:
    # centre = (0.1 + z²/200) / (1 + z²/100) = 0.11479661
    # half   = z * sqrt(0.0009 + z²/40000) / (1 + z²/100) = 0.05956817
    lo, hi = proportion_ci(10, 100)
    assert lo == pytest.approx(0.0552284, abs=1e-6)
    assert hi == pytest.approx(0.1743648, abs=1e-6)


def test_normal_interval_hand_computed():
    lo, hi = proportion_ci(10, 100, method="normal")
    half = Z95 * math.sqrt(0.1 * 0.9 / 100)
    assert (lo, hi) == pytest.approx((0.1 - half, 0.1 + half), abs=1e-12)
    # clipped at 0 when the Wald interval would go negative
    assert proportion_ci(1, 10, method="normal")[0] == 0.0


def test_interval_edges_and_alpha():
    assert proportion_ci(0, 50)[0] == 0.0
    assert proportion_ci(50, 50)[1] == 1.0
    # Wilson upper end at 0 successes: z²/(n + z²)
    assert proportion_ci(0, 50)[1] == pytest.approx(Z95**2 / (50 + Z95**2), rel=1e-9)
    lo, hi = proportion_ci(0, 0)
    assert math.isnan(lo) and math.isnan(hi)
    w95 = proportion_ci(30, 200)
    w99 = proportion_ci(30, 200, alpha=0.01)
    assert w99[0] < w95[0] < 0.15 < w95[1] < w99[1]


def test_interval_rejects_bad_parameters():
    with pytest.raises(
        ParameterError,
        match=r"The 'successes' parameter of proportion_ci\(\) must be an int in \[0, trials=10\]. Got 11 instead.",
    ):
        proportion_ci(11, 10)
    with pytest.raises(
        ParameterError,
        match=r"The 'trials' parameter of proportion_ci\(\) must be a non-negative int. Got -1 instead.",
    ):
        proportion_ci(0, -1)
    with pytest.raises(
        ParameterError,
        match=r"The 'method' parameter of proportion_ci\(\) must be one of 'wilson', 'normal'. Got 'exact' instead.",
    ):
        proportion_ci(1, 10, method="exact")
    with pytest.raises(ParameterError, match=r"The 'alpha' parameter"):
        proportion_ci(1, 10, alpha=1.5)


def test_two_proportion_hand_computed():
    # 10/100 vs 20/100: pooled p = 0.15, se = sqrt(0.15*0.85*(2/100)) = 0.05049752
    r = two_proportion_test(10, 100, 20, 100)
    assert r["diff"] == pytest.approx(0.1, abs=1e-12)
    assert r["z"] == pytest.approx(0.1 / math.sqrt(0.15 * 0.85 * 0.02), rel=1e-12)
    assert r["z"] == pytest.approx(1.980295, abs=1e-6)
    assert r["p_value"] == pytest.approx(math.erfc(1.980295 / math.sqrt(2)), abs=1e-6)  # 0.0476704
    assert r["rel_lift"] == pytest.approx(1.0, abs=1e-12)
    se = math.sqrt(0.1 * 0.9 / 100 + 0.2 * 0.8 / 100)  # 0.05
    assert r["diff_ci_lo"] == pytest.approx(0.1 - Z95 * se, abs=1e-12)
    assert r["diff_ci_hi"] == pytest.approx(0.1 + Z95 * se, abs=1e-12)


def test_two_proportion_matches_chi_square_of_2x2_table():
    from scipy.stats import chi2_contingency

    x_a, n_a, x_b, n_b = 143, 10_000, 317, 10_000  # the paper's CTRs 1.43 % -> 3.17 %
    r = two_proportion_test(x_a, n_a, x_b, n_b)
    chi2, p, _, _ = chi2_contingency([[x_a, n_a - x_a], [x_b, n_b - x_b]], correction=False)
    assert r["z"] ** 2 == pytest.approx(chi2, rel=1e-9)
    assert r["p_value"] == pytest.approx(p, rel=1e-6)
    assert r["rel_lift"] == pytest.approx(317 / 143 - 1, rel=1e-12)


def test_two_proportion_degenerate_cases_are_nan_not_errors():
    r = two_proportion_test(0, 100, 0, 100)
    assert r["diff"] == 0.0 and math.isnan(r["z"]) and math.isnan(r["p_value"])
    assert math.isnan(r["rel_lift"])
    r = two_proportion_test(0, 0, 3, 10)
    assert all(math.isnan(v) for v in r.values())
    with pytest.raises(
        ParameterError,
        match=r"The 'x_b' parameter of two_proportion_test\(\) must be an int in \[0, n_b=5\]. Got 6 instead.",
    ):
        two_proportion_test(1, 5, 6, 5)


def test_srm_hand_computed():
    # expected 5000 each: chi2 = 2 * 100² / 5000 = 4; P(chi2_1 > 4) = 0.0455003
    r = srm_check([5_100, 4_900], [0.5, 0.5])
    assert r["chi2"] == pytest.approx(4.0, abs=1e-12)
    assert r["p_value"] == pytest.approx(0.0455003, abs=1e-6)
    assert r["flagged"] is False
    # unequal weights 90/10 of 1000: expected 900/100; observed 850/150
    # chi2 = 50²/900 + 50²/100 = 2.7778 + 25 = 27.7778 -> p ~ 1.4e-7 -> flagged
    r = srm_check([850, 150], [9, 1])
    assert r["chi2"] == pytest.approx(2500 / 900 + 25.0, rel=1e-12)
    assert r["p_value"] < 0.001 and r["flagged"] is True


def test_srm_three_variants_and_bad_input():
    r = srm_check([100, 100, 100], [1, 1, 1])
    assert r["chi2"] == 0.0 and r["p_value"] == pytest.approx(1.0) and r["flagged"] is False
    r = srm_check([0, 0], [1, 1])
    assert math.isnan(r["chi2"]) and r["flagged"] is False
    with pytest.raises(
        ParameterError,
        match=r"The 'weights' parameter of srm_check\(\) must be a sequence as long as observed_counts \(2, at least 2\)",
    ):
        srm_check([1, 2], [1, 1, 1])
    with pytest.raises(
        ParameterError,
        match=r"The 'weights' parameter of srm_check\(\) must be positive finite numbers",
    ):
        srm_check([1, 2], [1, 0])
