"""The symbolic derivation of the mean-field equations (Eq. 5), checked against oracles
that share no code with it: Eq. (16) and Eq. (17) typed from the paper, and the exact
time derivative of <V_alpha>/N in product states computed from a dense N-unit Lindblad
equation built here from Kronecker products."""

from functools import reduce

import numpy as np
import pytest
import sympy as sp

from picorr.meanfield import (
    UnitModel,
    derive_meanfield,
    fixed_points,
    gell_mann,
    lmg_limit_cycle_h0,
    lmg_meanfield,
    product_state_drift,
    qubit_unit_model,
    spin1_lmg,
    state_matrix,
)
from picorr.models import CollectiveJump, ModelError, QubitModel, lmg


# --------------------------------------------------------------------------------------
# Oracle 1: Eq. (16) of the paper, typed here
# --------------------------------------------------------------------------------------
def eq16(mx, my, mz, J, h, G, g):
    return [
        J * my * mz + G * mx * mz / 2 - g * mx / 2,
        -J * mx * mz - h * mz + G * my * mz / 2 - g * my / 2,
        h * my - G * (mx**2 + my**2) / 2 + g * (1 - mz),
    ]


def test_lmg_derivation_equals_eq16_symbolically():
    mf = lmg_meanfield()
    coupling, h, Gamma, gamma = mf.params
    mx, my, mz = mf.xi
    for derived, typed in zip(mf.g, eq16(mx, my, mz, coupling, h, Gamma, gamma)):
        assert sp.simplify(derived - typed) == 0


def test_qubitmodel_lmg_derivation_equals_eq16_exactly():
    # the numeric model of picorr.models (floats become the exact rationals they represent)
    mf = derive_meanfield(lmg(N=10, coupling=3.0, h=0.5, Gamma=2.7, gamma=1.0))
    mx, my, mz = mf.xi
    R = sp.Rational
    typed = eq16(mx, my, mz, R(3.0), R(0.5), R(2.7), R(1.0))
    for derived, t in zip(mf.g, typed):
        assert sp.simplify(derived - t) == 0


# --------------------------------------------------------------------------------------
# Oracle 2: Eq. (17), the h = 0 limit cycle
# --------------------------------------------------------------------------------------
def test_limit_cycle_eq17_derived_and_verified():
    lc = lmg_limit_cycle_h0()
    assert lc["residual"] == [0, 0, 0]
    mf = lmg_meanfield()
    coupling, h, Gamma, gamma = mf.params
    # the paper's values
    assert sp.simplify(lc["m_xy"] - sp.sqrt(2 * gamma * (Gamma - gamma)) / Gamma) == 0
    assert sp.simplify(lc["omega"] - coupling * gamma / Gamma) == 0
    assert sp.simplify(lc["m_z"] - gamma / Gamma) == 0
    # and the derived cycle solves the typed Eq. (16) at h = 0
    t = lc["t"]
    m = [lc["m_xy"] * sp.sin(lc["omega"] * t), lc["m_xy"] * sp.cos(lc["omega"] * t), lc["m_z"]]
    for mdot, rhs in zip([sp.diff(c, t) for c in m], eq16(*m, coupling, 0, Gamma, gamma)):
        assert sp.simplify(mdot - rhs) == 0


# --------------------------------------------------------------------------------------
# Oracle 3: dense N-unit Lindblad equation for product states
# --------------------------------------------------------------------------------------
def site_op(A, i, N):
    d = A.shape[0]
    ops = [np.eye(d)] * N
    ops[i] = A
    return reduce(np.kron, ops)


def total(A, N):
    return sum(site_op(A, i, N) for i in range(N))


def dissipator(L, rho):
    LdL = L.conj().T @ L
    return L @ rho @ L.conj().T - 0.5 * (LdL @ rho + rho @ LdL)


def lindblad(H, collective, local, rho):
    """collective: [(rate, L_tot)], local: [(rate, [L^(i)])]"""
    out = -1j * (H @ rho - rho @ H)
    for r, L in collective:
        out += r * dissipator(L, rho)
    for r, Ls in local:
        for L in Ls:
            out += r * dissipator(L, rho)
    return out


sx = np.array([[0, 1], [1, 0]], complex)
sy = np.array([[0, -1j], [1j, 0]])
sz = np.diag([1.0 + 0j, -1.0])
splus = np.array([[0, 1], [0, 0]], complex)
sminus = splus.T.copy()


def qubit_dense(N, K, c, jumps, gm, gp, gz):
    J = [total(s / 2, N) for s in (sx, sy, sz)]
    H = sum(K[a][b] * J[a] @ J[b] for a in range(3) for b in range(3)) / N + sum(c[a] * J[a] for a in range(3))
    Jp, Jm = J[0] + 1j * J[1], J[0] - 1j * J[1]
    coll = [(G / N, ap * Jp + am * Jm + az * J[2]) for G, ap, am, az in jumps]
    loc = [(r, [site_op(L, i, N) for i in range(N)]) for r, L in ((gm, sminus), (gp, splus), (gz, sz))]
    return H, coll, loc, J


