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

import time

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as sla

from ..dicke import BlockLayout
from ..liouvillian import liouvillian
from ..models import QubitModel
from ..states import BlockState
from ._result import NoUniqueSteadyStateError, NotConvergedError, SteadyState, finish
from .direct import factorize
from .hermitian import HermitianFold


class SectorPreconditioner:
    """``P^{-1}`` for ``P`` the block-diagonal part of ``A`` over the labels ``sector``
    (one block per coherence order), each block LU-factored once.

    ``cache`` (a dict, optional) keeps the factors by sector label for the next system:
    the diagonal block of sector q does not depend on the coherence window as long as the
    window contains q, so a window scan factors each sector once. A cached factor is
    reused only when the block is the identical matrix.
    """

    def __init__(self, A: sp.spmatrix, sector: np.ndarray, cache: dict | None = None):
        order = np.argsort(sector, kind="stable")
        s = sector[order]
        starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
        bounds = np.r_[starts, s.size]
        A = sp.csr_matrix(A)
        self.sectors = []
        self.factor_nnz = 0
        for a, b in zip(bounds[:-1], bounds[1:]):
            idx = order[a:b]
            block = A[idx][:, idx]
            key = int(s[a])
            hit = None if cache is None else cache.get(key)
            if hit is not None and hit[1].shape == block.shape and (hit[1] != block).nnz == 0:
                self.sectors.append((idx, hit[0]))
                self.factor_nnz += hit[0].L.nnz + hit[0].U.nnz
                continue
            try:
                lu = factorize(block)
            except RuntimeError as exc:
                raise NoUniqueSteadyStateError(
                    f"the q = {int(s[a])} sector of the Liouvillian is singular ({exc}); "
                    "this model may have no unique steady state"
                ) from None
            self.factor_nnz += lu.L.nnz + lu.U.nnz
            self.sectors.append((idx, lu))
            if cache is not None:
                cache[key] = (lu, block)
        self.shape = A.shape
        self.dtype = A.dtype

    def solve(self, r: np.ndarray) -> np.ndarray:
        out = np.empty(self.shape[0], dtype=np.result_type(self.dtype, r.dtype))
        for idx, lu in self.sectors:
            out[idx] = lu.solve(np.ascontiguousarray(r[idx]))
        return out

    def as_operator(self) -> sla.LinearOperator:
        return sla.LinearOperator(self.shape, matvec=self.solve, dtype=self.dtype)


def run_gmres(A, b, P: SectorPreconditioner, *, x0=None, rtol=1e-13, restart=60,
              maxiter=2000, what="GMRES"):
    """Restarted GMRES; returns ``(x, iterations)`` or raises :class:`NotConvergedError`
    when ``maxiter`` inner iterations do not bring the preconditioned residual below
    ``rtol``."""
    count = [0]

    def cb(_):
        count[0] += 1

    x, info = sla.gmres(A, b, x0=x0, M=P.as_operator(), rtol=rtol, atol=0.0, restart=restart,
                        maxiter=max(1, -(-maxiter // restart)), callback=cb,
                        callback_type="pr_norm")
    if info != 0:
        raise NotConvergedError(
            f"{what} did not converge within maxiter={maxiter} iterations "
            f"(restart {restart}, {A.shape[0]} unknowns); raise maxiter"
        )
    return x, count[0]


def fold_and_solve(model: QubitModel, layout: BlockLayout, *, x0_complex=None,
                   gmres_tol=1e-13, restart=60, maxiter=2000, cache=None):
    """Assemble, fold and solve on ``layout``; returns ``(rho, L, iterations, info)``.
    ``cache``: see :class:`SectorPreconditioner`."""
    L = liouvillian(model, layout)
    fold = HermitianFold.build(L, layout)
    A, b = fold.bordered()
    P = SectorPreconditioner(A, fold.q, cache)
    x0 = None if x0_complex is None else fold.from_complex(x0_complex)
    u, its = run_gmres(A, b, P, x0=x0, rtol=gmres_tol, restart=restart, maxiter=maxiter,
                       what=f"GMRES (N = {model.N}, window {layout.window})")
    info = {"real_unknowns": fold.size, "sectors": len(P.sectors),
            "factor_nnz": int(P.factor_nnz), "restart": restart}
    return fold.to_complex(u), L, its, info


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
    ``x0`` is an optional complex initial guess over the layout's elements.
    """
    t0 = time.perf_counter()
    layout = BlockLayout(model.N, window)
    rho, L, its, info = fold_and_solve(model, layout, x0_complex=x0, gmres_tol=gmres_tol,
                                       restart=restart, maxiter=maxiter)
    return finish(model, BlockState(layout, rho), L, method="krylov", window=window, t0=t0,
                  tol=tol, iterations=its, info=info)
