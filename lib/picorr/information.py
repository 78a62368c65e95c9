"""Entropies and the multipartite mutual information of permutation-invariant states.

All entropies are in nats.

* Eq. (7):  ``I_M = sum_i S(rho_i) - S(rho_T) = N S(rho_1) - S(rho_T)`` (identical units).
* Eq. (27): ``S(rho_T) = sum_J p_J [ -ln p_J + S(rho_J / p_J) + ln dim_J ]``, which equals
  ``sum_J sum_k [ -lambda_{J,k} ln lambda_{J,k} ] + sum_J p_J ln dim_J`` with
  ``lambda_{J,k}`` the eigenvalues of the block ``rho_J`` (Eq. 32 when the blocks are
  diagonal).
* Eq. (28): ``rho_1 = (1 + m . sigma)/2``, so ``S(rho_1) = b(|m|)`` with ``b`` of Eq. (19).
* Eq. (29): ``m_a = (2/N) sum_J Tr(rho_J J_a)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import eigvals_banded

from .dicke import ln_dim
from .states import BlockState

__all__ = [
    "binary_entropy",
    "magnetization",
    "single_unit_state",
    "block_eigenvalues",
    "total_entropy",
    "Correlations",
    "correlations",
    "NegativeEigenvalueError",
]

#: Eigenvalues more negative than this (relative to the largest) are not round-off.
NEGATIVITY_TOLERANCE = 1e-9


class NegativeEigenvalueError(ArithmeticError):
    """A block has an eigenvalue more negative than round-off: not a density matrix."""


def binary_entropy(x) -> np.ndarray:
    """``b(x) = -(1+x)/2 ln((1+x)/2) - (1-x)/2 ln((1-x)/2)``, Eq. (19), for ``|x| <= 1``."""
    x = np.clip(np.abs(np.asarray(x, dtype=float)), 0.0, 1.0)
    p, q = (1 + x) / 2, (1 - x) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(p > 0, p * np.log(p), 0.0) - np.where(q > 0, q * np.log(q), 0.0)


def magnetization(state: BlockState) -> np.ndarray:
    """``(m_x, m_y, m_z)`` of Eq. (29), from the stored elements (vectorised).

    Uses ``Tr(rho_J J_+) = sum_M rho_{M, M+1} <M+1|J_+|M>`` and ``m_x = Re``, ``m_y = Im`` of
    ``(2/N) Tr(rho J_+)``.
    """
    lay = state.layout
    J, M, Mp = lay.JMM
    rho = state.rho
    diag = M == Mp
    mz = 2 / state.N * float(np.sum(M[diag] * rho[diag].real))
    sup = Mp == M + 1  # elements rho_{M, M+1}
    Ap = np.sqrt(np.clip(J[sup] * (J[sup] + 1) - M[sup] * (M[sup] + 1), 0, None))
    tp = 2 / state.N * np.sum(rho[sup] * Ap)
    return np.array([tp.real, tp.imag, mz])


def single_unit_state(state: BlockState) -> np.ndarray:
    """The reduced state of one qubit, Eq. (28): ``(1 + m . sigma)/2`` as a 2x2 matrix."""
    mx, my, mz = magnetization(state)
    return 0.5 * np.array([[1 + mz, mx - 1j * my], [mx + 1j * my, 1 - mz]])


def block_eigenvalues(state: BlockState) -> list[np.ndarray]:
    """Eigenvalues of every block ``rho_J`` (Hermitian part), in the order of the blocks.

    Rows and columns a support mask leaves out of a block are zero and contribute only
    zero eigenvalues, which are omitted (they add nothing to any entropy). Within a
    coherence window ``|M - M'| <= Q`` the block is a band matrix, and its eigenvalues come
    from LAPACK's Hermitian band solver (``O(n^2 Q)`` instead of ``O(n^3)``) when ``Q`` is
    well below the block size.
    """
    lay = state.layout
    if lay.window == 0:  # diagonal blocks
        d = lay.diagonal
        jidx = lay.elements[0][d]
        vals = state.rho[d].real
        return np.split(vals, np.cumsum(np.bincount(jidx, minlength=lay.J.size))[:-1])
    jall, iall, kall = lay.elements
    offsets = lay.block_offsets
    out = []
    for jidx in range(lay.J.size):
        a, b = offsets[jidx], offsets[jidx + 1]
        if a == b:
            out.append(np.zeros(0))
            continue
        i, k, v = iall[a:b], kall[a:b], state.rho[a:b]
        lo = int(min(i.min(), k.min()))
        n = int(max(i.max(), k.max())) + 1 - lo
        i, k = i - lo, k - lo
        Q = int(np.max(np.abs(i - k)))
        if Q < n // 4:  # lower band of the Hermitian part: band[d, c] = H[c + d, c]
            band = np.zeros((Q + 1, n), dtype=complex)
            low = i >= k
            band[(i - k)[low], k[low]] += 0.5 * v[low]
            up = i <= k
            band[(k - i)[up], i[up]] += 0.5 * np.conj(v[up])
            out.append(eigvals_banded(band, lower=True))
        else:
            m = np.zeros((n, n), dtype=complex)
            m[i, k] = v
            out.append(np.linalg.eigvalsh(0.5 * (m + m.conj().T)))
    return out


def total_entropy(state: BlockState, eigenvalues=None,
                  negativity_tol: float = NEGATIVITY_TOLERANCE) -> float:
    """``S(rho_T)`` by the block entropy formula, Eq. (27) (Eq. 32 for diagonal blocks).

    Raises :class:`NegativeEigenvalueError` when an eigenvalue is more negative than
    ``-negativity_tol`` times the largest (default :data:`NEGATIVITY_TOLERANCE`, round-off);
    smaller negative eigenvalues are dropped. A caller that passes a larger tolerance (the
    coherence-window method, whose truncation error shows as negative eigenvalues of its
    own size) reports the dropped weight (:attr:`Correlations.negative_weight`).
    """
    ev = block_eigenvalues(state) if eigenvalues is None else eigenvalues
    lam = np.concatenate(ev)
    scale = max(float(lam.max()), 1e-300)
    if lam.min() < -negativity_tol * scale:
        raise NegativeEigenvalueError(
            f"a block eigenvalue is {lam.min():.3e} (largest {scale:.3e}, tolerance "
            f"{negativity_tol:.0e} of it): the state is not positive"
        )
    lnd = ln_dim(state.N, state.layout.J)
    S = 0.0
    for lam_J, lnd_J in zip(ev, lnd):
        pos = lam_J[lam_J > 0]
        S += float(-np.sum(pos * np.log(pos)) + lnd_J * np.sum(pos))
    return S


@dataclass(frozen=True)
class Correlations:
    """Information measures of a permutation-invariant state (nats).

    Attributes
    ----------
    N : int
    m : ndarray, shape (3,)  -- Bloch vector of one unit, Eq. (29)
    S_1 : float              -- S(rho_1) = b(|m|), Eqs. (19), (28)
    S_T : float              -- S(rho_T), Eq. (27)
    I_M : float              -- N S(rho_1) - S(rho_T), Eq. (7)
    min_eigenvalue : float   -- most negative block eigenvalue (positivity evidence)
    negative_weight : float  -- sum of |lambda| over the negative block eigenvalues (dropped
                                from S_T; zero for a positive state)
    """

    N: int
    m: np.ndarray
    S_1: float
    S_T: float
    I_M: float
    min_eigenvalue: float
    negative_weight: float = 0.0

    @property
    def IM_per_N(self) -> float:
        return self.I_M / self.N


def correlations(state: BlockState, negativity_tol: float = NEGATIVITY_TOLERANCE) -> Correlations:
    """Magnetisation, entropies and ``I_M`` of ``state`` (Eqs. 7, 27-29); ``negativity_tol``
    as in :func:`total_entropy`."""
    m = magnetization(state)
    ev = block_eigenvalues(state)
    S_T = total_entropy(state, ev, negativity_tol)
    S_1 = float(binary_entropy(np.linalg.norm(m)))
    lam = np.concatenate(ev)
    return Correlations(state.N, m, S_1, S_T, state.N * S_1 - S_T, float(lam.min()),
                        float(-lam[lam < 0].sum()))
