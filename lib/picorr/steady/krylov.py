"""Preconditioned GMRES on the in-block Liouvillian, exploiting the coherence-order structure.

Order the unknowns by the coherence order ``q = M - M'``. Collective decay, local
processes and any Hamiltonian term built from ``J_z`` and ``J_x^2 + J_y^2`` keep ``q``;
only the remaining terms (for the LMG model the field ``h J_x``) move ``q`` by +-1 or +-2.
So ``L = L_0 + K`` with ``L_0`` block diagonal over q-sectors, each sector a sparse 2-D
lattice operator on ``(J, M)`` whose LU is cheap, unlike the LU of the whole 3-D problem.

The system is solved in its Hermitian real form (:mod:`.hermitian`: the q >= 0 elements
only, real arithmetic, half the size) with the trace condition in place of one equation
of sector 0, by restarted GMRES preconditioned with block Jacobi over q: each sector's
diagonal block factored once by SuperLU. The iteration count is recorded; a solve that does
not reach its tolerance raises :class:`NotConvergedError`.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as sla

from ..dicke import BlockLayout
from ..liouvillian import LiouvillianAction, liouvillian
from ..models import QubitModel
from ..states import BlockState
from ._result import NoUniqueSteadyStateError, NotConvergedError, SteadyState, finish
from .direct import factorize
from .gmres import check_deflate, gmres
from .hermitian import HermitianFold
from .memory import (BLOCK_ENTRY_BYTES, FACTOR_ENTRY_BYTES, check_precision,
                     choose_precision, release_freed_memory, single_dtype)


#: Below this many unknowns in a sector system (one colour of the red-black split) the
#: sectors are factored and solved in this thread. Measured on 2 idle cores (h = 0.5,
#: Gamma = 1.68, in-process): N = 60 (halves of 20k) 0.34-0.42 s in one thread against
#: 0.41 s in two; N = 80 (46k) equal; N = 120 (76k) 2.36-2.50 s against 2.07-2.46 s.
SERIAL_BELOW = 50_000

#: Fill-reducing ordering of the sector factors (:func:`.direct.factorize`): METIS's nested
#: dissection, which fills these (J, M) lattices less than minimum degree does, by more the
#: larger they are.
SECTOR_ORDERING = "nested-dissection"


def default_threads() -> int:
    """Threads for the sector factorizations and solves: the cores this process may use.
    SuperLU releases the GIL, so sectors run in parallel (measured 1.5-1.7x on 2 cores)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


#: Unknowns whose rows are gathered at once when small sector blocks are extracted
#: together (bounds the temporaries).
EXTRACT_CHUNK = 1 << 16

#: Sectors with at least this many unknowns are extracted one by one with SciPy's indexing,
#: which is fastest there (measured at N = 400, window 30, the even colour of 1.16 M
#: unknowns in 16 sectors: 0.28 s against 0.92 s vectorised); smaller ones together, where
#: the cost of each SciPy call (4 ms a sector at N = 60) would dominate.
LARGE_SECTOR = 8192


def _large_sector_block(A: sp.csr_matrix, xs: np.ndarray, ys: np.ndarray):
    """One sector's block by SciPy's indexing: ``C`` (CSC) on ``(xs, ys)`` when the real
    block is the real form of ``C`` to 1e-14 of its largest entry, else None."""
    both = np.r_[xs, ys]
    m = xs.size
    blk = A[both][:, both]
    axx, axy, ayx, ayy = blk[:m, :m], blk[:m, m:], blk[m:, :m], blk[m:, m:]
    scale = max(float(abs(blk).max()) if blk.nnz else 0.0, 1e-300)
    dev = max((float(abs(d).max()) if d.nnz else 0.0) for d in (axx - ayy, axy + ayx))
    if dev > 1e-14 * scale:
        return None
    return (axx + 1j * ayx).tocsc()


def sector_blocks(A: sp.csr_matrix, sector: np.ndarray, partner: np.ndarray | None = None):
    """The diagonal blocks of ``A`` over the sector labels: a list of ``(key, xs, ys, block)``
    in increasing ``key``.

    A sector whose unknowns pair up by ``partner`` (each ``y`` with the ``x`` of the same
    element, see :class:`SectorPreconditioner`) and whose real block is the real form
    ``[[Re C, -Im C], [Im C, Re C]]`` of a complex matrix gives ``C = A_xx + i A_yx`` (CSC)
    on ``xs = partner[ys]``, ``ys`` (the sector's ``y`` in increasing order); folding a
    sector q > 0 gives this form unless a term couples q to -q (a Delta q = 2 term at
    q = 1), and a complex factor has half the memory of the real one. The form is checked
    entry by entry: each entry's mirror (x <-> y in row and column) must hold the same value
    (the negative across quadrants) to 1e-14 of the block's largest entry. Any other
    sector gives its real block (CSC) on ``xs`` (its unknowns in increasing order),
    ``ys = None``.

    Small sectors are extracted together, :data:`EXTRACT_CHUNK` unknowns at a time: one row
    gather per chunk and one sparse constructor per block (scipy's column indexing
    ``A[:, idx]`` costs O(n) per call whatever ``idx``, 4 ms a sector at N = 60); sectors
    of :data:`LARGE_SECTOR` unknowns or more one by one (:func:`_large_sector_block`).
    """
    A = sp.csr_matrix(A)
    n = A.shape[0]
    order = np.argsort(sector, kind="stable")  # by sector, increasing index within one
    s = sector[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]]) if n else np.zeros(0, np.int64)
    bounds = np.r_[starts, n]
    sid = np.empty(n, dtype=np.int64)  # sector number (0, 1, ...) of each unknown
    sid[order] = np.repeat(np.arange(starts.size), np.diff(bounds))
    size = np.diff(bounds)
    # which sectors pair up completely: every y's x lies in the same sector, once
    is_y = np.zeros(n, bool) if partner is None else partner >= 0
    paired = np.zeros(starts.size, bool)
    if partner is not None:
        ys_all = np.flatnonzero(is_y)
        xs_all = partner[ys_all]
        ny = np.bincount(sid[ys_all], minlength=starts.size)
        good = (sid[xs_all] == sid[ys_all]) & ~is_y[xs_all]
        hits = np.bincount(xs_all, minlength=n)
        bad_sec = np.bincount(sid[ys_all][~good], minlength=starts.size) > 0
        paired = (2 * ny == size) & ~bad_sec & (ny > 0)
        paired &= np.bincount(sid, weights=(hits > 1), minlength=starts.size) == 0
    # position of every unknown in its block: x's and y's at j and m + j (j: rank of the
    # y among its sector's y's), else the rank in the sector
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - np.repeat(starts, size)
    loc = rank.copy()
    if partner is not None and paired.any():
        yp = ys_all[paired[sid[ys_all]]]  # y's of paired sectors
        yp = yp[np.argsort(sid[yp], kind="stable")]  # by sector, increasing within one
        ysec = sid[yp]
        cnt = np.r_[0, np.cumsum(np.bincount(ysec, minlength=starts.size))]
        j = np.arange(yp.size) - cnt[ysec]
        m = size[ysec] // 2
        loc[partner[yp]] = j
        loc[yp] = m + j
    blocks = []
    mirror = partner.copy() if partner is not None else None
    if mirror is not None:  # x <-> y both ways
        mirror[partner[is_y]] = np.flatnonzero(is_y)
    sec = 0
    while sec < starts.size:
        if size[sec] >= LARGE_SECTOR:
            idx = order[bounds[sec]:bounds[sec + 1]]
            key, blk = int(s[bounds[sec]]), None
            if paired[sec]:
                ys = idx[is_y[idx]]
                xs = partner[ys]
                blk = _large_sector_block(A, xs, ys)
            if blk is None:
                blocks.append((key, idx, None, A[idx][:, idx].tocsc()))
            else:
                blocks.append((key, xs, ys, blk))
            sec += 1
            continue
        end = sec + 1  # small sectors [sec, end) whose unknowns are gathered together
        while end < starts.size and size[end] < LARGE_SECTOR and \
                bounds[end + 1] - bounds[sec] <= EXTRACT_CHUNK:
            end += 1
        rows = order[bounds[sec]:bounds[end]]
        R = A[rows]
        nnz_row = np.diff(R.indptr)
        r = np.repeat(rows, nnz_row)
        c, v = R.indices.astype(np.int64), R.data
        keep = sid[c] == sid[r]
        r, c, v = r[keep], c[keep], v[keep]
        del R, keep
        ok = np.ones(end - sec, bool)
        if mirror is not None and paired[sec:end].any():
            # the mirror of each entry of a paired sector, looked up among the entries
            key = r * n + c
            srt = np.argsort(key)
            skey = key[srt]
            pm = paired[sid[r]]
            mk = mirror[r[pm]] * n + mirror[c[pm]]
            at = np.minimum(np.searchsorted(skey, mk), max(skey.size - 1, 0))
            found = skey[at] == mk
            mval = np.where(found, v[srt[at]], 0.0)
            sign = np.where(is_y[r[pm]] == is_y[c[pm]], 1.0, -1.0)
            dev = np.abs(mval - sign * v[pm])
            lab = sid[r[pm]] - sec
            worst = np.zeros(end - sec)
            np.maximum.at(worst, lab, dev)
            scale = np.zeros(end - sec)
            np.maximum.at(scale, sid[r] - sec, np.abs(v))
            ok = worst <= 1e-14 * np.maximum(scale, 1e-300)
            del key, srt, skey, mk, at, found, mval, sign, dev, lab
        edge = np.searchsorted(sid[r], np.arange(sec, end + 1))  # entries of each sector
        for t in range(sec, end):
            e0, e1 = edge[t - sec], edge[t - sec + 1]
            rr, cc, vv = r[e0:e1], c[e0:e1], v[e0:e1]
            idx = order[bounds[t]:bounds[t + 1]]
            if paired[t] and ok[t - sec]:
                ys = idx[is_y[idx]]
                xs = partner[ys]
                m = ys.size
                xcol = ~is_y[cc]  # C = A_xx + i A_yx: the entries in x columns
                cv = np.where(is_y[rr[xcol]], 1j * vv[xcol], vv[xcol])
                blk = sp.csc_matrix((cv, (loc[rr[xcol]] % m, loc[cc[xcol]])), shape=(m, m))
                blk.sum_duplicates()  # the xx and yx entries of one element of C
                blocks.append((int(s[bounds[t]]), xs, ys, blk))
            else:
                blk = sp.csc_matrix((vv, (rank[rr], rank[cc])), shape=(idx.size, idx.size))
                blocks.append((int(s[bounds[t]]), idx, None, blk))
        sec = end
    return blocks


