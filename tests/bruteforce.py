"""The independent oracle: the full 2^N-dimensional Lindblad equation (Eq. 1), built from
Kronecker products of Pauli matrices. Shares no code with the library.

Basis per qubit: |0> = spin up (sigma_z = +1), |1> = spin down. Vectorisation here is
column stacking, vec(A rho B) = (B^T kron A) vec(rho), chosen independently of the library.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as sla

SX = np.array([[0, 1], [1, 0]], dtype=complex)
SY = np.array([[0, -1j], [1j, 0]], dtype=complex)
SZ = np.array([[1, 0], [0, -1]], dtype=complex)
SP = np.array([[0, 1], [0, 0]], dtype=complex)  # sigma_+ = |up><down|
SM = SP.T.copy()
I2 = np.eye(2, dtype=complex)


def site_op(op, i, N):
    out = sp.identity(1, dtype=complex, format="csr")
    for k in range(N):
        out = sp.kron(out, sp.csr_matrix(op) if k == i else sp.identity(2, format="csr"), format="csr")
    return out


def collective(N):
    """Dict of collective spin operators J_x, J_y, J_z, J_+, J_- (J_a = sum sigma_a / 2)."""
    Jx = sum(site_op(SX, i, N) for i in range(N)) / 2
    Jy = sum(site_op(SY, i, N) for i in range(N)) / 2
    Jz = sum(site_op(SZ, i, N) for i in range(N)) / 2
    return {"x": Jx, "y": Jy, "z": Jz, "+": Jx + 1j * Jy, "-": Jx - 1j * Jy}


def hamiltonian(N, K, c):
    J = collective(N)
    ax = "xyz"
    H = sp.csr_matrix((2**N, 2**N), dtype=complex)
    for a in range(3):
        H = H + c[a] * J[ax[a]]
        for b in range(3):
            if K[a][b]:
                H = H + (K[a][b] / N) * (J[ax[a]] @ J[ax[b]])
    return H


def dissipator_terms(N, collective_jumps, local):
    """List of (rate, L): collective jumps [(Gamma, a_plus, a_minus, a_z)] enter with
    Gamma/N; local = {'-': g, '+': g, 'z': g} on every site."""
    J = collective(N)
    out = []
    for Gamma, ap, am, az in collective_jumps:
        out.append((Gamma / N, ap * J["+"] + am * J["-"] + az * J["z"]))
    ops = {"-": SM, "+": SP, "z": SZ}
    for name, g in local.items():
        if g:
            for i in range(N):
                out.append((g, site_op(ops[name], i, N)))
    return out


def lindbladian(H, terms):
    d = H.shape[0]
    I = sp.identity(d, dtype=complex, format="csr")
    L = -1j * (sp.kron(I, H) - sp.kron(H.T, I))
    for rate, A in terms:
        AdA = (A.conj().T @ A).tocsr()
        L = L + rate * (sp.kron(A.conj(), A) - 0.5 * sp.kron(I, AdA) - 0.5 * sp.kron(AdA.T, I))
    return L.tocsc()


def steady_state(L, d):
    """Unique steady state by sparse LU with the trace condition in row 0."""
    L = sp.csr_matrix(L)
    keep = np.ones(d * d)
    keep[0] = 0
    trace = sp.csr_matrix((np.ones(d), (np.zeros(d, int), np.arange(d) * (d + 1))), shape=L.shape)
    A = (sp.diags(keep) @ L + trace).tocsc()
    b = np.zeros(d * d, dtype=complex)
    b[0] = 1
    x = sla.splu(A, permc_spec="MMD_AT_PLUS_A").solve(b)
    rho = x.reshape(d, d, order="F")
    return 0.5 * (rho + rho.conj().T)


def entropy(rho):
    w = np.linalg.eigvalsh(rho)
    w = w[w > 1e-15]
    return float(-np.sum(w * np.log(w)))


def reduced_site(rho, i, N):
    t = rho.reshape([2] * (2 * N))
    keep = i
    # trace out every other site
    axes_row = list(range(N))
    for k in reversed(range(N)):
        if k == keep:
            continue
        t = np.trace(t, axis1=k, axis2=k + t.ndim // 2)
    return t.reshape(2, 2)


def observables(rho, N):
    """m (from site 0 and checked equal on all sites), S(rho_T), sum_i S(rho_i), I_M."""
    S_T = entropy(rho)
    S_sites = []
    ms = []
    for i in range(N):
        r1 = reduced_site(rho, i, N)
        S_sites.append(entropy(r1))
        ms.append([np.trace(r1 @ s).real for s in (SX, SY, SZ)])
    return {"m": np.mean(ms, axis=0), "m_spread": np.ptp(ms, axis=0).max(), "S_T": S_T,
            "S_1": float(np.mean(S_sites)), "I_M": float(np.sum(S_sites) - S_T)}


def dicke_embedding(N):
    """Operators E[(J, M, M')] = sum_alpha |J, M, alpha><J, M', alpha| on the full space and
    the multiplicities dim_J, from the eigenspaces of the collective J^2 and J_z."""
    J = collective(N)
    J2 = (J["x"] @ J["x"] + J["y"] @ J["y"] + J["z"] @ J["z"]).toarray()
    w, V = np.linalg.eigh(J2)
    jz = np.real(np.diag(J["z"].toarray()))
    Jp = J["+"].toarray()
    E, dims = {}, {}
    for Jv in np.arange(N % 2 / 2, N / 2 + 0.1, 1.0):
        sel = np.abs(w - Jv * (Jv + 1)) < 1e-6
        PJ = V[:, sel] @ V[:, sel].conj().T
        Ms = Jv - np.arange(int(round(2 * Jv)) + 1)
        P = {M: PJ @ np.diag((np.abs(jz - M) < 1e-9).astype(float)) for M in Ms}
        dims[Jv] = int(round(np.trace(P[Jv]).real))
        for Mp in Ms:
            for M in Ms:
                if M < Mp:
                    continue
                op = P[M]
                coef = 1.0
                m = Mp
                ladder = np.eye(2**N, dtype=complex)
                while m < M:
                    ladder = Jp @ ladder
                    coef *= np.sqrt(Jv * (Jv + 1) - m * (m + 1))
                    m += 1
                Eop = P[M] @ ladder @ P[Mp] / coef
                E[(Jv, M, Mp)] = Eop
                E[(Jv, Mp, M)] = Eop.conj().T
    return E, dims
