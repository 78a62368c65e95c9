"""The result type shared by all steady-state methods, its evidence, and its errors."""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from ..information import Correlations, correlations
from ..models import QubitModel
from ..states import BlockState


class SteadyStateError(RuntimeError):
    """A steady-state computation failed; the message says why and what to change."""


class NoUniqueSteadyStateError(SteadyStateError):
    """The model has no unique steady state (e.g. no dissipation, or conserved quantities)."""


class NotConvergedError(SteadyStateError):
    """An iterative solve or a truncation scan did not reach its tolerance."""


@dataclass(frozen=True)
class SteadyState:
    """A steady state with the evidence that it is one.

    Attributes
    ----------
    model : QubitModel
    state : BlockState               -- the blocks rho_J (trace 1)
    correlations : Correlations      -- m, S(rho_1), S(rho_T), I_M (Eqs. 7, 27-29)
    method : str                     -- the method that produced it ('rates', 'direct', ...)
    window : int or None             -- coherence-order truncation |M - M'| <= window (None: none)
    residual : float                 -- ||L rho||_2 of the returned state (trace 1)
    relative_residual : float        -- residual / (||L||_1 ||rho||_2)
    trace : float                    -- sum_J Tr rho_J before the final normalisation check
    hermiticity_error : float        -- max |rho_{J,M,M'} - conj rho_{J,M',M}|
    min_eigenvalue : float           -- most negative block eigenvalue
    condition_estimate : float       -- 1-norm condition estimate of the solved system (nan if none)
    iterations : int                 -- Krylov iterations (0 for direct solves)
    unknowns : int                   -- size of the solved system
    seconds : float                  -- wall time of the solve and its checks
    peak_rss_bytes : int             -- the process's peak resident memory after the solve
    info : dict                      -- method-specific extras
    """

    model: QubitModel
    state: BlockState
    correlations: Correlations
    method: str
    window: int | None
    residual: float
    relative_residual: float
    trace: float
    hermiticity_error: float
    min_eigenvalue: float
    condition_estimate: float
    iterations: int
    unknowns: int
    seconds: float
    peak_rss_bytes: int
    info: dict = field(default_factory=dict)

    @property
    def N(self) -> int:
        return self.model.N

    @property
    def m(self) -> np.ndarray:
        return self.correlations.m

    @property
    def IM_per_N(self) -> float:
        return self.correlations.IM_per_N

    def summary(self) -> dict:
        """Plain-Python summary (the command line's JSON keys)."""
        c = self.correlations
        return {
            "N": self.N,
            "IM_per_N": c.IM_per_N,
            "I_M": c.I_M,
            "S_T": c.S_T,
            "S_1": c.S_1,
            "m": [float(x) for x in c.m],
            "method": self.method,
            "window": self.window,
            "residual": self.residual,
            "relative_residual": self.relative_residual,
            "trace": self.trace,
            "hermiticity_error": self.hermiticity_error,
            "min_eigenvalue": self.min_eigenvalue,
            "condition_estimate": self.condition_estimate,
            "iterations": self.iterations,
            "unknowns": self.unknowns,
            "seconds": self.seconds,
            "peak_rss_gb": self.peak_rss_bytes / 1e9,
            **{k: v for k, v in self.info.items() if isinstance(v, (int, float, str, bool))},
            # the window scan, one record per window (its iterations and the seconds since
            # the solve began), when the state came from one
            **({"scan": self.info["scan"]} if "scan" in self.info else {}),
        }