#: Below this many unknowns, and without a factor cache, the sector blocks are merged into
#: one block-diagonal matrix per kind (complex, real) and factored at once: each sector
#: solve costs tens of microseconds of Python besides its arithmetic (measured, 2 cores,
#: best of 5: N = 40, 60, 80 'krylov' in 0.085, 0.229, 0.561 s against 0.099, 0.259,
#: 0.605 s sector by sector). A scan of windows does not merge: its cache reuses each
#: sector's factor in the next window (merged, N = 60 'window' took 0.277 s against
#: 0.258 s). Block-diagonal factors have the fill of the separate ones.
MERGE_BELOW = 50_000


def _merged(jobs: list) -> list:
    """The sector jobs of :func:`sector_blocks` merged into one block-diagonal job per kind,
    labelled by the smallest sector key merged (complex blocks first)."""
    out = []
    for group in ([j for j in jobs if j[2] is not None], [j for j in jobs if j[2] is None]):
        if len(group) == 1:
            out.append(group[0])
        elif group:
            out.append((min(j[0] for j in group), np.concatenate([j[1] for j in group]),
                        None if group[0][2] is None else np.concatenate([j[2] for j in group]),
                        sp.block_diag([j[3] for j in group], format="csc")))
    return out


# --------------------------------------------------------------------------------------
# Factors made in threads, freed in the thread that made them
# --------------------------------------------------------------------------------------
_factor_threads: list[ThreadPoolExecutor] = []
_factor_threads_lock = threading.Lock()


def factor_threads(count: int) -> list[ThreadPoolExecutor]:
    """``count`` single-thread executors that live as long as the process (created on first
    use): the threads that make, and later free, the sector factors (:class:`OwnedFactor`)."""
    with _factor_threads_lock:
        while len(_factor_threads) < count:
            _factor_threads.append(ThreadPoolExecutor(1, thread_name_prefix="picorr-factor"))
        return _factor_threads[:count]


def _forget_factor_threads() -> None:
    """In a forked child the factor threads of the parent do not exist: start afresh."""
    global _factor_threads_lock
    _factor_threads.clear()
    _factor_threads_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_factor_threads)


def _drop(holder: list) -> None:
    holder.clear()  # the factor's last reference goes here, in its own thread


class OwnedFactor:
    """A SuperLU factor with the thread that made it, to which it is handed back to be freed.

    SciPy's SuperLU wrapper records every allocation in a table of the thread that made it
    and frees a pointer only from that thread's table (``_superlu_utils.c``): a factor made
    in one thread and collected in another keeps all its memory (scipy/scipy#15921). Measured
    with SciPy 1.17.1: four factors of a 40 000-unknown complex lattice made in two threads
    of a pool and deleted in the main thread left 0.27 GB resident per round, never
    returned; at N = 1000 the factors of the coarse N = 500 solve stayed resident through
    the whole solve. A thread that exits while its factors are in use may also free them
    under them in newer versions (scipy/scipy#25759). So the factor threads persist
    (:func:`factor_threads`) and a factor made in one is released there.
    """

    __slots__ = ("lu", "owner")

    def __init__(self, lu, owner: ThreadPoolExecutor | None):
        self.lu, self.owner = lu, owner

    @property
    def nnz(self) -> int:
        return self.lu.nnz

    def solve(self, b):
        return self.lu.solve(b)

    def release(self) -> None:
        """Free the factor (in its own thread when it was made in a factor thread)."""
        lu, self.lu = getattr(self, "lu", None), None
        if lu is None:
            return
        owner = getattr(self, "owner", None)
        if owner is None:
            return  # made in the caller's thread: freed here
        holder = [lu]
        del lu
        try:
            owner.submit(_drop, holder)
        except RuntimeError:  # the interpreter is shutting down
            pass

    def __del__(self):
        self.release()


#: Refinement steps of a single-precision factor's solve (:class:`RefinedFactor`).
REFINE_STEPS = 2


class RefinedFactor:
    """A single-precision factor of a double-precision block, solving to double precision by
    one step of iterative refinement: ``y = F^{-1} b``, then ``y += F^{-1} (b - A y)``.

    The factor (float32 or complex64) needs 8 or 12 bytes an entry instead of 12 or 20, and
    the factors are most of a large window solve's memory. A single-precision solve alone
    leaves a relative residual of about 1e-6 on these sectors; one refinement step brings
    it to about 1e-12, a second to round-off (measured on the largest sectors at N = 400,
    Gamma = 2.7: 3.0e-6, 1.0e-11, 8.0e-15 for the real sector 0 and 1.3e-6, 2.6e-12,
    1.7e-15 for the complex ones). ``steps`` refinement steps are taken; each costs one more
    triangular solve and one product with the block, which is kept (in double precision,
    about 10 entries a row against about 100 of the factor)."""

    __slots__ = ("lu", "block", "steps")

    def __init__(self, lu, block: sp.spmatrix | None, steps: int | None = None):
        self.lu = lu
        self.block = None if block is None else sp.csr_matrix(block)
        self.steps = REFINE_STEPS if steps is None else int(steps)

    @property
    def nnz(self) -> int:
        return self.lu.nnz

    def solve(self, b, steps: int | None = None):
        """``A^{-1} b`` refined by ``steps`` steps (default :attr:`steps`; 0: the
        single-precision solve alone, about 1e-6 relative)."""
        b = np.asarray(b)
        low = single_dtype(b.dtype)
        steps = self.steps if steps is None else int(steps)
        if steps and self.block is None:
            raise ValueError("this single-precision factor keeps no block to refine with "
                             "(keep_blocks=False); solve with steps=0")
        y = self.lu.solve(b.astype(low)).astype(b.dtype)
        for _ in range(steps):
            y += self.lu.solve((b - self.block @ y).astype(low))
        return y

    def release(self) -> None:
        lu, self.lu = getattr(self, "lu", None), None
        if lu is not None:
            lu.release()


