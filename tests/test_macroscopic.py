"""Eq. (13) from the mean-field attractor, against oracles independent of the library:
the closed form (18)-(19) typed here, a brute-force time average of Eq. (16) typed here,
and a d = 3 model whose attractor is the LMG limit cycle embedded in two of its levels."""

import math

import numpy as np
import pytest
import sympy as sp
from scipy.integrate import solve_ivp

from picorr.macroscopic import (
    ConvergenceWarning,
    MultipleAttractorsError,
    MultipleAttractorsWarning,
    b,
    entropy_xi,
    find_attractor,
    gamma_star,
    im_per_n_h0,
    lmg_macroscopic,
    macroscopic_limit,
    sweep_gamma,
)
from picorr.meanfield import UnitModel, derive_meanfield, lmg_meanfield, spin1_lmg
from picorr.models import ModelError, QubitModel


# --------------------------------------------------------------------------------------
# Oracles typed from the paper
# --------------------------------------------------------------------------------------
def b_oracle(x):
    """Eq. (19), from the eigenvalues of a qubit density matrix."""
    lam = np.array([(1 + x) / 2, (1 - x) / 2])
    lam = lam[lam > 0]
    return float(-(lam * np.log(lam)).sum())


def eq18(Gamma, gamma=1.0):
    if Gamma <= gamma:
        return 0.0
    mz = gamma / Gamma
    mxy = math.sqrt(2 * gamma * (Gamma - gamma)) / Gamma
    return b_oracle(mz) - b_oracle(math.hypot(mz, mxy))


def eq16(t, m, J, h, G, g):
    mx, my, mz = m
    return [J * my * mz + G * mx * mz / 2 - g * mx / 2,
            -J * mx * mz - h * mz + G * my * mz / 2 - g * my / 2,
            h * my - G * (mx**2 + my**2) / 2 + g * (1 - mz)]


def test_b_eq19():
    for x in (0.0, 0.1, 0.5, 0.9, 0.999999, 1.0):
        assert b(x) == pytest.approx(b_oracle(x), abs=1e-15)
    assert b(0.0) == pytest.approx(math.log(2), abs=1e-16)
    assert b(1.0 + 1e-15) == 0.0  # rounding past |m| = 1 is clipped


def test_closed_form_h0():
    Gs = np.array([0.3, 1.0, 1.2, 1.68, 2.5, 4.0])
    np.testing.assert_allclose(im_per_n_h0(Gs), [eq18(G) for G in Gs], atol=1e-15)
    assert im_per_n_h0(3.0, gamma=2.0) == pytest.approx(eq18(3.0, 2.0), abs=1e-15)


# --------------------------------------------------------------------------------------
# h = 0: time average on the attractor against the closed form (18)
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("Gamma", [1.2, 1.68, 2.5, 4.0])
def test_h0_time_average_matches_closed_form(Gamma):
    r = lmg_macroscopic(3.0, 0.0, Gamma, 1.0)
    assert r.attractor == "limit_cycle" and r.unique and r.converged
    assert abs(r.IM_per_N - eq18(Gamma)) < 1e-7
    assert r.error_estimate < 1e-6
    assert abs(r.IM_per_N - eq18(Gamma)) <= max(r.error_estimate, 1e-12) * 10
    # period 2 pi / omega with omega = J gamma / Gamma (Eq. 17)
    assert r.period == pytest.approx(2 * math.pi / (3.0 / Gamma), rel=1e-8)
    np.testing.assert_allclose(r.m_mean, [0, 0, 1 / Gamma], atol=1e-9)


def test_h0_fixed_point_below_threshold():
    r = lmg_macroscopic(3.0, 0.0, 0.6, 1.0)
    assert r.attractor == "fixed_point" and r.unique
    assert r.IM_per_N == 0.0
    np.testing.assert_allclose(r.m_mean, [0, 0, 1], atol=1e-9)


