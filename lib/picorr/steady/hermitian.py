"""Hermiticity: solve for the elements with ``q = M - M' >= 0`` only, as a real system.

A steady state is Hermitian, ``rho_{J,M',M} = conj(rho_{J,M,M'})``, so the sectors q < 0
are determined by q > 0 and sector 0 is real. With ``x = Re rho`` on every element with
q >= 0 and ``y = Im rho`` on those with q > 0, the complex state is ``rho = T_x x + T_y y``
and the real unknowns ``u = (x, y)`` obey the real equations

    Re (L rho)_e = 0  for e with q >= 0,        Im (L rho)_e = 0  for e with q > 0,

which is the matrix :attr:`HermitianFold.B`. It has half the (real) size of the complex
system and works in real arithmetic, for every Liouvillian (it never assumes which terms
change q). Storage order of ``u``: x over q >= 0 elements in layout order, then y over
q > 0 elements in layout order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..dicke import BlockLayout


@dataclass
class HermitianFold:
    """The real form of ``L`` on the q >= 0 elements of a layout with a symmetric window."""

    layout: BlockLayout
    pos: np.ndarray  # layout indices with q >= 0
    off: np.ndarray  # layout indices with q > 0 (a subset of pos)
    partner: np.ndarray  # layout index of the transposed element of each ``off`` entry
    B: sp.csr_matrix
    q: np.ndarray  # coherence order of every real unknown

    @classmethod
    def build(cls, L: sp.spmatrix, layout: BlockLayout) -> "HermitianFold":
        jidx, i, k = layout.elements
        q_all = k - i  # M - M'
        pos = np.nonzero(q_all >= 0)[0]
        off = np.nonzero(q_all > 0)[0]
        partner = layout.index(jidx[off], k[off], i[off])
        if np.any(partner < 0):
            raise ValueError("the layout's window must be symmetric in q")
        n, npos, noff = layout.size, pos.size, off.size
        # T_x: x_p -> rho[p] (+ rho[partner] for q > 0);  T_y: y_o -> i rho[o] - i rho[partner]
        off_in_pos = np.searchsorted(pos, off)
        Tx = sp.csr_matrix(
            (np.ones(npos + noff), (np.concatenate([pos, partner]),
                                    np.concatenate([np.arange(npos), off_in_pos]))),
            shape=(n, npos),
        )
        Ty = sp.csr_matrix(
            (np.concatenate([np.full(noff, 1j), np.full(noff, -1j)]),
             (np.concatenate([off, partner]), np.concatenate([np.arange(noff)] * 2))),
            shape=(n, noff),
        )
        L = sp.csr_matrix(L)
        LTx, LTy = L @ Tx, L @ Ty
        top = sp.hstack([LTx[pos].real, LTy[pos].real])
        bottom = sp.hstack([LTx[off].imag, LTy[off].imag])
        B = sp.vstack([top, bottom]).tocsr()
        B.eliminate_zeros()
        q = np.concatenate([q_all[pos], q_all[off]])
        return cls(layout, pos, off, partner, B, q)

    @property
    def size(self) -> int:
        return self.pos.size + self.off.size

    def complex_partner(self) -> np.ndarray:
        """For each real unknown: the index of the ``x`` (real part) of the same element when
        the unknown is a ``y`` (imaginary part), else -1."""
        out = np.full(self.size, -1, dtype=np.int64)
        out[self.pos.size:] = np.searchsorted(self.pos, self.off)
        return out

    def to_complex(self, u: np.ndarray) -> np.ndarray:
        """The full complex element vector over the layout from the real unknowns."""
        npos = self.pos.size
        x, y = u[:npos], u[npos:]
        rho = np.zeros(self.layout.size, dtype=complex)
        rho[self.pos] = x
        x_off = x[np.searchsorted(self.pos, self.off)]
        rho[self.off] += 1j * y
        rho[self.partner] = x_off - 1j * y
        return rho

    def from_complex(self, rho: np.ndarray) -> np.ndarray:
        """Real unknowns from a complex element vector over the layout (Hermitian part)."""
        return np.concatenate([rho[self.pos].real, rho[self.off].imag])

    def trace_row(self) -> tuple[int, np.ndarray]:
        """(row of the equation replaced by the trace, columns of the diagonal x's)."""
        lay = self.layout
        row = int(np.searchsorted(self.pos, lay.trace_row))
        cols = np.searchsorted(self.pos, lay.diagonal)
        return row, cols

    def bordered(self, consume: bool = False) -> tuple[sp.csr_matrix, np.ndarray]:
        """``(A, b)``: B with its trace row, the real analogue of :func:`.direct.bordered_system`.
        ``consume=True`` modifies and hands over :attr:`B` (then set to None) to save memory."""
        row, cols = self.trace_row()
        keep = np.ones(self.size)
        keep[row] = 0.0
        tr = sp.csr_matrix((np.ones(cols.size), (np.full(cols.size, row), cols)), shape=self.B.shape)
        size = self.size
        if consume:
            A, self.B = self.B, None
            A.data[A.indptr[row]:A.indptr[row + 1]] = 0.0
            A = (A + tr).tocsr()
            A.eliminate_zeros()
        else:
            A = (sp.diags(keep) @ self.B + tr).tocsr()
        b = np.zeros(size)
        b[row] = 1.0
        return A, b