def shed_blocks(cache: dict) -> None:
    """Drop the double-precision blocks of the cached single-precision factors
    (:class:`RefinedFactor`) between two solves: the next window's system brings each block
    again, identical (its digest is checked), and :class:`SectorPreconditioner` puts it back.
    Otherwise the blocks are held twice while the next window is assembled, when a window
    scan peaks. Measured at N = 1000, Gamma = 2.7 with single precision forced (GMRES(30)
    keeping 10, window_tol 1e-8; an RSS timeline of one process each): 4.39 GB through the
    first window's GMRES and 5.07 GB while the second was assembled, 5.10 GB at the end;
    with the blocks shed, 4.72 GB there and 4.76 GB at the end, I_M/N the same."""
    for lu, _ in cache.values():
        if isinstance(lu, RefinedFactor):
            lu.block = None


def _fingerprint(A: sp.csc_matrix) -> tuple:
    """Shape, type and a BLAKE2 digest of a (canonical) sparse matrix's structure and values."""
    A.sort_indices()
    h = hashlib.blake2b(digest_size=16)
    for arr in (A.indptr, A.indices, A.data):
        h.update(np.ascontiguousarray(arr).view(np.uint8))
    return A.shape, A.dtype.str, h.hexdigest()


class SectorPreconditioner:
    """``P^{-1}`` for ``P`` the block-diagonal part of ``A`` over the labels ``sector``
    (one block per coherence order), each block LU-factored once.

    ``partner`` (optional, from :meth:`.HermitianFold.complex_partner`) pairs each
    imaginary-part unknown with its real-part unknown; a sector whose real block is the real
    form of a complex matrix is then factored as that complex matrix (half the memory and
    memory traffic of the real form). ``threads`` sectors are factored and solved at once.

    ``cache`` (a dict, optional) keeps the factors by sector label for the next system:
    the diagonal block of sector q does not depend on the coherence window as long as the
    window contains q, so a window scan factors each sector once. A cached factor is
    reused only when the block is the identical matrix (same shape, type, precision and a
    digest of its structure and values; the block itself is not kept in double precision).

    ``precision`` ('double' or 'single') is the storage precision of the factors; 'single'
    factors solve to double precision by iterative refinement (:class:`RefinedFactor`),
    with about 0.6 times the memory and three times the triangular solves, or unrefined
    (``solve(r, refine=False)``) inside the mixed-precision refinement of
    :func:`solve_red_black`. With ``keep_blocks=False`` they keep no block (the refinement
    then takes its residuals from the Liouvillian, :func:`fold_residual`) and solve only
    unrefined, and each block is freed once its factor is made.
    """

    def __init__(self, A: sp.spmatrix, sector: np.ndarray, cache: dict | None = None,
                 partner: np.ndarray | None = None, threads: int | None = None,
                 merge: bool | None = None, precision: str = "double",
                 keep_blocks: bool = True):
        self.precision = check_precision(precision)
        self.keep_blocks = bool(keep_blocks)
        A = sp.csr_matrix(A)
        shape, dtype = A.shape, A.dtype
        if threads is None:
            threads = 1 if A.shape[0] < SERIAL_BELOW else default_threads()
        self.threads = max(1, int(threads))
        jobs = sector_blocks(A, sector, partner)
        if merge is None:  # a scan's cache reuses factors sector by sector instead
            merge = A.shape[0] < MERGE_BELOW and cache is None
        #: sectors, and those factored as complex matrices (counted before any merge)
        self.sector_count = len(jobs)
        self.complex_sectors = sum(j[2] is not None for j in jobs)
        self.merged = bool(merge and len(jobs) > 1)
        if self.merged:
            jobs = _merged(jobs)

        def build(job, owner=None):
            key, xs, ys, block = job
            digest = None if cache is None else (precision, _fingerprint(block))
            hit = None if cache is None else cache.get(key)
            if hit is not None and hit[1] == digest:
                if isinstance(hit[0], RefinedFactor) and hit[0].block is None \
                        and self.keep_blocks:
                    hit[0].block = sp.csr_matrix(block)  # shed after the last solve
                return key, xs, ys, hit[0]
            try:
                if precision == "double":
                    lu = OwnedFactor(factorize(block, SECTOR_ORDERING), owner)
                else:
                    lu = RefinedFactor(OwnedFactor(factorize(block.astype(single_dtype(
                        block.dtype)), SECTOR_ORDERING), owner),
                        block if self.keep_blocks else None)
            except RuntimeError as exc:
                raise NoUniqueSteadyStateError(
                    f"the q = {key} sector of the Liouvillian is singular ({exc}); "
                    "this model may have no unique steady state"
                ) from None
            if cache is not None:
                cache[key] = (lu, digest)
            return key, xs, ys, lu

        # largest first balances the threads; taken off the list as they are factored, so
        # a block that no factor keeps is freed once its factor is made
        jobs.sort(key=lambda j: j[3].shape[0])
        del A  # the caller's; the blocks are copies
        if self.threads > 1:  # each factor thread takes the next job until none is left
            lock = threading.Lock()

            def work(owner):
                done = []
                while True:
                    with lock:
                        job = jobs.pop() if jobs else None
                    if job is None:
                        return done
                    done.append(build(job, owner))
                    del job

            pools = factor_threads(self.threads)
            futures = [p.submit(work, p) for p in pools]
            self.sectors = [r[1:] for f in futures for r in f.result()]
        else:
            self.sectors = []
            while jobs:
                self.sectors.append(build(jobs.pop())[1:])
        self.sectors = [_as_slices(*sec) for sec in self.sectors]
        self.factor_nnz = int(sum(lu.nnz for _, _, lu in self.sectors))
        # SuperLU's nnz counts L and U; values (4, 8 or 16 bytes) plus a 4-byte row index;
        # refined single-precision factors keep their block (BLOCK_ENTRY_BYTES)
        real_b, complex_b = FACTOR_ENTRY_BYTES[precision]
        self.factor_bytes = int(sum(lu.nnz * (real_b if ys is None else complex_b)
                                    for _, ys, lu in self.sectors))
        self.block_bytes = int(sum(lu.block.nnz * BLOCK_ENTRY_BYTES[ys is not None]
                                   for _, ys, lu in self.sectors
                                   if isinstance(lu, RefinedFactor) and lu.block is not None))
        self.shape = shape
        self.dtype = dtype
        self._pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None

    @staticmethod
    def _apply_one(op, sec, r, out):
        """``out = op(sector, r)`` on one sector's unknowns (complex sectors as complex)."""
        xs, ys, lu = sec
        if isinstance(xs, slice):  # contiguous unknowns (see _as_slices): no gather
            if ys is None:
                out[xs] = op(lu, r[xs])
            else:  # the real vectors of the fold: x, y pairs viewed as complex numbers
                out[xs].view(complex)[:] = op(lu, r[xs].view(complex))
        elif ys is None:
            out[xs] = op(lu, np.ascontiguousarray(r[xs]))
        else:
            z = op(lu, r[xs] + 1j * r[ys])
            out[xs] = z.real
            out[ys] = z.imag

    def _apply(self, op, r: np.ndarray) -> np.ndarray:
        r = np.ascontiguousarray(r, dtype=np.result_type(self.dtype, r.dtype))
        out = np.empty(self.shape[0], dtype=r.dtype)
        if out.dtype != np.float64 and any(ys is True for _, ys, _ in self.sectors):
            raise TypeError("the complex sectors of a real form take real vectors only")
        if self._pool is None:
            for sec in self.sectors:
                self._apply_one(op, sec, r, out)
        else:
            list(self._pool.map(lambda sec: self._apply_one(op, sec, r, out), self.sectors))
        return out

    def solve(self, r: np.ndarray, refine: bool = True) -> np.ndarray:
        """``P^{-1} r``; ``refine=False`` skips the refinement of single-precision factors
        (:class:`RefinedFactor`; about 1e-6 relative, one triangular solve instead of
        ``1 + REFINE_STEPS``)."""
        if refine or self.precision == "double":
            return self._apply(lambda lu, b: lu.solve(b), r)
        return self._apply(lambda lu, b: lu.solve(b, steps=0), r)

    def apply_blocks(self, r: np.ndarray) -> np.ndarray:
        """``P r``: the product with the block-diagonal part itself, from the blocks that
        single-precision factors keep (:class:`RefinedFactor`); TypeError for
        double-precision factors, which keep none."""
        if self.precision != "single":
            raise TypeError("only single-precision factors keep their blocks")
        return self._apply(lambda lu, b: lu.block @ b, r)

    def close(self) -> None:
        """Stop the solve threads (also done when the object is collected)."""
        if getattr(self, "_pool", None) is not None:  # None too if __init__ failed
            self._pool.shutdown(wait=False)
            self._pool = None

    def __del__(self):
        self.close()

    def as_operator(self) -> sla.LinearOperator:
        return sla.LinearOperator(self.shape, matvec=self.solve, dtype=self.dtype)


