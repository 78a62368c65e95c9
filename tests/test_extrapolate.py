"""The N -> infinity extrapolation on synthetic data with a known limit."""

from __future__ import annotations

import numpy as np
import pytest

from picorr.extrapolate import (compare_with_theory, extrapolate, extrapolate_curves,
                                max_difference_away_from, misses)
from picorr.models import ModelError

SIZES = np.array([50, 100, 200, 400, 800])


def test_pure_1_over_N_is_linear_and_exact():
    e = extrapolate(SIZES, 0.3 - 2.0 / SIZES)
    assert e.model == "linear"
    assert e.limit == pytest.approx(0.3, abs=1e-12)
    assert e.error < 1e-10


def test_curvature_chooses_the_quadratic_model():
    y = 0.25 + 1.5 / SIZES - 40.0 / SIZES**2
    e = extrapolate(SIZES, y)
    assert e.model == "quadratic"
    assert e.limit == pytest.approx(0.25, abs=1e-12)
    # the linear fit is biased; the error bar reports the spread between the models
    assert abs(e.limit_linear - 0.25) > 1e-4
    assert e.error == pytest.approx(abs(e.limit_linear - e.limit_quadratic))


def test_error_bar_covers_the_truth_with_noise_and_a_hidden_third_order():
    rng = np.random.default_rng(1)
    misses = 0
    for _ in range(200):
        y = 0.2 + 0.8 / SIZES - 15 / SIZES**2 + 300 / SIZES**3 + rng.normal(0, 2e-5, SIZES.size)
        e = extrapolate(SIZES, y)
        misses += abs(e.limit - 0.2) > e.error
    assert misses <= 10  # at most 5 % outside the error bar


def test_two_points_give_no_fake_error_bar():
    e = extrapolate([100, 200], [0.29, 0.295])
    assert e.limit == pytest.approx(0.3)
    assert np.isnan(e.error)


def test_curves_per_gamma_skip_missing_and_small_sizes():
    Ns = [20, 100, 200, 400]
    G = [1.0, 2.0]
    vals = np.array([[9.0, 9.0], [0.3 - 1 / 100, np.nan], [0.3 - 1 / 200, 0.1], [0.3 - 1 / 400, 0.1]])
    out = extrapolate_curves(Ns, G, vals, min_N=50)
    assert out["limit"][0] == pytest.approx(0.3)
    assert out["n_sizes"].tolist() == [3, 2]
    assert out["limit"][1] == pytest.approx(0.1)


@pytest.mark.parametrize("N,y,word", [([100], [0.1], "at least 2"), ([100, 100], [0.1, 0.2], "distinct"),
                                      ([100, 200], [0.1], "same length")])
def test_bad_input(N, y, word):
    with pytest.raises(ModelError, match=word):
        extrapolate(N, y)


def test_comparison_with_the_theory_point_by_point():
    # synthetic curves with known limits 0.3 and 0.1 (+ noise-free 1/N), a third point with
    # a limit off the "theory" by far more than its error bar, a fourth without data
    Ns = SIZES
    rng = np.random.default_rng(3)
    truth = np.array([0.3, 0.1, 0.2, 0.25])
    vals = truth[None, :] + 0.5 / Ns[:, None] + rng.normal(0, 1e-6, (Ns.size, 4))
    vals[:, 3] = np.nan
    ex = extrapolate_curves(Ns, [1.0, 2.0, 3.0, 4.0], vals)
    theory = np.array([0.3, 0.1, 0.19, 0.25])
    c = compare_with_theory(ex, theory)
    assert np.allclose(c["difference"][:3], ex["limit"][:3] - theory[:3])
    assert c["consistent"].tolist() == [True, True, False, False]
    assert c["n_compared"] == 3 and c["n_consistent"] == 2
    assert c["worst"] == 2
    assert c["sigma"][2] == pytest.approx(0.01 / ex["error"][2], rel=1e-3)
    assert np.isnan(c["sigma"][3])
    with pytest.raises(ModelError, match="one value per Gamma"):
        compare_with_theory(ex, theory[:3])


def test_comparison_without_any_error_bar_compares_nothing():
    ex = extrapolate_curves([100, 200], [1.0], np.array([[0.29], [0.295]]))
    c = compare_with_theory(ex, [0.3])
    assert c["n_compared"] == 0 and c["worst"] == -1 and not c["consistent"].any()


def test_misses_and_the_largest_difference_away_from_a_point():
    """On a hand-made comparison: which points miss their error bar inside a Gamma range,
    and the largest |difference| further than a margin from a transition."""
    comp = {"Gamma": np.array([0.8, 1.0, 1.2, 2.0, 2.5, 3.4, 3.5]),
            "difference": np.array([0.5, -0.9, 0.02, -0.03, 0.004, 0.001, np.nan]),
            "sigma": np.array([10.0, -9.0, 0.5, -3.0, 2.0, 0.1, np.nan]),
            "consistent": np.array([False, False, True, False, False, True, False])}
    assert misses(comp).tolist() == [0.8, 1.0, 2.0, 2.5]  # not 3.5: nothing compared there
    assert misses(comp, 2.0, 3.4).tolist() == [2.0, 2.5]  # both ends included
    assert misses(comp, 2.0 + 1e-12, 3.4).tolist() == [2.0, 2.5]  # grid round-off
    assert max_difference_away_from(comp, 1.0, 0.3) == pytest.approx(0.03)
    assert max_difference_away_from(comp, 1.0, 0.0) == pytest.approx(0.5)
    assert np.isnan(max_difference_away_from(comp, 1.0, 10.0))
    with pytest.raises(ModelError, match="margin must be >= 0"):
        max_difference_away_from(comp, 1.0, -0.1)