def peak_rss_bytes() -> int:
    """Peak resident set size of this process: VmHWM on Linux (``ru_maxrss`` there keeps the
    high-water mark of the image a forked child had before ``exec``), else ``ru_maxrss``
    (macOS reports bytes, others KiB)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r if sys.platform == "darwin" else r * 1024)


def hermitian_row_weights(layout) -> np.ndarray:
    """Weight of each row of ``L rho`` when only rows with q >= 0 are kept: 2 for q > 0
    (row -q is its conjugate), 1 for q = 0, 0 for q < 0."""
    jidx, i, k = layout.elements
    return np.where(k > i, 2.0, np.where(k == i, 1.0, 0.0))


def hermiticity_error(state: BlockState) -> float:
    """max |rho_{J,M,M'} - conj(rho_{J,M',M})| over stored pairs."""
    lay = state.layout
    jidx, i, k = lay.elements
    t = lay.index(jidx, k, i)
    ok = t >= 0
    if not ok.any():
        return 0.0
    return float(np.max(np.abs(state.rho[ok] - np.conj(state.rho[t[ok]]))))


def finish(
    model: QubitModel,
    state: BlockState,
    L,
    *,
    method: str,
    window,
    t0: float,
    tol: float,
    condition_estimate: float = float("nan"),
    iterations: int = 0,
    info: dict | None = None,
    hermitian_rows: bool = False,
    negativity_tol: float | None = None,
    known: Correlations | None = None,
) -> SteadyState:
    """Normalise, gather the evidence, and refuse states that are not steady states.

    ``L`` is the sparse Liouvillian or a :class:`.LiouvillianAction` (not stored).
    ``hermitian_rows``: ``L`` holds only the rows with ``q = M - M' >= 0``. For the
    Hermitian states the solvers return, row ``-q`` of ``L rho`` is the conjugate of row
    ``q``, so the full residual is ``sqrt(|r_0|^2 + 2 |r_{q>0}|^2)``; ``||L||_1`` is then
    taken over these rows only, which can only make the relative residual larger.

    ``negativity_tol`` (default: round-off, :data:`~picorr.information.NEGATIVITY_TOLERANCE`)
    is the most negative block eigenvalue accepted, relative to the largest; a method that
    loosens it (a truncated state) gets it and the dropped weight recorded in ``info``.

    ``known``: the correlations of this same state, normalised, when the solver has already
    computed them (the window scan, on a layout that lacks only rows that are zero here:
    the same nonzero block eigenvalues); the block eigenvalues are then not computed again.
    """
    import time

    trace = state.trace
    if not np.isfinite(trace) or abs(trace) < 1e-300:
        raise SteadyStateError(f"solve returned a state with trace {trace!r}")
    state = BlockState(state.layout, state.rho / trace)
    if sp.issparse(L):
        r = L @ state.rho
        normL = float(abs(L).sum(axis=0).max()) if L.nnz else 0.0
    else:  # an operator that is not stored (.LiouvillianAction)
        r, normL = L.apply(state.rho)
    if hermitian_rows:
        w = hermitian_row_weights(state.layout)
        residual = float(np.sqrt(np.sum(w * np.abs(r) ** 2)))
    else:
        residual = float(np.linalg.norm(r))
    rel = residual / max(normL * float(np.linalg.norm(state.rho)), 1e-300)
    if not rel <= tol:
        raise SteadyStateError(
            f"the returned state is not stationary: relative residual {rel:.2e} > tol={tol:.1e}"
            f" (method {method!r})"
        )
    herm = hermiticity_error(state)
    info = dict(info or {})
    if known is not None:
        corr = known
    elif negativity_tol is None:
        corr = correlations(state)  # raises NegativeEigenvalueError beyond round-off
    else:
        corr = correlations(state, negativity_tol)
    if negativity_tol is not None:
        info.update(negativity_tol=negativity_tol)
    info.update(negative_weight=corr.negative_weight)
    return SteadyState(
        model=model,
        state=state,
        correlations=corr,
        method=method,
        window=window,
        residual=residual,
        relative_residual=rel,
        trace=trace,
        hermiticity_error=herm,
        min_eigenvalue=corr.min_eigenvalue,
        condition_estimate=condition_estimate,
        iterations=iterations,
        unknowns=state.layout.size,
        seconds=time.perf_counter() - t0,
        peak_rss_bytes=peak_rss_bytes(),
        info=info,
    )
