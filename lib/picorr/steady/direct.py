"""Sparse direct solve of ``L rho = 0`` with the trace condition.

The trace functional is a left null vector of every Lindblad Liouvillian, so the equation
of any diagonal element is a linear combination of the others; replacing the equation of
``(J = N/2, M = N/2, M' = N/2)`` by ``sum_J Tr rho_J = 1`` gives a nonsingular system
exactly when the steady state is unique. Uniqueness is checked, not assumed: the 1-norm
condition number of the bordered system is estimated from the LU factors
(Hager-Higham, :func:`scipy.sparse.linalg.onenormest`), and an (almost) singular system is
reported as :class:`NoUniqueSteadyStateError` rather than solved into a random vector.
"""

from __future__ import annotations

import time

import numpy as np
import pymetis
import scipy.sparse as sp
import scipy.sparse.linalg as sla

from ..dicke import BlockLayout
from ..liouvillian import liouvillian
from ..models import QubitModel
from ..states import BlockState
from ._result import NoUniqueSteadyStateError, SteadyState, finish
from .memory import ND_MIN, fill_per_unknown  # noqa: F401  (ND_MIN: see factorize)
from .support import MASK_EPS, predict_rows, support_fraction, widened

#: A bordered system whose estimated condition number exceeds this is called singular.
SINGULAR_CONDITION = 1e13

#: SuperLU settings: minimum degree on A^T + A with symmetric-mode pivoting keeps the fill
#: of these lattice operators 2-5x below COLAMD's (measured in benchmarks/bench_steady.py);
#: a threshold of 0.1 still pivots away from small diagonals.
SUPERLU_OPTIONS = dict(permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.1,
                       options=dict(SymmetricMode=True))


#: A row with more entries than this is "dense" for the ordering (:func:`factorize`): the
#: trace row of a bordered system. The lattice rows have about ten.
DENSE_ROW = 1000

#: Fill-reducing orderings of :func:`factorize`.
ORDERINGS = ("mmd", "nested-dissection")

#: METIS options of the nested dissection: three separators tried at each bisection, the
#: best kept (74.7 entries per unknown against 78.3 with one, on a complex sector of
#: 128 643 unknowns at N = 1000, Gamma = 2.7; the ordering 1.2 s against 0.6 s).
ND_OPTIONS = dict(nseps=3)

#: SuperLU's diagonal pivot threshold for nested-dissection orders: the top separators are
#: eliminated last, where the Schur complement's diagonal has shrunk, and a threshold of
#: 0.1 pivots off it and undoes the order (q = 0 sector at N = 1000, unmasked: 209 entries
#: per unknown with 0.1, 82 with 0.01 or with no pivoting; minimum degree 135). 0.01 is
#: also MUMPS's default.
ND_PIVOT_THRESHOLD = 0.01

#: Nested-dissection factors with more than this many times the entries that the memory
#: model predicts (:func:`.memory.fill_per_unknown`) are compared with minimum degree's.
FILL_GUARD = 2.0


class PermutedLU:
    """SuperLU factors of ``A[order][:, order]``, solving with ``A`` itself (``solve`` with
    ``trans`` as SuperLU's, ``nnz``)."""

    __slots__ = ("lu", "order")

    def __init__(self, lu, order: np.ndarray):
        self.lu, self.order = lu, order

    @property
    def nnz(self) -> int:
        return self.lu.nnz

    def solve(self, b, trans: str = "N"):
        y = self.lu.solve(np.ascontiguousarray(np.asarray(b)[self.order]), trans=trans)
        x = np.empty_like(y)
        x[self.order] = y
        return x


