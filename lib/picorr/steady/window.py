"""Large N: a controlled truncation of the coherence order, ``|M - M'| <= Q``.

Coherences fall off quickly with ``|q|`` (for the LMG model only the field ``h J_x`` feeds
``q != 0``), so the steady state restricted to a window ``|q| <= Q`` converges rapidly in Q.
The window is raised until ``I_M/N`` and ``<m>`` change by less than ``window_tol`` from one
Q to the next; each solve is warm-started from the previous window's state. The returned
state is the last (largest) window, with the change from the previous one as evidence.
Inner solves are those of :mod:`.krylov` (Hermitian real form, block-Jacobi GMRES).
"""

from __future__ import annotations

import time

import numpy as np

from ..dicke import BlockLayout
from ..information import NegativeEigenvalueError, correlations
from ..models import QubitModel
from ..states import BlockState
from ._result import NotConvergedError, SteadyState, finish, hermitian_row_weights
from .krylov import fold_and_solve
from .memory import InsufficientMemoryError, check_memory
from .support import MASK_EPS, dilate, predict_rows, support_fraction
from ..liouvillian import liouvillian

#: From this N on, the window method leaves out the (J, M) rows where the state is
#: negligible, predicted from the solution at N // 2 (:mod:`.support`).
MASK_MIN_N = 300


def embed(rho: np.ndarray, old: BlockLayout, new: BlockLayout) -> np.ndarray:
    """Carry the elements of ``rho`` (over ``old``) into the layout ``new`` (zeros elsewhere)."""
    out = np.zeros(new.size, dtype=rho.dtype)
    idx = new.index(*old.elements)
    ok = idx >= 0
    out[idx[ok]] = rho[ok]
    return out


def default_start_window(N: int) -> int:
    """First window tried: measured converged windows grew slowly with N (16 at N = 100,
    about 36 at N = 1000 for 1e-8), so start a little below that trend."""
    return int(max(4, min(N, round(4 * np.sqrt(N) / 2))))


def solve_window(
    model: QubitModel,
    *,
    tol: float = 1e-10,
    window_tol: float = 1e-10,
    start: int | None = None,
    step: int = 4,
    max_window: int | None = None,
    gmres_tol: float = 1e-13,
    restart: int = 60,
    maxiter: int = 3000,
    progress=None,
    threads: int | None = None,
    max_memory: float | None = None,
    mask: bool | None = None,
    mask_eps: float = MASK_EPS,
) -> SteadyState:
    """Steady state on growing coherence windows until ``I_M/N`` and ``m`` settle.

    ``mask`` (default: from N = :data:`MASK_MIN_N` on) first solves the model at N // 2 (by
    this same method), predicts from it the (J, M) rows where the state is negligible
    (:mod:`.support`; relative population below ``mask_eps``) and leaves them out; the first
    window is then the coarse one's scaled
    by sqrt(2). The final residual is taken on the mask widened by the Liouvillian's reach,
    so flux into the rows left out fails the tolerance instead of passing unseen.

    Raises :class:`NotConvergedError` when ``max_window`` (default N) is reached before the
    change falls below ``window_tol``. ``progress`` is an optional callable receiving one
    line of text per window. Before each window the peak memory is estimated
    (:mod:`.memory`); a window predicted to need more than ``max_memory`` bytes (default:
    the memory available) raises :class:`.InsufficientMemoryError` instead of starting.
    """
    t0 = time.perf_counter()
    N = model.N
    rows, coarse = None, None
    if (N >= MASK_MIN_N) if mask is None else mask:
        try:
            coarse = solve_window(model.replace(N=N // 2), tol=tol, window_tol=window_tol,
                                  step=step, gmres_tol=gmres_tol, restart=restart,
                                  maxiter=maxiter, progress=progress, threads=threads,
                                  max_memory=max_memory, mask_eps=mask_eps)
        except InsufficientMemoryError as exc:
            raise InsufficientMemoryError(
                f"the support mask for N = {N} needs the steady state at N = {N // 2}: {exc}"
            ) from None
        rows = predict_rows(N, coarse.state, eps=mask_eps)
        if start is None:
            start = 2 * int(np.ceil(np.sqrt(2) * max(coarse.window - step, 2) / 2))
        if progress is not None:
            progress(f"N = {N}: support mask from N = {N // 2} keeps "
                     f"{support_fraction(N, rows):.0%} of the (J, M) rows")
    Q = default_start_window(N) if start is None else int(start)
    max_window = N if max_window is None else int(max_window)
    prev = None  # (layout, rho, IM_per_N, m)
    tried, iterations = [], 0
    cache: dict = {}  # sector factors, reused from one window to the next
    while True:
        Q = min(Q, max_window)
        estimate = check_memory(N, Q, restart, max_memory, rows=rows)
        layout = BlockLayout(N, Q, rows=rows)
        x0 = None if prev is None else embed(prev[1], prev[0], layout)
        L = None  # free the last window's operator before building the next
        rho, L, its, info = fold_and_solve(model, layout, x0_complex=x0, gmres_tol=gmres_tol,
                                           restart=restart, maxiter=maxiter, cache=cache,
                                           threads=threads)
        iterations += its
        try:
            c = correlations(BlockState(layout, rho / rho[layout.diagonal].real.sum()))
            IM, m = c.IM_per_N, c.m
        except NegativeEigenvalueError:  # too small a window can break positivity: go on
            IM, m = np.nan, np.full(3, np.nan)
        dIM = np.inf if prev is None or np.isnan(IM) else abs(IM - prev[2])
        dm = np.inf if prev is None or np.isnan(IM) else float(np.max(np.abs(m - prev[3])))
        tried.append({"window": Q, "iterations": its, "IM_per_N": IM,
                      "change_IM_per_N": dIM, "change_m": dm})
        if progress is not None:
            progress(f"window {Q}: {its} iterations, I_M/N = {IM:.12f}, change {dIM:.1e}")
        if max(dIM, dm) < window_tol:
            break
        if Q >= max_window:
            if prev is not None and Q == max_window and layout.size == BlockLayout(N).size:
                break  # the window covers every element: nothing is truncated
            raise NotConvergedError(
                f"the coherence window did not converge: at Q = {Q} the change of I_M/N is "
                f"{dIM:.1e} and of m {dm:.1e} (> window_tol={window_tol:.0e}); raise max_window"
            )
        prev = (layout, rho, IM, m)
        Q += step
    state = BlockState(layout, rho)
    if rows is not None:  # the residual on the mask widened by the Liouvillian's reach
        L = None
        wide = BlockLayout(N, Q, rows=dilate(N, rows, 2))
        state = BlockState(wide, embed(rho, layout, wide))
        L = liouvillian(model, wide, hermitian_rows=True)
        outside = np.ones(wide.size, bool)
        outside[wide.index(*layout.elements)] = False
        r = L @ (state.rho / state.trace)
        w = hermitian_row_weights(wide)
        info.update(support_from_N=N // 2, support_fraction=support_fraction(N, rows),
                    leak_residual=float(np.sqrt(np.sum((w * np.abs(r) ** 2)[outside]))),
                    coarse_seconds=coarse.seconds, coarse_window=coarse.window)
    info.update(memory_estimate_GB=estimate["total"] / 1e9, window_change_IM_per_N=dIM, window_change_m=dm, windows_tried=len(tried))
    res = finish(model, state, L, method="window", window=Q, t0=t0, tol=tol,
                 iterations=iterations, info=info, hermitian_rows=True)
    object.__setattr__(res, "info", {**res.info, "scan": tried})
    return res