def _as_slices(xs: np.ndarray, ys: np.ndarray | None, lu):
    """A sector ``(xs, ys, lu)`` of :class:`SectorPreconditioner` with its unknowns as one
    slice when they are contiguous: ``xs = a, a+1, ...`` (real), or ``x, y`` interleaved
    (``xs = a, a+2, ...``, ``ys = xs + 1``), whose complex values are then a view of the
    real vector (``ys`` is then ``True``). Else unchanged."""
    a = int(xs[0]) if xs.size else 0
    if ys is None:
        if xs.size and np.array_equal(xs, np.arange(a, a + xs.size)):
            return slice(a, a + xs.size), None, lu
    elif xs.size and np.array_equal(xs, np.arange(a, a + 2 * xs.size, 2)) \
            and np.array_equal(ys, xs + 1):
        return slice(a, a + 2 * xs.size), True, lu
    return xs, ys, lu


def grouped(idx: np.ndarray, sector: np.ndarray, partner: np.ndarray | None) -> np.ndarray:
    """``idx`` reordered by sector, each element's real and imaginary unknowns side by side
    (``x`` then its ``y``, by ``partner``). In this order every sector of a
    :class:`SectorPreconditioner` is one slice of the vector (complex ones a complex view),
    so its solves gather and scatter nothing (at N = 600, Gamma = 2.7 the fancy-indexed
    gathers and scatters took 9.9 s of the 59 s that the threads spent in sector solves)."""
    if partner is None or idx.size == 0:
        return idx[np.argsort(sector[idx], kind="stable")]
    p = partner[idx]
    pair = np.where(p >= 0, p, idx)  # an element's two unknowns share its x's index
    s = sector[idx].astype(np.int64)
    key = ((s - s.min()) * partner.size + pair) * 2 + (p >= 0)  # distinct keys
    return idx[np.argsort(key)]


