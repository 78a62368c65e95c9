"""Large N: a controlled truncation of the coherence order, ``|M - M'| <= Q``.

Coherences fall off quickly with ``|q|`` (for the LMG model only the field ``h J_x`` feeds
``q != 0``), so the steady state restricted to a window ``|q| <= Q`` converges rapidly in Q.
The window is raised until the error of ``I_M/N`` and ``<m>``, estimated from their changes
from one Q to the next, is below ``window_tol``; each solve is warm-started from the previous
window's state. The returned state is the last (largest) window, with the changes and the
error estimate as evidence.
Inner solves are those of :mod:`.krylov` (Hermitian real form, block-Jacobi GMRES).
"""

from __future__ import annotations

import re
import time

import numpy as np

from ..dicke import BlockLayout
from ..information import NegativeEigenvalueError, correlations
from ..models import QubitModel
from ..states import BlockState
from ._result import NotConvergedError, SteadyState, finish
from .hermitian import real_unknowns
from .gmres import check_deflate
from .krylov import assemble_fold, solve_fold
from .memory import (InsufficientMemoryError, available_bytes, choose_precision,
                     estimate_peak_bytes, limit_heap_retention, release_freed_memory)
from .support import (WINDOW_BAND_EPS, WINDOW_MASK_EPS, embed, predict_bands, predict_rows, support_fraction,
                      widened)

#: From this N on, the window method leaves out the (J, M) rows where the state is
#: negligible, predicted from the solution at N // 2 (:mod:`.support`).
MASK_MIN_N = 300


def default_start_window(N: int, *, locate: bool = False) -> int:
    """First window tried without a coarse solution. The smallest window within 1e-9 (with
    positivity to 1e-8 of the largest eigenvalue) grows like the square root of N; measured
    for the LMG model at h = 0.5: at N = 250 the window 20 is within 4e-11 of 24 at
    Gamma = 2.8 (16 breaks positivity); at N = 400, Gamma = 1.68, the window 28 is off by
    9.4e-9 and 32 by 2.8e-10.

    A solve for its own sake starts at 1.9 sqrt(N), so that usually the second window
    already confirms the first (fewest windows, least time; at N = 120, starting at 13
    instead of 21 took 55 instead of 31 iterations). A coarse solve that sets the start of
    a larger N (``locate=True``) starts low, at 1.2 sqrt(N): the window it needed is then
    found to within a step, and the larger solve, where memory is the limit, does not
    inherit an excess."""
    return int(max(4, min(N, round((1.2 if locate else 1.9) * np.sqrt(N)))))


def needed_window(scan: list[dict], window_tol: float) -> int:
    """The smallest window of a finished scan whose ``I_M/N`` and ``m`` lie within
    ``window_tol`` of the last window's: the window the scan's tolerance actually needed
    (the scan stops one step above it, to measure the change)."""
    last = scan[-1]
    for s in scan:
        if (np.isfinite(s["IM_per_N"]) and abs(s["IM_per_N"] - last["IM_per_N"]) < window_tol
                and np.max(np.abs(np.subtract(s["m"], last["m"]))) < window_tol):
            return int(s["window"])
    return int(last["window"])


def start_from_coarse(scan: list[dict], window_tol: float, step: int, *,
                      last: bool = True) -> int:
    """First window at N from the finished scan of N // 2: the window that scan needed
    (:func:`needed_window`) times sqrt(2), since the needed window grows like sqrt(N) (see
    :func:`default_start_window`), and one step lower, except for the last size of a chain
    of coarse solves (``last``) when the coarse scan did not locate its window from below.

    A scan cannot find a window smaller than its first, so a needed window that was the
    first is an upper bound only; scaled and one step lower it may be too small. For the
    sizes that are some larger size's coarse solve that gamble is cheap and pays: a window
    that falls short locates the needed one from below, which sharpens the next size's
    start, and a located window does not carry an excess, times sqrt(2), from one size to
    the next. For the last size it does not: a first window that breaks positivity is no
    term of the scan's change, so the scan needs two more windows, and a cold start costs
    the same iterations whatever the window (``benchmarks/bench_cold_start.py``, N = 1000,
    Gamma = 2.7: ``data/benchmarks/cold_start.json``). It lost at N = 2000, Gamma = 2.7,
    where N = 1000 needed its first window, 34, and the start 44 broke positivity."""
    needed = needed_window(scan, window_tol)
    located = any(s["window"] < needed for s in scan)
    down = step if located or not last else 0
    return max(4, int(round(np.sqrt(2) * needed)) - down)


