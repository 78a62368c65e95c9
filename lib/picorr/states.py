"""Permutation-invariant states in the Dicke block basis (Eq. 20), and a few known ones.

A :class:`BlockState` holds the stored elements ``rho_{J, M, M'}`` of the blocks ``rho_J``
(normalised so that ``sum_J Tr rho_J = 1``; ``p_J = Tr rho_J``) over a
:class:`~picorr.dicke.BlockLayout`. Known states used as analytic checks:

* :func:`dicke_state` -- ``|J = N/2, M>``; for M = 0, ``I_M = N ln 2`` exactly.
* :func:`maximally_mixed` -- ``1/2^N``; ``S(rho_T) = N ln 2``.
* :func:`product_state` -- ``rho_1^{(x) N}`` for any Bloch vector; ``I_M = 0``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import expm

from .dicke import BlockLayout, j_values, ln_dim, m_values, spin_matrices
from .models import ModelError, validate_N

__all__ = ["BlockState", "dicke_state", "maximally_mixed", "product_state"]


@dataclass(frozen=True)
class BlockState:
    """A permutation-invariant state: the elements ``rho_{J, M, M'}`` stored per ``layout``."""

    layout: BlockLayout
    rho: np.ndarray

    def __post_init__(self):
        if self.rho.shape != (self.layout.size,):
            raise ValueError(
                f"rho must have shape ({self.layout.size},) for this layout, got {self.rho.shape}"
            )

    @property
    def N(self) -> int:
        return self.layout.N

    def block(self, jidx: int) -> np.ndarray:
        """The dense ``(2J+1) x (2J+1)`` matrix ``rho_J`` of block number ``jidx`` (rows and
        columns ordered ``M = J, ..., -J``); elements outside the window are zero."""
        lay = self.layout
        a, b = lay.block_offsets[jidx], lay.block_offsets[jidx + 1]
        _, i, k = (e[a:b] for e in lay.elements)
        n = int(round(2 * lay.J[jidx])) + 1
        out = np.zeros((n, n), dtype=self.rho.dtype)
        out[i, k] = self.rho[a:b]
        return out

    def blocks(self):
        """Iterate over ``(J, rho_J)``."""
        for jidx, J in enumerate(self.layout.J):
            yield J, self.block(jidx)

    @property
    def populations(self) -> np.ndarray:
        """``p_J = Tr rho_J`` for every block (order of :func:`~picorr.dicke.j_values`)."""
        lay = self.layout
        d = lay.diagonal
        jidx = lay.elements[0][d]
        return np.bincount(jidx, weights=self.rho[d].real, minlength=lay.J.size)

    @property
    def trace(self) -> float:
        return float(self.rho[self.layout.diagonal].real.sum())


def _from_blocks(N: int, blocks: dict[int, np.ndarray], window=None) -> BlockState:
    """Assemble a state from dense blocks ``{jidx: rho_J}`` (missing blocks are zero);
    ``window=0`` for diagonal states keeps it O(N^2)."""
    lay = BlockLayout(N, window)
    rho = np.zeros(lay.size, dtype=complex)
    jidx, i, k = lay.elements
    for j, mat in blocks.items():
        sel = jidx == j
        rho[sel] = mat[i[sel], k[sel]]
    return BlockState(lay, rho)


def dicke_state(N: int, M: float) -> BlockState:
    """The symmetric Dicke state ``|J = N/2, M>`` (a pure state in the block J = N/2)."""
    N = validate_N(N)
    if abs(M) > N / 2 or not float(2 * M).is_integer() or (N / 2 - M) % 1:
        raise ModelError(f"M must be one of N/2, N/2 - 1, ..., -N/2, got {M!r}")
    n = N + 1
    mat = np.zeros((n, n), dtype=complex)
    i = int(round(N / 2 - M))
    mat[i, i] = 1.0
    return _from_blocks(N, {N // 2: mat}, window=0)


def maximally_mixed(N: int) -> BlockState:
    """``1_{2^N} / 2^N``: block J carries ``p_J = dim_J (2J+1) / 2^N`` uniformly over M."""
    N = validate_N(N)
    blocks = {}
    for jidx, J in enumerate(j_values(N)):
        n = int(round(2 * J)) + 1
        blocks[jidx] = np.eye(n) * np.exp(ln_dim(N, J) - N * np.log(2))
    return _from_blocks(N, blocks, window=0)


def product_state(N: int, bloch) -> BlockState:
    """``rho_1^{(x) N}`` with ``rho_1 = (1 + m . sigma)/2``, ``|m| <= 1`` (Eq. 3 with d = 2).

    Built as a rotation of the diagonal state ``diag(p, 1 - p)^{(x) N}``, ``p = (1+|m|)/2``,
    whose block J holds ``dim_J p^{N/2+M} (1-p)^{N/2-M}`` on the diagonal.
    Dense rotations: meant for tests and moderate N (a few hundred).
    """
    N = validate_N(N)
    m = np.asarray(bloch, dtype=float)
    if m.shape != (3,) or not np.all(np.isfinite(m)) or np.linalg.norm(m) > 1 + 1e-12:
        raise ModelError(f"bloch must be 3 finite numbers with norm <= 1, got {bloch!r}")
    r = min(np.linalg.norm(m), 1.0)
    p = (1 + r) / 2
    theta = np.arccos(np.clip(m[2] / r, -1, 1)) if r > 0 else 0.0
    phi = np.arctan2(m[1], m[0]) if r > 0 else 0.0
    blocks = {}
    for jidx, J in enumerate(j_values(N)):
        M = m_values(J)
        logw = ln_dim(N, J) + _xlogy(N / 2 + M, p) + _xlogy(N / 2 - M, 1 - p)
        diag = np.exp(logw)
        jx, jy, jz = spin_matrices(J)
        R = expm(-1j * phi * jz) @ expm(-1j * theta * jy)
        blocks[jidx] = (R * diag) @ R.conj().T
    return _from_blocks(N, blocks)


def _xlogy(x, y):
    """x log y with 0 log 0 = 0 (as scipy.special.xlogy, without importing scipy.special)."""
    x, y = np.broadcast_arrays(np.asarray(x, float), np.asarray(y, float))
    out = np.zeros(x.shape)
    nz = x != 0
    with np.errstate(divide="ignore"):  # x log 0 = -inf for x > 0, as xlogy
        out[nz] = x[nz] * np.log(y[nz])
    return out if out.ndim else float(out)