def run_gmres(A, b, P: SectorPreconditioner | None = None, *, x0=None, rtol=1e-13,
              restart=60, maxiter=2000, what="GMRES", deflate=0):
    """Restarted GMRES; returns ``(x, iterations)`` or raises :class:`NotConvergedError`
    when ``maxiter`` inner iterations do not bring the residual below ``rtol`` times the
    right-hand side's. Without ``P`` (the red-black Schur operator, already preconditioned)
    by :func:`.gmres.gmres`, which orthogonalises in blocks and keeps ``deflate`` harmonic
    Ritz vectors across restarts; with ``P`` by SciPy's :func:`scipy.sparse.linalg.gmres`
    preconditioned by ``P``, with plain restarts (``deflate`` is not used)."""
    if P is None:
        matvec = A.matvec if hasattr(A, "matvec") else (lambda v: A @ v)
        x, its, ok = gmres(matvec, b, x0, rtol=rtol, restart=restart, maxiter=maxiter,
                           deflate=deflate)
    else:
        count = [0]

        def cb(_):
            count[0] += 1

        x, info = sla.gmres(A, b, x0=x0, M=P.as_operator(), rtol=rtol, atol=0.0,
                            restart=restart, maxiter=max(1, -(-maxiter // restart)),
                            callback=cb, callback_type="pr_norm")
        its, ok = count[0], info == 0
    if not ok:
        raise NotConvergedError(
            f"{what} did not converge within maxiter={maxiter} iterations "
            f"(restart {restart}, deflate {deflate}, {A.shape[0]} unknowns); raise maxiter"
        )
    return x, its


def _sub_partner(partner: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``partner`` (see :class:`SectorPreconditioner`) renumbered for the unknowns ``idx``."""
    inv = np.full(partner.size, -1, dtype=np.int64)
    inv[idx] = np.arange(idx.size)
    p = partner[idx]
    return np.where(p >= 0, inv[np.maximum(p, 0)], -1)


@contextmanager
def small_pages():
    """NumPy arrays allocated in this context are not advised into transparent huge pages
    (NumPy advises them for arrays of 4 MB and more where the kernel allows it): an array
    written in many separate runs, as :func:`colour_split` fills its blocks, would otherwise
    be resident in 2 MB pages from the first write into each. Measured on the split of
    N = 400, window 30 (0.29 GB of blocks, from 0.49 GB of assembled blocks before they were
    copied to their size, see :func:`.hermitian._compact`), peak RSS: 1.10 GB with huge
    pages and heap pages handed back every 256 MB of blocks freed, 1.03 GB handing them back
    after every block; 0.90 GB without huge pages, handing them back every 32 MB
    (:data:`SPLIT_RELEASE_EVERY`), 0.87 GB after every block."""
    try:
        from numpy._core.multiarray import _set_madvise_hugepage
    except ImportError:
        try:  # NumPy 1.x
            from numpy.core.multiarray import _set_madvise_hugepage
        except ImportError:  # not available: leave the default
            yield
            return
    before = _set_madvise_hugepage(False)
    try:
        yield
    finally:
        _set_madvise_hugepage(before)


#: Bytes of row blocks freed by :func:`colour_split` between two calls of its ``release``
#: (the blocks are a few MB each, below the mmap threshold, so freed into the C heap).
SPLIT_RELEASE_EVERY = 32 * 2**20


class ColourSplit:
    """A system split by colour (:func:`colour_split`): ``odd`` and ``even``, the unknowns
    of the odd and even sectors in :func:`grouped` order, and the blocks ``oo``, ``oe``,
    ``eo``, ``ee`` (CSR, rows and columns in that order). A consumer takes a block with
    :meth:`take`, which drops the split's reference, so it can free the block when done.
    The sector labels and complex partners of each colour (what its
    :class:`SectorPreconditioner` needs) are taken the same way, as ``"sector_odd"``,
    ``"partner_odd"``, ``"sector_even"`` and ``"partner_even"`` (the partners renumbered
    within the colour, :func:`_sub_partner`; None without partners), so a caller need not
    hold the whole system's labels and partners through the solve."""

    def __init__(self, odd, even, blocks, sector=None, partner=None):
        self.odd, self.even = odd, even
        self.size = odd.size + even.size
        self._blocks = blocks
        if sector is not None:
            for name, idx in (("odd", odd), ("even", even)):
                self._blocks["sector_" + name] = sector[idx]
                self._blocks["partner_" + name] = None if partner is None else \
                    _sub_partner(partner, idx)

    def take(self, name: str):
        return self._blocks.pop(name)

    def split(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(v[odd], v[even])``: a vector over the whole system by colour."""
        return v[self.odd], v[self.even]

    def unit(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`split` of the unit vector ``e_i``, without making it whole."""
        out = np.zeros(self.odd.size), np.zeros(self.even.size)
        for v, idx in zip(out, (self.odd, self.even)):
            v[np.flatnonzero(idx == i)] = 1.0
        return out

    def join(self, u_odd: np.ndarray, u_even: np.ndarray) -> np.ndarray:
        """The vector over the whole system from its two colours."""
        u = np.empty(self.size, dtype=np.result_type(u_odd, u_even))
        u[self.odd] = u_odd
        u[self.even] = u_even
        return u


def colour_split(parts: list, sector: np.ndarray, partner: np.ndarray | None = None,
                 replace: tuple | None = None, release=None,
                 threads: int | None = None) -> ColourSplit | None:
    """The system given by its CSR row blocks ``parts`` split into the blocks that the
    red-black elimination of :func:`solve_sectors` uses, or None (``parts`` kept, with their
    duplicates summed and explicit zeros dropped) when the sectors are not two-coloured (some entry couples sectors whose labels differ by a
    nonzero even number) or there is no odd sector.

    ``parts`` is a list of ``(first_row, rows)`` covering the rows once; it is emptied, each
    block freed as soon as its entries are copied. ``replace = (row, cols)`` puts a row of
    ones at ``cols`` in place of row ``row`` (the trace condition). The blocks are built
    directly in their final order by two passes over the parts (count, then place), so the
    system is held about once: splitting a stacked matrix (``A[odd][:, odd]`` and so on)
    holds it twice, and the trace row added as a sparse sum (``A + T``) copies it once more,
    0.87 GB each at N = 1000, Gamma = 2.7 (window 34: 70 M entries), beside about 6 GB of
    cached sector factors. When the parts come in order of their element ranges (each x
    block beside its y block, as :meth:`.HermitianFold.assemble` makes them), the blocks
    fill page by page as the parts are freed. ``release`` (e.g.
    :func:`.memory.release_freed_memory`) is called every :data:`SPLIT_RELEASE_EVERY` bytes
    of parts freed. ``threads`` parts are surveyed and placed at once (default: the cores
    available; NumPy releases the interpreter lock in this work)."""
    sector = np.asarray(sector)
    n = sector.size
    is_odd = sector % 2 != 0
    if not is_odd.any():
        return None
    colour = (~is_odd).astype(np.int8)  # 0: odd, 1: even
    # the labels in the smallest integer type that holds their differences (less traffic)
    span = int(sector.max()) - int(sector.min()) if n else 0
    small = (sector - sector.min()).astype(np.int16 if span < 2**15 else np.int64)
    threads = default_threads() if threads is None else max(1, int(threads))
    pool = ThreadPoolExecutor(threads) if threads > 1 and len(parts) > 1 else None
    run = (lambda f, items: list(pool.map(f, items))) if pool else \
        (lambda f, items: [f(x) for x in items])

    def survey(part):
        """Canonical rows; whether they are two-coloured; entries per column colour."""
        first, P = part
        P.sum_duplicates()
        P.eliminate_zeros()
        dq = np.repeat(small[first:first + P.shape[0]], np.diff(P.indptr))
        dq -= small[P.indices]
        if np.any((dq != 0) & ((dq & 1) == 0)):
            return None
        del dq
        ends = np.concatenate(([0], np.cumsum(colour[P.indices], dtype=np.int64)))
        n_even = ends[P.indptr[1:]] - ends[P.indptr[:-1]]
        return n_even, np.diff(P.indptr) - n_even

    try:
        counts = run(survey, parts)
        if any(c is None for c in counts):
            return None
        # held through the solve: int32 where it suffices
        otype = np.int32 if n < np.iinfo(np.int32).max else np.int64
        odd = grouped(np.flatnonzero(is_odd), sector, partner).astype(otype)
        even = grouped(np.flatnonzero(~is_odd), sector, partner).astype(otype)
        itype = np.int32 if max(n, sum(P.nnz for _, P in parts) + (
            0 if replace is None else len(replace[1]))) < np.iinfo(np.int32).max else np.int64
        new = np.empty(n, dtype=itype)  # position of each unknown within its colour
        new[odd] = np.arange(odd.size)
        new[even] = np.arange(even.size)
        sizes = (odd.size, even.size)
        rrow = -1 if replace is None else int(replace[0])
        rcols = None if replace is None else np.asarray(replace[1], dtype=np.int64)
        # entries of each row in each column colour, in the blocks' row order
        count = [[np.zeros(sizes[a], dtype=np.int64) for _c in range(2)] for a in range(2)]
        for (first, P), (n_even, n_odd) in zip(parts, counts):
            rows = np.arange(first, first + P.shape[0])
            for a in range(2):
                sel = colour[rows] == a
                count[a][0][new[rows[sel]]] = n_odd[sel]
                count[a][1][new[rows[sel]]] = n_even[sel]
        if replace is not None:
            a, at = colour[rrow], new[rrow]
            for c in range(2):
                count[a][c][at] = np.count_nonzero(colour[rcols] == c)
        names = (("oo", "oe"), ("eo", "ee"))
        ptr = [[np.concatenate(([0], np.cumsum(count[a][c]))).astype(itype) for c in range(2)]
               for a in range(2)]
        del count
        with small_pages():  # filled run by run: a huge page would be resident at its first run
            idx = [[np.empty(int(ptr[a][c][-1]), dtype=itype) for c in range(2)]
                   for a in range(2)]
            val = [[np.empty(int(ptr[a][c][-1])) for c in range(2)] for a in range(2)]

        n_odd = odd.size

        def place(k):
            """Every entry of part ``k`` to its place, then the part is freed. The columns
            are renumbered to the colours' orders one after the other (odd, then even) and
            sorted within each row, so each row's entries of one column colour are one run,
            in their final order."""
            (first, P), parts[k] = parts[k], None
            n_even_row = counts[k][0]
            cols = new[P.indices]
            cols[colour[P.indices] == 1] += n_odd
            P.indices = cols
            P.has_sorted_indices = False
            P.sort_indices()
            rows = np.arange(first, first + P.shape[0])
            for a in range(2):
                sel = np.flatnonzero(colour[rows] == a)
                if first <= rrow < first + P.shape[0] and colour[rrow] == a:
                    sel = sel[sel != rrow - first]  # the replaced row: its entries go
                if sel.size == 0:
                    continue
                S = P[sel]
                head = S.indptr[:-1].astype(np.int64)
                n_even = n_even_row[sel]
                base = (ptr[a][0][new[rows[sel]]] - head,  # entry e of row i goes to
                        ptr[a][1][new[rows[sel]]] - head - (np.diff(S.indptr) - n_even))
                local = np.repeat(np.arange(sel.size), np.diff(S.indptr))
                is_even = S.indices >= n_odd
                for c in range(2):
                    e = np.flatnonzero(is_even) if c else np.flatnonzero(~is_even)
                    at = base[c][local[e]] + e
                    idx[a][c][at] = S.indices[e] - c * n_odd
                    val[a][c][at] = S.data[e]
            return P.data.nbytes + P.indices.nbytes + P.indptr.nbytes

        freed = 0
        for k0 in range(0, len(parts), threads):
            freed += sum(run(place, range(k0, min(len(parts), k0 + threads))))
            if release is not None and freed >= SPLIT_RELEASE_EVERY:
                release()
                freed = 0
        parts.clear()
    finally:
        if pool is not None:
            pool.shutdown()
    if replace is not None:
        a = colour[rrow]
        for c in range(2):
            cols = rcols[colour[rcols] == c]
            at = ptr[a][c][new[rrow]]
            idx[a][c][at:at + cols.size] = np.sort(new[cols])
            val[a][c][at:at + cols.size] = 1.0
    blocks = {}
    for a in range(2):
        for c in range(2):
            M = sp.csr_matrix((val[a][c], idx[a][c], ptr[a][c]), shape=(sizes[a], sizes[c]))
            val[a][c] = idx[a][c] = ptr[a][c] = None
            M.has_sorted_indices = True  # each row's columns were sorted in place()
            blocks[names[a][c]] = M
    return ColourSplit(odd, even, blocks, sector, partner)


def two_coloured(A: sp.spmatrix, sector: np.ndarray) -> bool:
    """True when ``A`` couples different sectors only if their labels differ by an odd
    number (for the LMG field h J_x: q to q +- 1), so even and odd sectors decouple."""
    C = sp.coo_matrix(A)
    dq = sector[C.row] - sector[C.col]
    return not np.any((dq != 0) & (dq % 2 == 0))


def solve_sectors(A, b: np.ndarray, sector: np.ndarray, *, partner=None,
                  x0=None, rtol=1e-13, restart=60, maxiter=2000, cache=None, threads=None,
                  what="GMRES", precision="double", deflate=0):
    """Solve ``A u = b`` for ``A`` block-structured over the sector labels.

    ``A`` may be handed over in a one-element list, which is emptied: the matrix is then
    freed as soon as it has been split into its colours. A matrix passed as a plain argument
    stays referenced by the caller's frame (or by the argument tuple of ``f(*args)``) until
    the call returns, so it would be held through the whole GMRES solve. Measured on the
    window method at N = 1000, Gamma = 2.7 (LMG, h = 0.5): with the matrix handed over and
    ``A_ee`` not kept (below), the first window's GMRES (window 34) peaked at 8.94 GB
    instead of 10.08 GB.

    When even and odd sectors do not couple among themselves (:func:`colour_split`, which
    also sums a plain ``A``'s duplicate entries and drops its explicit zeros), the
    odd ("red") sectors are eliminated exactly: GMRES runs on the Schur complement
    ``S = A_ee - A_eo A_oo^{-1} A_oe`` of the even ("black") sectors, preconditioned by the
    even sector factors (a red-black block Gauss-Seidel; its error contracts like the square of
    block Jacobi's, and the Krylov vectors have half the length). Measured at N = 200 and
    400 (h = 0.5): 28 and 37 iterations against 56 and 88 for block-Jacobi GMRES on the
    whole system. Which colour is eliminated matters: keeping the even sectors (with q = 0
    and the trace row) in the iteration took 25, 29, 32, 38, 44 and 53 iterations where
    keeping the odd ones took 27, 32, 35, 44, 51 and 66 (first windows of N = 120, 200 at
    Gamma = 1.68 and 2.7, N = 400 at both and N = 800 at 1.68; 9-20 % less time).
    Otherwise block-Jacobi GMRES on the whole system.

    ``A_ee`` couples each even sector to itself only, so it is the matrix that the even
    factors invert: GMRES runs on the preconditioned Schur complement
    ``P_e^{-1} S = I - P_e^{-1} A_eo A_oo^{-1} A_oe`` with right-hand side ``P_e^{-1} r``
    (the same Krylov spaces and residuals as GMRES on ``S`` preconditioned by ``P_e`` from
    the left), and ``A_ee`` is not kept.

    Returns ``(u, iterations, info)``; the red-black case is :func:`solve_red_black`.
    """
    if isinstance(A, list):  # handed over (see above)
        A = A.pop()
    parts = [(0, sp.csr_matrix(A))]
    del A
    split = colour_split(parts, sector, partner)
    if split is not None:
        return solve_red_black(split, b, x0=x0, rtol=rtol, restart=restart,
                               maxiter=maxiter, cache=cache, threads=threads, what=what,
                               precision=precision, deflate=deflate)
    A = parts.pop()[1]
    # one colour only (e.g. the window 0) is block diagonal: its factors solve it exactly
    two = two_coloured(A, sector)
    P = SectorPreconditioner(A, sector, cache, partner=partner, threads=threads,
                             precision=precision)
    try:
        if two:
            u, its = P.solve(b), 0
        else:
            u, its = run_gmres(A, b, P, x0=x0, rtol=rtol, restart=restart,
                               maxiter=maxiter, what=what)
    finally:
        P.close()
    return u, its, {"scheme": "block-Jacobi GMRES" if not two else "sector LU",
                    "sectors": P.sector_count, "merged": P.merged,
                    "complex_sectors": P.complex_sectors, "factor_nnz": P.factor_nnz,
                    "factor_GB": P.factor_bytes / 1e9, "factor_precision": precision,
                    "threads": P.threads}


#: Rows compared at once by :func:`transpose_scale` (its temporaries stay a few MB).
TRANSPOSE_CHECK_ROWS = 1 << 17


def transpose_scale(Aeo: sp.csr_matrix, Aoe: sp.csr_matrix) -> np.ndarray | None:
    """Row scales ``s`` with ``Aeo = diag(s) Aoe^T`` exactly (bit for bit), or None.

    The sectors couple through the Hamiltonian only when the model's dissipators keep q
    (for the LMG model the field h J_x, q to q +- 1), and ``-i [H, .]`` is anti-Hermitian
    under the Hilbert-Schmidt product. In the real unknowns of the fold that product weighs
    the q > 0 unknowns twice (each stands for itself and its transpose), so the even rows'
    couplings to the odd sectors are the odd rows' couplings to the even sectors transposed,
    times -1 on q > 0 rows and -2 on q = 0 rows (0 on the row replaced by the trace
    condition). Powers of two make the relation exact in floating point. Then the solver
    keeps ``Aoe`` only and applies ``Aeo`` as ``s * (Aoe^T v)``: at N = 1000,
    Gamma = 2.7 (window 34) ``Aeo`` is 0.18 GB held through GMRES. The relation is checked
    here, not assumed: a model whose dissipators change q (or any round-off difference)
    gives None and ``Aeo`` is kept."""
    if Aeo.shape != Aoe.shape[::-1]:
        return None
    C = Aoe.T.tocsr()  # sorted indices, no explicit zeros (Aoe has none)
    C.sort_indices()
    nA, nC = np.diff(Aeo.indptr), np.diff(C.indptr)
    full = nA > 0  # a row of Aeo is either the whole row of C, scaled, or empty (s = 0)
    if np.any(full & (nA != nC)) or not Aeo.has_canonical_format:
        return None
    scale = np.zeros(C.shape[0])
    scale[full] = Aeo.data[Aeo.indptr[:-1][full]] / C.data[C.indptr[:-1][full]]
    for r0 in range(0, C.shape[0], TRANSPOSE_CHECK_ROWS):  # in row ranges: little memory
        r1 = min(C.shape[0], r0 + TRANSPOSE_CHECK_ROWS)
        a, c = slice(Aeo.indptr[r0], Aeo.indptr[r1]), slice(C.indptr[r0], C.indptr[r1])
        f = full[r0:r1]
        keep = np.repeat(f, nC[r0:r1])
        if not (np.array_equal(C.indices[c][keep], Aeo.indices[a]) and np.array_equal(
                np.repeat(scale[r0:r1][f], nA[r0:r1][f]) * C.data[c][keep], Aeo.data[a])):
            return None
    return scale


def solve_red_black(split: ColourSplit, b, *, x0=None, rtol=1e-13, restart=60, maxiter=2000,
                    cache=None, threads=None, what="GMRES", precision="double", deflate=0,
                    progress=None, residual=None):
    """The red-black Schur GMRES of :func:`solve_sectors` on a system already split by
    colour (:func:`colour_split`; its blocks, labels and partners are taken, and freed once
    factored or solved with). ``b`` and ``x0`` (optional) are vectors over the whole system
    or their two colours ``(odd, even)`` (:meth:`ColourSplit.split`, :meth:`ColourSplit.unit`),
    which a caller can hand over without holding the whole vector through the solve.
    With ``precision='single'`` the solve is a mixed-precision refinement
    (:func:`_refined_red_black`): one triangular solve per sector and application, where
    refined solves take three. Measured once in a fresh process on an idle machine,
    ``steady_state(lmg(1000, 3, 0.5, 2.7, 1), method='window', factor_precision='single')``
    at commit 3c2263a: 414 s, 220 GMRES iterations and a peak of 5.38 GB, against 292 s,
    130 iterations and 7.38 GB with double-precision factors (``memory_calibration.json``,
    the same windows and restart); I_M/N the same to 1e-15.

    ``residual`` (optional, single precision only): a callable ``(u_odd, u_even) ->
    (r_odd, r_even)`` giving the residual ``b - A u`` of the whole system in double
    precision without the sector blocks (:func:`solve_fold`, ``lean``); the factors then
    keep no blocks (``keep_blocks=False``), and each refinement step takes the residual
    from it. Returns ``(u, iterations, info)``."""
    bo, be = split.split(b) if isinstance(b, np.ndarray) else b
    x0e = None if x0 is None else (x0[split.even] if isinstance(x0, np.ndarray) else x0[1])
    # the odd part of a start is used by the lean refinement only (below)
    x0o = None if x0 is None or residual is None else \
        (x0[split.odd] if isinstance(x0, np.ndarray) else x0[0])
    del b, x0
    # A_eo from A_oe when the one is the other transposed and scaled (checked, exact); the
    # check's transpose is made before the factors, when the process holds least
    Aoe, Aeo = split.take("oe"), split.take("eo")
    scale = transpose_scale(Aeo, Aoe)
    if scale is not None:
        del Aeo
        AoeT = Aoe.T  # a CSC view, no copy

        def eo(v):
            return scale * (AoeT @ v)
    else:
        def eo(v):
            return Aeo @ v
    if residual is not None and precision != "single":
        raise ValueError("a residual callable is for single-precision factors only")
    keep = residual is None
    Aoo = [split.take("oo")]  # handed over in a list: freed as its sectors are copied out
    Po = SectorPreconditioner(Aoo.pop(), split.take("sector_odd"), cache,
                              partner=split.take("partner_odd"), threads=threads,
                              precision=precision, keep_blocks=keep)
    Pe = SectorPreconditioner(split.take("ee"), split.take("sector_even"), cache,
                              partner=split.take("partner_even"), threads=threads,
                              precision=precision, keep_blocks=keep)
    # P_e^{-1} A_ee is the identity: A_ee is not kept
    release_freed_memory()  # SuperLU's working memory, freed in the factor threads' heaps
    if precision == "single":
        try:
            u, its, steps = _refined_red_black(Po, Pe, Aoe, eo, bo, be, x0e, rtol=rtol,
                                               restart=restart, maxiter=maxiter, what=what,
                                               deflate=deflate, progress=progress,
                                               residual=residual, x0o=x0o)
            u = split.join(*u)
        finally:
            Po.close()
            Pe.close()
        Ps = (Po, Pe)
        info = {"scheme": "red-black Schur GMRES, mixed-precision refinement",
                "refinement": steps, **_factor_info(Ps, precision),
                "deflate": deflate, "eo_from_transpose": scale is not None,
                "refinement_residual": "blocks" if keep else "Liouvillian rows"}
        if cache is not None:
            del Po, Pe, Ps
            shed_blocks(cache)
        return u, its, info
    try:
        matvec, schur_rhs = _schur(Po, Pe, Aoe, eo, refine=True)
        T = sla.LinearOperator((split.even.size, split.even.size), dtype=float, matvec=matvec)
        rhs = schur_rhs(bo, be)
        del be
        ue, its = run_gmres(T, rhs, None, x0=x0e, rtol=rtol, restart=restart,
                            maxiter=maxiter, what=what, deflate=deflate)
        del rhs, x0e
        u = split.join(Po.solve(bo - Aoe @ ue), ue)
    finally:
        Po.close()
        Pe.close()
    Ps = (Po, Pe)
    return u, its, {"scheme": "red-black Schur GMRES", **_factor_info(Ps, precision),
                    "deflate": deflate, "eo_from_transpose": scale is not None}


def _schur(Po, Pe, Aoe, eo, refine: bool):
    """``(T, rhs)``: the preconditioned Schur complement
    ``T x = x - P_e^{-1} A_eo P_o^{-1} A_oe x`` and its right-hand side
    ``rhs(r_o, r_e) = P_e^{-1} (r_e - A_eo P_o^{-1} r_o)`` for residuals ``r`` of the whole
    system (:func:`solve_red_black`); ``refine=False``: unrefined single-precision solves."""
    def T(x):
        return x - Pe.solve(eo(Po.solve(Aoe @ x, refine=refine)), refine=refine)

    def rhs(ro, re):
        return Pe.solve(re - eo(Po.solve(ro, refine=refine)), refine=refine)
    return T, rhs


def _factor_info(Ps, precision: str) -> dict:
    """What a solve records of its sector factors ``Ps``."""
    return {"sectors": sum(P.sector_count for P in Ps),
            "merged": any(P.merged for P in Ps),
            "complex_sectors": sum(P.complex_sectors for P in Ps),
            "factor_nnz": sum(P.factor_nnz for P in Ps),
            "factor_GB": sum(P.factor_bytes for P in Ps) / 1e9,
            "factor_precision": precision,
            "refined_blocks_GB": sum(P.block_bytes for P in Ps) / 1e9,
            "threads": Ps[0].threads}


#: Relative tolerance of each inner solve of the mixed-precision refinement
#: (:func:`_refined_red_black`). Its operator, made of unrefined single-precision solves, is
#: accurate to about 1e-6, and GMRES on it stalls above that: measured at N = 400,
#: Gamma = 2.7 (window 28, GMRES(30), 10 vectors kept), an inner tolerance of 1e-7 on the
#: true residual was not reached in 800 s, where 1e-5 took 22 iterations and cut the
#: outer residual to 3e-6.
INNER_RTOL = 1e-5

#: An outer step of the refinement must cut the preconditioned residual by at least this
#: factor, else the refinement has met the noise of its single-precision solves and stops
#: with :class:`NotConvergedError` (measured cuts: 1e-5 to 1e-6 an outer step).
MIN_CUT = 0.1


def _refined_red_black(Po, Pe, Aoe, eo, bo, be, x0e, *, rtol, restart, maxiter, what,
                       deflate, progress=None, residual=None, x0o=None):
    """The red-black Schur solve with single-precision factors by mixed-precision iterative
    refinement: the residual ``r = b - A u`` of the whole system in double precision (from
    the blocks the factors keep, :meth:`SectorPreconditioner.apply_blocks`, and ``A_oe``,
    ``A_eo``), the correction by the Schur GMRES of :func:`solve_red_black` on unrefined
    single-precision solves, with the Krylov basis in single precision
    (:func:`.gmres.gmres`, ``basis='single'``), to :data:`INNER_RTOL` or to what is left
    of ``rtol``, whichever is larger.

    The refined solves that this replaces cost three triangular solves a sector instead of
    one. Stops when the preconditioned Schur residual ``P_e^{-1} (r_e - A_eo P_o^{-1} r_o)``
    (the quantity GMRES on the Schur system tests) is at most ``rtol`` times its value at
    ``u = 0``. Returns ``((u_odd, u_even), iterations, steps)``, ``steps`` a list of each
    outer step's inner iterations and the relative residual it left, each also passed to
    ``progress`` (a callable taking a line of text, optional) as it ends. Raises
    :class:`NotConvergedError` when ``maxiter`` inner iterations in all are spent, or an
    outer step cuts the residual by less than :data:`MIN_CUT`. ``residual`` (optional):
    see :func:`solve_red_black`; without it the residual is taken from the blocks. With it
    the odd unknowns start from ``x0o`` when given (the previous window's state): the
    unrefined solve that makes them from the even ones otherwise is only accurate to about
    1e-6, which would cost a warm window its single refinement step."""
    T, pre = _schur(Po, Pe, Aoe, eo, refine=False)  # single-precision solves

    ref = float(np.linalg.norm(pre(bo, be)))
    if ref == 0.0:
        return (np.zeros_like(bo), np.zeros_like(be)), 0, []
    ue = np.zeros_like(be) if x0e is None else np.array(x0e, dtype=float)
    uo = np.array(x0o, dtype=float) if x0o is not None and residual is not None else \
        Po.solve(bo - Aoe @ ue, refine=residual is None)
    its, steps, last = 0, [], np.inf
    while True:
        if residual is None:
            ro = bo - Po.apply_blocks(uo) - Aoe @ ue
            re = be - eo(uo) - Pe.apply_blocks(ue)
        else:
            ro, re = residual(uo, ue)
        s = pre(ro, re)
        rel = float(np.linalg.norm(s)) / ref
        if steps:
            steps[-1]["residual"] = rel
            if progress is not None:
                progress(f"refinement step {len(steps)} cut the residual to {rel:.1e} in "
                         f"{steps[-1]['iterations']} iterations")
        if rel <= rtol:
            return (uo, ue), its, steps
        if rel > MIN_CUT * last or its >= maxiter:
            why = (f"an outer step cut it only from {last:.1e}, the noise of the "
                   "single-precision solves; use factor_precision='double'"
                   if rel > MIN_CUT * last else
                   f"maxiter={maxiter} inner iterations were spent; raise maxiter")
            raise NotConvergedError(
                f"{what} did not converge: mixed-precision refinement stopped at a relative "
                f"residual of {rel:.1e} (tolerance {rtol:.0e}): {why}")
        last = rel
        inner = max(INNER_RTOL, 0.5 * rtol / rel)
        de, k, ok = gmres(T, s, None, rtol=inner, restart=restart, maxiter=maxiter - its,
                          deflate=deflate, basis="single", implicit=True)
        its += k
        steps.append({"iterations": k, "inner_rtol": inner})
        del s
        ue += de
        uo += Po.solve(ro - Aoe @ de, refine=False)
        del de, ro, re


def assemble_fold(model: QubitModel, layout: BlockLayout, *, keep_operator=True,
                  threads: int | None = None):
    """``(fold, L)``: the Liouvillian on ``layout`` (rows with q >= 0 only, see
    :func:`.finish`, ``hermitian_rows``) and its Hermitian real form. ``keep_operator=False``
    folds the rows as they are assembled (:meth:`.HermitianFold.assemble`) and returns
    ``L = None``, for a caller that checks the residual on another operator: the complex
    ``L`` is about 95 bytes per real unknown, and is then never held whole. ``threads``
    block ranges are assembled at once (default: the cores available). The fold keeps its
    rows in the blocks they were made in (``stack=False``): :func:`solve_fold` splits them
    by colour directly, and :meth:`.HermitianFold.bordered` stacks them if asked."""
    threads = default_threads() if threads is None else max(1, int(threads))
    if not keep_operator:
        return HermitianFold.assemble(model, layout, threads=threads, stack=False), None
    L = liouvillian(model, layout, hermitian_rows=True, threads=threads)
    return HermitianFold.build(L, layout, threads=threads, stack=False), L


def fold_residual(model: QubitModel, fold: HermitianFold, split: ColourSplit, row: int,
                  cols: np.ndarray, threads: int | None = None):
    """``residual(u_odd, u_even) -> (r_odd, r_even)``: ``b - A u`` of the bordered fold
    (:meth:`.HermitianFold.bordered`: the rows of ``B``, the trace in row ``row``) by colour,
    from the model's Liouvillian applied a block range at a time
    (:meth:`.LiouvillianAction.product`) instead of from stored blocks: ``B u`` is
    ``Re (L rho)`` on the q >= 0 elements and ``Im (L rho)`` on the q > 0 ones, ``rho`` the
    complex state of ``u`` (:meth:`.HermitianFold.to_complex`). The layout's per-element
    tables, which the product makes, are dropped again after each product."""
    L = LiouvillianAction(model, fold.layout, hermitian_rows=True,
                          threads=default_threads() if threads is None else threads)

    def residual(uo, ue):
        u = split.join(uo, ue)
        trace = float(u[cols].sum())
        rho = fold.to_complex(u)
        del u
        Lrho = L.product(rho)
        del rho
        fold.layout.forget()
        r = np.concatenate([Lrho[fold.pos].real, Lrho[fold.off].imag])
        del Lrho
        np.negative(r, out=r)
        r[row] = 1.0 - trace
        return split.split(r)
    return residual


def solve_fold(fold: HermitianFold, *, x0=None, x0_complex=None, gmres_tol=1e-13, restart=60,
               maxiter=2000, cache=None, threads=None, precision="double", deflate=0,
               progress=None, model: QubitModel | None = None):
    """Solve the folded system (its matrix is handed over and freed); returns
    ``(rho, iterations, info)``. The initial guess is ``x0`` (real unknowns,
    :meth:`.HermitianFold.from_complex`, :func:`.hermitian.real_unknowns`; may be handed
    over in a one-element list, which is emptied, so that the caller does not hold it
    through the solve) or ``x0_complex`` (the complex elements). ``cache``: see
    :class:`SectorPreconditioner`.

    A fold assembled in row blocks (:meth:`.HermitianFold.assemble`, ``stack=False``) is
    split by colour straight from its blocks, with the trace row put in on the way
    (:func:`colour_split`), so the system is never held twice. Nothing over the whole
    system is then held through GMRES but the fold's own tables: the right-hand side (the
    trace condition) is made by colour, and the complex partners and labels of each colour
    are taken by its factors. Measured at N = 1000, Gamma = 2.7 (window 34), the vectors
    over the whole system held through GMRES were 0.2 GB before. ``progress`` (optional)
    receives a line at the end of each step of a mixed-precision refinement
    (:func:`solve_red_black`).

    ``model`` (the fold's, optional; single precision only): the refinement's residual is
    then taken from the model's Liouvillian (:func:`fold_residual`), and the factors keep
    no double-precision blocks: measured at N = 1000, Gamma = 2.7, those blocks were
    0.37 GB beside 3.19 GB of factors."""
    if model is not None and precision != "single":
        raise ValueError("model (the residual from the Liouvillian) is for "
                         "precision='single' only")
    if isinstance(x0, list):  # handed over
        x0 = x0.pop() if x0 else None
    if x0 is None and x0_complex is not None:
        x0 = fold.from_complex(x0_complex)
    del x0_complex
    lay = fold.layout
    what = f"GMRES (N = {lay.N}, window {lay.window})"
    kw = dict(rtol=gmres_tol, restart=restart, maxiter=maxiter, cache=cache, threads=threads,
              what=what, precision=precision, deflate=deflate)
    partner = fold.complex_partner()
    split = None
    if fold.parts is not None:
        row, cols = fold.trace_row()
        parts = fold.take_parts()
        split = colour_split(parts, fold.q, partner, replace=(row, cols),
                             release=release_freed_memory)
        if split is None:  # not two-coloured: the matrix as a whole
            fold.give_parts(parts)
        del parts
    if split is not None:
        del partner  # the split holds each colour's own
        # only the even part is used, and the odd one by the lean refinement
        x0 = None if x0 is None else \
            (None if model is None else x0[split.odd], x0[split.even])
        residual = None if model is None else \
            fold_residual(model, fold, split, row, cols, threads)
        u, its, info = solve_red_black(split, split.unit(row), x0=x0, progress=progress,
                                       residual=residual, **kw)
        del residual
    else:
        # handed over in a list, so that no reference to A stays here: solve_sectors frees
        # it once it has split it
        A, b = fold.bordered(consume=True)
        system = [A]
        del A
        u, its, info = solve_sectors(system, b, fold.q, partner=partner, x0=x0, **kw)
    info = {"real_unknowns": fold.size, **info, "restart": restart}
    return fold.to_complex(u), its, info


def fold_and_solve(model: QubitModel, layout: BlockLayout, *, x0_complex=None,
                   gmres_tol=1e-13, restart=60, maxiter=2000, cache=None, threads=None,
                   precision="double", deflate=0):
    """Assemble, fold and solve on ``layout``; returns ``(rho, L, iterations, info)``
    (:func:`assemble_fold`, :func:`solve_fold`)."""
    fold, L = assemble_fold(model, layout, threads=threads)
    rho, its, info = solve_fold(fold, x0_complex=x0_complex, gmres_tol=gmres_tol,
                                restart=restart, maxiter=maxiter, cache=cache, threads=threads,
                                precision=precision, deflate=deflate)
    return rho, L, its, info


def solve_krylov(
    model: QubitModel,
    *,
    window: int | None = None,
    tol: float = 1e-10,
    gmres_tol: float = 1e-13,
    restart: int = 60,
    maxiter: int = 2000,
    x0: np.ndarray | None = None,
    threads: int | None = None,
    max_memory: float | None = None,
    factor_precision: str = "auto",
    deflate: int | None = None,
) -> SteadyState:
    """Steady state by block-Jacobi-preconditioned GMRES on the layout with ``window``.

    ``maxiter`` bounds the total number of inner GMRES iterations; reaching it without the
    preconditioned residual falling below ``gmres_tol`` raises :class:`NotConvergedError`.
    ``x0`` is an optional complex initial guess over the layout's elements. ``threads``:
    sectors factored and solved at once (default: the cores available). A solve predicted
    to need more than ``max_memory`` bytes (default: the memory available) raises
    :class:`.InsufficientMemoryError` before it starts. ``factor_precision`` ('auto',
    'double' or 'single'): the storage precision of the sector factors
    (:func:`.memory.choose_precision`; 'auto' takes single precision only when double does
    not fit). ``deflate``: harmonic Ritz vectors kept across GMRES restarts
    (:func:`.gmres.gmres`; 0 restarts plainly; default a third of ``restart``, at most 20).
    """
    t0 = time.perf_counter()
    deflate = check_deflate(deflate, restart)
    estimate, precision = choose_precision(model.N, model.N if window is None else window,
                                           restart, max_memory, precision=factor_precision)
    layout = BlockLayout(model.N, window)
    rho, L, its, info = fold_and_solve(model, layout, x0_complex=x0, gmres_tol=gmres_tol,
                                       restart=restart, maxiter=maxiter, threads=threads,
                                       precision=precision, deflate=deflate)
    info.update(memory_estimate_GB=estimate["total"] / 1e9,
                memory_estimate_factors_GB=estimate["factors"] / 1e9,
                memory_estimate_krylov_GB=estimate["krylov"] / 1e9)
    return finish(model, BlockState(layout, rho), L, method="krylov", window=window, t0=t0,
                  tol=tol, iterations=its, info=info, hermitian_rows=True)