#: Most negative block eigenvalue accepted for a truncated state, relative to the largest.
#: Truncating the coherences at |q| <= Q perturbs the state by about the size of the first
#: sector left out, and the perturbation shows as negative eigenvalues of the same order as
#: the change of I_M/N (measured at N = 400: smallest eigenvalue -1.8e-9 of the largest where
#: I_M/N is off by 2.8e-10, -5.9e-8 where it is off by 9.4e-9). The scan stops on the error
#: estimate of I_M/N and m; the eigenvalue it then accepts is recorded, with the dropped weight.
WINDOW_NEGATIVITY_TOLERANCE = 1e-8

#: GMRES tolerance of a window that cannot be the last: the first of a scan, or one after a
#: window that broke positivity (the scan stops only on a change between two positive
#: windows). Such a state is only the next window's initial guess and the first term of a
#: change, so it needs I_M/N to a small fraction of ``window_tol``, not to round-off.
#: Measured at N = 400, Q = 32, Gamma = 1.68 (unmasked): against the 1e-13 solve (37
#: iterations), 1e-10 took 31 iterations and changed I_M/N by 1.8e-12 (the state by
#: 2.8e-13); 1e-9 took 29 and changed I_M/N by 2.3e-11.
SCAN_GMRES_TOL = 1e-10

#: A ratio of successive changes below this is taken as geometric convergence in Q.
GEOMETRIC_RATIO = 0.5


def window_correlations(layout: BlockLayout, rho: np.ndarray,
                        negativity_tol: float = WINDOW_NEGATIVITY_TOLERANCE):
    """``(correlations, I_M/N, m)`` of a window's solution ``rho`` on ``layout`` (normalised
    here), or ``(None, nan, [nan] * 3)`` when its most negative block eigenvalue is below
    ``-negativity_tol`` times the largest: a window too small to keep the state positive,
    which a scan goes on from."""
    try:
        c = correlations(BlockState(layout, rho / rho[layout.diagonal].real.sum()),
                         negativity_tol)
    except NegativeEigenvalueError:
        return None, np.nan, np.full(3, np.nan)
    return c, c.IM_per_N, c.m


def tail_estimate(changes: list[float]) -> tuple[float, float]:
    """``(error, ratio)``: the remaining error of the last window from the last changes of a
    quantity between successive windows. When the last two changes shrink by a ratio
    ``r = d_k / d_{k-1} <= 1/2`` the tail of the geometric series, ``d_k r / (1 - r)``, bounds
    what further windows would add; otherwise (or with one change only) the last change
    itself, the plain criterion. ``ratio`` is nan when it could not be formed."""
    d = changes[-1]
    if len(changes) < 2 or not np.isfinite(changes[-2]) or changes[-2] <= 0:
        return d, float("nan")
    r = d / changes[-2]
    return (d * r / (1 - r) if r <= GEOMETRIC_RATIO else d), r


def window_layout(N: int, Q: int, rows, coarse_state=None, *, bands: bool = True,
                  band_eps: float = WINDOW_BAND_EPS) -> BlockLayout:
    """The layout of window ``Q`` at ``N``: the (J, M) rows ``rows`` (None: all) and, with
    a coarse steady state ``coarse_state`` and ``bands``, the coherence bands it predicts
    (:func:`.support.predict_bands`, ``band_eps``). The coarse layout's tables, which the
    prediction made, are dropped again (made anew when asked)."""
    band = None if rows is None or coarse_state is None or not bands else \
        predict_bands(N, Q, coarse_state, eps=band_eps)
    if coarse_state is not None:
        coarse_state.layout.forget()
    return BlockLayout(N, Q, rows=rows, bands=band)