def qubit_dense_mdot(N, m, model_args):
    """d m / dt with m_a = 2 <J_a> / N, for the product state with Bloch vector m."""
    H, coll, loc, J = qubit_dense(N, *model_args)
    rho1 = (np.eye(2) + m[0] * sx + m[1] * sy + m[2] * sz) / 2
    rho = reduce(np.kron, [rho1] * N)
    drho = lindblad(H, coll, loc, rho)
    return np.array([2 * np.trace(Ja @ drho).real / N for Ja in J])


RNG = np.random.default_rng(1)


def _random_bloch(rng):
    v = rng.normal(size=3)
    return 0.9 * v / np.linalg.norm(v) * rng.uniform(0.3, 1)


GENERIC = dict(
    K=((0.7, -0.3, 0.2), (-0.3, 1.1, 0.4), (0.2, 0.4, -0.5)),
    c=(0.3, -0.2, 0.6),
    jumps=((0.8, 0.5 + 0.2j, 0.3, -0.4j), (0.4, 0.0, 1.0, 0.0)),
    gm=0.35,
    gp=0.6,
    gz=0.25,
)


def _generic_qubitmodel(N=4):
    g = GENERIC
    return QubitModel(
        N=N, K=g["K"], c=g["c"],
        jumps=tuple(CollectiveJump(Gamma=G, a_plus=ap, a_minus=am, a_z=az) for G, ap, am, az in g["jumps"]),
        gamma_minus=g["gm"], gamma_plus=g["gp"], gamma_z=g["gz"], name="generic",
    )


def _generic_args():
    g = GENERIC
    return (g["K"], g["c"], g["jumps"], g["gm"], g["gp"], g["gz"])


@pytest.mark.parametrize("N", [2, 3, 4])
def test_exact_product_drift_matches_dense_lindblad_generic_qubit(N):
    mf = derive_meanfield(_generic_qubitmodel())
    Nsym, xi, exact = product_state_drift(mf.model)
    f = sp.lambdify([Nsym, xi], list(exact))
    for _ in range(3):
        m = _random_bloch(RNG)
        want = qubit_dense_mdot(N, m, _generic_args())
        got = np.array(f(N, m), dtype=float)
        np.testing.assert_allclose(got, want, atol=1e-12)


def test_dense_lindblad_drift_approaches_g_like_one_over_N():
    # The N -> infinity limit of the exact product-state derivative is g; the dense
    # Lindblad derivative approaches it with an error that halves when N doubles.
    mf = derive_meanfield(_generic_qubitmodel())
    p = mf.param_values([])
    m = np.array([0.3, -0.5, 0.4])
    g = mf.rhs(m, p)
    errs = [np.abs(qubit_dense_mdot(N, m, _generic_args()) - g).max() for N in (2, 4, 8)]
    assert errs[0] > 1e-3  # a real 1/N correction exists for this model
    np.testing.assert_allclose(errs[1] / errs[0], 0.5, rtol=0.15)
    np.testing.assert_allclose(errs[2] / errs[1], 0.5, rtol=0.1)


# --- d = 3 ----------------------------------------------------------------------------
LAMBDA = {  # the eight Gell-Mann matrices, typed from their definition
    1: [[0, 1, 0], [1, 0, 0], [0, 0, 0]],
    2: [[0, -1j, 0], [1j, 0, 0], [0, 0, 0]],
    3: [[1, 0, 0], [0, -1, 0], [0, 0, 0]],
    4: [[0, 0, 1], [0, 0, 0], [1, 0, 0]],
    5: [[0, 0, -1j], [0, 0, 0], [1j, 0, 0]],
    6: [[0, 0, 0], [0, 0, 1], [0, 1, 0]],
    7: [[0, 0, 0], [0, 0, -1j], [0, 1j, 0]],
    8: np.diag([1, 1, -2]) / np.sqrt(3),
}


def test_gell_mann_basis():
    v = [np.array(m.evalf(), dtype=complex) for m in gell_mann(3)]
    order = [1, 2, 4, 5, 6, 7, 3, 8]
    for a, k in enumerate(order):
        np.testing.assert_allclose(v[a], np.array(LAMBDA[k], dtype=complex), atol=1e-15)
    for d in (2, 3, 4):
        B = [np.array(m.evalf(), dtype=complex) for m in gell_mann(d)]
        G = np.array([[np.trace(x @ y) for y in B] for x in B])
        np.testing.assert_allclose(G, 2 * np.eye(d * d - 1), atol=1e-14)
        assert all(abs(np.trace(x)) < 1e-14 and np.allclose(x, x.conj().T) for x in B)
    np.testing.assert_allclose(np.array(gell_mann(2)[1].evalf(), dtype=complex), sy)


