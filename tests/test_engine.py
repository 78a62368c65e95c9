"""The exact finite-N engine against independent oracles: the full 2^N Lindblad equation,
the paper's rate equations typed from Eqs. (30)-(31), and analytic states."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import bruteforce as bf
from picorr import dicke
from picorr.dicke import BlockLayout
from picorr.information import correlations, total_entropy
from picorr.liouvillian import liouvillian
from picorr.models import CollectiveJump, ModelError, QubitModel, lmg
from picorr.states import BlockState, dicke_state, maximally_mixed, product_state
from picorr.steady import (
    NoUniqueSteadyStateError,
    NotConvergedError,
    steady_state,
)

# --------------------------------------------------------------------------------------
# Models under test, described twice: once for the library, once for the oracle
# --------------------------------------------------------------------------------------


def lmg_case(N, coupling, h, Gamma, gamma):
    K = [[coupling, 0, 0], [0, coupling, 0], [0, 0, 0]]
    return lmg(N, coupling, h, Gamma, gamma), (K, [h, 0, 0], [(Gamma, 0, 1, 0)], {"+": gamma})


def general_case(N):
    """Everything at once: anisotropic K with cross terms, fields on all axes, a jump
    mixing J_+ and J_z, collective J_z dephasing, and all three local channels."""
    K = [[1.3, 0.4, -0.2], [0.4, -0.7, 0.3], [-0.2, 0.3, 0.9]]
    c = [0.3, -0.45, 0.2]
    jumps = [(0.8, 0, 1, 0), (0.5, 0.3, 0, 0.6 + 0.2j), (0.4, 0, 0, 1)]
    local = {"-": 0.35, "+": 0.6, "z": 0.25}
    model = QubitModel(
        N=N,
        K=K,
        c=c,
        jumps=tuple(CollectiveJump(g, a_plus=ap, a_minus=am, a_z=az) for g, ap, am, az in jumps),
        gamma_minus=local["-"],
        gamma_plus=local["+"],
        gamma_z=local["z"],
    )
    return model, (K, c, jumps, local)


def dephasing_case(N):
    """Local emission and dephasing with collective J_z dephasing (U(1) symmetric)."""
    K = [[2.0, 0, 0], [0, 2.0, 0], [0, 0, -1.0]]
    c = [0, 0, 0.4]
    jumps = [(0.7, 0, 0, 1)]
    local = {"-": 0.8, "z": 0.5, "+": 0.3}
    model = QubitModel(N=N, K=K, c=c, jumps=(CollectiveJump(0.7, a_z=1),),
                       gamma_minus=0.8, gamma_z=0.5, gamma_plus=0.3)
    return model, (K, c, jumps, local)


CASES = {
    "lmg_h0.5": lambda N: lmg_case(N, 3.0, 0.5, 1.68, 1.0),
    "lmg_h0": lambda N: lmg_case(N, 3.0, 0.0, 2.7, 1.0),
    "lmg_hneg": lambda N: lmg_case(N, 3.0, -0.8, 0.6, 1.0),
    "lmg_strong": lambda N: lmg_case(N, -2.0, 1.1, 3.5, 0.4),
    "general": general_case,
    "dephasing": dephasing_case,
}


def embed(E, dims, state):
    """The full 2^N density matrix of a block state, Eq. (20): sum rho_{J,M,M'} E / dim_J."""
    J, M, Mp = state.layout.JMM
    return sum(v * E[(j, a, b)] / dims[j] for v, j, a, b in zip(state.rho, J, M, Mp))


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("N", [2, 3, 4, 5, 6, 7])
def test_steady_state_matches_full_lindblad(name, N):
    """N <= 5: the oracle solves the 2^N equation itself and the observables must agree.
    N = 6, 7 (a direct 4^N solve is too slow for the suite): the library's state, embedded
    in the 2^N space, must be annihilated by the full Lindbladian, and the oracle's own
    partial traces and entropies of that full matrix must equal the library's values."""
    model, (K, c, jumps, local) = CASES[name](N)
    Lfull = bf.lindbladian(bf.hamiltonian(N, K, c), bf.dissipator_terms(N, jumps, local))
    res = steady_state(model)
    if N <= 5:
        rho_full = bf.steady_state(Lfull, 2**N)
    else:
        E, dims = bf.dicke_embedding(N)
        rho_full = embed(E, dims, res.state)
        r = Lfull @ rho_full.reshape(-1, order="F")
        assert np.linalg.norm(r) < 1e-11 * max(1.0, abs(Lfull).max())
        assert abs(np.trace(rho_full) - 1) < 1e-12
    ref = bf.observables(rho_full, N)
    assert ref["m_spread"] < 1e-10  # the oracle's state is permutation invariant
    c = res.correlations
    np.testing.assert_allclose(c.m, ref["m"], atol=1e-8)
    assert abs(c.S_T - ref["S_T"]) < 1e-8
    assert abs(c.S_1 - ref["S_1"]) < 1e-8
    assert abs(c.I_M - ref["I_M"]) < 1e-8
    assert res.relative_residual < 1e-12
    assert res.min_eigenvalue > -1e-12


@pytest.mark.parametrize("name", ["general", "lmg_h0.5", "dephasing"])
@pytest.mark.parametrize("N", [2, 3, 4, 5])
def test_liouvillian_action_matches_full_lindblad(name, N):
    """Not only the kernel: L applied to an arbitrary block vector, embedded in the full
    2^N space through the eigenspaces of J^2 and J_z, equals the full Lindbladian's action."""
    model, (K, c, jumps, local) = CASES[name](N)
    E, dims = bf.dicke_embedding(N)
    lay = BlockLayout(N)
    J, M, Mp = lay.JMM
    rng = np.random.default_rng(N)
    x = rng.normal(size=lay.size) + 1j * rng.normal(size=lay.size)

    def embed(v):
        out = np.zeros((2**N, 2**N), dtype=complex)
        for val, j, m, mp in zip(v, J, M, Mp):
            out += val * E[(j, m, mp)] / dims[j]
        return out

    Lfull = bf.lindbladian(bf.hamiltonian(N, K, c), bf.dissipator_terms(N, jumps, local))
    rho = embed(x)
    lhs = (Lfull @ rho.reshape(-1, order="F")).reshape(2**N, 2**N, order="F")
    rhs = embed(liouvillian(model, lay) @ x)
    np.testing.assert_allclose(rhs, lhs, atol=1e-11)
    # the oracle's multiplicities agree with Eq. (21)
    for j, d in dims.items():
        assert abs(np.exp(dicke.ln_dim(N, j)) - d) < 1e-9


# --------------------------------------------------------------------------------------
# The rate equations typed from the paper, Eqs. (30)-(31)
# --------------------------------------------------------------------------------------
def paper_rate_matrix(N, Gamma, gamma):
    states = [(J, Jz) for J in np.arange(N % 2 / 2, N / 2 + 0.1) for Jz in np.arange(-J, J + 0.1)]
    idx = {s: n for n, s in enumerate(states)}
    R = np.zeros((len(states), len(states)))
    for (J, Jz), n in idx.items():
        C1 = Gamma / N * (1 + J - Jz) * (J + Jz) + gamma * (N / 2 - Jz)
        C2 = Gamma / N * (J - Jz) * (J + Jz + 1)
        C3 = gamma * (J - Jz + 1) * (J - Jz + 2) * (N / 2 + J + 2) / (2 * (J + 1) * (2 * J + 3))
        C4 = gamma * (J - Jz + 1) * (J + Jz) * (N / 2 + 1) / (2 * J * (J + 1)) if J > 0 else 0
        C5 = gamma * (J + Jz - 1) * (J + Jz) * (N / 2 - J + 1) / (2 * J * (2 * J - 1)) if J > 0.5 else 0
        R[n, n] -= C1
        for coef, src in ((C2, (J, Jz + 1)), (C3, (J + 1, Jz - 1)), (C4, (J, Jz - 1)), (C5, (J - 1, Jz - 1))):
            if src in idx:
                R[n, idx[src]] += coef
    return R, idx


@pytest.mark.parametrize("N", [2, 5, 8, 13])
def test_rate_equations_are_eqs_30_31(N):
    Gamma, gamma = 1.7, 0.6
    R, idx = paper_rate_matrix(N, Gamma, gamma)
    lay = BlockLayout(N, 0)
    L = liouvillian(lmg(N, 3.0, 0.0, Gamma, gamma), lay).toarray()
    J, M, _ = lay.JMM
    perm = [idx[(j, m)] for j, m in zip(J, M)]
    np.testing.assert_allclose(L.imag, 0, atol=1e-14)
    np.testing.assert_allclose(L.real, R[np.ix_(perm, perm)], atol=1e-12)


# --------------------------------------------------------------------------------------
# Paths agree where both apply
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("N", [6, 15, 24])
def test_rates_path_equals_full_path(N):
    model = lmg(N, 3.0, 0.0, 1.68, 1.0)
    a = steady_state(model)
    b = steady_state(model, method="direct")
    assert a.method == "rates" and b.method == "direct"
    assert abs(a.IM_per_N - b.IM_per_N) < 1e-12
    np.testing.assert_allclose(a.m, b.m, atol=1e-12)
    # the full path finds no coherences
    off = np.abs(b.state.rho[b.state.layout.JMM[1] != b.state.layout.JMM[2]])
    assert off.max() < 1e-12


@pytest.mark.parametrize("N,h,Gamma", [(24, 0.5, 1.68), (31, -0.5, 2.7), (40, 0.5, 0.8)])
def test_krylov_equals_direct(N, h, Gamma):
    model = lmg(N, 3.0, h, Gamma, 1.0)
    a = steady_state(model, method="krylov")
    b = steady_state(model, method="direct")
    assert abs(a.IM_per_N - b.IM_per_N) < 1e-10
    np.testing.assert_allclose(a.m, b.m, atol=1e-10)
    assert a.iterations > 0 and b.iterations == 0


def test_auto_choice_is_recorded():
    assert steady_state(lmg(30, 3, 0, 1, 1)).method == "rates"
    assert steady_state(lmg(12, 3, 0.5, 1, 1)).method == "direct"
    assert steady_state(lmg(30, 3, 0.5, 1, 1)).method == "krylov"


# --------------------------------------------------------------------------------------
# Analytic states
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("N", [2, 7, 40, 1000, 10**6])
def test_maximally_mixed_entropy(N):
    # N ln 2 = sum_J (2J+1) dim_J ... checks ln dim_J at every size, overflow included
    lnd = dicke.ln_dim(N, dicke.j_values(N))
    J = dicke.j_values(N)
    log_total = np.logaddexp.reduce(np.log(2 * J + 1) + lnd)
    assert abs(log_total - N * np.log(2)) < 1e-9 * N
    if N <= 1000:
        st = maximally_mixed(N)
        assert abs(st.trace - 1) < 1e-12
        c = correlations(st)
        assert abs(c.S_T - N * np.log(2)) < 1e-9 * N
        assert abs(c.I_M) < 1e-9 * N


@pytest.mark.parametrize("N", [2, 10, 40, 300])
def test_dicke_state_has_IM_N_ln2(N):
    c = correlations(dicke_state(N, 0))
    assert abs(c.S_T) < 1e-12
    assert abs(c.I_M - N * np.log(2)) < 1e-9


@pytest.mark.parametrize("N", [3, 20, 61])
@pytest.mark.parametrize("bloch", [(0, 0, 1), (0.3, -0.2, 0.5), (0.6, 0.0, -0.7)])
def test_product_state_has_no_correlations(N, bloch):
    st = product_state(N, bloch)
    c = correlations(st)
    np.testing.assert_allclose(c.m, bloch, atol=1e-10)
    assert abs(c.I_M) < 1e-8
    p = (1 + np.linalg.norm(bloch)) / 2
    b = -p * np.log(p) - (1 - p) * np.log(1 - p) if p < 1 else 0.0
    assert abs(c.S_T - N * b) < 1e-8


def test_product_state_matches_full_space():
    N, m = 4, np.array([0.2, 0.4, -0.3])
    rho1 = 0.5 * (bf.I2 + m[0] * bf.SX + m[1] * bf.SY + m[2] * bf.SZ)
    full = rho1
    for _ in range(N - 1):
        full = np.kron(full, rho1)
    E, dims = bf.dicke_embedding(N)
    np.testing.assert_allclose(embed(E, dims, product_state(N, m)), full, atol=1e-12)


# --------------------------------------------------------------------------------------
# Errors: named parameters, no silent answers
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs,word",
    [
        (dict(N=1), "N"),
        (dict(N=3.5), "N"),
        (dict(N=True), "N"),
        (dict(Gamma=-1), "Gamma"),
        (dict(gamma=float("nan")), "gamma"),
        (dict(h=float("inf")), "h"),
        (dict(coupling="3"), "coupling"),
    ],
)
def test_bad_input_names_the_parameter(kwargs, word):
    args = dict(N=10, coupling=3.0, h=0.5, Gamma=1.0, gamma=1.0) | kwargs
    with pytest.raises(ModelError, match=rf"^{word} must"):
        lmg(**args)