#: The progress lines of a window solve (``progress``), as :func:`solve_window` writes
#: them: the support mask of a size, a step of a mixed-precision refinement, a finished
#: window. :func:`parse_progress` reads them (the book reads shipped benchmarks with it).
PROGRESS_LINES = {
    "mask": re.compile(r"N = (?P<N>\d+): support mask from N = \d+ keeps"),
    "step": re.compile(r"N = (?P<N>\d+) \(window (?P<window>\d+)\): refinement step "
                       r"(?P<step>\d+) cut the residual to \S+ in (?P<iterations>\d+) "
                       r"iterations"),
    "window": re.compile(r"N = (?P<N>\d+), window (?P<window>\d+): (?P<iterations>\d+) "
                         r"iterations"),
}

#: The seconds that ``benchmarks/bench_steady.py --progress`` puts before each line.
_SECONDS = re.compile(r"^\[\s*(?P<seconds>[\d.]+) s\] ")


def parse_progress(line: str) -> dict | None:
    """What a progress line of :func:`solve_window` says, as ``{"kind": "mask" | "step" |
    "window", "N", and "window", "iterations", "step" where the line has them, and
    "seconds" when it carries a benchmark's time stamp}``; None for any other line."""
    t = _SECONDS.match(line)
    body = line[t.end():] if t else line
    for kind, pat in PROGRESS_LINES.items():
        m = pat.match(body)
        if m:
            out = {"kind": kind, **{k: int(v) for k, v in m.groupdict().items()}}
            if t:
                out["seconds"] = float(t["seconds"])
            return out
    return None


class OuterSizeMemoryError(InsufficientMemoryError):
    """A larger N than the one being solved (the solve is its coarse solve) cannot fit."""


def outer_size_bound(n: int, coarse: SteadyState, *, restart: int = 60,
                     mask_eps: float = WINDOW_MASK_EPS, window_tol: float = 1e-9,
                     bands: bool = True, precision: str = "double") -> dict:
    """A lower bound of the peak memory of the window solve at ``n`` from a solved smaller
    ``coarse``: the estimate of :mod:`.memory` on the window that ``coarse`` needed (the
    needed window grows with N) and the support mask predicted from ``coarse`` (from a
    smaller N the large-deviation prediction keeps fewer rows: at N = 400, Gamma = 1.68,
    55 % from N = 100 against 59 % from N = 200). The estimate's parts, plus ``window``."""
    Q = needed_window(coarse.info["scan"], window_tol)
    rows = predict_rows(n, coarse.state, eps=mask_eps)
    layout = BlockLayout(n, Q, rows=rows, bands=predict_bands(n, Q, coarse.state, eps=mask_eps)
                         if bands else None)
    est = estimate_peak_bytes(n, Q, restart, layout=layout, precision=precision)
    return {**est, "window": Q, "precision": precision}


def check_outer_sizes(sizes: tuple, coarse: SteadyState, *, restart: int = 60,
                      max_memory: float | None = None, mask_eps: float = WINDOW_MASK_EPS,
                      window_tol: float = 1e-9, bands: bool = True,
                      factor_precision: str = "auto") -> None:
    """Refuse early the sizes ``sizes`` that cannot fit, from a solved smaller ``coarse``:
    if even :func:`outer_size_bound` exceeds ``max_memory`` (default: the memory
    available), the final check at that N would too, so :class:`OuterSizeMemoryError` is
    raised now instead of after the intermediate solves (for N = 2000 those are N = 500
    and N = 1000, which alone takes 10-12 minutes)."""
    if not sizes:
        return
    limit = available_bytes() if max_memory is None else float(max_memory)
    for n in sizes:
        est = outer_size_bound(n, coarse, restart=restart, mask_eps=mask_eps,
                               window_tol=window_tol, bands=bands,
                               precision="double" if factor_precision == "double" else "single")
        if est["total"] > limit:
            single = " single-precision" if est["precision"] == "single" else ""
            raise OuterSizeMemoryError(
                f"N = {n} needs at least an estimated {est['total'] / 1e9:.1f} GB of memory "
                f"({est['factors'] / 1e9:.1f} GB of{single} sector factors at coherence window "
                f"Q >= {est['window']}, with the support mask predicted from "
                f"N = {coarse.state.layout.N}), more than the {limit / 1e9:.1f} GB available; "
                "use a smaller N or a machine with more memory"
            )