def spin1():
    sp_ = np.sqrt(2) * np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]], complex)
    return (sp_ + sp_.T) / 2, (sp_ - sp_.T) / 2j, np.diag([1.0 + 0j, 0, -1]), sp_


@pytest.mark.parametrize("N", [2, 3])
def test_exact_product_drift_matches_dense_lindblad_spin1(N):
    J, h, G, g = 1.3, 0.4, 0.9, 0.7
    mf = derive_meanfield(spin1_lmg(J, h, G, g))
    Sx1, Sy1, Sz1, Sp1 = spin1()
    Sx, Sy = total(Sx1, N), total(Sy1, N)
    H = J * (Sx @ Sx + Sy @ Sy) / N + h * Sx
    coll = [(G / N, total(Sp1.T, N))]
    loc = [(g, [site_op(Sp1 / np.sqrt(2), i, N) for i in range(N)])]
    Nsym, xi, exact = product_state_drift(mf.model)
    f = sp.lambdify([Nsym, xi], list(exact))
    v = [np.array(LAMBDA[k], dtype=complex) for k in (1, 2, 4, 5, 6, 7, 3, 8)]
    rng = np.random.default_rng(7)
    for _ in range(2):
        psi = rng.normal(size=3) + 1j * rng.normal(size=3)
        psi /= np.linalg.norm(psi)
        rho1 = 0.8 * np.outer(psi, psi.conj()) + 0.2 * np.eye(3) / 3
        x = np.array([1.5 * np.trace(rho1 @ va).real for va in v])  # rho = (1 + x.lambda)/3
        np.testing.assert_allclose(state_matrix(mf, x), rho1, atol=1e-14)
        drho = lindblad(H, coll, loc, reduce(np.kron, [rho1] * N))
        want = np.array([1.5 * np.trace(total(va, N) @ drho).real / N for va in v])
        np.testing.assert_allclose(np.array(f(N, x), dtype=float), want, atol=1e-12)


# --------------------------------------------------------------------------------------
# Numerical functions, fixed points, validation
# --------------------------------------------------------------------------------------
def test_compiled_rhs_and_jacobian():
    mf = lmg_meanfield()
    p = mf.param_values(coupling=3.0, h=0.5, Gamma=2.7, gamma=1.0)
    m = np.array([0.2, -0.4, 0.5])
    np.testing.assert_allclose(mf.rhs(m, p), eq16(*m, 3.0, 0.5, 2.7, 1.0), rtol=1e-14)
    eps = 1e-6
    fd = np.array([(mf.rhs(m + eps * e, p) - mf.rhs(m - eps * e, p)) / (2 * eps) for e in np.eye(3)]).T
    np.testing.assert_allclose(mf.jac(m, p), fd, atol=1e-8)
    np.testing.assert_allclose(mf.g_list(m.tolist(), p.tolist()), mf.rhs(m, p), rtol=1e-15)


@pytest.mark.parametrize("Gamma, stability", [(0.5, "stable"), (2.0, "unstable")])
def test_fixed_point_north_pole_h0(Gamma, stability):
    mf = lmg_meanfield()
    fps = fixed_points(mf, [3.0, 0.0, Gamma, 1.0])
    north = [f for f in fps if np.allclose(f.xi, [0, 0, 1], atol=1e-9)]
    assert len(north) == 1
    assert north[0].stability == stability
    # linearisation at m = (0,0,1): eigenvalues (Gamma - gamma)/2 +- i J and -gamma
    ev = np.sort_complex(north[0].eigenvalues)
    want = np.sort_complex(np.array([(Gamma - 1) / 2 + 3j, (Gamma - 1) / 2 - 3j, -1.0]))
    np.testing.assert_allclose(ev, want, atol=1e-10)


def test_unit_model_validation():
    with pytest.raises(ModelError, match="H1"):
        UnitModel(d=2, H1=[[0, 1], [0, 0]])
    with pytest.raises(ModelError, match="gamma"):
        UnitModel(d=2, local=((-1.0, [[0, 1], [0, 0]]),))
    with pytest.raises(ModelError, match="params"):
        UnitModel(d=2, H1=[[sp.Symbol("w", real=True), 0], [0, 0]])
    with pytest.raises(ModelError, match="d"):
        UnitModel(d=1)
    with pytest.raises(ModelError, match="basis"):
        UnitModel(d=2, basis=(np.eye(2), np.eye(2), np.eye(2)))
    with pytest.raises(ModelError, match="K"):
        qubit_unit_model(K=((0, 1, 0), (0, 0, 0), (0, 0, 0)))