def test_model_validation():
    with pytest.raises(ModelError, match="K must be symmetric"):
        QubitModel(N=4, K=[[0, 1, 0], [0, 0, 0], [0, 0, 0]])
    with pytest.raises(ModelError, match="gamma_z must"):
        QubitModel(N=4, gamma_z=-0.1)
    with pytest.raises(ModelError, match="a_z must"):
        CollectiveJump(1.0, a_z=float("nan"))


def test_no_dissipation_is_an_error():
    with pytest.raises(NoUniqueSteadyStateError, match="no dissipation"):
        steady_state(lmg(10, 3, 0.5, 0, 0))


@pytest.mark.parametrize("method,N", [("direct", 8), ("auto", 8), ("krylov", 30), ("auto", 30)])
def test_conserved_J_is_detected(method, N):
    """Collective decay alone conserves J: a steady state per block, none unique."""
    model = QubitModel(N=N, K=[[3, 0, 0], [0, 3, 0], [0, 0, 0]], c=(0.5, 0, 0),
                       jumps=(CollectiveJump(1.0, a_minus=1),))
    with pytest.raises(NoUniqueSteadyStateError):
        steady_state(model, method=method)


def test_tiny_iteration_budget_is_not_converged():
    with pytest.raises(NotConvergedError, match="maxiter"):
        steady_state(lmg(40, 3, 0.5, 1.68, 1), method="krylov", maxiter=3, restart=3)


def test_rates_refused_without_u1():
    with pytest.raises(ModelError, match="method 'rates'"):
        steady_state(lmg(10, 3, 0.5, 1.0, 1.0), method="rates")


