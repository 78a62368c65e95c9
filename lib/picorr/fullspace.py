"""The full 2^N-dimensional Lindblad equation (Eq. 1) of a qubit model, for small N.

This is the brute-force counterpart of the Dicke-block engine: the density matrix is a
``2^N x 2^N`` matrix, the Liouvillian a ``4^N x 4^N`` sparse matrix built from Kronecker
products of Pauli matrices, and the entropies come from a full eigendecomposition. It
exists so that the book can *show* the block decomposition at work (Eqs. 8, 20-21): the
same steady state, the same ``I_M``, obtained without using permutation invariance at all.
It shares no code with :mod:`picorr.liouvillian` or :mod:`picorr.information`; only the
model description (:class:`~picorr.models.QubitModel`) is common. Memory grows as 16^N:
N <= 6 is practical.

Conventions: qubit basis ``|0> = spin up`` (``sigma_z = +1``), ``|1> = spin down``;
``J_a = sum_i sigma_a^(i) / 2``; the density matrix is vectorised row by row (C order),
``vec(A rho B) = (A kron B^T) vec(rho)``; entropies in nats.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache, reduce

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from .models import ModelError, QubitModel

__all__ = [
    "MAX_N",
    "FullSpaceResult",
    "collective_operators",
    "full_hamiltonian",
    "full_liouvillian",
    "full_space",
    "full_correlations",
    "dicke_basis",
]

#: Largest N accepted: the Liouvillian has 4^N rows and the stationarity equation is
#: solved densely (sparse LU fills in badly here; N = 6 takes a few seconds).
MAX_N = 6

_SIGMA = {
    "x": np.array([[0, 1], [1, 0]], dtype=complex),
    "y": np.array([[0, -1j], [1j, 0]], dtype=complex),
    "z": np.array([[1, 0], [0, -1]], dtype=complex),
    "+": np.array([[0, 1], [0, 0]], dtype=complex),  # sigma_+ = |up><down|
    "-": np.array([[0, 0], [1, 0]], dtype=complex),
}


def _check_N(N: int) -> int:
    if isinstance(N, bool) or not isinstance(N, (int, np.integer)) or not 2 <= N <= MAX_N:
        raise ModelError(f"N must be an integer in [2, {MAX_N}] for the full 2^N equation, got {N!r}")
    return int(N)


def _site(op: np.ndarray, i: int, N: int) -> sp.csr_matrix:
    """``op`` acting on qubit ``i`` of ``N`` (identity elsewhere)."""
    left = sp.identity(2**i, dtype=complex, format="csr")
    right = sp.identity(2 ** (N - i - 1), dtype=complex, format="csr")
    return sp.kron(sp.kron(left, sp.csr_matrix(op)), right, format="csr")


@lru_cache(maxsize=8)
def collective_operators(N: int) -> dict[str, sp.csr_matrix]:
    """``{'x', 'y', 'z', '+', '-'}``: the collective spin operators ``J_a`` and
    ``J_pm = J_x pm i J_y`` as sparse ``2^N x 2^N`` matrices."""
    N = _check_N(N)
    out = {a: reduce(lambda A, B: A + B, (_site(_SIGMA[a], i, N) for i in range(N))) / 2 for a in "xyz"}
    out["+"] = (out["x"] + 1j * out["y"]).tocsr()
    out["-"] = (out["x"] - 1j * out["y"]).tocsr()
    return out


def full_hamiltonian(model: QubitModel) -> sp.csr_matrix:
    """``H = (1/N) sum_ab K_ab J_a J_b + sum_a c_a J_a`` on the full space."""
    N = _check_N(model.N)
    J = collective_operators(N)
    H = sp.csr_matrix((2**N, 2**N), dtype=complex)
    for a, ax in enumerate("xyz"):
        if model.c[a]:
            H = H + model.c[a] * J[ax]
        for b, bx in enumerate("xyz"):
            if model.K[a][b]:
                H = H + (model.K[a][b] / N) * (J[ax] @ J[bx])
    return H.tocsr()


def _jump_operators(model: QubitModel) -> list[tuple[float, sp.csr_matrix]]:
    """``(rate, L)`` for every collective jump (rate Gamma/N) and every local jump."""
    N = model.N
    J = collective_operators(N)
    out = []
    for jump in model.jumps:
        if jump.active:
            L = jump.a_plus * J["+"] + jump.a_minus * J["-"] + jump.a_z * J["z"]
            out.append((jump.Gamma / N, sp.csr_matrix(L)))
    for name, rate in model.local_rates.items():
        if rate:
            for i in range(N):
                out.append((rate, _site(_SIGMA[name], i, N)))
    return out


def full_liouvillian(model: QubitModel) -> sp.csr_matrix:
    """The ``4^N x 4^N`` Liouvillian of Eq. (1), for ``vec(rho)`` stored row by row."""
    N = _check_N(model.N)
    d = 2**N
    eye = sp.identity(d, dtype=complex, format="csr")
    H = full_hamiltonian(model)
    L = -1j * (sp.kron(H, eye) - sp.kron(eye, H.T))
    for rate, A in _jump_operators(model):
        AdA = (A.conj().T @ A).tocsr()
        L = L + rate * (sp.kron(A, A.conj()) - 0.5 * sp.kron(AdA, eye) - 0.5 * sp.kron(eye, AdA.T))
    return L.tocsr()


def _entropy(rho: np.ndarray) -> float:
    w = np.linalg.eigvalsh(rho)
    w = w[w > 1e-14]
    return float(-np.sum(w * np.log(w)))


@dataclass(frozen=True)
class FullSpaceResult:
    """Steady state of the full 2^N Lindblad equation and its information measures (nats).

    Attributes
    ----------
    N : int
    rho : ndarray, shape (2^N, 2^N)   -- the steady state (Hermitian part, trace 1)
    m : ndarray, shape (3,)            -- Bloch vector of qubit 1 (all qubits are equal)
    S_1, S_T, I_M : float              -- S(rho_1), S(rho_T), N S(rho_1) - S(rho_T) (Eq. 7)
    residual : float                   -- ||L vec(rho)||_2
    unknowns : int                     -- 4^N
    seconds : float
    """

    N: int
    rho: np.ndarray
    m: np.ndarray
    S_1: float
    S_T: float
    I_M: float
    residual: float
    unknowns: int
    seconds: float

    @property
    def IM_per_N(self) -> float:
        return self.I_M / self.N


def full_correlations(rho: np.ndarray, N: int) -> tuple[np.ndarray, float, float, float]:
    """``(m, S_1, S_T, I_M)`` of a permutation-invariant ``2^N x 2^N`` state, from its
    eigenvalues and the partial trace down to qubit 1 (Eq. 7)."""
    r = np.asarray(rho).reshape(2, 2 ** (N - 1), 2, 2 ** (N - 1))
    rho1 = np.einsum("iaja->ij", r)  # trace over the other N - 1 qubits
    m = np.array([np.trace(rho1 @ _SIGMA[a]).real for a in "xyz"])
    S_1 = _entropy(0.5 * (rho1 + rho1.conj().T))
    S_T = _entropy(rho)
    return m, S_1, S_T, N * S_1 - S_T


def full_space(model: QubitModel) -> FullSpaceResult:
    """The unique steady state of Eq. (1) on the full 2^N-dimensional space.

    The stationarity equation ``L vec(rho) = 0`` has one row replaced by ``Tr rho = 1`` and
    is solved densely (LAPACK). Raises :class:`~picorr.models.ModelError` for
    N > :data:`MAX_N`.
    """
    t0 = time.perf_counter()
    N = _check_N(model.N)
    d = 2**N
    L = full_liouvillian(model)
    A = L.toarray()
    A[0, :] = 0.0  # the equation for rho_00 becomes the trace condition
    A[0, np.arange(d) * (d + 1)] = 1.0  # positions of rho_kk in the row-major vector
    rhs = np.zeros(d * d, dtype=complex)
    rhs[0] = 1.0
    x = scipy.linalg.solve(A, rhs)
    rho = x.reshape(d, d)
    rho = 0.5 * (rho + rho.conj().T)
    rho /= np.trace(rho).real
    residual = float(np.linalg.norm(L @ rho.ravel()))
    m, S_1, S_T, I_M = full_correlations(rho, N)
    return FullSpaceResult(N, rho, m, S_1, S_T, I_M, residual, d * d, time.perf_counter() - t0)


@lru_cache(maxsize=8)
def dicke_basis(N: int) -> tuple[np.ndarray, np.ndarray]:
    """A unitary ``U`` whose columns are the coupled (Dicke) basis ``|J, alpha, M>``.

    Columns are ordered by ``J`` (decreasing), then the multiplicity label ``alpha``
    (``dim_J`` values, Eq. 21), then ``M = J, ..., -J``. Each multiplet is built from a
    highest-weight state (``J_+ |J, alpha, J> = 0``) by repeated normalised ``J_-``, so
    that in this basis every permutation-invariant state has the form of Eq. (20):
    ``(+)_J rho_J (x) 1_{dim_J} / dim_J``, i.e. ``dim_J`` identical copies of ``rho_J / dim_J``
    along the diagonal.

    Returns
    -------
    U : ndarray, shape (2^N, 2^N)
    labels : ndarray, shape (2^N, 3)
        ``(J, alpha, M)`` of every column.
    """
    N = _check_N(N)
    J = collective_operators(N)
    Jz = np.real(J["z"].diagonal())
    J2 = (J["x"] @ J["x"] + J["y"] @ J["y"] + J["z"] @ J["z"]).toarray()
    Jm = J["-"].toarray()
    cols, labels = [], []
    for Jv in np.arange(N / 2, -0.25, -1.0):
        # states with M = J inside the spin-J subspace: the kernel of (J^2 - J(J+1)) restricted
        # to the M = J sector of the computational basis
        sector = np.nonzero(np.abs(Jz - Jv) < 1e-9)[0]
        block = J2[np.ix_(sector, sector)] - Jv * (Jv + 1) * np.eye(sector.size)
        w, v = np.linalg.eigh(block)
        hw = v[:, np.abs(w) < 1e-8]
        for alpha in range(hw.shape[1]):
            vec = np.zeros(2**N, dtype=complex)
            vec[sector] = hw[:, alpha]
            M = Jv
            while M >= -Jv - 1e-9:
                cols.append(vec)
                labels.append((Jv, alpha, M))
                vec = Jm @ vec
                norm = np.linalg.norm(vec)
                if norm < 1e-9:
                    break
                vec = vec / norm
                M -= 1
    U = np.array(cols).T
    if U.shape != (2**N, 2**N):
        raise RuntimeError(f"Dicke basis construction gave {U.shape[1]} vectors, expected {2**N}")
    return U, np.array(labels)
