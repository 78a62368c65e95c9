"""Preconditioned GMRES on the in-block Liouvillian, exploiting the coherence-order structure.

Order the unknowns by the coherence order ``q = M - M'``. Collective decay, local
processes and any Hamiltonian term built from ``J_z`` and ``J_x^2 + J_y^2`` keep ``q``;
only the remaining terms (for the LMG model the field ``h J_x``) move ``q`` by +-1 or +-2.
So ``L = L_0 + K`` with ``L_0`` block diagonal over q-sectors, each sector a sparse 2-D
lattice operator on ``(J, M)`` whose LU is cheap, unlike the LU of the whole 3-D problem.

The bordered system ``A rho = e`` (trace condition in place of one equation of sector 0,
see :mod:`.direct`) is solved by restarted GMRES with the block-Jacobi preconditioner
``P = blockdiag_q(A)``: each sector factored once by SuperLU. The iteration count is
recorded; a solve that does not reach ``tol`` raises :class:`NotConvergedError`.
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
from ._result import NoUniqueSteadyStateError, NotConvergedError, SteadyState, finish
from .direct import bordered_system, factorize


class SectorPreconditioner:
    """``P^{-1}`` for ``P`` the q-block-diagonal part of ``A`` (each sector LU-factored)."""

    def __init__(self, A: sp.spmatrix, layout: BlockLayout):
        jidx, i, k = layout.elements
        q = k - i  # M - M' = (J - i) - (J - k)
        order = np.argsort(q, kind="stable")
        bounds = np.searchsorted(q[order], np.arange(q.min(), q.max() + 2))
        A = sp.csr_matrix(A)
        self.sectors = []
        for a, b in zip(bounds[:-1], bounds[1:]):
            idx = order[a:b]
            if idx.size == 0:
                continue
            block = A[idx][:, idx].tocsc()
            try:
                lu = factorize(block)
            except RuntimeError as exc:
                raise NoUniqueSteadyStateError(
                    f"the q = {int(q[idx[0]])} sector of the Liouvillian is singular ({exc}); "
                    "this model may have no unique steady state"
                ) from None
            self.sectors.append((idx, lu))
        self.shape = A.shape
        self.dtype = A.dtype

    def solve(self, r: np.ndarray) -> np.ndarray:
        out = np.empty(self.shape[0], dtype=np.result_type(self.dtype, r.dtype))
        for idx, lu in self.sectors:
            out[idx] = lu.solve(np.ascontiguousarray(r[idx]))
        return out

    def as_operator(self) -> sla.LinearOperator:
        return sla.LinearOperator(self.shape, matvec=self.solve, dtype=self.dtype)


def solve_krylov(
    model: QubitModel,
    *,
    window: int | None = None,
    tol: float = 1e-10,
    gmres_tol: float = 1e-13,
    restart: int = 60,
    maxiter: int = 2000,
    x0: np.ndarray | None = None,
) -> SteadyState:
    """Steady state by block-Jacobi-preconditioned GMRES on the layout with ``window``.

    ``maxiter`` bounds the total number of inner GMRES iterations; reaching it without the
    preconditioned residual falling below ``gmres_tol`` raises :class:`NotConvergedError`.
    """
    t0 = time.perf_counter()
    layout = BlockLayout(model.N, window)
    L = liouvillian(model, layout)
    A, b = bordered_system(L, layout)
    A = A.tocsr()
    P = SectorPreconditioner(A, layout)
    count = {"it": 0}

    def cb(_):
        count["it"] += 1

    outer = max(1, -(-maxiter // restart))
    x, info = sla.gmres(
        A,
        b,
        x0=x0,
        M=P.as_operator(),
        rtol=gmres_tol,
        atol=0.0,
        restart=restart,
        maxiter=outer,
        callback=cb,
        callback_type="pr_norm",
    )
    if info != 0:
        raise NotConvergedError(
            f"GMRES did not converge within maxiter={maxiter} iterations "
            f"(restart {restart}, N = {model.N}); raise maxiter"
        )
    return finish(
        model,
        BlockState(layout, x),
        L,
        method="krylov",
        window=window,
        t0=t0,
        tol=tol,
        iterations=count["it"],
        info={"sectors": len(P.sectors), "restart": restart},
    )
