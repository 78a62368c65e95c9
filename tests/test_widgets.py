"""picorr.widgets: the explorer's computation, its drawing, and the live widget."""

from __future__ import annotations

import time

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from picorr import lmg, steady_state
from picorr.macroscopic import im_per_n_h0, lmg_macroscopic
from picorr import widgets


def _bar_heights(fig):
    ax = fig.axes[2]
    return [p.get_height() for p in ax.patches]


@pytest.mark.parametrize("params", [dict(coupling=3.0, h=0.5, Gamma=1.68, gamma=1.0, N=12),
                                    dict(coupling=3.0, h=0.0, Gamma=2.5, gamma=1.0, N=60),
                                    dict(coupling=-2.0, h=1.0, Gamma=0.5, gamma=1.0, N=8)])
def test_explore_values_are_the_library_values(params):
    r = widgets.explore(**params)
    ref = lmg_macroscopic(params["coupling"], params["h"], params["Gamma"], params["gamma"])
    assert r.IM_per_N_theory == pytest.approx(ref.IM_per_N, abs=1e-5)
    assert r.theory.attractor == ref.attractor
    s = steady_state(lmg(params["N"], params["coupling"], params["h"], params["Gamma"], params["gamma"]))
    assert r.IM_per_N_finite == pytest.approx(s.IM_per_N, abs=1e-12)
    # the trajectory solves Eq. (16): it ends on the attractor
    if r.theory.attractor == "fixed_point":
        np.testing.assert_allclose(r.trajectory[-1], r.cycle[0], atol=1e-3)
    else:
        d = np.min(np.linalg.norm(r.cycle - r.trajectory[-1], axis=1))
        assert d < 0.02


def test_h0_limit_cycle_is_eq17():
    r = widgets.explore(coupling=3.0, h=0.0, Gamma=2.0, gamma=1.0, N=10)
    assert r.IM_per_N_theory == pytest.approx(im_per_n_h0(2.0), abs=1e-7)
    np.testing.assert_allclose(r.cycle[:, 2], 0.5, atol=1e-6)  # m_z = gamma / Gamma
    np.testing.assert_allclose(np.hypot(r.cycle[:, 0], r.cycle[:, 1]), np.sqrt(2 * 1) / 2, atol=1e-6)


def test_large_N_is_not_solved_live():
    r = widgets.explore(h=0.5, N=widgets.FINITE_N_MAX + 1)
    assert r.finite is None and "too large" in r.finite_note
    assert widgets.explore(h=0.0, N=widgets.FINITE_N_MAX + 1).finite is not None  # rate equations


def test_static_figure_has_axes_with_data():
    fig = widgets.static_figure()
    assert len(fig.axes) == 3
    xy = fig.axes[0]
    assert any(len(l.get_xdata()) > 100 for l in xy.get_lines())  # trajectory and cycle
    heights = _bar_heights(fig)
    d = widgets.DEFAULTS
    ref = lmg_macroscopic(d["coupling"], d["h"], d["Gamma"], d["gamma"]).IM_per_N
    s = steady_state(lmg(d["N"], d["coupling"], d["h"], d["Gamma"], d["gamma"])).IM_per_N
    np.testing.assert_allclose(heights, [ref, s], atol=1e-5)


def test_widget_callback_updates_figure_fast():
    pytest.importorskip("ipywidgets")
    e = widgets.explorer()
    e.update()  # warm (SymPy derivation and compilation are cached after this)
    t0 = time.perf_counter()
    e.sliders["Gamma"].value = 2.5
    elapsed = time.perf_counter() - t0
    ref = lmg_macroscopic(3.0, 0.5, 2.5, 1.0).IM_per_N
    assert e.result.params["Gamma"] == 2.5
    assert e.result.IM_per_N_theory == pytest.approx(ref, abs=1e-5)
    assert _bar_heights(e.figure)[0] == pytest.approx(ref, abs=1e-5)
    assert elapsed < 3.0  # < 1 s on an idle machine; generous for shared CI runners
    e.sliders["h"].value = 0.0
    e.sliders["N"].value = 150
    assert e.result.finite is not None and e.result.finite.method == "rates"