@pytest.mark.parametrize("window,masked", [(2, False), (3, True), (None, True), (40, False)])
def test_block_eigenvalues_by_band_solver_equal_dense(window, masked):
    """Block eigenvalues from the band solver (and with masked rows dropped) against
    numpy's dense eigvalsh of every whole block, for a random Hermitian windowed state."""
    from picorr.information import block_eigenvalues

    N = 40
    rows = None
    if masked:  # keep a middle band of rows in each block, drop some blocks entirely
        n = dicke.block_sizes(N)
        rows = tuple((int(m // 3), int(m - m // 4)) if j % 5 else (0, 0) for j, m in enumerate(n))
    lay = BlockLayout(N, window, rows=rows)
    rng = np.random.default_rng(3)
    rho = rng.normal(size=lay.size) + 1j * rng.normal(size=lay.size)
    jidx, i, k = lay.elements
    t = lay.index(jidx, k, i)
    rho = 0.5 * (rho + np.conj(rho[t]))  # Hermitian
    st = BlockState(lay, rho)
    got = block_eigenvalues(st)
    for j, (J, b) in enumerate(st.blocks()):
        want = np.linalg.eigvalsh(b)
        mine = np.sort(np.concatenate([got[j], np.zeros(want.size - got[j].size)]))
        np.testing.assert_allclose(mine, want, atol=1e-10)


def test_negative_state_is_reported():
    st = dicke_state(6, 0)
    bad = BlockState(st.layout, st.rho * 0)
    idx = st.layout.index(3, 0, 0)
    bad.rho[idx] = 1.5
    bad.rho[st.layout.index(3, 1, 1)] = -0.5
    from picorr.information import NegativeEigenvalueError

    with pytest.raises(NegativeEigenvalueError):
        total_entropy(bad)


# --------------------------------------------------------------------------------------
# The coherence window (large-N method) against the untruncated solution
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "N,h,Gamma", [(40, 0.5, 1.68), (40, -0.5, 0.7), (64, 0.5, 2.7), (81, -0.3, 3.5)]
)
def test_window_equals_untruncated(N, h, Gamma):
    """The truncated state agrees with the untruncated one to 1e-9, and its own error
    estimate (from the changes between windows) is honest: the true error of I_M/N is no
    larger than the estimate (with round-off), and the estimate is below window_tol."""
    model = lmg(N, 3.0, h, Gamma, 1.0)
    full = steady_state(model, method="krylov")
    win = steady_state(model, method="window")
    assert win.method == "window" and win.window < N
    assert abs(win.IM_per_N - full.IM_per_N) < 1e-9
    np.testing.assert_allclose(win.m, full.m, atol=1e-9)
    est = win.info["window_error_estimate"]
    assert est < 1e-9
    assert abs(win.IM_per_N - full.IM_per_N) <= est + 1e-12
    assert win.relative_residual < 1e-10
    # positivity to the window's tolerance, with the dropped weight reported
    assert win.min_eigenvalue > -win.info["negativity_tol"] * win.state.rho.real.max()
    assert 0 <= win.info["negative_weight"] < 1e-9


def test_windows_that_cannot_be_last_are_solved_to_the_scan_tolerance():
    """The first window of a scan, and one after a window that broke positivity, cannot be
    returned (the scan stops on a change between two positive windows): they are solved to
    ``scan_gmres_tol``, every other to ``gmres_tol``. The answer is that of a scan solving
    every window to ``gmres_tol`` (to 1e-11 in I_M/N and m, far below window_tol), with
    fewer iterations in the first window."""
    model = lmg(64, 3.0, 0.5, 2.7, 1.0)
    loose = steady_state(model, method="window", start=8)
    tight = steady_state(model, method="window", start=8, scan_gmres_tol=1e-13)
    scan = loose.info["scan"]
    assert len(scan) >= 2
    for i, s in enumerate(scan):
        cannot_be_last = i == 0 or np.isnan(scan[i - 1]["IM_per_N"])
        assert s["gmres_tol"] == (1e-10 if cannot_be_last else 1e-13)
    assert scan[-1]["gmres_tol"] == 1e-13
    assert [s["window"] for s in scan] == [s["window"] for s in tight.info["scan"]]
    assert scan[0]["iterations"] < tight.info["scan"][0]["iterations"]
    assert abs(loose.IM_per_N - tight.IM_per_N) < 1e-11
    np.testing.assert_allclose(loose.m, tight.m, atol=1e-11)
    assert loose.relative_residual < 1e-10


@pytest.mark.parametrize("mask", [False, True])
def test_window_result_reuses_the_last_windows_correlations(mask):
    """The returned state's correlations are the last window's, not computed again: they
    equal those computed afresh from the returned (normalised, for a mask widened by zero
    rows) state."""
    from picorr.information import correlations

    res = steady_state(lmg(80, 3.0, 0.5, 1.68, 1.0), method="window", mask=mask)
    again = correlations(res.state, res.info["negativity_tol"])
    assert res.IM_per_N == pytest.approx(again.IM_per_N, abs=1e-13)
    assert res.correlations.S_T == pytest.approx(again.S_T, rel=1e-13)
    np.testing.assert_allclose(res.m, again.m, rtol=0, atol=1e-14)
    assert abs(res.min_eigenvalue - again.min_eigenvalue) <= 1e-14 * res.state.rho.real.max()
    assert res.IM_per_N == res.info["scan"][-1]["IM_per_N"]


def test_tail_estimate_of_a_geometric_series():
    """The window's error estimate on a sequence with a known limit: changes of a geometric
    series with ratio 1/30 (as measured for the LMG window at N = 400) give the exact tail;
    a slowly shrinking sequence falls back to the last change."""
    from picorr.steady.window import tail_estimate

    r, vals = 1 / 30, [1 - (1 / 30) ** k for k in range(1, 6)]
    changes = list(np.abs(np.diff(vals)))
    err, ratio = tail_estimate(changes)
    assert ratio == pytest.approx(r)
    assert err == pytest.approx(1 - vals[-1], rel=1e-9)
    slow = [1.0, 0.9]
    assert tail_estimate(slow) == (0.9, 0.9)
    assert tail_estimate([1e-3])[0] == 1e-3


def test_needed_window_of_a_scan_sets_the_next_start():
    """The window a finished scan needed is its smallest positive window within window_tol
    of the last one in I_M/N and in m; the next size starts one step below it scaled by
    sqrt(2), or at it for the last size of a chain when the scan had not located it from
    below."""
    from picorr.steady.window import needed_window, start_from_coarse

    nan3 = [np.nan] * 3
    scan = [{"window": 16, "IM_per_N": np.nan, "m": nan3},  # not positive
            {"window": 20, "IM_per_N": 0.2017172541, "m": [0.1, 0.2, 0.3]},
            {"window": 24, "IM_per_N": 0.20171725418, "m": [0.1, 0.2, 0.3 + 2e-11]}]
    assert needed_window(scan, 1e-9) == 20
    assert needed_window(scan, 1e-11) == 24  # 20 is 8e-11 off in I_M/N
    scan[1]["m"] = [0.1, 0.2, 0.3 + 5e-9]  # I_M/N within, m not
    assert needed_window(scan, 1e-9) == 24
    # located from below (16 was tried): one step below sqrt(2) times the needed window
    scan[1]["m"] = [0.1, 0.2, 0.3]
    assert start_from_coarse(scan, 1e-9, 4) == 24 == start_from_coarse(scan, 1e-9, 4, last=False)
    # the needed window was the scan's first, an upper bound only: the last size takes no
    # step down, a size that is itself a coarse solve does
    assert start_from_coarse(scan[1:], 1e-9, 4) == 28
    assert start_from_coarse(scan[1:], 1e-9, 4, last=False) == 24
    tiny = [{"window": 1, "IM_per_N": 0.1, "m": [0, 0, 0]}, {"window": 2, "IM_per_N": 0.1,
                                                             "m": [0, 0, 0]}]
    assert start_from_coarse(tiny, 1e-9, 4) == 4


@pytest.mark.parametrize("precision", ["double", "single"])
@pytest.mark.parametrize("N", [5, 7])
def test_window_forced_at_small_N_matches_full_lindblad(N, precision):
    model, (K, c, jumps, local) = CASES["general"](N)
    res = steady_state(model, method="window", start=1, step=1, factor_precision=precision)
    assert res.info["factor_precision"] == precision
    Lfull = bf.lindbladian(bf.hamiltonian(N, K, c), bf.dissipator_terms(N, jumps, local))
    if N <= 5:
        ref = bf.observables(bf.steady_state(Lfull, 2**N), N)
    else:  # the embedded state must be annihilated by the full Lindbladian
        rho_full = embed(*bf.dicke_embedding(N), res.state)
        assert np.linalg.norm(Lfull @ rho_full.reshape(-1, order="F")) < 1e-9
        ref = bf.observables(rho_full, N)
    assert abs(res.IM_per_N - ref["I_M"] / N) < 1e-8
    np.testing.assert_allclose(res.m, ref["m"], atol=1e-8)


# --------------------------------------------------------------------------------------
# The large-N solver's parts: red-black elimination, complex sector factors, threads,
# and the residual from the q >= 0 rows
# --------------------------------------------------------------------------------------
def test_red_black_schur_for_lmg_and_jacobi_fallback_for_delta_q_2():
    """LMG (h J_x moves q by 1) is two-coloured: the odd sectors are eliminated, GMRES runs
    on the even ones, and every q > 0 sector is factored as a complex matrix. The general model has J_x^2 - J_y^2
    terms (q -> q +- 2): it falls back to block-Jacobi GMRES, and its q = 1 sector, which
    the fold couples to q = -1, stays real. Both agree with the sparse LU."""
    lm = steady_state(lmg(24, 3.0, 0.5, 2.7, 1.0), method="krylov")
    assert lm.info["scheme"] == "red-black Schur GMRES"
    assert lm.info["complex_sectors"] == lm.info["sectors"] - 1
    gen, _ = general_case(14)
    g = steady_state(gen, method="krylov")
    assert g.info["scheme"] == "block-Jacobi GMRES"
    assert g.info["complex_sectors"] == g.info["sectors"] - 2  # q = 0 and q = 1 real
    for res, model in ((lm, lmg(24, 3.0, 0.5, 2.7, 1.0)), (g, gen)):
        ref = steady_state(model, method="direct")
        assert abs(res.IM_per_N - ref.IM_per_N) < 1e-10
        np.testing.assert_allclose(res.m, ref.m, atol=1e-10)


def test_a_system_handed_over_in_a_list_is_freed_before_gmres(monkeypatch):
    """solve_sectors takes a matrix handed over in a list, so that the whole matrix is
    freed once it is split into its colours and is not held through GMRES (a plain
    argument stays referenced by the caller until the call returns); solve_fold splits its
    row blocks by colour and none is held through GMRES either. The answer is the dense
    solution of the same system, whichever way the matrix is passed."""
    import weakref

    from picorr.steady import krylov

    A, b, q, partner = _sector_system()
    exact = np.linalg.solve(A.toarray(), b)
    alive = []
    run = krylov.run_gmres

    def spy(*args, **kwargs):
        alive.append(ref() is not None)
        return run(*args, **kwargs)

    monkeypatch.setattr(krylov, "run_gmres", spy)
    ref = weakref.ref(A)
    system = [A]
    del A
    u, its, info = krylov.solve_sectors(system, b, q, partner=partner)
    assert system == [] and alive == [False]
    assert info["scheme"] == "red-black Schur GMRES" and its > 0
    np.testing.assert_allclose(u, exact, rtol=0, atol=1e-11 * np.abs(exact).max())
    A2 = _sector_system()[0]
    u2, its2, _ = krylov.solve_sectors(A2, b, q, partner=partner)
    assert its2 == its
    np.testing.assert_allclose(u2, u, rtol=0, atol=1e-13 * np.abs(u).max())
    # solve_fold splits the fold's row blocks by colour, freeing each (none is held in GMRES)
    split = krylov.colour_split
    blocks = []

    def recorded(parts, *args, **kwargs):
        blocks.extend(weakref.ref(P) for _, P in parts)
        return split(parts, *args, **kwargs)

    def spy_blocks(*args, **kwargs):
        alive.append(any(r() is not None for r in blocks))
        return run(*args, **kwargs)

    monkeypatch.setattr(krylov, "colour_split", recorded)
    monkeypatch.setattr(krylov, "run_gmres", spy_blocks)
    fold, _ = krylov.assemble_fold(lmg(20, 3.0, 0.5, 2.7, 1.0), BlockLayout(20, 6))
    rho, its3, _ = krylov.solve_fold(fold)
    assert blocks and alive[-1] is False and its3 == its
    np.testing.assert_allclose(fold.from_complex(rho), u, rtol=0, atol=1e-13 * np.abs(u).max())


def test_nothing_over_the_whole_system_is_held_through_gmres(monkeypatch):
    """Through each window's GMRES, no frame of the window scan holds a vector over the
    whole real system other than the fold's labels (the right-hand side is made by colour,
    the start is handed over, the partners are taken by the factors), and neither the
    window's layout nor the coarse solve's holds its per-element tables. The answer agrees
    with the untruncated sparse LU, and the colour helpers split, join and make unit vectors
    like indexing does."""
    import sys

    from picorr.steady import hermitian, krylov, window

    model = lmg(40, 3.0, 0.5, 2.7, 1.0)
    ref = steady_state(model, method="direct")
    run, seen = krylov.run_gmres, []

    def spy(*args, **kwargs):
        frames, f = {}, sys._getframe(1)
        while f is not None:
            frames.setdefault(f.f_code.co_name, f.f_locals)
            f = f.f_back
        fold = frames["solve_fold"]["fold"]
        n, held = fold.size, []
        for name, loc in frames.items():
            for key, v in loc.items():
                items = v if isinstance(v, (list, tuple)) else \
                    v.values() if isinstance(v, dict) else [v]
                held += [(name, key) for a in items if isinstance(a, np.ndarray)
                         and a.shape[:1] == (n,) and a is not fold.q]
        coarse = frames["solve_window"]["coarse"]
        lays = [frames["solve_window"]["layout"]] + ([] if coarse is None else
                                                     [coarse.state.layout])
        seen.append((held, [k for k in ("elements", "JMM") for lay in lays
                            if k in lay.__dict__]))
        return run(*args, **kwargs)

    monkeypatch.setattr(krylov, "run_gmres", spy)
    res = steady_state(model, method="window", mask=True)
    # the N = 20 windows (without a mask), then N = 40's
    assert len(seen) > len(res.info["scan"]) >= 2 and all(s == ([], []) for s in seen)
    assert abs(res.IM_per_N - ref.IM_per_N) < 1e-9  # the window tolerance

    fold, _ = krylov.assemble_fold(lmg(20, 3.0, 0.5, 2.7, 1.0), BlockLayout(20, 6))
    rng = np.random.default_rng(3)
    rho = rng.normal(size=fold.layout.size) + 1j * rng.normal(size=fold.layout.size)
    u = hermitian.real_unknowns(fold.layout, rho)
    np.testing.assert_array_equal(u, fold.from_complex(rho))
    q, partner = fold.q, fold.complex_partner()
    split = krylov.colour_split(fold.take_parts(), q, partner)
    uo, ue = split.split(u)
    np.testing.assert_array_equal(uo, u[split.odd])
    np.testing.assert_array_equal(split.join(uo, ue), u)
    e = np.zeros(u.size)
    e[17] = 1.0
    for a, b in zip(split.unit(17), split.split(e)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(split.take("sector_even"), q[split.even])
    np.testing.assert_array_equal(split.take("partner_odd"),
                                  krylov._sub_partner(partner, split.odd))


def test_the_even_odd_coupling_is_taken_as_a_scaled_transpose_only_when_it_is_one():
    """For the LMG model the sectors couple through the field h J_x only, so A_eo is A_oe
    transposed times -2 on the q = 0 rows, -1 on the q > 0 rows and 0 on the trace row,
    exactly (0 too on rows that J_x does not couple); the solver then applies it from A_oe,
    bit for bit the same. One ulp off, or a
    collective jump J_- + 0.3 J_z (whose dissipator changes q by one), and it is not, and
    the solver keeps A_eo: the answer is still the sparse LU's."""
    from picorr.steady import krylov

    fold, _ = krylov.assemble_fold(lmg(20, 3.0, 0.5, 2.7, 1.0), BlockLayout(20, 6))
    row, cols = fold.trace_row()
    split = krylov.colour_split(fold.take_parts(), fold.q, fold.complex_partner(),
                                replace=(row, cols))
    Aoe, Aeo = split.take("oe"), split.take("eo")
    s = krylov.transpose_scale(Aeo, Aoe)
    q_even = fold.q[split.even]
    expect = np.where(q_even == 0, -2.0, -1.0)
    empty = np.diff(Aeo.indptr) == 0  # the trace row, and elements that J_x does not move
    expect[empty] = 0.0
    np.testing.assert_array_equal(s, expect)
    coupled = np.diff(Aoe.T.tocsr().indptr) > 0
    assert np.array_equal(np.flatnonzero(empty & coupled), np.flatnonzero(split.even == row))
    v = np.random.default_rng(5).normal(size=Aoe.shape[0])
    np.testing.assert_array_equal(s * (Aoe.T @ v), Aeo @ v)
    Aeo.data[Aeo.nnz // 2] = np.nextafter(Aeo.data[Aeo.nnz // 2], np.inf)
    assert krylov.transpose_scale(Aeo, Aoe) is None

    base = lmg(20, 3.0, 0.5, 2.7, 1.0)
    jump = CollectiveJump(1.0, a_minus=1.0, a_z=0.3)
    model = QubitModel(20, K=base.K, c=base.c, jumps=(jump,), gamma_plus=base.gamma_plus,
                       gamma_minus=0.2)
    res = {m: steady_state(model, method=m) for m in ("krylov", "direct")}
    assert res["krylov"].info["scheme"] == "red-black Schur GMRES"
    assert res["krylov"].info["eo_from_transpose"] is False
    lm = steady_state(base, method="krylov")
    assert lm.info["eo_from_transpose"] is True
    assert abs(lm.IM_per_N - steady_state(base, method="direct").IM_per_N) < 1e-11
    assert abs(res["krylov"].IM_per_N - res["direct"].IM_per_N) < 1e-11
    np.testing.assert_allclose(res["krylov"].m, res["direct"].m, atol=1e-11)


def test_a_layout_forgets_its_tables_and_makes_them_again():
    """BlockLayout.forget drops the per-element tables; asked again they are the same, and
    a name that is not such a table is refused by name. The coordinates of a range of
    elements, which the assembly takes without making the whole tables, are JMM's."""
    lay = BlockLayout(12, 4)
    elements, JMM = [np.copy(a) for a in lay.elements], [np.copy(a) for a in lay.JMM]
    assert lay.forget() is lay and "elements" not in lay.__dict__ and "JMM" not in lay.__dict__
    for a, b in zip(lay.elements + lay.JMM, elements + JMM):
        np.testing.assert_array_equal(a, b)
    lay.forget("diagonal")
    with pytest.raises(ValueError, match="names must be per-element tables.*'N'"):
        lay.forget("N")
    # the coordinates of a range, with and without the whole tables made, are JMM's
    idx = np.arange(7, lay.size, 5)
    lay.forget()
    ranged = lay.coordinates(idx)
    assert "JMM" not in lay.__dict__
    for a, b in zip(ranged, JMM):
        np.testing.assert_array_equal(a, b[idx])
    lay.JMM
    for a, b in zip(lay.coordinates(idx), ranged):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("keep_operator", [False, True])
def test_colour_split_of_row_blocks_is_the_split_of_the_bordered_matrix(monkeypatch,
                                                                        keep_operator):
    """colour_split builds the red-black blocks from the fold's row blocks (several here),
    putting the trace row in on the way: the same matrices as indexing the bordered matrix
    with the grouped orders, and every block handed over. A model with Delta q = 2 terms
    is not two-coloured: None, and the row blocks keep their values (explicit zeros may go)."""
    import sys

    from picorr.steady import hermitian, krylov

    lv = sys.modules["picorr.liouvillian"]  # the package exports a function of that name
    monkeypatch.setattr(lv, "ASSEMBLY_CHUNK", 60)
    monkeypatch.setattr(hermitian, "FOLD_CHUNK", 60)
    model, layout = lmg(20, 3.0, 0.5, 2.7, 1.0), BlockLayout(20, 6)
    A, b = krylov.assemble_fold(model, layout, keep_operator=keep_operator)[0].bordered()
    fold, _ = krylov.assemble_fold(model, layout, keep_operator=keep_operator)
    row, cols = fold.trace_row()
    partner = fold.complex_partner()
    parts = fold.take_parts()
    assert len(parts) > 4
    split = krylov.colour_split(parts, fold.q, partner, replace=(row, cols))
    assert parts == []
    q = fold.q
    odd = krylov.grouped(np.flatnonzero(q % 2 != 0), q, partner)
    even = krylov.grouped(np.flatnonzero(q % 2 == 0), q, partner)
    np.testing.assert_array_equal(split.odd, odd)
    np.testing.assert_array_equal(split.even, even)
    for name, r, c in (("oo", odd, odd), ("oe", odd, even), ("eo", even, odd),
                       ("ee", even, even)):
        got, want = split.take(name), A[r][:, c]
        assert got.shape == want.shape and got.has_sorted_indices
        assert abs(got - want).max() == 0.0
    # the assembled blocks hold their entries only (not views of longer arrays)
    fold, _ = krylov.assemble_fold(model, layout, keep_operator=keep_operator)
    for _, P in fold.parts:
        assert P.data.base is None and P.indices.base is None
        assert P.data.size == P.indices.size == P.nnz and P.has_canonical_format
    gen, _ = general_case(8)
    fold, _ = krylov.assemble_fold(gen, BlockLayout(8, 4), keep_operator=keep_operator)
    parts = fold.take_parts()
    before = [(first, P.toarray()) for first, P in parts]
    assert krylov.colour_split(parts, fold.q, fold.complex_partner()) is None
    assert len(parts) == len(before) and all(
        f == g and np.array_equal(P.toarray(), D) for (f, P), (g, D) in zip(parts, before))


def test_one_colour_is_solved_by_its_sector_factors_alone():
    """With the window 0 only the q = 0 sector is stored: no odd sector to eliminate, and
    the block-diagonal system is solved exactly by its factors, without GMRES. For a U(1)
    model that is the rate equations."""
    model = lmg(30, 3.0, 0.0, 1.68, 1.0)
    k = steady_state(model, method="krylov", window=0)
    assert k.info["scheme"] == "sector LU" and k.iterations == 0
    assert abs(k.IM_per_N - steady_state(model, method="rates").IM_per_N) < 1e-13


def test_threads_do_not_change_the_result():
    model = lmg(33, 3.0, -0.5, 1.68, 1.0)
    one = steady_state(model, method="krylov", threads=1)
    two = steady_state(model, method="krylov", threads=2)
    assert one.info["threads"] == 1 and two.info["threads"] == 2
    assert abs(one.IM_per_N - two.IM_per_N) < 1e-13
    np.testing.assert_allclose(one.state.rho, two.state.rho, atol=1e-13)


def test_small_systems_run_their_sectors_in_one_thread(monkeypatch):
    """Without a thread count, systems below SERIAL_BELOW unknowns use one thread and larger
    ones every core (forced to two here); the choice is recorded and does not change the
    answer."""
    from picorr.steady import krylov

    monkeypatch.setattr(krylov, "default_threads", lambda: 2)
    model = lmg(33, 3.0, -0.5, 1.68, 1.0)
    small = steady_state(model, method="krylov")
    assert small.info["threads"] == 1
    monkeypatch.setattr(krylov, "SERIAL_BELOW", 10)
    big = steady_state(model, method="krylov")
    assert big.info["threads"] == 2
    assert abs(small.IM_per_N - big.IM_per_N) < 1e-13


def _bordered_fold(model, window=None):
    from picorr.steady.krylov import assemble_fold

    fold, _ = assemble_fold(model, BlockLayout(model.N, window))
    A, _ = fold.bordered()
    return A.tocsr(), fold.q, fold.complex_partner()


@pytest.mark.parametrize("case,chunk,large", [("lmg", 1 << 18, 1 << 30), ("lmg", 7, 1 << 30),
                                              ("general", 1 << 18, 1 << 30),
                                              ("perturbed", 50, 1 << 30), ("lmg", 1 << 18, 1),
                                              ("general", 1 << 18, 1), ("perturbed", 50, 60)])
def test_sector_blocks_are_the_diagonal_blocks_of_the_dense_matrix(case, chunk, large,
                                                                   monkeypatch):
    """Every sector's block from the vectorised extraction against the dense matrix: a real
    block is A on the sector's unknowns; a complex block C on (xs, ys) has the real form
    [[Re C, -Im C], [Im C, Re C]] equal to A on (xs, ys). LMG: every q > 0 sector is
    complex; the general model (q -> q +- 2) keeps q = 1 real; a yy entry of q = 3 moved by
    1e-9 makes that sector real. Extracting a few unknowns at a time, or the large sectors
    one by one (``large``: the smallest sector so extracted), changes nothing."""
    from picorr.steady import krylov

    monkeypatch.setattr(krylov, "EXTRACT_CHUNK", chunk)
    monkeypatch.setattr(krylov, "LARGE_SECTOR", large)
    model = general_case(9)[0] if case == "general" else lmg(13, 3.0, 0.5, 1.68, 1.0)
    A, q, partner = _bordered_fold(model, None if case != "perturbed" else 5)
    if case == "perturbed":
        y3 = np.flatnonzero((partner >= 0) & (q == 3))[0]
        A = A.tolil()
        A[y3, y3] += 1e-9
        A = A.tocsr()
    dense = A.toarray()
    blocks = krylov.sector_blocks(A, q, partner)
    assert [b[0] for b in blocks] == sorted(set(q.tolist()))
    real_keys = set()
    for key, xs, ys, blk in blocks:
        idx = xs if ys is None else np.r_[xs, ys]
        assert np.array_equal(np.sort(idx), np.flatnonzero(q == key))
        if ys is None:
            real_keys.add(key)
            np.testing.assert_array_equal(blk.toarray(), dense[np.ix_(xs, xs)])
        else:
            assert np.array_equal(partner[ys], xs) and np.all(np.diff(ys) > 0)
            C = blk.toarray()
            R = np.block([[C.real, -C.imag], [C.imag, C.real]])
            np.testing.assert_allclose(R, dense[np.ix_(idx, idx)], rtol=0,
                                       atol=1e-14 * np.abs(dense).max())
    assert real_keys == {"lmg": {0}, "general": {0, 1}, "perturbed": {0, 3}}[case]


def test_merged_sector_factors_solve_like_separate_ones():
    """Merging the sector blocks into one block-diagonal factor per kind (small systems)
    solves the block-diagonal system exactly, like the separate factors, and records the
    sector counts of the separate ones."""
    from picorr.steady.krylov import SectorPreconditioner, _sub_partner

    A, q, partner = _bordered_fold(lmg(20, 3.0, 0.5, 2.7, 1.0))
    odd = np.flatnonzero(q % 2 == 1)  # one colour: A is block diagonal on it
    Aoo = A[odd][:, odd]
    x = np.random.default_rng(3).normal(size=odd.size)
    sols = []
    for merge in (False, True):
        P = SectorPreconditioner(Aoo, q[odd], partner=_sub_partner(partner, odd), merge=merge)
        assert P.merged == merge and P.sector_count == 10 and P.complex_sectors == 10
        assert len(P.sectors) == (1 if merge else 10)
        sols.append(P.solve(Aoo @ x))
        P.close()
    np.testing.assert_allclose(sols[0], x, rtol=0, atol=1e-10 * np.abs(x).max())
    np.testing.assert_allclose(sols[1], sols[0], rtol=0, atol=1e-12 * np.abs(x).max())


def _sector_block(N, window, q, Gamma=2.7):
    from picorr.steady import krylov

    A, sec, partner = _bordered_fold(lmg(N, 3.0, 0.5, Gamma, 1.0), window)
    return next(b for key, _, _, b in krylov.sector_blocks(A, sec, partner) if key == q)


@pytest.mark.parametrize("q", [0, 1])
def test_nested_dissection_factors_solve_with_less_fill(q):
    """METIS's nested dissection (the sectors' ordering) against SuperLU's minimum degree
    on the q = 0 sector (real, with the dense trace row) and q = 1 (complex) at N = 320
    (25 921 and 25 760 unknowns, above ND_MIN): both solve the block to round-off, checked
    by the residual, the two solutions agree, and nested dissection keeps fewer entries."""
    from picorr.steady import direct, krylov

    assert krylov.SECTOR_ORDERING == "nested-dissection"
    B = _sector_block(320, 2, q).tocsc()
    assert B.shape[0] >= direct.ND_MIN
    assert (q == 0) == (direct._dense_rows(B).size == 1) and np.isrealobj(B.data) == (q == 0)
    x = np.random.default_rng(q).normal(size=B.shape[0]).astype(B.dtype)
    b = B @ x
    nd, mmd = direct.factorize(B, "nested-dissection"), direct.factorize(B, "mmd")
    assert isinstance(nd, direct.PermutedLU) and nd.nnz < 0.97 * mmd.nnz
    for lu in (nd, mmd):
        assert np.linalg.norm(B @ lu.solve(b) - b) <= 1e-13 * np.linalg.norm(b)
    np.testing.assert_allclose(nd.solve(b), mmd.solve(b), rtol=0, atol=1e-9 * abs(x).max())
    # the memory model's fill law covers the factors it predicts
    from picorr.steady.memory import fill_per_unknown

    assert nd.nnz <= fill_per_unknown(B.shape[0]) * B.shape[0]


def test_nested_dissection_fill_guard_keeps_the_smaller_factors(monkeypatch):
    """Factors whose fill exceeds FILL_GUARD times the model's are made again with minimum
    degree and the smaller kept: with the guard at zero, the result has the fewer entries of
    the two orderings."""
    from picorr.steady import direct

    B = _sector_block(320, 2, 0).tocsc()
    nnz = {o: direct.factorize(B, o).nnz for o in direct.ORDERINGS}
    monkeypatch.setattr(direct, "FILL_GUARD", 0.0)
    assert direct.factorize(B, "nested-dissection").nnz == min(nnz.values())


def test_small_matrices_and_bad_orderings():
    """Below ND_MIN unknowns nested dissection is not used (the factors are SuperLU's own);
    an unknown ordering is named."""
    from picorr.steady import direct

    B = _sector_block(60, 2, 1).tocsc()
    assert B.shape[0] < direct.ND_MIN
    assert not isinstance(direct.factorize(B, "nested-dissection"), direct.PermutedLU)
    with pytest.raises(ValueError, match="ordering must be one of mmd, nested-dissection, "
                                         "got 'metis'"):
        direct.factorize(B, "metis")


def test_factors_made_in_threads_are_freed_in_the_thread_that_made_them(monkeypatch):
    """SciPy frees SuperLU memory only from the thread that allocated it (a factor collected
    elsewhere leaks, scipy/scipy#15921): every factor made by the two factor threads is
    handed back to its own thread when the preconditioner is dropped, and only then."""
    import gc

    import scipy.sparse as sp

    from picorr.steady import krylov

    dropped = []
    real_drop = krylov._drop
    monkeypatch.setattr(krylov, "_drop", lambda h: (dropped.append(threading.get_ident()),
                                                    real_drop(h)))
    T = sp.diags([-1.0, 4.0, -1.0], [-1, 0, 1], shape=(30, 30))
    A = sp.block_diag([sp.kron(sp.eye(30), T) + sp.kron(T, sp.eye(30))] * 5).tocsr()
    P = krylov.SectorPreconditioner(A, np.repeat(np.arange(5), 900), threads=2)
    x = np.random.default_rng(0).normal(size=A.shape[0])
    np.testing.assert_allclose(P.solve(A @ x), x, rtol=0, atol=1e-12)
    pools = krylov.factor_threads(2)
    idents = {p.submit(threading.get_ident).result(): p for p in pools}
    owners = [lu.owner for _, _, lu in P.sectors]
    assert all(any(o is p for p in pools) for o in owners)
    made_in = sorted(k for o in owners for k, p in idents.items() if p is o)
    assert not dropped
    P.close()
    del P
    gc.collect()
    for p in pools:  # wait until the hand-backs have run
        p.submit(lambda: None).result()
    assert sorted(dropped) == made_in


def _factor_with_two_threads():
    import scipy.sparse as sp

    from picorr.steady import krylov

    A = sp.block_diag([sp.diags([-1.0, 4.0, -1.0], [-1, 0, 1], shape=(50, 50))] * 3).tocsr()
    P = krylov.SectorPreconditioner(A, np.repeat(np.arange(3), 50), threads=2)
    x = np.arange(150.0)
    if not np.allclose(P.solve(A @ x), x):
        raise SystemExit(1)


@pytest.mark.skipif("fork" not in __import__("multiprocessing").get_all_start_methods(),
                    reason="needs fork")
def test_a_forked_child_makes_its_own_factor_threads():
    """The factor threads live as long as the process; a child forked from a process that
    has them (which inherits the executors but not their threads) must start its own
    instead of queueing work that no thread runs."""
    import multiprocessing as mp

    from picorr.steady import krylov

    krylov.factor_threads(2)[0].submit(lambda: None).result()  # the parent has them
    child = mp.get_context("fork").Process(target=_factor_with_two_threads)
    child.start()
    child.join(60)
    if child.exitcode is None:
        child.kill()
    assert child.exitcode == 0


@pytest.mark.parametrize("N,window,rows", [(9, None, False), (12, 4, True)])
def test_layout_index_against_a_table_of_the_stored_elements(N, window, rows):
    """``BlockLayout.index`` against a dictionary of the stored elements, for random
    (block, row, column) triples in and out of range, and with scalar arguments broadcast."""
    n = dicke.block_sizes(N)
    rws = tuple((1, int(m) - 1) if j % 2 else (0, int(m)) for j, m in enumerate(n)) \
        if rows else None
    lay = BlockLayout(N, window, rows=rws)
    table = {t: s for s, t in enumerate(zip(*(a.tolist() for a in lay.elements)))}
    rng = np.random.default_rng(11)
    J, I, K = (rng.integers(-2, top + 2, 3000) for top in (n.size, N + 1, N + 1))
    want = np.array([table.get(t, -1) for t in zip(J.tolist(), I.tolist(), K.tolist())])
    assert np.array_equal(lay.index(J, I, K), want)
    assert (want >= 0).sum() > 100  # the draw hits stored elements too
    j0, i0 = int(J[0]), int(I[0])
    assert np.array_equal(lay.index(j0, i0, K), [table.get((j0, i0, k), -1) for k in K.tolist()])
    jl, il, kl = (int(a[5]) for a in lay.elements)
    assert lay.index(jl, il, kl).shape == () and int(lay.index(jl, il, kl)) == 5


@pytest.mark.parametrize("window", [None, 6])
def test_residual_from_half_the_rows_equals_the_full_residual(window):
    """Krylov solves keep only the q >= 0 rows of L; the reported residual must equal
    ||L rho|| with every row, built here from the whole Liouvillian."""
    model = lmg(20, 3.0, 0.5, 1.68, 1.0)
    res = steady_state(model, method="krylov", window=window, gmres_tol=1e-6, tol=1e-4)
    full = liouvillian(model, res.state.layout)
    r_full = np.linalg.norm(full @ res.state.rho)
    assert r_full > 1e-12  # a loose solve, so the residual is not round-off
    assert res.residual == pytest.approx(r_full, rel=1e-10)


@pytest.mark.parametrize("case,window,chunk", [("lmg", None, 1 << 18), ("lmg", 5, 37),
                                                ("general", None, 53), ("general", 3, 1 << 18)])
def test_hermitian_fold_is_the_real_form_of_L(case, window, chunk, monkeypatch):
    """The folded real matrix B, built by index arithmetic in row chunks, against its
    definition: for random real unknowns u, B u = (Re (L rho)_e for q_e >= 0, Im (L rho)_e
    for q_e > 0) with rho = T u the Hermitian state they describe (built here from the
    layout directly) and L the whole complex Liouvillian, all rows."""
    import picorr.steady.hermitian as hm

    monkeypatch.setattr(hm, "FOLD_CHUNK", chunk)  # several chunks, boundaries anywhere
    model = lmg(9, 3.0, 0.5, 1.68, 1.0) if case == "lmg" else general_case(7)[0]
    lay = BlockLayout(model.N, window)
    fold = hm.HermitianFold.build(liouvillian(model, lay, hermitian_rows=True), lay)
    L = liouvillian(model, lay).toarray()
    jidx, i, k = lay.elements
    q = k - i
    pos, off = np.flatnonzero(q >= 0), np.flatnonzero(q > 0)
    rng = np.random.default_rng(7)
    for _ in range(3):
        u = rng.normal(size=pos.size + off.size)
        rho = np.zeros(lay.size, complex)
        rho[pos] = u[:pos.size]
        rho[off] += 1j * u[pos.size:]
        t = lay.index(jidx, k, i)  # transposes: rho_{M', M} = conj rho_{M, M'}
        rho[q < 0] = np.conj(rho[t[q < 0]])
        r = L @ rho
        want = np.concatenate([r[pos].real, r[off].imag])
        np.testing.assert_allclose(fold.B @ u, want, atol=1e-12 * np.abs(L).max())


@pytest.mark.parametrize("case,window,chunk", [("lmg", None, 50), ("lmg", 5, 1 << 17),
                                                ("general", 3, 29), ("general", None, 1000)])
def test_fold_assembled_by_block_ranges_equals_the_fold_of_L(case, window, chunk, monkeypatch):
    """Assembling L a block range of rows at a time (each from the sources in the blocks
    around it) gives the same L as before and the same fold as folding the whole L, for
    chunks of a few elements (one block a range, several source chunks) up to the whole
    layout, in one thread or several; the action of L that is never stored gives L @ rho
    and ||L||_1."""
    import importlib

    import picorr.steady.hermitian as hm

    lv = importlib.import_module("picorr.liouvillian")  # the package exports the function
    model = lmg(11, 3.0, 0.5, 1.68, 1.0) if case == "lmg" else general_case(8)[0]
    lay = BlockLayout(model.N, window)
    whole = liouvillian(model, lay, hermitian_rows=True)  # one range of all blocks
    monkeypatch.setattr(lv, "ASSEMBLY_CHUNK", chunk)
    monkeypatch.setattr(hm, "FOLD_CHUNK", chunk)
    monkeypatch.setattr(lv, "THREAD_MIN_RANGES", 2)  # threads from two ranges on, at this size
    assert len(lv.row_blocks(lay)) > 1 or chunk >= lay.size
    parts = liouvillian(model, lay, hermitian_rows=True)
    d = parts - whole  # duplicates may be summed in another order: round-off only
    assert parts.nnz == whole.nnz and (abs(d).max() if d.nnz else 0.0) <= 1e-15 * abs(whole).max()
    threaded = liouvillian(model, BlockLayout(model.N, window), hermitian_rows=True, threads=2)
    assert (threaded != parts).nnz == 0  # the same ranges, made in two threads
    b = hm.HermitianFold.build(whole, lay, threads=1)
    assert (hm.HermitianFold.build(whole, lay, threads=2).B != b.B).nnz == 0
    for threads in (1, 2, 3):  # block ranges assembled and folded in threads: same matrix
        a = hm.HermitianFold.assemble(model, BlockLayout(model.N, window), threads=threads)
        d = a.B - b.B
        assert (abs(d).max() if d.nnz else 0.0) <= 1e-15 * abs(b.B).max()
        assert np.array_equal(a.q, b.q) and np.array_equal(a.partner, b.partner)
    rho = np.random.default_rng(5).normal(size=lay.size) * (1 + 0.5j)
    act = lv.LiouvillianAction(model, lay, hermitian_rows=True)
    r, norm = act.apply(rho)
    np.testing.assert_allclose(r, whole @ rho, rtol=0, atol=1e-13 * np.abs(whole @ rho).max())
    assert norm == pytest.approx(float(abs(whole).sum(axis=0).max()), rel=1e-14)
    np.testing.assert_array_equal(act @ rho, r)  # the kept product
    r2, norm2 = lv.LiouvillianAction(model, BlockLayout(model.N, window), hermitian_rows=True,
                                     threads=2).apply(rho)
    np.testing.assert_array_equal(r2, r)  # the same rows, made in two threads
    assert norm2 == norm


# --------------------------------------------------------------------------------------
# Support mask and memory estimate of the large-N method
# --------------------------------------------------------------------------------------
def test_support_mask_leaves_rows_out_without_changing_the_answer():
    model = lmg(160, 3.0, 0.5, 1.68, 1.0)
    plain = steady_state(model, method="window", mask=False)
    masked = steady_state(model, method="window", mask=True, bands=False)  # rows only
    assert masked.info["support_from_N"] == 80
    assert masked.info["support_fraction"] < 0.85  # measured 0.78 (0.89 with eps = 1e-16)
    assert masked.unknowns < BlockLayout(160, masked.window).size
    assert abs(masked.IM_per_N - plain.IM_per_N) < 1e-10
    np.testing.assert_allclose(masked.m, plain.m, atol=1e-10)
    # the rows left out carry a flux of the size of the mask's threshold (measured 3.7e-12
    # at the default 1e-12, 3e-16 at 1e-16), and it counts in the residual
    from picorr.steady.support import WINDOW_MASK_EPS

    assert masked.info["leak_residual"] < 10 * WINDOW_MASK_EPS
    assert masked.info["leak_residual"] <= masked.residual and masked.relative_residual < 1e-10
    # the early refusal of larger sizes (check_outer_sizes) bounds the estimate from below:
    # from a smaller coarse state (N = 40) it must not exceed the estimate of the real solve
    from picorr.steady.window import default_start_window, outer_size_bound

    c40 = steady_state(model.replace(N=40), method="window",
                       start=default_start_window(40, locate=True))
    assert outer_size_bound(160, c40)["total"] < masked.info["memory_estimate_GB"] * 1e9


@pytest.mark.parametrize("N,Q", [(12, 5), (13, 7)])
def test_coherence_bands_keep_a_symmetric_nested_set(N, Q):
    """A layout with bands stores exactly the elements whose centre lies in the band of
    their order (after the nesting widening), symmetric in M <-> M', each row one run of
    columns; the sector sizes counted from the runs equal a direct count."""
    from picorr.steady.memory import layout_sector_sizes

    rng = np.random.default_rng(7)
    n = dicke.block_sizes(N)
    b = np.empty((n.size, Q, 2), dtype=np.int64)
    b[:, :, 0] = rng.integers(-2, n[:, None], size=(n.size, Q))
    b[:, :, 1] = b[:, :, 0] + rng.integers(-1, 2 * n[:, None], size=(n.size, Q))
    rows = tuple((1, int(m) - 1) if j % 3 else (0, int(m)) for j, m in enumerate(n))
    lay = BlockLayout(N, Q, rows=rows, bands=b)
    full = BlockLayout(N, Q, rows=rows)
    ba = lay.band_array
    assert np.all(ba[:, :-1, 0] <= ba[:, 1:, 0] - 1) and np.all(ba[:, :-1, 1] >= ba[:, 1:, 1] + 1)
    assert np.all(ba[:, :, 0] <= b[:, :, 0]) and np.all(ba[:, :, 1] >= b[:, :, 1])
    j, i, k = full.elements
    q = np.abs(i - k)
    qq = np.maximum(q, 1) - 1
    inside = (q == 0) | ((i + k >= ba[j, qq, 0]) & (i + k <= ba[j, qq, 1]))
    got = lay.index(j, i, k)
    assert np.array_equal(got >= 0, inside)
    assert np.array_equal(np.sort(got[inside]), np.arange(lay.size))
    lj, li, lk = lay.elements
    assert np.all(lay.index(lj, lk, li) >= 0)  # symmetric
    assert 0 < lay.size < full.size
    assert np.array_equal(layout_sector_sizes(lay), np.bincount((lk - li)[lk >= li]))


def test_coherence_bands_leave_coherences_out_without_changing_the_answer():
    """The bands predicted from N // 2 (order by order, relative amplitude below
    ``WINDOW_BAND_EPS``) against the same masked solve without them."""
    from picorr.steady.support import WINDOW_BAND_EPS

    model = lmg(160, 3.0, 0.5, 1.68, 1.0)
    rows_only = steady_state(model, method="window", mask=True, bands=False)
    banded = steady_state(model, method="window", mask=True)
    assert "band_fraction" not in rows_only.info
    assert banded.window == rows_only.window
    assert banded.info["band_fraction"] < 0.95
    assert banded.info["real_unknowns"] < rows_only.info["real_unknowns"]
    assert abs(banded.IM_per_N - rows_only.IM_per_N) < 1e-10
    np.testing.assert_allclose(banded.m, rows_only.m, atol=1e-10)
    # the coherences left out carry a flux of a few times the threshold (measured 9.0e-11
    # here, 6.4e-11 at N = 400 and 5.8e-11 at N = 1000), counted in the residual
    assert banded.info["leak_residual"] < 20 * WINDOW_BAND_EPS
    assert banded.info["leak_residual"] <= banded.residual and banded.relative_residual < 1e-10


def test_bands_that_cut_the_state_fail_the_residual_check():
    from picorr.steady import SteadyStateError

    with pytest.raises(SteadyStateError, match="not stationary"):
        steady_state(lmg(80, 3.0, 0.5, 1.68, 1.0), method="window", mask=True, band_eps=1e-2)


def test_a_mask_that_cuts_the_state_fails_the_residual_check():
    """Keeping only rows above 10% of the largest population cuts into the state: the flux
    into the rows left out must show in the residual and refuse the result."""
    from picorr.steady import SteadyStateError

    with pytest.raises(SteadyStateError, match="not stationary"):
        steady_state(lmg(80, 3.0, 0.5, 1.68, 1.0), method="window", mask=True, mask_eps=0.1)


def test_support_rows_cover_the_layout_and_dilate():
    from picorr.steady.support import dilate, support_fraction

    N = 40
    full = tuple((0, int(n)) for n in dicke.block_sizes(N))
    assert support_fraction(N, full) == 1.0
    assert dilate(N, full, 3) == full  # cannot grow beyond the blocks
    one = [(0, 0)] * len(full)
    one[10] = (5, 6)  # a single row: M = J - 5 in block 10
    wide = dilate(N, tuple(one), 1)
    J = dicke.j_values(N)
    for b in (9, 10, 11):  # neighbours gain the same M +- 1
        lo, hi = wide[b]
        M = J[b] - np.arange(lo, hi)
        assert set(M) >= {J[10] - 5 - 1, J[10] - 5, J[10] - 5 + 1} & set(J[b] - np.arange(2 * J[b] + 1))
    assert wide[0][0] == wide[0][1] and wide[20][0] == wide[20][1]  # still empty


def test_single_precision_factors_solve_to_double_precision(monkeypatch):
    """Single-precision sector factors (:class:`RefinedFactor`) solve a colour's
    block-diagonal system to double precision: one single-precision solve alone leaves an
    error near single precision's round-off, the refined solve the same error as the
    double-precision factors; the factors take about 0.6 times the bytes."""
    import picorr.steady.krylov as K
    from picorr.steady.krylov import SectorPreconditioner, _sub_partner

    A, q, partner = _bordered_fold(lmg(40, 3.0, 0.5, 2.7, 1.0))
    odd = np.flatnonzero(q % 2 == 1)
    Aoo = A[odd][:, odd]
    x = np.random.default_rng(5).normal(size=odd.size)
    b = Aoo @ x
    err = {}
    for precision, steps in (("double", None), ("single", 0), ("single", None)):
        if steps is not None:
            monkeypatch.setattr(K, "REFINE_STEPS", steps)
        P = SectorPreconditioner(Aoo, q[odd], partner=_sub_partner(partner, odd),
                                 precision=precision)
        err[precision, steps] = np.abs(P.solve(b) - x).max() / np.abs(x).max()
        P.close()
        if precision == "double":
            double_bytes = P.factor_bytes
        else:
            assert P.factor_bytes == pytest.approx(0.6 * double_bytes, rel=1e-12)
            assert P.block_bytes > 0
        monkeypatch.undo()
    assert err["double", None] < 1e-12
    assert 1e-10 < err["single", 0] < 1e-3  # single precision's round-off, not a wrong factor
    assert err["single", None] < 1e-12
    # the unrefined solve on request, and the kept blocks' product is A_oo itself
    P = SectorPreconditioner(Aoo, q[odd], partner=_sub_partner(partner, odd), precision="single")
    assert 1e-10 < np.abs(P.solve(b, refine=False) - x).max() / np.abs(x).max() < 1e-3
    np.testing.assert_allclose(P.apply_blocks(x), b, rtol=0, atol=1e-13 * np.abs(b).max())
    P.close()
    D = SectorPreconditioner(Aoo, q[odd], partner=_sub_partner(partner, odd))
    with pytest.raises(TypeError, match="only single-precision factors keep their blocks"):
        D.apply_blocks(x)
    D.close()
    with pytest.raises(ValueError, match="precision must be one of double, single"):
        SectorPreconditioner(Aoo, q[odd], precision="half")


def test_cached_single_precision_factors_shed_their_blocks_between_solves(monkeypatch):
    """Between two windows the cached single-precision factors drop their double-precision
    blocks (:func:`shed_blocks`); the next system's identical block is put back on the
    cached factor, which is reused, not made again, and its products and solves are those
    of the block; a changed block is factored anew."""
    import picorr.steady.krylov as K
    from picorr.steady.krylov import RefinedFactor, SectorPreconditioner, _sub_partner, shed_blocks

    A, q, partner = _bordered_fold(lmg(40, 3.0, 0.5, 2.7, 1.0))
    odd = np.flatnonzero(q % 2 == 1)
    Aoo, sub = A[odd][:, odd], _sub_partner(partner, odd)
    x = np.random.default_rng(6).normal(size=odd.size)
    cache = {}
    P = SectorPreconditioner(Aoo, q[odd], cache, partner=sub, precision="single")
    P.close()
    made = {k: v[0] for k, v in cache.items()}
    shed_blocks(cache)
    assert all(lu.block is None for lu, _ in cache.values())
    calls = []
    monkeypatch.setattr(K, "factorize", lambda *a: calls.append(1) or pytest.fail("refactored"))
    P = SectorPreconditioner(Aoo, q[odd], cache, partner=sub, precision="single")
    assert not calls and all(cache[k][0] is made[k] for k in made)
    np.testing.assert_allclose(P.apply_blocks(x), Aoo @ x, rtol=0, atol=1e-13 * np.abs(Aoo @ x).max())
    np.testing.assert_allclose(P.solve(Aoo @ x), x, rtol=0, atol=1e-11 * np.abs(x).max())
    assert P.block_bytes > 0
    P.close()
    monkeypatch.undo()
    shed_blocks(cache)
    B = (Aoo * 1.5).tocsr()  # another block: a new factor, with its block
    P = SectorPreconditioner(B, q[odd], cache, partner=sub, precision="single")
    assert all(isinstance(cache[k][0], RefinedFactor) and cache[k][0] is not made[k] for k in made)
    np.testing.assert_allclose(P.solve(B @ x), x, rtol=0, atol=1e-11 * np.abs(x).max())
    P.close()


def test_residual_from_the_liouvillian_rows_is_that_of_the_bordered_fold():
    """fold_residual (the refinement's residual without stored blocks) gives ``b - A u``
    of the bordered fold (the stacked matrix with its trace row) by colour, for random
    ``u``, on a window with its q < 0 rows folded (h < 0, Gamma above the transition)."""
    from picorr.steady.krylov import assemble_fold, colour_split, fold_residual

    model = lmg(40, 3.0, -0.5, 2.7, 1.0)
    layout = BlockLayout(40, 6)
    fold, _ = assemble_fold(model, layout, keep_operator=False)
    A, b = assemble_fold(model, layout)[0].bordered()
    row, cols = fold.trace_row()
    split = colour_split(fold.take_parts(), fold.q, fold.complex_partner(),
                         replace=(row, cols))
    residual = fold_residual(model, fold, split, row, cols, threads=2)
    rng = np.random.default_rng(3)
    for _ in range(2):
        u = rng.standard_normal(fold.size)
        ro, re = residual(*split.split(u))
        want = b - A @ u
        np.testing.assert_allclose(split.join(ro, re), want, rtol=0,
                                   atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize("N,Gamma", [(120, 2.7), (300, 1.68)])
def test_lean_single_precision_scan_equals_the_one_with_kept_blocks(N, Gamma):
    """A scan with single-precision factors is lean by default: its refinement takes the
    residual from the Liouvillian's rows, its factors keep no blocks and none are carried
    between windows; it gives the state of the scan that keeps the blocks and the factors
    (lean=False), and of double-precision factors, to 1e-12 in I_M/N and m, with the same
    windows and a residual below the tolerance."""
    model = lmg(N, 3.0, 0.5, Gamma, 1.0)
    lean = steady_state(model, method="window", factor_precision="single")
    kept = steady_state(model, method="window", factor_precision="single", lean=False)
    ref = steady_state(model, method="window")
    assert lean.info["lean"] and not kept.info["lean"] and not ref.info["lean"]
    assert lean.info["refinement_residual"] == "Liouvillian rows"
    assert kept.info["refinement_residual"] == "blocks"
    assert lean.info["refined_blocks_GB"] == 0 < kept.info["refined_blocks_GB"]
    assert [w["window"] for w in lean.info["scan"]] == [w["window"] for w in kept.info["scan"]]
    for other in (kept, ref):
        assert abs(lean.IM_per_N - other.IM_per_N) < 1e-12
        np.testing.assert_allclose(lean.m, other.m, rtol=0, atol=1e-12)
    assert lean.relative_residual < 1e-10


def test_progress_lines_of_a_masked_solve_are_read_back():
    """parse_progress reads the lines solve_window writes: the support mask of the size,
    its windows with their iterations as the scan records them, a benchmark's time stamp;
    other lines are None."""
    from picorr.steady.window import parse_progress

    lines = []
    res = steady_state(lmg(300, 3.0, 0.5, 1.68, 1.0), method="window", progress=lines.append)
    said = [parse_progress(ln) for ln in lines]
    assert [p["N"] for p in said if p and p["kind"] == "mask"] == [300]
    assert [(p["window"], p["iterations"]) for p in said
            if p and p["kind"] == "window" and p["N"] == 300] == \
        [(w["window"], w["iterations"]) for w in res.info["scan"]]
    stamped = parse_progress(f"[   12.5 s] {lines[-1]}")
    assert stamped["seconds"] == 12.5 and stamped["N"] == 300
    assert parse_progress("N = 300: something else") is None


@pytest.mark.parametrize("method,N,h,Gamma", [("window", 120, 0.5, 2.7), ("krylov", 60, -0.5, 0.7)])
def test_single_precision_factors_give_the_double_precision_state(method, N, h, Gamma):
    """The whole solve with single-precision factors, by mixed-precision refinement: the
    same I_M/N and m to 1e-12, the same window, the precision and each outer step
    recorded, each step cutting the residual by MIN_CUT or more down to the tolerance."""
    from picorr.steady.krylov import MIN_CUT

    model = lmg(N, 3.0, h, Gamma, 1.0)
    ref = steady_state(model, method=method)
    low = steady_state(model, method=method, factor_precision="single")
    assert ref.info["factor_precision"] == "double" and low.info["factor_precision"] == "single"
    assert low.info["scheme"] == "red-black Schur GMRES, mixed-precision refinement"
    steps = low.info["refinement"]
    assert steps and sum(s["iterations"] for s in steps) <= low.iterations
    res = [s["residual"] for s in steps]
    assert all(b < MIN_CUT * a for a, b in zip(res, res[1:])) and res[-1] <= 1e-13
    assert low.window == ref.window
    assert low.iterations <= 1.5 * ref.iterations
    if method == "window":  # each window's steps are in the scan and the progress lines
        lines = []
        again = steady_state(model, method=method, factor_precision="single",
                             progress=lines.append)
        scan = again.info["scan"]
        assert all(len(w["refinement"]) >= 1 for w in scan)
        told = [ln for ln in lines if "refinement step" in ln]
        assert len(told) == sum(len(w["refinement"]) for w in scan)
        last = scan[-1]["refinement"][-1]
        assert told[-1] == (f"N = {N} (window {scan[-1]['window']}): refinement step "
                            f"{len(scan[-1]['refinement'])} cut the residual to "
                            f"{last['residual']:.1e} in {last['iterations']} iterations")
        # the book reads these lines back with parse_progress: the same numbers
        from picorr.steady.window import parse_progress
        said = [parse_progress(ln) for ln in lines]
        assert [(p["window"], p["iterations"]) for p in said if p and p["kind"] == "window"] \
            == [(w["window"], w["iterations"]) for w in scan]
        assert [(p["window"], p["step"], p["iterations"]) for p in said
                if p and p["kind"] == "step"] == \
            [(w["window"], i + 1, st["iterations"]) for w in scan
             for i, st in enumerate(w["refinement"])]
    assert abs(low.IM_per_N - ref.IM_per_N) < 1e-12
    np.testing.assert_allclose(low.m, ref.m, rtol=0, atol=1e-12)
    assert low.relative_residual < 1e-10
    assert low.info["factor_GB"] < 0.65 * ref.info["factor_GB"]


def test_mixed_precision_refinement_reports_what_stops_it(monkeypatch):
    """A refinement whose outer steps stop cutting the residual (here: inner solves made
    too loose to cut it by the required factor) and one out of iterations both raise
    NotConvergedError naming the refinement, the residual reached and the remedy."""
    import picorr.steady.krylov as K

    model = lmg(60, 3.0, 0.5, 2.7, 1.0)
    monkeypatch.setattr(K, "INNER_RTOL", 0.5)
    monkeypatch.setattr(K, "MIN_CUT", 1e-3)
    with pytest.raises(NotConvergedError, match=r"mixed-precision refinement stopped at a "
                       r"relative residual of .*factor_precision='double'"):
        steady_state(model, method="krylov", factor_precision="single")
    monkeypatch.undo()
    with pytest.raises(NotConvergedError, match=r"maxiter=3 inner iterations were spent"):
        steady_state(model, method="krylov", factor_precision="single", maxiter=3)


def test_auto_precision_takes_single_only_when_double_does_not_fit():
    from picorr.steady import InsufficientMemoryError
    from picorr.steady.memory import choose_precision, estimate_peak_bytes

    N, Q = 400, 30
    double = estimate_peak_bytes(N, Q)["total"]
    single = estimate_peak_bytes(N, Q, precision="single")["total"]
    assert single < 0.9 * double
    assert choose_precision(N, Q, max_memory=1.01 * double)[1] == "double"
    est, precision = choose_precision(N, Q, max_memory=0.99 * double)
    assert precision == "single" and est["total"] == single
    # a scan that went to single precision stays there
    assert choose_precision(N, Q, max_memory=2 * double, at_least="single")[1] == "single"
    assert choose_precision(N, Q, max_memory=2 * double, precision="single")[1] == "single"
    with pytest.raises(InsufficientMemoryError, match="single-precision sector factors"):
        choose_precision(N, Q, max_memory=0.99 * single)
    with pytest.raises(InsufficientMemoryError, match=r"N = 400 needs an estimated"):
        choose_precision(N, Q, max_memory=0.99 * double, precision="double")
    with pytest.raises(ValueError, match="factor_precision must be one of auto, double, single"):
        choose_precision(N, Q, precision="float32")


def test_memory_estimate_against_a_measured_peak():
    """The estimate of :mod:`picorr.steady.memory` against the peak RSS of a fresh process."""
    import json
    import subprocess
    import sys

    code = (
        "import json; from picorr.models import lmg; from picorr.steady import steady_state;"
        "r = steady_state(lmg(150, 3.0, 0.5, 1.68, 1.0), method='window', mask=False);"
        "print(json.dumps([r.peak_rss_bytes, r.info['memory_estimate_GB'] * 1e9]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    peak, estimate = json.loads(out.stdout.strip().splitlines()[-1])
    assert 0.9 * peak < estimate < 1.8 * peak


def test_memory_estimate_covers_the_calibration_peaks():
    """The model of :mod:`picorr.steady.memory` on the shipped calibration runs
    (``data/benchmarks/memory_calibration.json``, measured peaks of whole processes with
    their factors, basis and unknowns): at least 1.05 times each peak, and not so far above
    that it would refuse what fits (at most 1.2 times from N = 400 on)."""
    import json
    from pathlib import Path

    from picorr.steady.memory import BASE_BYTES, other_bytes

    path = Path(__file__).parents[1] / "data" / "benchmarks" / "memory_calibration.json"
    recs = [r for r in json.loads(path.read_text())["records"] if "error" not in r]
    assert len(recs) == 8
    for r in recs:
        est = (r["memory_estimate_factors_GB"] + r["memory_estimate_krylov_GB"]) * 1e9 \
            + other_bytes(r["real_unknowns"]) + BASE_BYTES
        ratio = est / (r["peak_gb"] * 1e9)
        assert 1.05 <= ratio <= (1.2 if r["N"] >= 400 else 1.5), (r["N"], r["Gamma"], ratio)


def test_insufficient_memory_is_refused_before_solving():
    from picorr.steady import InsufficientMemoryError

    with pytest.raises(InsufficientMemoryError, match=r"N = 150 needs an estimated .* GB"):
        steady_state(lmg(150, 3.0, 0.5, 1.68, 1.0), method="window", max_memory=1e7)
    with pytest.raises(InsufficientMemoryError, match="support mask for N = 400"):
        steady_state(lmg(400, 3.0, 0.5, 1.68, 1.0), method="window", max_memory=1e7)


def test_a_size_that_cannot_fit_is_refused_after_the_smallest_coarse_solve():
    """N = 600 solves N = 300 (masked) which solves N = 150 first. With a memory limit
    between what N = 150 needs and the lower bound for N = 600 predicted from it, the solve
    is refused right after the N = 150 scan, before any N = 300 window."""
    from picorr.steady.memory import estimate_peak_bytes
    from picorr.steady.window import (OuterSizeMemoryError, default_start_window,
                                      outer_size_bound)

    model = lmg(600, 3.0, 0.5, 1.68, 1.0)
    c150 = steady_state(model.replace(N=150), method="window",
                        start=default_start_window(150, locate=True))
    small = max(estimate_peak_bytes(150, s["window"])["total"] for s in c150.info["scan"])
    bound = outer_size_bound(600, c150)["total"]
    assert small < bound  # the premise of the test
    limit = np.sqrt(small * bound)
    lines = []
    with pytest.raises(OuterSizeMemoryError, match=r"N = 600 needs at least an estimated"):
        steady_state(model, method="window", max_memory=limit, progress=lines.append)
    assert not any(line.startswith("N = 300") for line in lines)  # no mask, no window
    assert sum(line.startswith("N = 150, window") for line in lines) == len(c150.info["scan"])


@pytest.mark.parametrize("N,Gamma", [(300, 0.3), (300, 1.0), (1000, 1.6), (300, 3.9)])
def test_masked_rate_equations_equal_the_whole_lattice(N, Gamma):
    """The rate equations on the support predicted from N // 2 (the default from N = 1000
    on, forced here at N = 300) against the LU of the whole (J, M) lattice: the same
    populations to 1e-13 of the largest, the same I_M/N to 1e-12, and the flux into the
    rows left out is counted in the residual."""
    from picorr.steady.support import embed

    model = lmg(N, 3.0, 0.0, Gamma, 1.0)
    whole = steady_state(model, method="rates", mask=False)
    masked = steady_state(model, method="rates", mask=True)
    assert masked.info["support_from_N"] == N // 2
    assert masked.info["support_fraction"] < 1
    assert masked.unknowns < whole.unknowns
    assert masked.info["leak_residual"] < 1e-14 and masked.relative_residual < 1e-12
    rho = embed(masked.state.rho, masked.state.layout, whole.state.layout)
    p = whole.state.rho.real
    np.testing.assert_allclose(rho.real, p, atol=1e-13 * p.max())
    assert abs(masked.IM_per_N - whole.IM_per_N) < 1e-12


def test_rates_with_a_sparse_pin_equal_the_trace_bordered_solve(monkeypatch):
    """The rate equations pin one population (sparse row) instead of the dense trace row;
    both formulations must give the same state, and a pin whose population is below
    PIN_RATIO of the largest (forced here by raising the ratio) is moved to the largest."""
    import scipy.sparse.linalg as sla

    from picorr.steady import direct

    model = lmg(130, 3.0, 0.0, 1.68, 1.0)
    res = steady_state(model)
    assert res.method == "rates" and res.info["repinned"] is False
    lay = res.state.layout
    A, b = direct.bordered_system(liouvillian(model, lay).real, lay)
    ref = sla.spsolve(A.tocsc(), b)
    np.testing.assert_allclose(res.state.rho.real, ref, atol=1e-13)
    monkeypatch.setattr(direct, "_predicted_peak", lambda m, layout, coarse=None: layout.trace_row)
    monkeypatch.setattr(direct, "PIN_RATIO", 0.5)
    again = steady_state(model)
    assert again.info["repinned"] is True
    np.testing.assert_allclose(again.state.rho.real, ref, atol=1e-13)


def _sector_system(N=20, window=6):
    from picorr.steady import krylov

    fold, _ = krylov.assemble_fold(lmg(N, 3.0, 0.5, 2.7, 1.0), BlockLayout(N, window))
    A, b = fold.bordered()
    return A.tocsr(), b, fold.q, fold.complex_partner()


def test_a_dense_row_is_ordered_last_and_solves_the_same_system(monkeypatch):
    """factorize orders a matrix with a dense row (the trace row of sector 0) without it and
    puts it last; the factors solve the same system (plain and conjugate-transposed) as
    SuperLU's own ordering and a dense solve."""
    import scipy.sparse.linalg as sla

    from picorr.steady import direct, krylov

    A, b, q, partner = _sector_system()
    idx = np.flatnonzero(q == 0)
    (_, _, _, B), = krylov.sector_blocks(A[idx][:, idx], q[idx])
    dense_len = int(np.bincount(B.indices, minlength=B.shape[0]).max())
    assert dense_len == B.shape[0]  # the trace row covers all of sector 0
    monkeypatch.setattr(direct, "DENSE_ROW", dense_len // 2)
    lu = direct.factorize(B)
    assert isinstance(lu, direct.PermutedLU) and lu.order[-1] == np.argmax(
        np.bincount(B.indices, minlength=B.shape[0]))
    ref = sla.splu(B, **direct.SUPERLU_OPTIONS)
    assert lu.nnz <= ref.nnz
    rng = np.random.default_rng(3)
    r = rng.standard_normal(B.shape[0])
    D = B.toarray()
    for trans, M in (("N", D), ("H", D.conj().T)):
        x = lu.solve(r, trans=trans)
        exact = np.linalg.solve(M, r)
        np.testing.assert_allclose(x, exact, rtol=0, atol=1e-11 * np.abs(exact).max())
        np.testing.assert_allclose(x, ref.solve(r, trans=trans), rtol=0,
                                   atol=1e-12 * np.abs(exact).max())
    monkeypatch.setattr(direct, "DENSE_ROW", dense_len)  # no row above: SuperLU's ordering
    assert not isinstance(direct.factorize(B), direct.PermutedLU)


def test_grouped_unknowns_make_each_sector_one_slice():
    """In the order of krylov.grouped every sector of the preconditioner is one contiguous
    slice (complex sectors as interleaved x, y pairs), and its solve is the same as in the
    assembly's order, also for a right-hand side that is not contiguous."""
    from picorr.steady import krylov

    A, b, q, partner = _sector_system()
    for colour in (0, 1):
        idx = np.flatnonzero(q % 2 == colour)
        g = krylov.grouped(idx, q, partner)
        assert np.array_equal(np.sort(g), idx)
        P0 = krylov.SectorPreconditioner(A[idx][:, idx], q[idx], merge=False,
                                         partner=krylov._sub_partner(partner, idx), threads=1)
        P1 = krylov.SectorPreconditioner(A[g][:, g], q[g], merge=False,
                                         partner=krylov._sub_partner(partner, g), threads=1)
        assert all(isinstance(xs, slice) for xs, _, _ in P1.sectors)
        assert not any(isinstance(xs, slice) for xs, ys, _ in P0.sectors if ys is not None)
        assert P1.complex_sectors == P0.complex_sectors > 0
        pos = np.searchsorted(idx, g)  # where each grouped unknown sits in idx
        rng = np.random.default_rng(colour)
        for r in (rng.standard_normal(idx.size), rng.standard_normal(idx.size)):
            want = P0.solve(r)[pos]
            np.testing.assert_allclose(P1.solve(r[pos]), want, rtol=0,
                                       atol=1e-13 * np.abs(want).max())
            # a non-contiguous right-hand side gives the same
            wide = np.zeros(2 * idx.size, dtype=r.dtype)
            wide[::2] = r[pos]
            np.testing.assert_allclose(P1.solve(wide[::2]), want, rtol=0,
                                       atol=1e-13 * np.abs(want).max())
        P0.close()
        P1.close()


def test_colour_split_of_arbitrary_row_blocks_with_empty_rows():
    """colour_split on a random two-coloured system (couplings within a sector and to its
    neighbours only) cut into uneven row blocks, some rows empty, one row replaced: the
    same blocks as indexing the whole matrix, in one thread and in two."""
    import scipy.sparse as sp

    from picorr.steady import krylov

    rng = np.random.default_rng(5)
    n = 300
    sector = rng.integers(0, 6, n)
    A = sp.random(n, n, density=0.08, random_state=6, format="coo")
    keep = np.abs(sector[A.row] - sector[A.col]) <= 1
    A = sp.csr_matrix((A.data[keep], (A.row[keep], A.col[keep])), shape=(n, n))
    empty = np.ones(n)
    empty[40] = empty[-7:] = 0.0
    A = sp.csr_matrix(A.multiply(empty[:, None]))
    A.eliminate_zeros()
    assert np.count_nonzero(np.diff(A.indptr) == 0) >= 8
    row, cols = 3, np.flatnonzero(sector == sector[3])
    whole = A.tolil()
    whole[row] = 0.0
    whole[row, cols] = 1.0
    whole = whole.tocsr()
    odd = krylov.grouped(np.flatnonzero(sector % 2 != 0), sector, None)
    even = krylov.grouped(np.flatnonzero(sector % 2 == 0), sector, None)
    cuts = [0, 1, 2, 50, 51, 120, 200, 293, n]
    for threads in (1, 2):
        parts = [(a, A[a:b].copy()) for a, b in zip(cuts[:-1], cuts[1:])]
        split = krylov.colour_split(parts, sector, replace=(row, cols), threads=threads)
        assert parts == []
        for name, r, c in (("oo", odd, odd), ("oe", odd, even), ("eo", even, odd),
                           ("ee", even, even)):
            assert abs(split.take(name) - whole[r][:, c]).max() == 0.0


def test_small_pages_switches_numpy_huge_pages_off_and_restores_them():
    """colour_split allocates its blocks with NumPy's huge-page advice off; the setting
    before is restored afterwards, also when the block raises."""
    from picorr.steady.krylov import small_pages

    mod = pytest.importorskip("numpy._core.multiarray")
    before = mod._get_madvise_hugepage()
    with small_pages():
        assert mod._get_madvise_hugepage() is False
    assert mod._get_madvise_hugepage() == before
    with pytest.raises(KeyError):
        with small_pages():
            raise KeyError("x")
    assert mod._get_madvise_hugepage() == before


def test_block_gmres_matches_scipy():
    """picorr's GMRES (classical Gram-Schmidt twice) takes the iterations of SciPy's GMRES
    (modified Gram-Schmidt) and reaches the same solution; it reports non-convergence
    within a small budget and stops at once on an exact Krylov space."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as sla

    from picorr.steady.gmres import gmres

    n = 2000
    A = (sp.diags(np.linspace(1, 10, n)) + sp.random(n, n, density=4 / n, random_state=2)).tocsr()
    b = np.random.default_rng(1).standard_normal(n)
    for restart in (5, 20, 200):
        count = [0]
        xs, info = sla.gmres(A, b, rtol=1e-12, atol=0, restart=restart, maxiter=400 // restart,
                             callback=lambda _: count.__setitem__(0, count[0] + 1),
                             callback_type="pr_norm")
        x, its, ok = gmres(lambda v: A @ v, b, rtol=1e-12, restart=restart, maxiter=400)
        assert info == 0 and ok and its == count[0]
        assert np.linalg.norm(A @ x - b) <= 1e-12 * np.linalg.norm(b)
        np.testing.assert_allclose(x, xs, rtol=0, atol=1e-10 * np.abs(xs).max())
    x, its, ok = gmres(lambda v: A @ v, b, rtol=1e-12, restart=20, maxiter=10)
    assert not ok and its == 10
    x, its, ok = gmres(lambda v: 2.0 * v, b, rtol=1e-12, restart=20, maxiter=10)
    assert ok and its == 1 and np.allclose(x, b / 2, rtol=1e-14)


def test_single_precision_basis_and_implicit_stop():
    """``basis='single'`` keeps the Krylov basis in float32 and still solves to about
    single precision's accuracy; ``implicit=True`` ends on the cycle's own residual, which
    for an operator with noise at 1e-6 (a stand-in for unrefined single-precision solves)
    is reached where the true residual stalls; a bad basis is named."""
    import scipy.sparse as sp

    from picorr.steady.gmres import gmres

    n = 3000
    A = (sp.diags(np.linspace(1, 10, n)) + sp.random(n, n, density=4 / n, random_state=2)).tocsr()
    b = np.random.default_rng(1).standard_normal(n)
    x, its, ok = gmres(lambda v: A @ v, b, rtol=1e-5, restart=20, maxiter=400, basis="single")
    assert ok and np.linalg.norm(A @ x - b) <= 1e-5 * np.linalg.norm(b)
    ref, its_d, _ = gmres(lambda v: A @ v, b, rtol=1e-5, restart=20, maxiter=400)
    assert abs(its - its_d) <= 2  # the basis's precision does not slow it at 1e-5
    rng = np.random.default_rng(4)

    def noisy(v):  # a matvec with a relative error of 1e-6
        w = A @ v
        return w * (1 + 1e-6 * rng.standard_normal(n))

    x, its, ok = gmres(noisy, b, rtol=1e-9, restart=20, maxiter=300)
    assert not ok  # the true residual cannot follow the noise down to 1e-9
    x, its, ok = gmres(noisy, b, rtol=1e-9, restart=20, maxiter=300, implicit=True)
    assert ok and its < 300
    assert np.linalg.norm(A @ x - b) < 1e-4 * np.linalg.norm(b)  # a useful correction
    with pytest.raises(ValueError, match="basis must be 'double' or 'single'"):
        gmres(lambda v: A @ v, b, basis="half")


def _slow_mode_matrix(n=1200, seed=3):
    """A non-normal real matrix whose spectrum is a bulk in [1, 10] and eight outliers near
    zero, four of them two complex pairs: restarted GMRES with a short restart forgets the
    outliers at each restart and stalls."""
    rng = np.random.default_rng(seed)
    B = np.diag(np.r_[rng.uniform(1, 10, n - 8), 1e-3 * (1 + rng.uniform(0, 1, 4)), np.zeros(4)])
    for i, (a, w) in zip((n - 4, n - 2), ((2e-3, 3e-3), (1e-3, 5e-3))):
        B[i:i + 2, i:i + 2] = [[a, w], [-w, a]]
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return Q @ B @ Q.T + 0.2 * np.triu(rng.standard_normal((n, n)), 1) / np.sqrt(n)


def test_deflated_restarts_recover_full_gmres():
    """GMRES-DR: with a restart of 30 and plain restarts GMRES has not converged after 600
    iterations; keeping 10 harmonic Ritz vectors it converges in about the iterations of
    unrestarted GMRES (within 20 %), to the solution of a dense direct solve. With
    ``deflate=0`` the iterations are those of plain restarts (bit for bit the same x)."""
    from picorr.steady.gmres import gmres

    A = _slow_mode_matrix()
    b = np.random.default_rng(4).standard_normal(A.shape[0])
    exact = np.linalg.solve(A, b)
    mv = lambda v: A @ v  # noqa: E731
    full = gmres(mv, b, rtol=1e-12, restart=400, maxiter=400)
    plain = gmres(mv, b, rtol=1e-12, restart=30, maxiter=600)
    dr = gmres(mv, b, rtol=1e-12, restart=30, maxiter=600, deflate=10)
    assert full[2] and full[1] < 400  # one cycle
    assert not plain[2] and plain[1] == 600
    assert dr[2] and dr[1] <= 1.2 * full[1]
    for x in (full[0], dr[0]):
        assert np.linalg.norm(A @ x - b) <= 1e-12 * np.linalg.norm(b)
        np.testing.assert_allclose(x, exact, rtol=0, atol=1e-8 * np.abs(exact).max())
    zero = gmres(mv, b, rtol=1e-12, restart=30, maxiter=600, deflate=0)
    assert zero[1] == plain[1] and np.array_equal(zero[0], plain[0])


def test_harmonic_ritz_values_of_the_kept_basis_are_the_smallest():
    """The first vectors kept by a deflated restart span the harmonic Ritz vectors of the
    smallest harmonic Ritz values, a complex pair as its real and imaginary parts: the
    Rayleigh quotient of A on the kept basis has the eight outliers' eigenvalues after
    enough iterations (to 1e-6 of the bulk), and the kept basis is orthonormal."""
    from scipy.linalg import eigvals

    from picorr.steady.gmres import harmonic_ritz_basis

    A = _slow_mode_matrix(n=600)
    m = 150
    b = np.random.default_rng(5).standard_normal(A.shape[0])
    V = np.zeros((m + 1, b.size))
    H = np.zeros((m + 1, m))
    V[0] = b / np.linalg.norm(b)
    for j in range(m):  # Arnoldi, twice-orthogonalised
        w = A @ V[j]
        for _ in range(2):
            h = V[:j + 1] @ w
            w -= h @ V[:j + 1]
            H[:j + 1, j] += h
        H[j + 1, j] = np.linalg.norm(w)
        V[j + 1] = w / H[j + 1, j]
    rc = np.zeros(m + 1)
    rc[-1] = 1.0  # any residual direction with a last entry
    P = harmonic_ritz_basis(H, rc, 8)
    assert P.shape == (m + 1, 9)
    np.testing.assert_allclose(P.T @ P, np.eye(9), atol=1e-12)
    W = V.T @ P[:, :8]  # the kept vectors in the full space
    ritz = np.sort_complex(eigvals(W.T @ A @ W))
    outliers = np.sort_complex(np.linalg.eigvals(A))[:8]
    np.testing.assert_allclose(ritz, outliers, atol=1e-6)


@pytest.mark.parametrize("deflate", [-1, 31, 2.5, True])
def test_bad_deflate_is_named(deflate):
    from picorr.steady.gmres import gmres

    with pytest.raises(ValueError, match="deflate must be an integer from 0 to restart // 2 = 30"):
        gmres(lambda v: v, np.ones(3), restart=60, deflate=deflate)
    with pytest.raises(ValueError, match="deflate"):
        steady_state(lmg(20, 3.0, 0.5, 2.7, 1.0), method="window", restart=60, deflate=deflate)


def test_window_with_deflated_restarts_equals_plain_restarts():
    """A window solve whose first window needs several restarts (restart 8): deflated
    restarting gives the answer of plain restarts (to 1e-11 in I_M/N and m) and records its
    deflation in info. (At this size the sector preconditioner leaves no slow modes, so
    the iterations are about the same; what deflation gains is tested above on a matrix
    with slow modes.)"""
    model = lmg(120, 3.0, 0.5, 1.68, 1.0)
    plain = steady_state(model, method="window", restart=8, deflate=0)
    dr = steady_state(model, method="window", restart=8, deflate=4)
    assert [s["window"] for s in plain.info["scan"]] == [s["window"] for s in dr.info["scan"]]
    assert dr.info["scan"][0]["iterations"] > 2 * 8  # at least two deflated restarts
    assert abs(dr.IM_per_N - plain.IM_per_N) < 1e-11
    np.testing.assert_allclose(dr.m, plain.m, atol=1e-11)
    assert dr.relative_residual < 1e-10
    assert dr.info["deflate"] == 4 and plain.info["deflate"] == 0
