"""Appendix B / Fig. 2, against a dense diagonalisation built here (its own spin matrices,
basis ordered M = -J ... J, numpy.linalg.eigh), the full 2^N Hamiltonian for small N, and
the Dicke-state value ln 2."""

import math
import time
from functools import reduce

import numpy as np
import pytest

from picorr.groundstate import ground_state
from picorr.models import ModelError


def spin_ops(J):
    """Spin-J matrices in the basis M = -J, ..., J (ascending, unlike the library)."""
    M = np.arange(-J, J + 1)
    up = np.sqrt(J * (J + 1) - M[:-1] * (M[:-1] + 1))  # <M+1|J+|M>
    Jp = np.diag(up, -1)
    return (Jp + Jp.T) / 2, (Jp - Jp.T) / 2j, np.diag(M)


def binary_entropy(x):
    lam = np.array([(1 + x) / 2, (1 - x) / 2])
    lam = lam[lam > 1e-300]
    return float(-(lam * np.log(lam)).sum())


def dense_oracle(N, coupling, h):
    Jx, Jy, Jz = spin_ops(N / 2)
    H = coupling * (Jx @ Jx + Jy @ Jy) / N + h * Jx
    w, v = np.linalg.eigh(H)
    g = v[:, 0]
    m = np.array([2 * np.vdot(g, A @ g).real / N for A in (Jx, Jy, Jz)])
    return binary_entropy(np.linalg.norm(m)), m, w[0], w[1] - w[0]


@pytest.mark.parametrize("N", [8, 9, 40, 41, 120])
@pytest.mark.parametrize("coupling, h", [(-1.0, 0.01), (-1.0, 0.3), (-2.5, -0.2), (-0.7, 1.5)])
def test_matches_dense_diagonalisation(N, coupling, h):
    I, m, E, gap = dense_oracle(N, coupling, h)
    r = ground_state(N, coupling, h)
    assert r.IM_per_N == pytest.approx(I, abs=1e-10)
    np.testing.assert_allclose(np.abs(r.m), np.abs(m), atol=1e-10)
    assert r.energy == pytest.approx(E, abs=1e-10 * max(1, abs(E)))
    assert r.gap == pytest.approx(gap, abs=1e-9)
    assert not r.degenerate


@pytest.mark.parametrize("N", [5, 6])
def test_ground_state_is_in_the_symmetric_block(N):
    # the full 2^N Hamiltonian: its ground energy equals that of the J = N/2 block
    sx = np.array([[0, 1], [1, 0]], complex)
    sy = np.array([[0, -1j], [1j, 0]])

    def total(A):
        return sum(reduce(np.kron, [A if j == i else np.eye(2) for j in range(N)]) for i in range(N))

    Vx, Vy = total(sx), total(sy)
    coupling, h = -1.3, 0.2
    H = coupling / (4 * N) * (Vx @ Vx + Vy @ Vy) + h / 2 * Vx  # Eq. (15)
    E_full = np.linalg.eigvalsh(H)[0]
    assert ground_state(N, coupling, h).energy == pytest.approx(E_full, abs=1e-12)


@pytest.mark.parametrize("N", [2, 10, 1000, 10**6])
def test_dicke_state_ln2_at_h0_even_N(N):
    r = ground_state(N, -1.0, 0.0)
    assert r.IM_per_N == math.log(2)
    np.testing.assert_array_equal(r.m, 0.0)


def test_decay_with_h_faster_for_larger_N():
    hs = [0.002, 0.01, 0.05, 0.2]
    curves = {N: [ground_state(N, -1.0, h).IM_per_N for h in hs] for N in (10, 100, 1000)}
    for N, c in curves.items():
        assert all(a > b for a, b in zip(c, c[1:])), N  # decays with |h|
        assert ground_state(N, -1.0, -0.05).IM_per_N == pytest.approx(c[2], abs=1e-12)  # even in h
    for i in range(len(hs)):
        assert curves[10][i] > curves[100][i] > curves[1000][i]


@pytest.mark.parametrize("N, h", [(9, 1e-7), (101, 2e-9)])
def test_odd_N_h0_returns_the_h_to_zero_limit(N, h):
    r = ground_state(N, -1.0, 0.0)
    assert r.degenerate and r.gap == 0.0
    assert r.IM_per_N == pytest.approx(binary_entropy((N + 1) / (2 * N)), abs=1e-15)
    assert r.IM_per_N_mixture == pytest.approx(math.log(2) * (1 - 1 / N), abs=1e-15)
    # continuity: the unique ground state at small fields h > 0, extrapolated to h -> 0+
    # (Richardson, removing the O(h) term; h is kept large enough for eigh to resolve the
    # O(h N) splitting of the two quasi-degenerate levels)
    I1, m1, _, _ = dense_oracle(N, -1.0, h)
    I2, m2, _, _ = dense_oracle(N, -1.0, h / 2)
    assert r.IM_per_N == pytest.approx(2 * I2 - I1, abs=1e-6)
    np.testing.assert_allclose(r.m, 2 * m2 - m1, atol=1e-6)


def test_N_1e6_within_10_s():
    t0 = time.perf_counter()
    r = ground_state(10**6, -1.0, 0.01)
    assert time.perf_counter() - t0 < 10
    assert 0 < r.IM_per_N < ground_state(10**4, -1.0, 0.01).IM_per_N
    assert np.linalg.norm(r.m) < 1


def test_invalid_input():
    with pytest.raises(ModelError, match="coupling"):
        ground_state(10, 1.0, 0.1)
    with pytest.raises(ModelError, match="N"):
        ground_state(1, -1.0, 0.1)
    with pytest.raises(ModelError, match="h"):
        ground_state(10, -1.0, float("inf"))
