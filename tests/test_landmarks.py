"""Landmarks of the theory curve against the h = 0 analytic results: the limit cycle is
born at Gamma = gamma (Eq. 17 needs Gamma > gamma) and the maximum of the closed form (18)
is Gamma* (located by :func:`picorr.macroscopic.gamma_star` on Eq. 18, not on time averages)."""

from __future__ import annotations

import numpy as np
import pytest

from picorr.landmarks import extremum, hopf_point, theory_landmarks
from picorr.macroscopic import gamma_star, lmg_macroscopic
from picorr.models import ModelError


def test_hopf_point_at_h0_is_gamma():
    m = hopf_point(3.0, 0.0, (0.5, 1.5), gamma=1.0)
    assert m.Gamma == pytest.approx(1.0, abs=1e-8)


def test_maximum_at_h0_is_gamma_star_from_eq_18():
    Gs, Imax = gamma_star(1.0)
    m = extremum(3.0, 0.0, (1.5, 1.9))
    assert m.kind == "maximum"
    assert abs(m.Gamma - Gs) < 1e-6
    assert m.error < 1e-6
    assert m.IM_per_N == pytest.approx(Imax, abs=1e-10)


def test_landmarks_of_h05_on_a_coarse_grid():
    G = np.array([0.9, 1.3, 1.7, 2.1, 2.5, 2.9, 3.3])
    rs = [lmg_macroscopic(3.0, 0.5, g) for g in G]
    marks = theory_landmarks(3.0, 0.5, G, [r.IM_per_N for r in rs], [r.attractor for r in rs])
    kinds = [m.kind for m in marks]
    assert kinds[0] == "hopf" and "maximum" in kinds and "minimum" in kinds
    hopf = marks[0].Gamma
    assert 0.9 < hopf < 1.3
    # the fixed point is stable just below and unstable just above
    from picorr.landmarks import _growth_rate

    assert _growth_rate(3.0, 0.5, hopf - 1e-4, 1.0) < 0 < _growth_rate(3.0, 0.5, hopf + 1e-4, 1.0)
    dip = next(m for m in marks if m.kind == "minimum")
    for s in (-1e-3, 1e-3):  # a true local minimum
        assert lmg_macroscopic(3.0, 0.5, dip.Gamma + s).IM_per_N > dip.IM_per_N


def test_bracket_without_extremum_is_an_error():
    with pytest.raises(ModelError, match="does not contain an extremum"):
        extremum(3.0, 0.0, (2.0, 2.5))