def nested_dissection(A: sp.spmatrix) -> np.ndarray:
    """A fill-reducing elimination order of ``A`` by METIS's multilevel nested dissection
    (:data:`ND_OPTIONS`) on the pattern of ``A + A^T``.

    A dense row (the trace row of a bordered system) stays in the graph: put last instead,
    its unit entries in every diagonal column are taken as pivots by SuperLU's threshold
    pivoting, which undoes the ordering (q = 0 sector at N = 400, unmasked: 181 entries per
    unknown against 62 with it in the graph, at any pivot threshold)."""
    A = sp.csr_matrix(A)
    pattern = sp.csr_matrix((np.ones(A.nnz, np.int8), A.indices, A.indptr), shape=A.shape)
    graph = (pattern + pattern.T).tocsr()
    graph.setdiag(0)
    graph.eliminate_zeros()
    graph.sort_indices()
    perm, _ = pymetis.nested_dissection(  # (order, its inverse)
        adjacency=pymetis.CSRAdjacency(graph.indptr.astype(np.int32),
                                       graph.indices.astype(np.int32)),
        options=pymetis.Options(**ND_OPTIONS))
    return np.asarray(perm, dtype=np.int64)


def _dense_rows(A: sp.csc_matrix) -> np.ndarray:
    """The rows of ``A`` with more than :data:`DENSE_ROW` entries."""
    return np.flatnonzero(np.bincount(A.indices, minlength=A.shape[0]) > DENSE_ROW)


def factorize(A: sp.spmatrix, ordering: str = "mmd"):
    """SuperLU factors of ``A`` (CSC) with :data:`SUPERLU_OPTIONS`, in the fill-reducing
    order ``ordering`` (one of :data:`ORDERINGS`).

    'nested-dissection' (for matrices of at least :data:`.memory.ND_MIN` unknowns; below, 'mmd')
    orders by METIS (:func:`nested_dissection`) and factors the matrix permuted so in its
    natural order (:class:`PermutedLU`), with the pivot threshold
    :data:`ND_PIVOT_THRESHOLD`. On the masked coherence sectors of the window method (LMG,
    N = 1000, Gamma = 2.7, 130 000 unknowns each) it keeps 12 % fewer factor entries than
    the minimum degree in the complex sectors and 30 % fewer in the real q = 0 one (74.7
    and 74.8 entries per unknown against 84.9 and 107.0), in 1.9 s with the ordering against
    1.2-1.3 s; on the unmasked sectors of N = 400, 600 and 1000 the complex ones keep 0.91,
    0.89 and 0.80 times the entries and the real one 0.69, 0.62 and 0.61 times
    (``benchmarks/bench_ordering.py``). Pivoting can in principle undo any ordering: factors
    with more than :data:`FILL_GUARD` times the memory model's entries
    (:func:`.memory.fill_per_unknown`) are made again with 'mmd' and the smaller kept.

    'mmd' is SuperLU's minimum degree on ``A^T + A``. A matrix with a few dense rows (more
    than :data:`DENSE_ROW` entries: the trace row of a bordered system) is ordered without
    them: SuperLU's minimum degree on ``A^T + A`` spends most of its time on a dense node.
    The ordering is then taken from the matrix with each dense row replaced by its diagonal
    unit row (an incomplete factorization with everything dropped gives SuperLU's ordering
    cheaply), the dense rows' unknowns are put last, and the matrix permuted so is factored
    in its natural order (:class:`PermutedLU`). Measured on the q = 0 sector of the window
    method (LMG, Gamma = 2.7, unmasked): at N = 1000 (251 001 unknowns) 29.7-30.0 s with
    SuperLU's own ordering against 4.9-5.7 s (0.5 s of it the ordering), at N = 600
    3.6-4.6 s against 1.0 s; the same number of factor entries (135.3 and 111.4 a row) and
    the same solutions to 7e-15.
    """
    if ordering not in ORDERINGS:
        raise ValueError(f"ordering must be one of {', '.join(ORDERINGS)}, got {ordering!r}")
    A = sp.csc_matrix(A)
    n = A.shape[0]
    dense = _dense_rows(A)
    natural = {**SUPERLU_OPTIONS, "permc_spec": "NATURAL"}
    if ordering == "nested-dissection" and n >= ND_MIN:
        order = nested_dissection(A)
        lu = PermutedLU(sla.splu(A[order][:, order],
                                 **{**natural, "diag_pivot_thresh": ND_PIVOT_THRESHOLD}), order)
        if lu.nnz <= FILL_GUARD * n * fill_per_unknown(n):
            return lu
        other = factorize(A, "mmd")
        return lu if lu.nnz <= other.nnz else other
    if dense.size == 0 or dense.size > n // 100:
        return sla.splu(A, **SUPERLU_OPTIONS)
    P = sp.csr_matrix(A, copy=True)
    for r in dense:
        P.data[P.indptr[r]:P.indptr[r + 1]] = 0.0
    P = P + sp.csr_matrix((np.ones(dense.size), (dense, dense)), shape=A.shape)
    P.eliminate_zeros()
    try:
        perm_c = sla.spilu(sp.csc_matrix(P), drop_tol=0.99, fill_factor=1,
                           **SUPERLU_OPTIONS).perm_c
    except RuntimeError:  # the incomplete factors broke down: SuperLU's own ordering
        return sla.splu(A, **SUPERLU_OPTIONS)
    del P
    order = np.argsort(perm_c)  # column j of A is eliminated at position perm_c[j]
    order = np.r_[order[~np.isin(order, dense)], dense]
    return PermutedLU(sla.splu(A[order][:, order], **natural), order)