def test_gamma_star_located_numerically():
    G_star, I_max = gamma_star()
    assert G_star == pytest.approx(1.68, abs=0.01)  # the paper's "Gamma ≈ 1.68 gamma"
    assert I_max == pytest.approx(eq18(G_star), abs=1e-14)
    for dG in (1e-3, -1e-3):  # a maximum of the oracle
        assert eq18(G_star + dG) < I_max
    # the time-averaged (numerical) curve peaks there too
    vals = [lmg_macroscopic(3.0, 0.0, G, 1.0, n_initial=1).IM_per_N for G in (G_star - 0.05, G_star, G_star + 0.05)]
    assert vals[1] > vals[0] and vals[1] > vals[2]


# --------------------------------------------------------------------------------------
# h != 0: against a brute-force average of Eq. (16) over many periods
# --------------------------------------------------------------------------------------
def brute_force_average(J, h, G, g, t_skip=300.0, n_periods=60):
    sol = solve_ivp(eq16, (0, t_skip + 400), [0.1, 0.0, 0.9], args=(J, h, G, g), method="DOP853",
                    rtol=1e-12, atol=1e-14, dense_output=True)
    ts = np.linspace(t_skip, t_skip + 400, 400001)
    mx = sol.sol(ts)[0]
    # upward zero crossings of m_x - mean, linearly interpolated
    c = mx - 0.5 * (mx.max() + mx.min())
    i = np.nonzero((c[:-1] < 0) & (c[1:] >= 0))[0]
    tc = ts[i] - c[i] * (ts[i + 1] - ts[i]) / (c[i + 1] - c[i])
    t0, t1 = tc[0], tc[n_periods]
    tt = np.linspace(t0, t1, 200 * n_periods + 1)
    m = sol.sol(tt)
    w = np.full(tt.size, 1.0)
    w[0] = w[-1] = 0.5
    w /= w.sum()
    m_mean = m @ w
    S = np.array([b_oracle(min(np.linalg.norm(v), 1.0)) for v in m.T])
    return b_oracle(np.linalg.norm(m_mean)) - S @ w, m_mean


def test_h05_matches_brute_force_average():
    r = lmg_macroscopic(3.0, 0.5, 2.7, 1.0)
    assert r.attractor == "limit_cycle" and r.unique and r.converged
    assert r.error_estimate < 1e-6
    I_bf, m_bf = brute_force_average(3.0, 0.5, 2.7, 1.0)
    assert r.IM_per_N == pytest.approx(I_bf, abs=2e-6)
    np.testing.assert_allclose(r.m_mean, m_bf, atol=2e-6)
    assert r.IM_per_N == pytest.approx(r.S_of_mean - r.mean_S, abs=1e-15)


def test_sweep_matches_single_points_and_closed_form():
    G = np.array([0.5, 1.3, 1.68, 2.2, 3.0])
    s = sweep_gamma(G, coupling=3.0, h=0.0, gamma=1.0, workers=2)
    np.testing.assert_allclose(s.IM_per_N, [eq18(x) for x in G], atol=1e-7)
    assert list(s.attractor) == ["fixed_point"] + ["limit_cycle"] * 4
    G2 = np.array([1.5, 2.6, 2.7])
    s2 = sweep_gamma(G2, coupling=3.0, h=0.5, gamma=1.0, workers=1)
    for Gi, I in zip(G2, s2.IM_per_N):
        assert I == pytest.approx(lmg_macroscopic(3.0, 0.5, Gi, 1.0, n_initial=1).IM_per_N, abs=1e-7)
    assert s2.converged.all()


# --------------------------------------------------------------------------------------
# Non-convergence and non-uniqueness are reported
# --------------------------------------------------------------------------------------
def test_unconverged_average_is_flagged():
    mf = lmg_meanfield()
    a = find_attractor(mf, [3.0, 0.5, 2.7, 1.0], [0.1, 0.0, 0.9], t_transient=0.0, t_chunk=0.5, t_max=1.0)
    assert a.kind == "quasi_periodic_or_chaotic"
    assert not a.converged and a.error_estimate > 1e-6
    with pytest.warns(ConvergenceWarning):
        r = macroscopic_limit(mf, [3.0, 0.5, 2.7, 1.0], n_initial=1, t_transient=0.0, t_chunk=0.5, t_max=1.0)
    assert not r.converged


def _embed(A):
    M = sp.zeros(3, 3)
    M[:2, :2] = sp.Matrix(A)
    return M


