"""The dip measures on synthetic curves whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from picorr.dip import dip_report, dip_sentence, flattest_descent

G = np.round(np.arange(2.0, 3.41, 0.1), 10)
THEORY = 0.2 - 0.05 * (G - 2.0) + 0.04 * np.exp(-((G - 2.9) / 0.25) ** 2)  # falls, rises, falls


def theory_dip():
    g = np.linspace(2.0, 3.4, 14001)
    t = 0.2 - 0.05 * (g - 2.0) + 0.04 * np.exp(-((g - 2.9) / 0.25) ** 2)
    i = next(i for i in range(1, g.size - 1) if t[i] < t[i - 1] and t[i] < t[i + 1])
    return g[i], t[i]


def curves(Ns, c=6.0):
    """Finite-N curves: the bump's height reduced by c/N (0.04 - 6/N > 0 for N > 150), so the
    dip before it is washed out below N = 0.0254 / 6 ~ 236 (where the bump's steepest slope,
    3.43 times its height, no longer beats the descent 0.05)."""
    bump = np.exp(-((G - 2.9) / 0.25) ** 2)
    return {N: THEORY - c / N * bump for N in Ns}


def test_flattest_descent():
    g, s = flattest_descent([0, 1, 2, 3], [3.0, 2.0, 1.9, 0.0])
    assert (g, s) == (1.5, pytest.approx(-0.1))


def test_dip_absent_at_small_N_and_its_onset_is_predicted():
    gd, td = theory_dip()
    r = dip_report(G, curves([160, 180, 200]), gd, td, (2.0, 3.4))
    assert not r.has_dip.any()
    assert np.all(np.diff(r.flattest_slope) > 0)
    assert r.slope_limit > 0
    exact = dip_report(G, curves([10**6]), gd, td, (2.0, 3.4))
    assert exact.has_dip.all()
    # the slope is exactly linear in 1/N here: its limit is the theory's flattest slope
    assert r.slope_limit == pytest.approx(flattest_descent(G, THEORY)[1], rel=1e-9)
    assert 236 <= r.onset_N < 300
    text = dip_sentence(r)
    assert text.startswith("Not yet: up to N = 200") and f"N ≈ {r.onset_N:.0f}" in text


def test_dip_present_is_reported_with_its_first_N():
    gd, td = theory_dip()
    r = dip_report(G, curves([180, 400, 1600]), gd, td, (2.0, 3.4))
    assert r.has_dip.tolist() == [False, True, True]
    assert dip_sentence(r).startswith("Yes: the finite-N curves have a local minimum from N = 400")
    # the depth: how far the grid minimum lies below the lower of its neighbours
    y, i = curves([400])[400], int(np.flatnonzero(G == r.dip_Gamma[1])[0])
    assert y[i] < y[i - 1] and y[i] < y[i + 1]
    assert r.dip_depth[1] == pytest.approx(min(y[i - 1], y[i + 1]) - y[i], rel=1e-12)
    assert np.isnan(r.dip_depth[0]) and f"{r.dip_depth[1]:.1e} below" in dip_sentence(r)
    # the gap to the theory is the 1/N correction there (grid interpolation cancels out)
    far = dip_report(G, curves([10**9]), gd, td, (2.0, 3.4))
    bump = lambda g: np.interp(gd, G, np.exp(-((G - 2.9) / 0.25) ** 2))  # noqa: E731
    assert r.gap_at_theory_dip[-1] - far.gap_at_theory_dip[0] == pytest.approx(-6 / 1600 * bump(gd), rel=1e-5)


def test_an_observed_dip_is_compared_with_the_prediction_of_the_smaller_sizes():
    """Once a size shows the dip, the report keeps what the smaller sizes alone predicted
    (here the synthetic onset N* ~ 236-300, then seen at N = 400), and says so."""
    gd, td = theory_dip()
    r = dip_report(G, curves([160, 180, 200, 400]), gd, td, (2.0, 3.4))
    assert r.has_dip.tolist() == [False, False, False, True]
    b = r.before
    assert b.N.tolist() == [160, 180, 200] and not b.has_dip.any()
    assert b.onset_N == dip_report(G, curves([160, 180, 200]), gd, td, (2.0, 3.4)).onset_N
    assert 236 <= b.onset_N < 300 < 400
    text = dip_sentence(r)
    assert "from N = 400 on" in text
    assert f"(N = 160, 180, 200) had predicted the dip from N ≈ {b.onset_N:.0f}" in text
    # a single smaller size has no trend: nothing is claimed about a prediction
    one = dip_report(G, curves([180, 400, 1600]), gd, td, (2.0, 3.4))
    assert one.before.N.tolist() == [180] and "predicted" not in dip_sentence(one)


def test_missing_points_are_skipped():
    gd, td = theory_dip()
    full = curves([180, 400, 1600])
    holes = {n: y.copy() for n, y in full.items()}
    holes[1600][[0, 5, 14]] = np.nan  # points away from the dip and the bump's rise
    a = dip_report(G, full, gd, td, (2.0, 3.4))
    b = dip_report(G, holes, gd, td, (2.0, 3.4))
    assert b.has_dip.tolist() == a.has_dip.tolist()
    np.testing.assert_allclose(b.flattest_slope, a.flattest_slope)


def test_a_size_with_too_few_points_in_the_window_is_left_out():
    """A size with fewer than three points in the window (a sweep only begun) has no slope
    to compare: it is dropped from the report instead of failing or counting as a size."""
    gd, td = theory_dip()
    c = curves([180, 400, 1600])
    c[2000] = np.full(G.size, np.nan)
    c[2000][[3, 4]] = c[1600][[3, 4]]
    r = dip_report(G, c, gd, td, (2.0, 3.4))
    assert r.N.tolist() == [180, 400, 1600]
    np.testing.assert_allclose(r.flattest_slope, dip_report(G, curves([180, 400, 1600]), gd, td,
                                                            (2.0, 3.4)).flattest_slope)


def test_gap_at_the_theory_dip_is_not_extrapolated():
    """A size whose points do not reach the theory's dip (a sweep on the feature only) has no
    gap there (NaN, not the value at its first point); the sentence quotes the largest size
    that covers the dip and says that the largest does not."""
    gd, td = theory_dip()  # about 2.5 here
    c = curves([180, 400, 1600])
    c[1600][G < gd + 0.1] = np.nan  # the largest size only from just above the dip on
    r = dip_report(G, c, gd, td, (2.0, 3.4))
    assert np.isnan(r.gap_at_theory_dip[-1]) and np.isfinite(r.gap_at_theory_dip[:2]).all()
    text = dip_sentence(r)
    assert "the N = 400 curve lies" in text and "N = 1600 data do not reach" in text


def test_extrapolation_tracks_the_feature_of_the_largest_sizes():
    """Small sizes whose flattest descent lies elsewhere (a steep ramp at the window's edge,
    gone at large N) are left out of the 1/N extrapolation: the slope of the tracked
    feature follows a + b/N exactly at N >= 400, so the limit is a and the onset -b/a."""
    from picorr.dip import same_feature

    a, b = 0.01, -10.0  # onset at N* = 1000
    g = np.round(np.arange(2.0, 3.41, 0.1), 10)

    def curve(N):
        s = a + b / N  # slope of the tracked segment 2.8 -> 2.9
        y = 0.3 - 0.05 * (g - 2.0)  # falls with slope -0.05 everywhere ...
        y[g > 2.85] += (s + 0.05) * 0.1  # ... except the step 2.8 -> 2.9, slope s
        if N < 300:  # at small N a flatter spot near the window's edge
            y[g > 3.25] += 0.05 * 0.1 * 0.9
        return y

    sizes = [100, 160, 200, 400, 600, 800]
    r = dip_report(g, {n: curve(n) for n in sizes}, 2.6, 0.2, (2.0, 3.4))
    assert r.flattest_Gamma.tolist() == pytest.approx([3.25, 3.25, 3.25, 2.85, 2.85, 2.85])
    assert r.slope_sizes.tolist() == [400, 600, 800]
    assert r.slope_limit == pytest.approx(a, rel=1e-9)
    assert r.onset_N == pytest.approx(1000, rel=1e-9)
    assert "N = 400, 600, 800" in dip_sentence(r) and "N ≈ 1000" in dip_sentence(r)
    # fewer than three sizes on the feature: every size is used
    assert same_feature([3.3, 3.3, 2.85, 2.85], 0.1).tolist() == [True] * 4
