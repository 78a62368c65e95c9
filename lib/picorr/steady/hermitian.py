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
from ..liouvillian import RELEASE_EVERY, csr_bytes, liouvillian_rows, map_ranges, row_blocks, stack_rows
from ..models import QubitModel
from .memory import release_freed_memory


def _halves(layout: BlockLayout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(q, pos, off)``: the coherence order ``M - M'`` of every element, and the layout
    indices with q >= 0 (the x unknowns) and q > 0 (the y unknowns), in layout order: the
    storage order of the real unknowns (module doc), defined here only."""
    _, i, k = layout.elements
    q = k - i
    return q, np.nonzero(q >= 0)[0], np.nonzero(q > 0)[0]


def real_unknowns(layout: BlockLayout, rho: np.ndarray) -> np.ndarray:
    """:meth:`HermitianFold.from_complex` before the fold of ``layout`` exists (the real
    unknowns are half the bytes of the complex elements)."""
    _, pos, off = _halves(layout)
    return np.concatenate([rho[pos].real, rho[off].imag])


@dataclass
class HermitianFold:
    """The real form of ``L`` on the q >= 0 elements of a layout with a symmetric window."""

    layout: BlockLayout
    pos: np.ndarray  # layout indices with q >= 0
    off: np.ndarray  # layout indices with q > 0 (a subset of pos)
    partner: np.ndarray  # layout index of the transposed element of each ``off`` entry
    B: sp.csr_matrix | None  # None while the rows are kept as blocks (``parts``)
    q: np.ndarray  # coherence order of every real unknown
    #: ``B`` as CSR row blocks ``(first_row, rows)`` when assembled with ``stack=False``
    parts: list | None = None

    @classmethod
    def build(cls, L: sp.spmatrix, layout: BlockLayout,
              threads: int | None = None, stack: bool = True) -> "HermitianFold":
        """The fold of the assembled complex ``L`` (rows with q < 0 are ignored), ``threads``
        row chunks at once (default: the cores available). ``stack``: see :meth:`assemble`."""
        L = sp.csr_matrix(L)
        n = layout.size
        chunks = [lambda r0=r0, r1=min(n, r0 + FOLD_CHUNK): (r0, r1, L[r0:r1])
                  for r0 in range(0, n, FOLD_CHUNK)]
        return cls._from_rows(chunks, layout, threads=_threads(threads), stack=stack)

    @classmethod
    def assemble(cls, model: QubitModel, layout: BlockLayout,
                 threads: int | None = None, stack: bool = True) -> "HermitianFold":
        """The fold of the model's Liouvillian, assembled a block range of rows at a time
        (:func:`.liouvillian_rows`) and folded at once: the complex ``L`` is never held
        whole, so the assembly needs about the memory of ``B`` alone. ``threads`` block
        ranges are assembled and folded at once (default: the cores available; NumPy and
        SciPy release the GIL in most of the work, measured 1.6x faster on 2 cores for the
        rows of N = 400, window 32). ``stack=False`` keeps the folded rows as the blocks
        they were made in (:attr:`parts`, ``B`` None), for a consumer that reorders them
        anyway (:func:`.krylov.colour_split`); :meth:`bordered` stacks them when asked."""
        threads = _threads(threads)
        off = layout.block_offsets
        chunks = [lambda ja=ja, jb=jb: (int(off[ja]), int(off[jb]),
                                        liouvillian_rows(model, layout, ja, jb,
                                                         hermitian_rows=True))
                  for ja, jb in row_blocks(layout)]
        return cls._from_rows(chunks, layout, threads=threads, stack=stack)

    @classmethod
    def _from_rows(cls, chunks, layout: BlockLayout, threads: int = 1,
                   stack: bool = True) -> "HermitianFold":
        jidx, i, k = layout.elements
        q_all, pos, off = _halves(layout)
        partner = layout.index(jidx[off], k[off], i[off])
        if np.any(partner < 0):
            raise ValueError("the layout's window must be symmetric in q")
        B = _fold(chunks, layout, pos, off, partner, threads, stack=stack)
        q = np.concatenate([q_all[pos], q_all[off]]).astype(np.int32)  # |q| <= N
        del jidx, i, k, q_all
        # held through the solve: the smallest index type (N = 1000, window 34: 0.2 GB of
        # int64 tables, 0.1 GB of int32)
        itype = np.int32 if layout.size < np.iinfo(np.int32).max else np.int64
        pos, off, partner = (a.astype(itype) for a in (pos, off, partner))
        if stack:
            return cls(layout, pos, off, partner, B, q)
        return cls(layout, pos, off, partner, None, q, parts=B)

    def take_parts(self) -> list:
        """Hand over the row blocks (:attr:`parts`, then None), in the order they were made."""
        parts, self.parts = self.parts, None
        return parts

    def give_parts(self, parts: list) -> None:
        """Take row blocks back (a consumer that did not use them)."""
        self.parts = parts

    def _stack(self) -> None:
        if self.B is None and self.parts is not None:
            parts = sorted(self.take_parts(), key=lambda p: p[0])
            self.B = stack_rows([p[1] for p in parts], self.size, release=release_freed_memory)

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
        self._stack()
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


def _threads(threads: int | None) -> int:
    if threads is not None:
        return max(1, int(threads))
    from .krylov import default_threads  # krylov imports this module
    return default_threads()


#: Rows of ``L`` folded at once (bounds the temporaries whatever the size).
FOLD_CHUNK = 1 << 16


def _compact(m: sp.csr_matrix) -> sp.csr_matrix:
    """``m`` with its duplicates summed, its zeros dropped and its arrays at their size:
    SciPy keeps the arrays it shortens as views of the longer ones unless they shrink by
    half or more, and the folded blocks shrink by less (from 1.79 times their entries,
    counted at N = 500, window 30), so the blocks would keep 1.8 times their memory
    (N = 400, window 30: 0.49 GB for 0.27 GB of entries)."""
    m.sum_duplicates()
    m.eliminate_zeros()
    for name in ("data", "indices"):
        arr = getattr(m, name)
        if arr.base is not None:
            setattr(m, name, arr.copy())
    return m


def _fold(chunks, layout: BlockLayout, pos, off, partner, threads: int = 1,
          stack: bool = True):
    """``B``: the real form of ``L`` restricted to its rows with q >= 0, by index arithmetic,
    from ``chunks``: callables returning ``(r0, r1, rows)`` with ``rows`` the CSR rows
    ``r0 .. r1 - 1`` of ``L``, consecutive and covering all rows; ``threads`` of them are
    made and folded at once.

    Each element ``s`` is ``rho_s = x + i sigma y`` in the real unknowns of the element it
    is stored as: itself for q >= 0 (``sigma = +1``; no ``y`` for q = 0), its transpose for
    q < 0 (``sigma = -1``). An entry ``v`` of ``L`` at (e, s) then gives
    ``Re v`` at (Re e, x) and ``-sigma Im v`` at (Re e, y), and for q_e > 0 ``Im v`` at
    (Im e, x) and ``sigma Re v`` at (Im e, y); duplicates are summed. Done chunk by chunk,
    so the temporaries stay small beside ``B``. ``stack=False`` returns the blocks instead,
    as a list of ``(first_row, rows)``, each x block beside the y block of the same
    elements.
    """
    n, npos, noff = layout.size, pos.size, off.size
    xid = np.full(n, -1, dtype=np.int64)
    xid[pos] = np.arange(npos)
    yid = np.full(n, -1, dtype=np.int64)
    yid[off] = npos + np.arange(noff)
    # the stored element behind every s, and the sign of its imaginary part
    xcol, ycol, sigma = xid.copy(), yid.copy(), np.ones(n)
    xcol[partner], ycol[partner], sigma[partner] = xid[off], yid[off], -1.0
    del xid
    size = npos + noff

    def fold_one(make):
        r0, r1, rows_of_L = make()
        C = rows_of_L.tocoo()
        del rows_of_L
        e, s, v = C.row.astype(np.int64) + r0, C.col, C.data
        del C
        # rows of L with q < 0 are empty (hermitian_rows) or ignored: keep q_e >= 0 only
        is_pos = np.zeros(r1 - r0, bool)
        lo, hi = np.searchsorted(pos, [r0, r1])
        is_pos[pos[lo:hi] - r0] = True
        keep = is_pos[e - r0]
        e, s, v = e[keep], s[keep], v[keep]
        xs, ys, sg = xcol[s], ycol[s], sigma[s]
        hy = ys >= 0
        # top rows: Re e, numbered by the rank of e among pos
        re_row = np.searchsorted(pos, e) - lo
        rows = np.concatenate([re_row, re_row[hy]])
        cols = np.concatenate([xs, ys[hy]])
        vals = np.concatenate([v.real, -(sg * v.imag)[hy]])
        top = sp.csr_matrix((vals, (rows, cols)), shape=(hi - lo, size))
        # bottom rows: Im e for q_e > 0
        o_lo, o_hi = np.searchsorted(off, [r0, r1])
        ye = yid[e]
        he = ye >= 0
        im_row = ye[he] - npos - o_lo
        hyy = hy[he]
        rows = np.concatenate([im_row, im_row[hyy]])
        cols = np.concatenate([xs[he], ys[he][hyy]])
        vals = np.concatenate([v.imag[he], (sg * v.real)[he][hyy]])
        bottom = sp.csr_matrix((vals, (rows, cols)), shape=(o_hi - o_lo, size))
        # summed here, in the worker: the blocks are kept until all are stacked, and with
        # their duplicates (each element's x and y terms from several L entries) they hold
        # 1.79 times the entries of B (counted at N = 500, window 30)
        return (lo, _compact(top)), (npos + o_lo, _compact(bottom))

    pairs, tops, bottoms, made = [], [], [], 0
    for top, bottom in map_ranges(fold_one, chunks, threads, layout):
        if stack:
            tops.append(top[1])
            bottoms.append(bottom[1])
        else:
            pairs += [top, bottom]
        made += csr_bytes(top[1]) + csr_bytes(bottom[1])
        if made >= RELEASE_EVERY:  # the chunks' temporaries, freed between the kept blocks
            release_freed_memory()
            made = 0
    if not stack:
        return pairs
    parts = tops + bottoms
    del tops, bottoms  # only the list refers to the blocks now
    return stack_rows(parts, size, release=release_freed_memory)