SX = sp.Matrix([[0, 1], [1, 0]])
SY = sp.Matrix([[0, -sp.I], [sp.I, 0]])
SPLUS = sp.Matrix([[0, 1], [0, 0]])


def embedded_lmg(extra_local):
    """The LMG model (14)-(15) acting on levels 0, 1 of a qutrit (level 0 = spin up)."""
    J, h, G, g = sp.symbols("coupling h Gamma gamma", real=True)
    k = sp.Symbol("kappa", nonnegative=True)
    return UnitModel(
        d=3,
        H1=h * _embed(SX) / 2,
        H2=((J, _embed(SX) / 2, _embed(SX) / 2), (J, _embed(SY) / 2, _embed(SY) / 2)),
        collective=((G, _embed(SPLUS.T)),),
        local=((g, _embed(SPLUS)), (k, extra_local)),
        params=(J, h, G, g, k),
        name="embedded lmg",
    )


def test_qutrit_end_to_end_embedded_lmg():
    # level 2 decays into level 0: the attractor is the embedded LMG limit cycle, so the
    # d = 3 computation (8-component xi, Gell-Mann basis) must reproduce Eq. (18)
    leak = sp.zeros(3, 3)
    leak[0, 2] = 1
    mf = derive_meanfield(embedded_lmg(leak))
    r = macroscopic_limit(mf, dict(coupling=3.0, h=0.0, Gamma=1.68, gamma=1.0, kappa=0.5))
    assert r.attractor == "limit_cycle" and r.unique and r.converged
    assert r.IM_per_N == pytest.approx(eq18(1.68), abs=1e-7)


def test_multiple_attractors_detected():
    # local dephasing D[sigma_z] alone conserves m_z: every point (0, 0, m_z) is a
    # (marginal) fixed point, and initial conditions with different m_z end on different ones
    mf = derive_meanfield(QubitModel(N=2, gamma_z=0.5, name="dephasing"))
    ics = [[0.3, 0.0, 0.5], [0.2, 0.1, -0.4]]
    with pytest.warns(MultipleAttractorsWarning):
        r = macroscopic_limit(mf, [], initial_conditions=ics)
    assert not r.unique and r.attractor == "multiple" and math.isnan(r.IM_per_N)
    assert [a.kind for a in r.attractors] == ["fixed_point", "fixed_point"]
    np.testing.assert_allclose(r.attractors[0].point, [0, 0, 0.5], atol=1e-9)
    np.testing.assert_allclose(r.attractors[1].point, [0, 0, -0.4], atol=1e-9)
    with pytest.raises(MultipleAttractorsError):
        macroscopic_limit(mf, [], initial_conditions=ics, on_multiple="raise")
    # the same initial condition twice: one attractor
    r1 = macroscopic_limit(mf, [], initial_conditions=[ics[0], ics[0]])
    assert r1.unique and r1.IM_per_N == 0.0


def test_spin1_model_end_to_end():
    mf = derive_meanfield(spin1_lmg())
    r = macroscopic_limit(mf, dict(coupling=3.0, h=0.5, Gamma=1.68, gamma=1.0), n_initial=2)
    assert r.unique and r.converged and r.attractor == "limit_cycle"
    assert r.IM_per_N > 0.01
    # Eq. (13) terms recomputed from the entropy of rho at the averaged xi
    assert r.S_of_mean == pytest.approx(entropy_xi(mf, r.xi_mean), abs=1e-14)
    lam = np.linalg.eigvalsh((np.eye(3) + np.einsum("a,aij->ij", r.xi_mean, mf.basis_numeric)) / 3)
    assert lam.min() > -1e-12


def test_invalid_input_names_parameter():
    with pytest.raises(ModelError, match="Gamma"):
        lmg_macroscopic(3.0, 0.5, -1.0)
    with pytest.raises(ModelError, match="coupling"):
        lmg_macroscopic(float("nan"), 0.5, 1.0)
    with pytest.raises(ModelError, match="gamma"):
        im_per_n_h0(2.0, gamma=0.0)
    with pytest.raises(ModelError, match="n_initial"):
        lmg_macroscopic(3.0, 0.5, 1.0, n_initial=0)
    with pytest.raises(ModelError, match="Gammas"):
        sweep_gamma([1.0, -2.0], coupling=3.0, h=0.0)
