"""picorr.fullspace (the full 2^N Lindblad equation used by the book) against the tests'
own brute-force oracle (tests/bruteforce.py, column-stacking convention, sparse LU), the
Dicke-block engine, and known facts about the coupled basis."""

from __future__ import annotations

import numpy as np
import pytest

import bruteforce as bf
from picorr import lmg, steady_state
from picorr.dicke import ln_dim
from picorr.fullspace import MAX_N, dicke_basis, full_correlations, full_space
from picorr.models import CollectiveJump, ModelError, QubitModel


def general(N):
    return QubitModel(
        N=N,
        K=[[1.3, 0.4, -0.2], [0.4, -0.7, 0.3], [-0.2, 0.3, 0.9]],
        c=[0.3, -0.45, 0.2],
        jumps=(CollectiveJump(0.8, a_minus=1), CollectiveJump(0.5, a_plus=0.3, a_z=0.6 + 0.2j)),
        gamma_minus=0.35, gamma_plus=0.6, gamma_z=0.25,
    )


def oracle(model):
    N = model.N
    H = bf.hamiltonian(N, model.K, model.c)
    jumps = [(j.Gamma, j.a_plus, j.a_minus, j.a_z) for j in model.jumps]
    terms = bf.dissipator_terms(N, jumps, model.local_rates)
    rho = bf.steady_state(bf.lindbladian(H, terms), 2**N)
    return rho, bf.observables(rho, N)


@pytest.mark.parametrize("N", [2, 3, 4])
@pytest.mark.parametrize("make", [lambda N: lmg(N, 3.0, 0.5, 1.68, 1.0), general], ids=["lmg", "general"])
def test_full_space_equals_bruteforce_oracle(N, make):
    model = make(N)
    rho_o, obs = oracle(model)
    r = full_space(model)
    np.testing.assert_allclose(r.rho, rho_o, atol=1e-10)
    np.testing.assert_allclose(r.m, obs["m"], atol=1e-10)
    assert r.I_M == pytest.approx(obs["I_M"], abs=1e-9)
    assert r.S_T == pytest.approx(obs["S_T"], abs=1e-9)
    assert r.residual < 1e-10


@pytest.mark.parametrize("N", [3, 5])
def test_full_space_equals_block_engine(N):
    model = lmg(N, 3.0, 0.5, 2.5, 1.0)
    r, s = full_space(model), steady_state(model)
    assert r.IM_per_N == pytest.approx(s.IM_per_N, abs=1e-10)
    np.testing.assert_allclose(r.m, s.m, atol=1e-10)


def test_product_state_has_no_correlations():
    N = 4
    r1 = 0.5 * np.array([[1.3, 0.2 - 0.1j], [0.2 + 0.1j, 0.7]])
    rho = r1
    for _ in range(N - 1):
        rho = np.kron(rho, r1)
    m, S1, ST, IM = full_correlations(rho, N)
    np.testing.assert_allclose(m, [0.2, 0.1, 0.3], atol=1e-12)
    assert IM == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("N", [4, 5])
def test_dicke_basis_block_diagonalises_as_in_eq20(N):
    U, lab = dicke_basis(N)
    np.testing.assert_allclose(U.conj().T @ U, np.eye(2**N), atol=1e-12)
    J, alpha = lab[:, 0], lab[:, 1]
    for Jv in np.unique(J):  # dim_J copies of each multiplet (Eq. 21)
        assert len(np.unique(alpha[J == Jv])) == round(np.exp(ln_dim(N, Jv)))
    model = lmg(N, 3.0, 0.5, 1.68, 1.0)
    R = U.conj().T @ full_space(model).rho @ U
    other = (J[:, None] != J[None, :]) | (alpha[:, None] != alpha[None, :])
    assert np.abs(R[other]).max() < 1e-12
    s = steady_state(model)
    for jidx, Jv in enumerate(s.state.layout.J):
        dim = round(np.exp(ln_dim(N, Jv)))
        for a in range(dim):
            sel = (J == Jv) & (alpha == a)
            np.testing.assert_allclose(R[np.ix_(sel, sel)], s.state.block(jidx) / dim, atol=1e-12)


def test_rejects_large_N():
    with pytest.raises(ModelError):
        full_space(lmg(MAX_N + 1, 1.0, 0.0, 1.0, 1.0))
