"""The Liouvillian of a permutation-invariant qubit model on the in-block elements
``rho_{J, M, M'}`` (Appendix A, Eqs. 22-26, generalised).

The state is a vector over a :class:`~picorr.dicke.BlockLayout`; the Liouvillian is a
sparse matrix ``L`` with ``d rho/dt = L rho``. Every term is written as a *transition*:
an element ``(J, M, M')`` feeds ``(J + dJ, M + dM, M' + dM')`` with a coefficient that is
a vectorised function of ``(J, M, M')``. Assembly evaluates all transitions for all stored
elements at once and drops those whose target is not stored (outside the block, or outside
the coherence window of the layout).

Collective part (within each block J; Eq. 23 generalised). With the effective
non-Hermitian generator ``G = -i H - (1/2) sum_m (Gamma_m/N) L_m^+ L_m``,

    L_coll rho = G rho + rho G^+ + sum_m (Gamma_m/N) L_m rho L_m^+ .

Local part (couples J to J - 1, J, J + 1; Eqs. 24-26 for sigma_+, and their
generalisation to sigma_- and sigma_z). For a single-unit operator ``a`` in
{sigma_+, sigma_-, sigma_z} with rate ``gamma_a``, the gain ``sum_i a_i rho a_i^+`` sends
``rho_{J, M, M'}`` to ``rho_{J + dJ, M + s, M' + s}`` (s = +1, -1, 0) with coefficient

    gamma_a * w_a * c_dJ(J) * g_{a, dJ}(J, M) * g_{a, dJ}(J, M'),

    c_{-1} = (N/2 + J + 1) / (J (2J + 1)),  c_0 = (N/2 + 1) / (J (J + 1)),
    c_{+1} = (N/2 - J) / ((J + 1)(2J + 1)),

where for sigma_+ (w = 1/2; Eq. 26) g_{-1} = B_+, g_0 = A_+, g_{+1} = D_+; sigma_- is the
same with M -> -M (a global spin flip maps sigma_+ to sigma_-); and for sigma_z (w = 2,
the q = 0 component of the same rank-1 tensor, sigma_z = 2 s_z) g_{-1} = sqrt(J^2 - M^2),
g_0 = M, g_{+1} = sqrt((J+1)^2 - M^2). The loss ``-(1/2){sum_i a_i^+ a_i, rho}`` is diagonal:
``sum_i a_i^+ a_i`` = N/2 - J_z (sigma_+), N/2 + J_z (sigma_-), N (sigma_z).
These formulas are checked against the full 2^N-dimensional Lindblad equation in the tests.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .dicke import BlockLayout, CollectivePolynomial
from .models import QubitModel

__all__ = ["LiouvillianAction", "liouvillian", "liouvillian_rows", "preserves_coherence_order"]


# --------------------------------------------------------------------------------------
# Local channels (Eqs. 24-26 and their generalisation)
# --------------------------------------------------------------------------------------
def _c(dJ: int, N: int, J: np.ndarray) -> np.ndarray:
    """The J-dependent weights c_dJ(J) of the local channels; 0 where undefined (J = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if dJ == -1:
            c = (N / 2 + J + 1) / (J * (2 * J + 1))
        elif dJ == 0:
            c = (N / 2 + 1) / (J * (J + 1))
        else:
            c = (N / 2 - J) / ((J + 1) * (2 * J + 1))
    return np.where(np.isfinite(c), c, 0.0)


def _g_plus(dJ: int, J: np.ndarray, M: np.ndarray) -> np.ndarray:
    """A_+, B_+, D_+ of Eq. (26) for dJ = 0, -1, +1 (clipped to 0 outside the block)."""
    if dJ == -1:
        return np.sqrt(np.clip((J - M) * (J - M - 1), 0, None))  # B_+
    if dJ == 0:
        return np.sqrt(np.clip((J - M) * (J + M + 1), 0, None))  # A_+
    return -np.sqrt(np.clip((J + M + 1) * (J + M + 2), 0, None))  # D_+


def _g_z(dJ: int, J: np.ndarray, M: np.ndarray) -> np.ndarray:
    if dJ == -1:
        return np.sqrt(np.clip(J * J - M * M, 0, None))
    if dJ == 0:
        return M
    return np.sqrt(np.clip((J + 1) ** 2 - M * M, 0, None))


#: channel -> (shift s of M and M', weight w, g(dJ, J, M), number operator n(N, M))
LOCAL_CHANNELS = {
    "+": (+1, 0.5, _g_plus, lambda N, M: N / 2 - M),
    "-": (-1, 0.5, lambda dJ, J, M: _g_plus(dJ, J, -M), lambda N, M: N / 2 + M),
    "z": (0, 2.0, _g_z, lambda N, M: np.full_like(M, float(N))),
}


# --------------------------------------------------------------------------------------
# Assembly
# --------------------------------------------------------------------------------------
@dataclass
class _Triplets:
    rows: list
    cols: list
    vals: list
    half: bool = False
    targets: tuple = (0, 2**62)  # keep the transitions into elements first <= e < last

    def add(self, layout: BlockLayout, src: np.ndarray, dJ: int, di, dk, val) -> None:
        """Transitions from stored elements ``src`` to (block + dJ, row + di, col + dk)."""
        jidx, i, k = (a[src] for a in layout.elements)
        # row index i = J - M: in block J' = J + dJ, M + dM sits at row (J + dJ) - (M + dM)
        tgt = layout.index(jidx + dJ, i + dJ + di, k + dJ + dk)
        ok = (tgt >= self.targets[0]) & (tgt < self.targets[1]) & (val != 0)
        if self.half:  # keep only targets with q = M - M' = k - i >= 0
            ok &= (k + dk) >= (i + di)
        itype = np.int32 if layout.size < 2**31 else np.int64
        self.rows.append((tgt[ok] - self.targets[0]).astype(itype))
        self.cols.append(src[ok].astype(itype))
        self.vals.append(np.asarray(val, dtype=complex)[ok])

    def matrix(self, nrows: int, ncols: int) -> sp.csr_matrix:
        """The transitions gathered so far as an ``nrows x ncols`` CSR matrix (rows counted
        from the first target, duplicates summed); the triplets are then dropped."""
        rows = np.concatenate(self.rows) if self.rows else np.zeros(0, np.int64)
        cols = np.concatenate(self.cols) if self.cols else np.zeros(0, np.int64)
        vals = np.concatenate(self.vals) if self.vals else np.zeros(0, complex)
        self.rows, self.cols, self.vals = [], [], []
        out = sp.csr_matrix((vals, (rows, cols)), shape=(nrows, ncols))
        out.sum_duplicates()
        return out


def _generator(model: QubitModel) -> CollectivePolynomial:
    """``G = -i H - (1/2) sum_m (Gamma_m/N) L_m^+ L_m``."""
    G = -1j * model.hamiltonian
    for jump in model.jumps:
        if jump.active:
            L = jump.operator
            G = G + (-0.5 * jump.Gamma / model.N) * (L.dagger() * L)
    return G


#: Fewest block ranges (or row chunks) that are assembled in threads: with fewer, each
#: thread's temporaries are a large share of the memory and the threads gain nothing
#: (measured at N = 120, two ranges: 0.42 GB peak in threads against 0.28 GB in one, the
#: same 3 s).
THREAD_MIN_RANGES = 4

def map_ranges(fn, items: list, threads: int, layout: BlockLayout):
    """``fn`` over ``items`` (block ranges or row chunks of ``layout``), results in order:
    ``threads`` at once when there are at least :data:`THREAD_MIN_RANGES` items (the
    layout's lazily computed tables made first, so the threads share them), else one by
    one. A generator, so a caller can consume each result as it comes."""
    if threads > 1 and len(items) >= THREAD_MIN_RANGES:
        layout.precompute(coordinates=False)  # ranges take theirs (BlockLayout.coordinates)
        with ThreadPoolExecutor(threads) as pool:
            yield from pool.map(fn, items)
    else:
        yield from map(fn, items)


#: Elements whose rows are assembled at once (whole blocks, at least one), and source
#: elements evaluated at once: bounds the memory beyond the result (tens of MB for the LMG
#: model) whatever the size of the layout.
ASSEMBLY_CHUNK = 1 << 17


def _transitions(model: QubitModel, layout: BlockLayout, src: np.ndarray, t: _Triplets,
                 G: CollectivePolynomial) -> None:
    """Every term of the Liouvillian acting on the stored elements ``src``, into ``t``."""
    N = model.N
    J, M, Mp = layout.coordinates(src)
    # -- collective: G rho + rho G^+ + sum (Gamma/N) L rho L^+ --------------------------
    for d, f in G.bands(J, M).items():  # (G rho)_{M + d, M'} <- f_d(M) rho_{M, M'}
        t.add(layout, src, 0, -d, 0, f)
    for d, f in G.bands(J, Mp).items():  # (rho G^+)_{M, M' + d} <- conj f_d(M') rho_{M, M'}
        t.add(layout, src, 0, 0, -d, np.conj(f))
    for jump in model.jumps:
        if not jump.active:
            continue
        bl = jump.operator.bands(J, M)
        blp = jump.operator.bands(J, Mp)
        for d, f in bl.items():
            for dp, fp in blp.items():
                t.add(layout, src, 0, -d, -dp, (jump.Gamma / N) * f * np.conj(fp))
    # -- local: gain to J - 1, J, J + 1 and diagonal loss --------------------------------
    loss = np.zeros(src.size)
    for name, rate in model.local_rates.items():
        if rate == 0:
            continue
        s, w, g, n = LOCAL_CHANNELS[name]
        for dJ in (-1, 0, 1):
            coef = rate * w * _c(dJ, N, J) * g(dJ, J, M) * g(dJ, J, Mp)
            t.add(layout, src, dJ, -s, -s, coef)
        loss -= 0.5 * rate * (n(N, M) + n(N, Mp))
    t.add(layout, src, 0, 0, 0, loss)


def row_blocks(layout: BlockLayout, size: int | None = None) -> list[tuple[int, int]]:
    """Consecutive block ranges ``[ja, jb)`` of ``layout`` with about ``size`` (default
    :data:`ASSEMBLY_CHUNK`) elements each, and at least one block each."""
    size = ASSEMBLY_CHUNK if size is None else int(size)
    off = layout.block_offsets
    nJ = off.size - 1
    out, ja = [], 0
    while ja < nJ:
        jb = ja + 1
        while jb < nJ and off[jb + 1] - off[ja] <= size:
            jb += 1
        out.append((ja, jb))
        ja = jb
    return out


def liouvillian_rows(model: QubitModel, layout: BlockLayout, ja: int, jb: int, *,
                     hermitian_rows: bool = False) -> sp.csr_matrix:
    """The rows of ``L`` (see :func:`liouvillian`) of the elements in blocks ``ja..jb-1``:
    a CSR matrix with one row per such element and a column per stored element.

    Every term moves J by at most one, so only the sources in blocks ``ja - 1 .. jb``
    feed these rows; their transitions are evaluated :data:`ASSEMBLY_CHUNK` at a time and
    those into other blocks dropped (the neighbouring blocks are evaluated twice over a
    whole assembly, the price of never holding more than a block range of ``L``).
    """
    off = layout.block_offsets
    nJ = off.size - 1
    r0, r1 = int(off[ja]), int(off[jb])
    s0, s1 = int(off[max(ja - 1, 0)]), int(off[min(jb + 1, nJ)])
    G = _generator(model)
    t = _Triplets([], [], [], hermitian_rows, (r0, r1))
    for first in range(s0, s1, ASSEMBLY_CHUNK):
        _transitions(model, layout, np.arange(first, min(s1, first + ASSEMBLY_CHUNK)), t, G)
    return t.matrix(r1 - r0, layout.size)


#: Bytes of row blocks copied by :func:`stack_rows` between two calls of its ``release``.
RELEASE_EVERY = 256 * 2**20


def csr_bytes(m: sp.csr_matrix) -> int:
    """The bytes of a CSR matrix's three arrays."""
    return m.data.nbytes + m.indices.nbytes + m.indptr.nbytes


def stack_rows(parts: list, ncols: int, release=None) -> sp.csr_matrix:
    """The CSR row blocks ``parts`` (each with ``ncols`` columns) stacked into one CSR
    matrix, each block freed as soon as it is copied (``parts`` is emptied): the output is
    allocated untouched (``np.empty``) and fills page by page, so the peak is about one
    copy of the matrix instead of the two of ``scipy.sparse.vstack``.

    Blocks of a few MB are freed into the C library's heap, which keeps them: ``release``
    (e.g. :func:`.steady.memory.release_freed_memory`), called after every
    :data:`RELEASE_EVERY` bytes copied, hands them back as the output grows; without it the
    peak is two copies after all. Measured on the window method at N = 1000, Gamma = 2.7
    (the assembly of window 42, beside the 6.7 GB of cached sector factors): without such
    calls here and in the fold (:func:`.steady.hermitian._fold`) the RSS rose to 9.55 GB
    and fell to 7.50 GB at the next trim, with them it peaked at 8.75 GB."""
    for p in parts:
        p.sum_duplicates()
        p.eliminate_zeros()
    nrows = sum(p.shape[0] for p in parts)
    nnz = sum(p.nnz for p in parts)
    itype = np.int32 if max(nnz, ncols) < np.iinfo(np.int32).max else np.int64
    dtype = np.result_type(*(p.dtype for p in parts)) if parts else np.float64
    indptr = np.empty(nrows + 1, dtype=itype)
    indices = np.empty(nnz, dtype=itype)
    data = np.empty(nnz, dtype=dtype)
    indptr[0] = 0
    row = at = 0
    copied = 0
    for k in range(len(parts)):
        p, parts[k] = parts[k], None
        n, m = p.shape[0], p.nnz
        indptr[row + 1:row + n + 1] = p.indptr[1:] + at
        indices[at:at + m] = p.indices
        data[at:at + m] = p.data
        row, at = row + n, at + m
        copied += csr_bytes(p)
        del p
        if release is not None and copied >= RELEASE_EVERY:
            release()
            copied = 0
    parts.clear()
    return sp.csr_matrix((data, indices, indptr), shape=(nrows, ncols))


def liouvillian(model: QubitModel, layout: BlockLayout | None = None, *,
                hermitian_rows: bool = False, threads: int = 1) -> sp.csr_matrix:
    """Sparse Liouvillian on the stored elements of ``layout`` (default: all of them).

    Returns the complex CSR matrix ``L`` with ``d rho/dt = L rho`` for ``rho`` stored as in
    :class:`~picorr.dicke.BlockLayout`. With a coherence window, transitions to unstored
    elements are dropped (the truncated Liouvillian ``L_Q``). ``hermitian_rows=True`` keeps
    only the rows with ``q = M - M' >= 0`` (the others are empty): for a Hermitian ``rho``
    they determine the rest, and they are all the Hermitian fold needs.

    The rows are assembled a block range at a time (:func:`liouvillian_rows`; ``threads``
    ranges at once) and stacked in place (:func:`stack_rows`), so the memory beyond the
    result stays bounded at large N.
    """
    if layout is None:
        layout = BlockLayout(model.N)
    if layout.N != model.N:
        raise ValueError(f"layout is for N = {layout.N} but the model has N = {model.N}")

    def rows(blocks):
        return liouvillian_rows(model, layout, *blocks, hermitian_rows=hermitian_rows)

    parts = list(map_ranges(rows, row_blocks(layout), threads, layout))
    if not parts:
        return sp.csr_matrix((layout.size, layout.size), dtype=complex)
    return stack_rows(parts, layout.size)


class LiouvillianAction:
    """``L`` (as :func:`liouvillian`) applied to a vector without being stored: its rows
    are assembled a block range at a time for each product. For a residual check at large
    N, where the whole matrix would be the memory peak of the solve.

    Supports ``L @ rho`` and :meth:`apply`, which also returns ``||L||_1`` (largest column
    sum of ``|L|``); the last product is kept, so a residual check and the final evidence
    assemble ``L`` once between them.
    """

    def __init__(self, model: QubitModel, layout: BlockLayout, *, hermitian_rows: bool = False,
                 threads: int = 1):
        self.model, self.layout, self.hermitian_rows = model, layout, hermitian_rows
        self.shape = (layout.size, layout.size)
        self.threads = max(1, int(threads))  # block ranges assembled at once
        self._last = None

    def apply(self, rho: np.ndarray) -> tuple[np.ndarray, float]:
        """``(L @ rho, ||L||_1)``."""
        if self._last is not None and np.array_equal(self._last[0], rho):
            return self._last[1].copy(), self._last[2]
        out = np.zeros(self.layout.size, dtype=complex)
        colsum = np.zeros(self.layout.size)
        off = self.layout.block_offsets
        nJ = off.size - 1

        def one(blocks):  # this range's rows of L rho, and its share of the column sums
            ja, jb = blocks
            R = liouvillian_rows(self.model, self.layout, ja, jb,
                                 hermitian_rows=self.hermitian_rows)
            s0, s1 = off[max(ja - 1, 0)], off[min(jb + 1, nJ)]  # the columns it can have
            return R @ rho, np.bincount(R.indices - s0, weights=np.abs(R.data),
                                        minlength=s1 - s0)

        def gather(done):  # consumed in order, as the ranges finish
            for (ja, jb), (Lrho, cs) in zip(ranges, done):
                out[off[ja]:off[jb]] = Lrho
                colsum[off[max(ja - 1, 0)]:off[min(jb + 1, nJ)]] += cs

        ranges = row_blocks(self.layout)
        gather(map_ranges(one, ranges, self.threads, self.layout))
        norm = float(colsum.max()) if colsum.size else 0.0
        self._last = (rho.copy(), out.copy(), norm)
        return out, norm

    def __matmul__(self, rho: np.ndarray) -> np.ndarray:
        return self.apply(rho)[0]

    def product(self, rho: np.ndarray) -> np.ndarray:
        """``L @ rho`` alone: no norm, nothing kept (for repeated products, such as the
        residuals of a mixed-precision refinement, :func:`.steady.krylov.solve_fold`)."""
        out = np.zeros(self.layout.size, dtype=complex)
        off = self.layout.block_offsets

        def one(blocks):
            ja, jb = blocks
            return liouvillian_rows(self.model, self.layout, ja, jb,
                                    hermitian_rows=self.hermitian_rows) @ rho

        ranges = row_blocks(self.layout)
        for (ja, jb), v in zip(ranges, map_ranges(one, ranges, self.threads, self.layout)):
            out[off[ja]:off[jb]] = v
        return out


def preserves_coherence_order(model: QubitModel) -> bool:
    """True when the Liouvillian conserves ``q = M - M'`` (the model's U(1) symmetry), so
    that the diagonal layout ``window = 0`` is an exact invariant subspace (Eqs. 30-31)."""
    return model.has_u1_symmetry
