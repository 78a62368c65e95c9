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
import scipy.sparse as sp
import scipy.sparse.linalg as sla

from ..dicke import BlockLayout
from ..liouvillian import liouvillian
from ..models import QubitModel
from ..states import BlockState
from ._result import NoUniqueSteadyStateError, SteadyState, finish

#: A bordered system whose estimated condition number exceeds this is called singular.
SINGULAR_CONDITION = 1e13

#: SuperLU settings: minimum degree on A^T + A with symmetric-mode pivoting keeps the fill
#: of these lattice operators 2-5x below COLAMD's (measured in benchmarks/bench_steady.py);
#: a threshold of 0.1 still pivots away from small diagonals.
SUPERLU_OPTIONS = dict(permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.1,
                       options=dict(SymmetricMode=True))


def factorize(A: sp.spmatrix):
    """SuperLU factors of ``A`` (CSC) with :data:`SUPERLU_OPTIONS`."""
    return sla.splu(sp.csc_matrix(A), **SUPERLU_OPTIONS)


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


def solve_direct(
    model: QubitModel,
    *,
    window: int | None = None,
    tol: float = 1e-10,
    method_name: str = "direct",
) -> SteadyState:
    """Steady state by sparse LU (SuperLU) on the layout with ``window``."""
    t0 = time.perf_counter()
    layout = BlockLayout(model.N, window)
    L = liouvillian(model, layout)
    if window == 0:  # diagonal sector of a U(1) model: the rate equations are real
        if L.nnz and abs(L.data.imag).max() > 1e-12 * abs(L.data).max():
            raise ValueError("the q = 0 sector of this model's Liouvillian is not real")
        L = L.real
    A, b = bordered_system(L, layout)
    try:
        lu = factorize(A)
    except RuntimeError as exc:  # "Factor is exactly singular"
        raise NoUniqueSteadyStateError(
            f"the Liouvillian of this model (N = {model.N}) has no unique steady state: {exc}"
        ) from None
    cond = _condition_1norm(A, lu)
    if not cond < SINGULAR_CONDITION:
        raise NoUniqueSteadyStateError(
            f"the Liouvillian of this model (N = {model.N}) has no unique steady state "
            f"(condition estimate {cond:.1e} of the trace-bordered system); a model needs "
            "dissipation that connects all blocks, e.g. a local rate > 0"
        )
    rho = lu.solve(b)
    state = BlockState(layout, rho.astype(complex))
    return finish(
        model,
        state,
        L,
        method=method_name,
        window=window,
        t0=t0,
        tol=tol,
        condition_estimate=cond,
        info={"lu_nnz": int(lu.L.nnz + lu.U.nnz)},
    )