def bordered_system(L: sp.spmatrix, layout: BlockLayout) -> tuple[sp.csc_matrix, np.ndarray]:
    """``(A, b)``: ``L`` with the trace row in place of the equation of ``layout.trace_row``."""
    L = sp.csr_matrix(L)
    row = layout.trace_row
    keep = np.ones(L.shape[0])
    keep[row] = 0.0
    trace = sp.csr_matrix(
        (np.ones(layout.diagonal.size), (np.full(layout.diagonal.size, row), layout.diagonal)),
        shape=L.shape,
    )
    A = (sp.diags(keep) @ L + trace).tocsc()
    b = np.zeros(L.shape[0], dtype=L.dtype)
    b[row] = 1.0
    return A, b


def pinned_system(L: sp.spmatrix, row: int) -> tuple[sp.csc_matrix, np.ndarray]:
    """``(A, b)``: ``L`` with the equation of the diagonal element ``row`` replaced by
    ``rho[row] = 1``. Every diagonal equation is a combination of the others (the trace is
    conserved), so ``A`` is nonsingular exactly when the steady state is unique and has
    ``rho[row] != 0``; the solution is the steady state up to normalisation. Unlike the
    dense trace row of :func:`bordered_system`, the unit row keeps the lattice sparsity that
    the fill-reducing ordering relies on (rate equations at N = 1000: 25 M instead of 49 M
    LU entries, 2.6 s instead of 26 s)."""
    A = sp.csr_matrix(L, copy=True)
    A.data[A.indptr[row]:A.indptr[row + 1]] = 0.0
    A = (A + sp.csr_matrix(([1.0], ([row], [row])), shape=A.shape)).tocsc()
    A.eliminate_zeros()
    b = np.zeros(A.shape[0], dtype=A.dtype)
    b[row] = 1.0
    return A, b


#: A pinned element whose share of the largest element is below this is moved to the largest.
PIN_RATIO = 1e-8


def _condition_1norm(A: sp.csc_matrix, lu) -> float:
    n = A.shape[0]
    inv = sla.LinearOperator(
        (n, n),
        matvec=lambda x: lu.solve(np.asarray(x, dtype=A.dtype).ravel()),
        rmatvec=lambda x: lu.solve(np.asarray(x, dtype=A.dtype).ravel(), trans="H"),
        dtype=A.dtype,
    )
    normA = float(abs(A).sum(axis=0).max())
    return normA * float(sla.onenormest(inv))