def solve_window(
    model: QubitModel,
    *,
    tol: float = 1e-10,
    window_tol: float = 1e-9,
    negativity_tol: float = WINDOW_NEGATIVITY_TOLERANCE,
    start: int | None = None,
    step: int = 4,
    max_window: int | None = None,
    gmres_tol: float = 1e-13,
    scan_gmres_tol: float = SCAN_GMRES_TOL,
    restart: int = 60,
    maxiter: int = 3000,
    progress=None,
    threads: int | None = None,
    max_memory: float | None = None,
    mask: bool | None = None,
    mask_eps: float = WINDOW_MASK_EPS,
    bands: bool = True,
    band_eps: float = WINDOW_BAND_EPS,
    outer: tuple = (),
    factor_precision: str = "auto",
    deflate: int | None = None,
    lean: bool | None = None,
) -> SteadyState:
    """Steady state on growing coherence windows until ``I_M/N`` and ``m`` settle.

    The window rises by ``step`` from ``start``. After each window the changes of ``I_M/N``
    and of ``m`` from the previous window give an estimate of the error left in the last
    one (:func:`tail_estimate`: the tail of a geometric series once two successive changes
    shrink by 1/2 or more, else the last change); the scan stops when both are below
    ``window_tol`` and the state's most negative block eigenvalue is above
    ``-negativity_tol`` times its largest (a window too small to keep the state positive
    counts as not converged). The evidence is in ``info``: ``window_change_IM_per_N``,
    ``window_change_m``, ``window_error_estimate``, ``window_ratio`` and the whole scan.

    ``mask`` (default: from N = :data:`MASK_MIN_N` on) first solves the model at N // 2 (by
    this same method), predicts from it the (J, M) rows where the state is negligible
    (:mod:`.support`; relative population below ``mask_eps``) and leaves them out; the scan
    then starts one step below the window the coarse scan needed (:func:`needed_window`)
    scaled by sqrt(2), or at it when this is the last size and the coarse scan did not
    locate it from below (:func:`start_from_coarse`). The final residual is
    taken on the mask widened by the Liouvillian's reach, so flux into the rows left out
    fails the tolerance instead of passing unseen.

    Raises :class:`NotConvergedError` when ``max_window`` (default N) is reached before the
    error estimate falls below ``window_tol``. ``progress`` is an optional callable receiving
    one line of text per window, and one per step of a mixed-precision refinement
    (single-precision factors; ``N = .. (window Q): refinement step ..``), whose steps the
    scan also records. Before each window the peak memory is estimated
    (:mod:`.memory`); a window predicted to need more than ``max_memory`` bytes (default:
    the memory available) raises :class:`.InsufficientMemoryError` instead of starting.
    A window that cannot be the last (the first, or one after a window that broke
    positivity) is solved to ``scan_gmres_tol`` only (:data:`SCAN_GMRES_TOL`); every window
    that may be returned is solved to ``gmres_tol``. The scan records each window's tolerance,
    its GMRES iterations and the seconds from the start of the solve (the coarse solve
    included) to the window's end.

    ``factor_precision`` ('auto', 'double' or 'single') is the storage precision of the
    sector factors (:func:`.memory.choose_precision`): 'auto' takes double precision while
    a window's estimate fits and single precision (about 0.6 times the factor memory, the
    same answer, solved by mixed-precision refinement, :func:`.krylov.solve_red_black`)
    from the first window where only that fits; the coarse solves choose their own, and the
    larger sizes are bounded with the precision that needs least
    (:func:`check_outer_sizes`). The factors' precision is ``info['factor_precision']``.

    ``lean`` (default: whenever the factors are single precision, which is chosen only
    where double precision does not fit): spend time to save memory. The refinement takes
    its residual from the model's Liouvillian, a block range at a time, instead of keeping
    the sector blocks in double precision (:func:`.krylov.fold_residual`), and no factors
    are carried from one window to the next, so that the next window is assembled without
    the last one's factors beside it (where a scan with cached factors peaks). The choice
    is ``info['lean']``.

    ``deflate`` harmonic Ritz vectors are kept across each GMRES restart (deflated
    restarting, :func:`.gmres.gmres`; 0 restarts plainly; default a third of ``restart``,
    at most 20): the slow modes of a limit cycle
    otherwise stall restarted GMRES once a window needs more than ``restart`` iterations.

    ``outer`` (set by the recursion) lists the larger N this solve is the coarse solve of:
    each masked level bounds their memory from below as soon as its own coarse state is
    known (:func:`check_outer_sizes`), so a size that cannot fit is refused after the
    cheap smallest solve, not after the expensive intermediate ones.
    """
    t0 = time.perf_counter()
    deflate = check_deflate(deflate, restart)
    N = model.N
    rows, coarse = None, None
    heap = limit_heap_retention() if N >= MASK_MIN_N else None
    if (N >= MASK_MIN_N) if mask is None else mask:
        try:
            # a masked coarse solve takes its start from its own coarse solve
            cstart = None if N // 2 >= MASK_MIN_N else default_start_window(N // 2, locate=True)
            coarse = solve_window(model.replace(N=N // 2), tol=tol, window_tol=window_tol,
                                  start=cstart,
                                  negativity_tol=negativity_tol, step=step,
                                  gmres_tol=gmres_tol, scan_gmres_tol=scan_gmres_tol,
                                  restart=restart, maxiter=maxiter, progress=progress,
                                  threads=threads,
                                  max_memory=max_memory, mask_eps=mask_eps, bands=bands,
                                  band_eps=band_eps, outer=(N,) + tuple(outer),
                                  factor_precision=factor_precision, deflate=deflate)
        except OuterSizeMemoryError:
            raise
        except InsufficientMemoryError as exc:
            raise InsufficientMemoryError(
                f"the support mask for N = {N} needs the steady state at N = {N // 2}: {exc}"
            ) from None
        check_outer_sizes(tuple(outer), coarse, restart=restart, max_memory=max_memory,
                          mask_eps=mask_eps, window_tol=window_tol, bands=bands,
                          factor_precision=factor_precision)
        rows = predict_rows(N, coarse.state, eps=mask_eps)
        release_freed_memory()  # what the coarse solve freed
        if start is None:
            start = start_from_coarse(coarse.info["scan"], window_tol, step, last=not outer)
        if progress is not None:
            progress(f"N = {N}: support mask from N = {N // 2} keeps "
                     f"{support_fraction(N, rows):.0%} of the (J, M) rows")
    Q = default_start_window(N) if start is None else int(start)
    max_window = N if max_window is None else int(max_window)
    prev = None  # (layout, rho, IM_per_N, m) of the last window
    tried, iterations = [], 0
    d_IM, d_m = [], []  # changes between successive positive windows
    cache: dict = {}  # sector factors, reused from one window to the next
    precision = None  # of the factors: chosen per window, never back to double in a scan
    while True:
        Q = min(Q, max_window)
        layout = window_layout(N, Q, rows, None if coarse is None else coarse.state,
                               bands=bands, band_eps=band_eps)
        estimate, precision = choose_precision(N, Q, restart, max_memory, layout=layout,
                                               precision=factor_precision, at_least=precision)
        # the start in real unknowns, half the bytes of the complex elements
        x0 = None if prev is None else real_unknowns(layout, embed(prev[1], prev[0], layout))
        # the scan stops on a change from a positive previous window, or at max_window
        may_be_last = (prev is not None and not np.isnan(prev[2])) or Q >= max_window
        tol_here = gmres_tol if may_be_last else max(gmres_tol, scan_gmres_tol)
        if prev is not None:  # only its I_M/N and m are needed from here on
            prev, rho = (None, None) + prev[2:], None
        # the residual is taken after the scan on the last window's operator: kept when
        # there is no mask (at these sizes it costs less than assembling it again, 0.25 s
        # of 2.3 s at N = 120); with a mask the residual is taken on the widened mask, so
        # the complex L (about 95 bytes per real unknown) is not held through the solves
        L = None  # the previous window's operator is not needed any more
        fold, L = assemble_fold(model, layout, keep_operator=rows is None, threads=threads)
        # the per-element tables are needed by the assembly only (made again when asked;
        # the diagonal, which the trace row needs, is kept)
        layout.diagonal
        layout.forget()
        if heap:  # the blocks the assembly threads freed in their own malloc arenas, which
            # glibc keeps otherwise: at N = 1000, Gamma = 2.7, the peak was 11.05 GB without
            # this call and 10.03 GB with it (10.24 GB before the assembly ran in threads)
            release_freed_memory()
        start_vector = [x0]  # handed over: not held here through the solve
        del x0
        steps = None if progress is None else \
            (lambda line, N=N, Q=Q: progress(f"N = {N} (window {Q}): {line}"))
        lean_here = precision == "single" and (lean is None or bool(lean))
        if lean_here:
            cache.clear()  # no factors beside the next window's assembly
        rho, its, info = solve_fold(fold, x0=start_vector, gmres_tol=tol_here, restart=restart,
                                    maxiter=maxiter, cache=None if lean_here else cache,
                                    threads=threads, precision=precision, deflate=deflate,
                                    progress=steps, model=model if lean_here else None)
        info["lean"] = lean_here
        del fold
        if heap:
            release_freed_memory()  # before the next window's assembly
        iterations += its
        c, IM, m = window_correlations(layout, rho, negativity_tol)
        positive = not np.isnan(IM)
        if positive and prev is not None and not np.isnan(prev[2]):
            d_IM.append(abs(IM - prev[2]))
            d_m.append(float(np.max(np.abs(m - prev[3]))))
        else:
            d_IM, d_m = [], []  # a change is only taken between two positive windows
        err_IM, r_IM = tail_estimate(d_IM) if d_IM else (np.inf, np.nan)
        err_m, r_m = tail_estimate(d_m) if d_m else (np.inf, np.nan)
        err = max(err_IM, err_m)
        tried.append({"window": Q, "iterations": its, "gmres_tol": tol_here, "IM_per_N": IM,
                      "m": np.asarray(m).tolist(),
                      "change_IM_per_N": d_IM[-1] if d_IM else np.inf,
                      "change_m": d_m[-1] if d_m else np.inf, "error_estimate": err,
                      "seconds": time.perf_counter() - t0,
                      **({"refinement": info["refinement"]} if "refinement" in info else {})})
        if progress is not None:
            factors = "" if "factor_GB" not in info else \
                f" ({info['factor_GB']:.2f} GB of {info['factor_precision']}-precision factors)"
            progress(f"N = {N}, window {Q}: {its} iterations{factors}, I_M/N = {IM:.12f}, "
                     f"change {tried[-1]['change_IM_per_N']:.1e}, error estimate {err:.1e}")
        if err < window_tol:
            break
        if Q >= max_window:
            if prev is not None and Q == max_window and layout.size == BlockLayout(N).size \
                    and positive:
                break  # the window covers every element: nothing is truncated
            raise NotConvergedError(
                f"the coherence window did not converge: at Q = {Q} the estimated error of "
                f"I_M/N and m is {err:.1e} (> window_tol={window_tol:.0e}); raise max_window"
            )
        prev = (layout, rho, IM, m)
        Q += step
    prev = None
    cache.clear()  # the factors are not needed any more
    state = BlockState(layout, rho)
    if rows is not None:  # the residual on the mask widened by the Liouvillian's reach
        if layout.bands is not None:
            info.update(band_fraction=layout.size / BlockLayout(N, Q, rows=rows).size)
        state, L, leak = widened(model, layout, rho, hermitian_rows=True)
        info.update(support_from_N=N // 2, support_fraction=support_fraction(N, rows),
                    leak_residual=leak, coarse_seconds=coarse.seconds,
                    coarse_window=coarse.window)
    if heap:
        info.update(mmap_threshold_MB=heap / 2**20)
    info.update(memory_estimate_GB=estimate["total"] / 1e9,
                memory_estimate_factors_GB=estimate["factors"] / 1e9,
                memory_estimate_krylov_GB=estimate["krylov"] / 1e9,
                window_change_IM_per_N=tried[-1]["change_IM_per_N"],
                window_change_m=tried[-1]["change_m"], window_error_estimate=err,
                window_ratio=r_IM,
                windows_tried=len(tried))
    # the last window's correlations are those of the returned state (widened only by zeros)
    res = finish(model, state, L, method="window", window=Q, t0=t0, tol=tol,
                 iterations=iterations, info=info, hermitian_rows=True,
                 negativity_tol=negativity_tol, known=c)
    object.__setattr__(res, "info", {**res.info, "scan": tried})
    return res