def _predicted_peak(model: QubitModel, layout: BlockLayout, coarse=None) -> int:
    """Diagonal element to pin: the largest population of the same model at a smaller N
    (``coarse``, a SteadyState; default: solved at N // 4 the same way), mapped to this N by
    ``(2J/N, 2M/N)``; the top element for small N or when the mapped element is not stored."""
    N = model.N
    if coarse is None:
        if N < 64:
            return layout.trace_row
        coarse = solve_direct(model.replace(N=N // 4), window=0, method_name="rates")
    lay = coarse.state.layout
    Nc = lay.N
    d = lay.diagonal
    J, M, _ = lay.JMM
    k = d[int(np.argmax(coarse.state.rho[d].real))]
    j, m = J[k] / Nc, M[k] / Nc
    Js = layout.J
    b = int(np.argmin(np.abs(Js - j * N)))
    Mf = np.clip(np.round(m * N - (Js[b] % 1)) + (Js[b] % 1), -Js[b], Js[b])
    idx = int(layout.index(b, int(round(Js[b] - Mf)), int(round(Js[b] - Mf))))
    return idx if idx >= 0 else layout.trace_row


#: From this N on, the rate equations leave out the (J, M) where the populations are
#: negligible, predicted from the solution at N // 2 (:mod:`.support`): at N = 4000 the
#: LU of the whole lattice took 4 min and 9.5 GB.
RATES_MASK_MIN_N = 1000


def solve_direct(
    model: QubitModel,
    *,
    window: int | None = None,
    tol: float = 1e-10,
    method_name: str = "direct",
    mask: bool | None = None,
) -> SteadyState:
    """Steady state by sparse LU (SuperLU) on the layout with ``window``.

    For the rate equations (``window=0``) from N = :data:`RATES_MASK_MIN_N` on (or when
    ``mask`` is True) the model is first solved at N // 2, the (J, M) where the populations
    fall below :data:`.support.MASK_EPS` of the largest are predicted from it and left out,
    and the returned state's residual is taken on the mask widened by the Liouvillian's
    reach (flux into the rows left out counts; ``info['leak_residual']``)."""
    t0 = time.perf_counter()
    N = model.N
    coarse = rows = None
    if window == 0 and (N >= RATES_MASK_MIN_N if mask is None else mask):
        coarse = solve_direct(model.replace(N=N // 2), window=0, tol=tol,
                              method_name=method_name)
        rows = predict_rows(N, coarse.state, eps=MASK_EPS)
    elif mask:
        raise ValueError("a support mask is available for the rate equations (window 0) only")
    layout = BlockLayout(N, window, rows=rows)
    L = liouvillian(model, layout)
    if window == 0:  # diagonal sector of a U(1) model: the rate equations are real
        if L.nnz and abs(L.data.imag).max() > 1e-12 * abs(L.data).max():
            raise ValueError("the q = 0 sector of this model's Liouvillian is not real")
        L = L.real
    pins = []
    first_pin = _predicted_peak(model, layout, coarse) if window == 0 else None
    while True:
        if window == 0:  # a sparse pin instead of the dense trace row (see pinned_system)
            row = first_pin if not pins else pins[-1]
            A, b = pinned_system(L, row)
        else:
            A, b = bordered_system(L, layout)
        try:
            lu = factorize(A)
        except RuntimeError as exc:  # "Factor is exactly singular"
            raise NoUniqueSteadyStateError(
                f"the Liouvillian of this model (N = {model.N}) has no unique steady state: {exc}"
            ) from None
        rho = lu.solve(b)
        if window != 0 or len(pins) == 1:
            break
        big = int(np.argmax(np.abs(rho)))
        if abs(rho[row]) >= PIN_RATIO * abs(rho[big]):
            break
        pins.append(big)  # the pinned population is tiny: pin the largest instead
    cond = _condition_1norm(A, lu)
    if not cond < SINGULAR_CONDITION:
        raise NoUniqueSteadyStateError(
            f"the Liouvillian of this model (N = {model.N}) has no unique steady state "
            f"(condition estimate {cond:.1e} of the trace-bordered system); a model needs "
            "dissipation that connects all blocks, e.g. a local rate > 0"
        )
    info = {"lu_nnz": int(lu.nnz), "pinned_row": int(row) if window == 0 else None,
            "repinned": bool(pins)}
    del A, lu
    state = BlockState(layout, rho.astype(complex))
    if rows is not None:  # the residual on the mask widened by the Liouvillian's reach
        state, L, leak = widened(model, layout, state.rho)
        info.update(support_from_N=N // 2, support_fraction=support_fraction(N, rows),
                    leak_residual=leak, coarse_seconds=coarse.seconds, pinned_row=None)
    return finish(
        model,
        state,
        L,
        method=method_name,
        window=window,
        t0=t0,
        tol=tol,
        condition_estimate=cond,
        info=info,
    )
