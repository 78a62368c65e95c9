"""The macroscopic formula: multipartite mutual information from the mean-field attractor.

In the thermodynamic limit (Eq. 13 of the paper)

    lim_{N -> oo} I_M / N = S( mean of rho_{xi_t} ) - mean of S(rho_{xi_t}),

with ``xi_t`` a solution of the mean-field equations (5) on its attractor, the bar the
infinite-time average and ``S`` the von Neumann entropy in nats. The stationary
distribution is the time average along the attractor, Eq. (6), which assumes that the
attractor reached is unique; several initial conditions are therefore integrated and a
disagreement is reported (``unique=False``), not hidden.

The attractor is found in three steps:

1. *Transient*: Eq. (5) is integrated (``scipy.integrate.solve_ivp``, DOP853) for a time
   ``t_transient`` which is discarded.
2. *Classification*, repeated on successive chunks of trajectory until it succeeds:
   ``fixed_point`` when Newton's method on ``g(xi) = 0`` started at the trajectory gives a
   stable (or marginal) zero that the trajectory approaches; ``limit_cycle`` when a
   Poincaré section (the plane through the middle of the widest oscillating component,
   upward crossings located by root finding on the dense output) shows the trajectory
   returning after ``p`` crossings, and Newton shooting on ``(xi, T)`` with a phase
   condition converges to a periodic orbit whose non-trivial Floquet multipliers lie inside
   the unit circle and which the trajectory approaches. Otherwise, after ``t_max``:
   ``quasi_periodic_or_chaotic``.
3. *Average*: on a fixed point ``I_M/N = 0`` exactly. On a limit cycle the orbit is
   integrated over one exact period (an integer number, ``p``, of section returns) and the
   periodic integrands are averaged with the rectangle rule on a uniform grid, which
   converges exponentially for smooth periodic functions. The error estimate adds the
   quadrature error (``M`` versus ``M/2`` points) and ten times the larger of the Newton
   residual and the failure of the integrated orbit (rtol 1e-12) to close after one period,
   which bounds the integration error. Otherwise the trajectory is averaged over
   a long window and the error is estimated from batch means; a result whose error
   estimate exceeds the target is flagged ``converged=False`` and warned about.

For the LMG model at h = 0 the limit cycle is known in closed form, Eqs. (17)-(19):
:func:`im_per_n_h0` evaluates it (with ``m_xy``, ``omega``, ``m_z`` derived by
:func:`picorr.meanfield.lmg_limit_cycle_h0`) and :func:`gamma_star` locates its maximum.
"""

from __future__ import annotations

import math
import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp
from scipy.optimize import brentq, minimize_scalar, root
from scipy.special import entr

from .meanfield import (
    MeanField,
    classify_fixed_point,
    lmg_limit_cycle_h0,
    lmg_meanfield,
    random_states,
    state_matrix,
)
from .models import ModelError, _finite_real, _rate

__all__ = [
    "b",
    "entropy_xi",
    "Attractor",
    "MacroscopicResult",
    "SweepResult",
    "ConvergenceWarning",
    "MultipleAttractorsWarning",
    "MultipleAttractorsError",
    "find_attractor",
    "macroscopic_limit",
    "lmg_macroscopic",
    "im_per_n_h0",
    "gamma_star",
    "sweep_gamma",
]


class ConvergenceWarning(RuntimeWarning):
    """A time average whose error estimate exceeds the requested target."""


class MultipleAttractorsWarning(RuntimeWarning):
    """Different initial conditions reached different attractors (Eq. 6 assumes one)."""


class MultipleAttractorsError(RuntimeError):
    """Raised instead of :class:`MultipleAttractorsWarning` with ``on_multiple='raise'``."""


# --------------------------------------------------------------------------------------
# Entropies
# --------------------------------------------------------------------------------------
def b(x):
    """Binary entropy of the Bloch-vector length, Eq. (19), in nats:
    ``b(x) = -(1+x)/2 ln((1+x)/2) - (1-x)/2 ln((1-x)/2)``, the von Neumann entropy of a
    qubit with ``|m| = x``. ``x`` is clipped to [0, 1] (rounding can push ``|m|`` past 1)."""
    x = np.clip(np.asarray(x, dtype=float), 0.0, 1.0)
    out = entr((1 + x) / 2) + entr((1 - x) / 2)
    return out if out.ndim else float(out)


def entropy_xi(mf: MeanField, xi) -> np.ndarray:
    """von Neumann entropy ``S(rho_xi)`` of the single-unit state of Eq. (3), in nats;
    ``xi`` of shape (..., n). Eigenvalues below zero (rounding) are clipped."""
    lam = np.linalg.eigvalsh(state_matrix(mf, xi))
    out = entr(np.clip(lam, 0.0, None)).sum(axis=-1)
    return out if np.ndim(out) else float(out)


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Attractor:
    """The attractor reached from one initial condition and the averages of Eq. (13) on it.

    Attributes
    ----------
    kind : str
        ``'fixed_point'``, ``'limit_cycle'`` or ``'quasi_periodic_or_chaotic'``.
    IM_per_N : float
        ``S(rho_bar) - mean S(rho_xi)`` on this attractor, nats.
    xi_mean : ndarray
        Time-averaged ``xi`` (the Bloch vector ``m`` for qubits).
    S_of_mean, mean_S : float
        The two terms of Eq. (13).
    error_estimate : float
        Estimated absolute error of ``IM_per_N``.
    converged : bool
        ``error_estimate <= target`` (and the classification succeeded).
    period : float
        Period of the limit cycle (NaN otherwise).
    returns : int
        Section crossings per period (1 for a simple cycle; 0 if not a cycle).
    point : ndarray
        A point on the attractor (the fixed point; the cycle's point on the section; the
        last point of the averaging window otherwise).
    stability : ndarray
        Jacobian eigenvalues at a fixed point, Floquet multipliers of a cycle (the trivial
        one removed), empty otherwise.
    t_transient : float
        Time integrated before the attractor was identified (discarded).
    x0 : ndarray
        The initial condition.
    message : str
    """

    kind: str
    IM_per_N: float
    xi_mean: np.ndarray
    S_of_mean: float
    mean_S: float
    error_estimate: float
    converged: bool
    period: float
    returns: int
    point: np.ndarray
    stability: np.ndarray
    t_transient: float
    x0: np.ndarray
    message: str = ""


@dataclass(frozen=True)
class MacroscopicResult:
    """``lim I_M / N`` of Eq. (13) from the attractor(s) of Eq. (5).

    Attributes
    ----------
    IM_per_N : float
        Nats per unit; NaN when the initial conditions reached different attractors.
    attractor : str
        ``'fixed_point'``, ``'limit_cycle'``, ``'quasi_periodic_or_chaotic'``, or
        ``'multiple'`` (initial conditions disagree; see :attr:`attractors`).
    xi_mean : ndarray
        Time-averaged generalized Bloch vector (NaN when not unique).
    S_of_mean, mean_S : float
        ``S(rho_bar)`` and the mean of ``S(rho_xi_t)``, Eq. (13).
    error_estimate : float
        Largest per-run error estimate plus the spread of ``IM_per_N`` between runs.
    converged : bool
        Every run converged to within ``target``.
    unique : bool
        All initial conditions reached the same attractor.
    period : float
        Limit-cycle period (NaN otherwise).
    attractors : tuple of Attractor
        One per initial condition, in order.
    params : dict
        Parameter values by name.
    message : str
    """

    IM_per_N: float
    attractor: str
    xi_mean: np.ndarray
    S_of_mean: float
    mean_S: float
    error_estimate: float
    converged: bool
    unique: bool
    period: float
    attractors: tuple
    params: dict
    message: str = ""

    @property
    def m_mean(self) -> np.ndarray:
        """The time-averaged Bloch vector ``(m_x, m_y, m_z)`` (qubit models: ``xi = m``)."""
        return self.xi_mean


@dataclass(frozen=True)
class SweepResult:
    """``lim I_M/N`` over a grid of one parameter (arrays aligned with ``values``)."""

    parameter: str
    values: np.ndarray
    IM_per_N: np.ndarray
    attractor: np.ndarray
    xi_mean: np.ndarray
    period: np.ndarray
    error_estimate: np.ndarray
    converged: np.ndarray
    unique: np.ndarray
    params: dict
    elapsed: float
    workers: int


# --------------------------------------------------------------------------------------
# Integration helpers
# --------------------------------------------------------------------------------------
def _fun(mf, p):
    g = mf.g_list
    pl = [float(v) for v in p]

    def f(t, x):
        return np.array(g(x.tolist(), pl))

    return f


def _integrate(mf, p, x0, T, *, rtol, atol, dense=False):
    sol = solve_ivp(_fun(mf, p), (0.0, T), np.asarray(x0, float), method="DOP853",
                    rtol=rtol, atol=atol, dense_output=dense)
    if sol.status != 0:
        raise RuntimeError(f"integration of Eq. (5) failed: {sol.message}")
    return sol


def _flow_with_monodromy(mf, p, x0, T, *, rtol, atol):
    """``phi_T(x0)`` and the monodromy ``d phi_T / d x0`` (variational equations)."""
    n = mf.n
    var = mf.variational
    pl = [float(v) for v in p]

    def f(t, y):
        return np.array(var(y.tolist(), pl))

    y0 = np.concatenate([x0, np.eye(n).ravel()])
    sol = solve_ivp(f, (0.0, T), y0, method="DOP853", rtol=rtol, atol=atol)
    if sol.status != 0:
        raise RuntimeError(f"integration of the variational equations failed: {sol.message}")
    y = sol.y[:, -1]
    return y[:n], y[n:].reshape(n, n)


def _upward_crossings(sol, t0, t1, k, level, n_grid):
    """Times in (t0, t1] where ``x_k`` crosses ``level`` upwards, located to ~1e-14."""
    ts = np.linspace(t0, t1, n_grid)
    s = sol.sol(ts)[k] - level
    idx = np.nonzero((s[:-1] < 0) & (s[1:] >= 0))[0]
    out = []
    for i in idx:
        try:
            tc = brentq(lambda t: sol.sol(t)[k] - level, ts[i], ts[i + 1], xtol=1e-14, rtol=1e-15)
        except ValueError:
            continue
        out.append(tc)
    return out


def _shoot(mf, p, x, T, k, level, *, tol, max_iter=12):
    """Newton shooting for a periodic orbit through the section ``x_k = level``.

    Unknowns ``(x, T)``; equations ``phi_T(x) - x = 0`` and the phase condition
    ``x_k = level``. The flow and its monodromy are integrated with rtol 1e-9 while the
    residual is large and 1e-12 near convergence. Returns ``(x*, T*, monodromy, residual)``
    or ``None`` if Newton does not converge.
    """
    n = mf.n
    x = np.array(x, float)
    fine = False
    last_res = math.inf
    for _ in range(max_iter):
        if not (np.isfinite(T) and T > 0):
            return None
        rt = 1e-12 if fine else 1e-9
        xT, Phi = _flow_with_monodromy(mf, p, x, T, rtol=rt, atol=rt * 1e-2)
        r = xT - x
        res = float(np.abs(r).max())
        if fine and res < tol:
            return x, T, Phi, res
        if res > 0.5 * last_res and not (fine and res < 1e-8):
            return None  # not converging (quadratically or at all): give up early
        last_res = res
        if not fine and res < 1e-6:
            fine = True
            continue
        A = np.zeros((n + 1, n + 1))
        A[:n, :n] = Phi - np.eye(n)
        A[:n, n] = mf.rhs(xT, p)
        A[n, k] = 1.0
        rhs = np.concatenate([-r, [level - x[k]]])
        try:
            delta = np.linalg.solve(A, rhs)
        except np.linalg.LinAlgError:
            return None
        step = np.abs(delta[:n]).max()
        if step > 0.2:  # damp long steps: Newton is only trusted near the orbit
            delta *= 0.2 / step
        x = x + delta[:n]
        T = T + delta[n]
    return None


def _rate_scale(mf, p, x0) -> float:
    """A characteristic rate: the spectral norm of the Jacobian at ``x0`` (or the largest
    parameter magnitude if that vanishes). Sets the default time windows."""
    s = float(np.linalg.norm(mf.jac(np.asarray(x0, float), p), 2))
    if not np.isfinite(s) or s < 1e-12:
        s = float(np.max(np.abs(p))) if len(p) else 1.0
    return max(s, 1e-12)


def _cycle_average(mf, p, x, T, n_samples, rtol=1e-12):
    """Averages over one period by the rectangle rule on ``n_samples`` uniform points (and
    on every other point, for the quadrature error); ``closure = |x(T) - x(0)|``."""
    sol = _integrate(mf, p, x, T, rtol=rtol, atol=rtol * 1e-2, dense=True)
    ts = T * np.arange(n_samples) / n_samples
    X = sol.sol(ts).T  # (M, n)
    S = entropy_xi(mf, X)
    xi_mean = X.mean(axis=0)
    xi_half = X[::2].mean(axis=0)
    S_mean, S_half = float(S.mean()), float(S[::2].mean())
    I = entropy_xi(mf, xi_mean) - S_mean
    I_half = entropy_xi(mf, xi_half) - S_half
    closure = float(np.abs(sol.y[:, -1] - x).max())
    return I, I_half, xi_mean, S_mean, closure


def _fixed_point_attractor(mf, p, x_fp, fp, t, x0, message="") -> Attractor:
    S = entropy_xi(mf, x_fp)
    return Attractor(
        kind="fixed_point", IM_per_N=0.0, xi_mean=np.array(x_fp), S_of_mean=float(S), mean_S=float(S),
        error_estimate=0.0, converged=True, period=math.nan, returns=0, point=np.array(x_fp),
        stability=fp.eigenvalues, t_transient=t, x0=np.array(x0), message=message,
    )


# --------------------------------------------------------------------------------------
# One initial condition
# --------------------------------------------------------------------------------------
def find_attractor(
    mf: MeanField,
    params,
    x0,
    *,
    t_transient: float | None = None,
    t_chunk: float | None = None,
    t_max: float | None = None,
    max_returns: int = 8,
    n_samples: int = 1024,
    target: float = 1e-6,
    rtol: float = 1e-9,
) -> Attractor:
    """Integrate Eq. (5) from ``x0``, classify the attractor and average Eq. (13) on it.

    Parameters
    ----------
    mf : MeanField
        From :func:`picorr.meanfield.derive_meanfield`.
    params : sequence of float
        Values of ``mf.params``.
    x0 : array of length n
        Initial generalized Bloch vector.
    t_transient : float, optional
        Time discarded before classification starts (default ``100 / s`` with ``s`` the
        norm of the Jacobian at ``x0``, a characteristic rate).
    t_chunk : float, optional
        Length of each classification chunk (default ``20 / s``).
    t_max : float, optional
        Total integration time after which the attractor is declared
        ``quasi_periodic_or_chaotic`` (default ``t_transient + 400 t_chunk``). Chunks
        double in length, up to ``16 t_chunk``, while classification fails.
    max_returns : int
        Largest number of section crossings per period searched for.
    n_samples : int
        Grid points per period for the average (the error estimate uses half of them).
    target : float
        Error target for ``IM_per_N``; above it the result is ``converged=False``.
    rtol : float
        Relative tolerance of the transient integration.

    Returns
    -------
    Attractor
    """
    p = np.asarray(params, dtype=float)
    x0 = np.asarray(x0, dtype=float)
    if x0.shape != (mf.n,) or not np.all(np.isfinite(x0)):
        raise ModelError(f"x0 must be {mf.n} finite numbers, got {x0!r}")
    s = _rate_scale(mf, p, x0)
    t_transient = 100.0 / s if t_transient is None else float(t_transient)
    t_chunk = 20.0 / s if t_chunk is None else float(t_chunk)
    t_max = t_transient + 400 * t_chunk if t_max is None else float(t_max)
    if t_transient < 0 or t_chunk <= 0 or t_max < t_transient:
        raise ModelError("need t_transient >= 0, t_chunk > 0 and t_max >= t_transient")
    atol = rtol * 1e-2

    x = x0
    t = 0.0
    if t_transient > 0:
        x = _integrate(mf, p, x0, t_transient, rtol=rtol, atol=atol).y[:, -1]
        t = t_transient
    section = None
    crossings: list[tuple[float, np.ndarray]] = []
    last_gap: dict[int, float] = {}
    prev_fp = None
    chunk = t_chunk
    while t < t_max:
        chunk = min(chunk, t_max - t) if t_max - t > 1e-12 else chunk
        sol = _integrate(mf, p, x, chunk, rtol=rtol, atol=atol, dense=True)
        x = sol.y[:, -1]
        # -- fixed point? --------------------------------------------------------------
        n_grid = 64 * max(int(chunk * s), 8)
        X = sol.sol(np.linspace(0, chunk, n_grid))
        fp_sol = root(lambda y: mf.rhs(y, p), x, jac=lambda y: mf.jac(y, p), method="hybr",
                      options={"xtol": 1e-13})
        if fp_sol.success and np.abs(mf.rhs(fp_sol.x, p)).max() < 1e-10:
            fp = classify_fixed_point(mf, fp_sol.x, p)
            # largest distance to it over this chunk, against the previous chunk's
            dmax = float(np.linalg.norm(X.T - fp.xi, axis=1).max())
            same = prev_fp is not None and np.linalg.norm(prev_fp[0] - fp.xi) < 1e-8
            hist = (prev_fp[1] if same else []) + [(t + chunk / 2, dmax)]
            prev_fp = (fp.xi, hist)
            approaching = dmax < 1e-9 or (len(hist) > 1 and dmax < hist[-2][1])
            if fp.stability == "stable" and approaching and dmax < 5e-2:
                return _fixed_point_attractor(mf, p, fp.xi, fp, t + chunk, x0)
            if fp.stability == "stable" and len(hist) >= 3 and dmax < 0.5:
                # slow approach: accept when the distance has fallen over the last chunks at
                # the rate the linearisation predicts (so the trajectory is in its linear
                # neighbourhood)
                (t1, d1), (t2, d2), (t3, d3) = hist[-3:]
                lam = -float(fp.eigenvalues.real.max())
                r12 = math.log(d1 / d2) / (t2 - t1) / lam if d2 > 0 else 0.0
                r23 = math.log(d2 / d3) / (t3 - t2) / lam if d3 > 0 else 0.0
                if 0.5 < r12 < 2 and 0.5 < r23 < 2:
                    return _fixed_point_attractor(
                        mf, p, fp.xi, fp, t + chunk, x0,
                        f"slowly attracting fixed point (slowest rate {lam:.3g}); the trajectory "
                        f"was still {dmax:.2g} away, approaching at the linearised rate",
                    )
            if fp.stability == "marginal" and (
                (approaching and dmax < 1e-4)
                or (len(hist) >= 4 and dmax < 5e-2 and all(a[1] > b_[1] for a, b_ in zip(hist[-4:], hist[-3:])))
            ):
                return _fixed_point_attractor(
                    mf, p, fp.xi, fp, t + chunk, x0,
                    "marginal fixed point (a Jacobian eigenvalue has zero real part, e.g. at a "
                    f"bifurcation): approached slowly, still {dmax:.2g} away; classification "
                    "less certain",
                )
        # -- limit cycle? --------------------------------------------------------------
        span = X.max(axis=1) - X.min(axis=1)
        if section is None and span.max() > 1e-7:
            k = int(np.argmax(span))
            section = (k, float((X[k].max() + X[k].min()) / 2))
            crossings = []
        if section is not None:
            k, level = section
            amp = max(float(span[k]), 1e-12)
            new = [(t + tc, sol.sol(tc)) for tc in _upward_crossings(sol, 0.0, chunk, k, level, n_grid)]
            if not new and len(crossings) < 2:
                section = None  # the section chosen no longer cuts the trajectory: choose anew
            crossings = (crossings + new)[-(2 * max_returns + 2):]
            for pr in range(1, max_returns + 1):
                if len(crossings) <= pr:
                    break
                (ta, xa), (tb, xb) = crossings[-1 - pr], crossings[-1]
                gap = float(np.abs(xb - xa).max())
                prev = last_gap.get(pr, math.inf)
                last_gap[pr] = gap
                # Newton only where the returns are close and closing in (not on a spiral
                # leaving an unstable focus, nor on a quasi-periodic wandering)
                if gap > 0.05 * amp or not (gap < prev or gap < 1e-9):
                    continue
                shot = _shoot(mf, p, xb, tb - ta, k, level, tol=1e-10)
                if shot is None:
                    break  # one Newton attempt per chunk
                xs, T, Phi, res = shot
                mult = np.linalg.eigvals(Phi)
                triv = int(np.argmin(np.abs(mult - 1)))
                others = np.delete(mult, triv)
                # a genuine periodic orbit has a multiplier 1 (the flow direction)
                stable = abs(mult[triv] - 1) < 1e-6 and bool(np.all(np.abs(others) < 1 - 1e-9))
                d_b = float(np.linalg.norm(xb - xs))
                d_a = float(np.linalg.norm(xa - xs))
                if not stable or d_b > 0.5 * amp or not (d_b <= d_a or d_b < 1e-9):
                    continue
                T, pr = _minimal_period(mf, p, xs, T, pr, k, level)
                return _limit_cycle_attractor(mf, p, xs, T, pr, res, others, t + chunk, x0,
                                              n_samples, target)
        t += chunk
        chunk = min(2 * chunk, 16 * t_chunk)
    return _long_average(mf, p, x, t, x0, s, target, n_samples, rtol)


def _minimal_period(mf, p, xs, T, returns, k, level):
    """Reduce ``(T, returns)`` to the prime period: the first return of the orbit to ``xs``."""
    if returns == 1:
        return T, returns
    sol = _integrate(mf, p, xs, T, rtol=1e-12, atol=1e-14, dense=True)
    n_grid = 256 * returns
    for j, tc in enumerate(_upward_crossings(sol, T * 1e-6, T * (1 - 1e-6), k, level, n_grid)):
        if np.abs(sol.sol(tc) - xs).max() < 1e-7 and returns % (j + 1) == 0:
            return tc, j + 1
    return T, returns


def _limit_cycle_attractor(mf, p, xs, T, returns, res, multipliers, t, x0, n_samples, target):
    I, I_half, xi_mean, S_mean, closure = _cycle_average(mf, p, xs, T, n_samples)
    # quadrature error (M vs M/2 points) + integration/shooting error, measured by how far
    # the integrated orbit fails to close, times a generous sensitivity factor 10
    err = abs(I - I_half) + 10 * max(closure, res)
    conv = err <= target
    msg = "" if conv else f"error estimate {err:.2e} exceeds target {target:.0e}"
    return Attractor(
        kind="limit_cycle", IM_per_N=float(I), xi_mean=xi_mean, S_of_mean=float(entropy_xi(mf, xi_mean)),
        mean_S=S_mean, error_estimate=float(err), converged=conv, period=float(T), returns=returns,
        point=np.array(xs), stability=np.array(multipliers), t_transient=t, x0=np.array(x0),
        message=msg,
    )


def _long_average(mf, p, x, t, x0, s, target, n_samples, rtol, n_batches=16):
    """Time average over a long window after ``t``, with a batch-means error estimate."""
    window = 2000.0 / s
    sol = _integrate(mf, p, x, window, rtol=rtol, atol=rtol * 1e-2, dense=True)
    M = n_batches * max(n_samples, int(64 * window * s / n_batches))
    ts = window * (np.arange(M) + 0.5) / M
    X = sol.sol(ts).T
    S = entropy_xi(mf, X)
    xi_mean = X.mean(axis=0)
    S_mean = float(S.mean())
    I = float(entropy_xi(mf, xi_mean) - S_mean)
    Xb = X.reshape(n_batches, -1, mf.n).mean(axis=1)
    Sb = S.reshape(n_batches, -1).mean(axis=1)
    Ib = entropy_xi(mf, Xb) - Sb
    # statistical error (batch means) plus drift (first versus second half of the window),
    # which exposes a transient that has not died out
    h2 = M // 2
    I1 = entropy_xi(mf, X[:h2].mean(axis=0)) - S[:h2].mean()
    I2 = entropy_xi(mf, X[h2:].mean(axis=0)) - S[h2:].mean()
    err = float(np.std(Ib, ddof=1) / math.sqrt(n_batches) + abs(I1 - I2))
    conv = err <= target
    msg = (
        "no fixed point or periodic orbit identified; averaged over a window of "
        f"{window:.4g} with error estimate {err:.2e} (batch means plus drift between halves)"
    )
    return Attractor(
        kind="quasi_periodic_or_chaotic", IM_per_N=I, xi_mean=xi_mean,
        S_of_mean=float(entropy_xi(mf, xi_mean)), mean_S=S_mean, error_estimate=err,
        converged=conv, period=math.nan, returns=0, point=X[-1], stability=np.array([]),
        t_transient=t, x0=np.array(x0), message=msg,
    )


# --------------------------------------------------------------------------------------
# Several initial conditions
# --------------------------------------------------------------------------------------
def _orbit_distance(mf, p, a: Attractor, y, n=4096) -> float:
    """Distance from point ``y`` to the periodic orbit of ``a``."""
    dt = a.period / n
    sol = _integrate(mf, p, a.point, a.period + 2 * dt, rtol=1e-12, atol=1e-14, dense=True)
    ts = dt * np.arange(1, n + 1)  # (0, T]: t = T stands for t = 0 and brackets both sides
    d2 = ((sol.sol(ts).T - y) ** 2).sum(axis=1)
    j = int(np.argmin(d2))
    r = minimize_scalar(lambda t: ((sol.sol(t) - y) ** 2).sum(), bounds=(ts[j] - dt, ts[j] + dt),
                        method="bounded", options={"xatol": 1e-12 * max(a.period, 1.0)})
    return float(math.sqrt(max(min(r.fun, d2[j]), 0.0)))


def _same_attractor(mf, p, a: Attractor, c: Attractor, tol: float) -> bool:
    if a.kind != c.kind:
        return False
    if a.kind == "fixed_point":
        return float(np.linalg.norm(a.point - c.point)) < tol
    if a.kind == "limit_cycle":
        if abs(a.period - c.period) > tol * max(a.period, 1.0):
            return False
        return _orbit_distance(mf, p, a, c.point) < tol
    err = 3 * (a.error_estimate + c.error_estimate) + tol
    return abs(a.IM_per_N - c.IM_per_N) < err and float(np.abs(a.xi_mean - c.xi_mean).max()) < err


def macroscopic_limit(
    mf: MeanField,
    params,
    *,
    initial_conditions=None,
    n_initial: int = 4,
    seed: int = 0,
    on_multiple: str = "warn",
    same_tol: float = 1e-6,
    target: float = 1e-6,
    **kwargs,
) -> MacroscopicResult:
    """``lim_{N -> oo} I_M / N`` of Eq. (13) from the attractor of Eq. (5).

    Parameters
    ----------
    mf : MeanField
    params : sequence of float or dict
        Values of ``mf.params`` (a dict by name is accepted).
    initial_conditions : array (k, n), optional
        Starting points; default ``n_initial`` seeded random states of Eq. (3) (90% pure).
    on_multiple : {'warn', 'raise'}
        What to do when the runs reach different attractors: warn
        (:class:`MultipleAttractorsWarning`) and return ``IM_per_N = NaN`` with
        ``attractor='multiple'``, or raise :class:`MultipleAttractorsError`.
    same_tol : float
        Two attractors are the same when fixed points are closer than this, or cycles have
        equal periods (relative) and one's point lies within it of the other's orbit.
    target : float
        Error target for ``IM_per_N`` (default 1e-6); a result above it carries
        ``converged=False`` and a :class:`ConvergenceWarning` is issued.
    **kwargs
        Passed to :func:`find_attractor` (``t_transient``, ``t_chunk``, ``t_max``, ...).

    Returns
    -------
    MacroscopicResult
    """
    if on_multiple not in ("warn", "raise"):
        raise ModelError(f"on_multiple must be 'warn' or 'raise', got {on_multiple!r}")
    p = mf.param_values(**params) if isinstance(params, dict) else mf.param_values(params)
    pdict = {str(s): float(v) for s, v in zip(mf.params, p)}
    if initial_conditions is None:
        if isinstance(n_initial, bool) or not isinstance(n_initial, int) or n_initial < 1:
            raise ModelError(f"n_initial must be an integer >= 1, got {n_initial!r}")
        initial_conditions = random_states(mf, n_initial, seed=seed)
    ics = np.atleast_2d(np.asarray(initial_conditions, dtype=float))
    if ics.shape[1] != mf.n:
        raise ModelError(f"initial_conditions must have {mf.n} components each")
    runs = tuple(find_attractor(mf, p, x0, target=target, **kwargs) for x0 in ics)
    return _combine(mf, p, pdict, runs, on_multiple, same_tol, target)


def _combine(mf, p, pdict, runs, on_multiple, same_tol, target) -> MacroscopicResult:
    groups: list[list[Attractor]] = []
    for a in runs:
        for g in groups:
            if _same_attractor(mf, p, g[0], a, same_tol):
                g.append(a)
                break
        else:
            groups.append([a])
    converged = all(a.converged for a in runs)
    if len(groups) > 1:
        desc = "; ".join(
            f"{g[0].kind} (I_M/N = {g[0].IM_per_N:.6g}, from {len(g)} initial condition(s))" for g in groups
        )
        msg = (f"initial conditions reached {len(groups)} different attractors: {desc}. "
               "Eq. (13) assumes a unique attractor (Eq. 6); no single value is returned")
        if on_multiple == "raise":
            raise MultipleAttractorsError(msg)
        warnings.warn(msg, MultipleAttractorsWarning, stacklevel=3)
        nan = math.nan
        return MacroscopicResult(
            IM_per_N=nan, attractor="multiple", xi_mean=np.full(mf.n, nan), S_of_mean=nan, mean_S=nan,
            error_estimate=nan, converged=converged, unique=False, period=nan, attractors=runs,
            params=pdict, message=msg,
        )
    best = min(runs, key=lambda a: a.error_estimate)
    spread = max(abs(a.IM_per_N - best.IM_per_N) for a in runs)
    err = max(a.error_estimate for a in runs) + spread
    converged = converged and err <= target
    msg = "; ".join(sorted({a.message for a in runs if a.message}))
    if not converged:
        msg = (msg + "; " if msg else "") + (
            f"time average not converged: error estimate {err:.2e} > target {target:.0e}"
        )
        warnings.warn(msg, ConvergenceWarning, stacklevel=3)
    return MacroscopicResult(
        IM_per_N=best.IM_per_N, attractor=best.kind, xi_mean=best.xi_mean, S_of_mean=best.S_of_mean,
        mean_S=best.mean_S, error_estimate=float(err), converged=converged, unique=True,
        period=best.period, attractors=runs, params=pdict, message=msg,
    )


# --------------------------------------------------------------------------------------
# The LMG model
# --------------------------------------------------------------------------------------
def _lmg_params(coupling, h, Gamma, gamma):
    return np.array([
        _finite_real("coupling", coupling), _finite_real("h", h), _rate("Gamma", Gamma), _rate("gamma", gamma)
    ])


def lmg_macroscopic(coupling: float, h: float, Gamma: float, gamma: float = 1.0, **kwargs) -> MacroscopicResult:
    """Eq. (13) for the driven-dissipative LMG model, Eqs. (14)-(16).

    Parameters are the paper's 𝒥 (``coupling``), h, Γ, γ (any common unit; times are in
    its inverse). Keywords go to :func:`macroscopic_limit`. ``xi_mean`` is the
    time-averaged Bloch vector ``m``.
    """
    p = _lmg_params(coupling, h, Gamma, gamma)
    if not np.any(p[1:] != 0) and p[0] == 0:
        raise ModelError("coupling, h, Gamma and gamma are all zero: there is no dynamics")
    return macroscopic_limit(lmg_meanfield(), p, **kwargs)


_H0_CACHE: dict = {}


def _h0_functions():
    if not _H0_CACHE:
        import sympy as sp

        lc = lmg_limit_cycle_h0()
        mf = lmg_meanfield()
        _, _, Gamma, gamma = mf.params
        _H0_CACHE["m_z"] = sp.lambdify((Gamma, gamma), lc["m_z"], "numpy")
        _H0_CACHE["m_xy"] = sp.lambdify((Gamma, gamma), lc["m_xy"], "numpy")
    return _H0_CACHE


def im_per_n_h0(Gamma, gamma: float = 1.0):
    """Closed form of ``lim I_M/N`` for the LMG model at h = 0, Eqs. (17)-(19).

    ``0`` for ``Gamma <= gamma`` (stable fixed point ``m = (0, 0, 1)``); otherwise
    ``b(m_z) - b(sqrt(m_z^2 + m_xy^2))`` with the limit cycle's ``m_z``, ``m_xy`` as
    derived by :func:`picorr.meanfield.lmg_limit_cycle_h0`. Independent of the coupling
    (which sets only the angular frequency). ``Gamma`` may be an array.
    """
    gamma = _rate("gamma", gamma)
    if gamma <= 0:
        raise ModelError(f"gamma must be > 0 for the closed form, got {gamma!r}")
    G = np.asarray(Gamma, dtype=float)
    if not np.all(np.isfinite(G)) or np.any(G < 0):
        raise ModelError(f"Gamma must be finite rates >= 0, got {Gamma!r}")
    f = _h0_functions()
    Gc = np.where(G > gamma, G, 2 * gamma)  # evaluate the cycle branch only where it exists
    mz = f["m_z"](Gc, gamma)
    mxy = f["m_xy"](Gc, gamma)
    out = np.where(G > gamma, b(mz) - b(np.hypot(mz, mxy)), 0.0)
    return out if out.ndim else float(out)


def gamma_star(gamma: float = 1.0, *, xatol: float = 1e-10) -> tuple[float, float]:
    """Locate the maximum of the h = 0 closed form (18) over Γ numerically.

    Returns
    -------
    (Gamma_star, IM_per_N_max)
        Bounded scalar maximisation on ``(gamma, 20 gamma)``; the paper reports
        ``Gamma* ≈ 1.68 gamma``.
    """
    gamma = _rate("gamma", gamma)
    if gamma <= 0:
        raise ModelError(f"gamma must be > 0, got {gamma!r}")
    r = minimize_scalar(lambda G: -im_per_n_h0(G, gamma), bounds=(gamma, 20 * gamma), method="bounded",
                        options={"xatol": xatol * gamma})
    return float(r.x), float(-r.fun)


# --------------------------------------------------------------------------------------
# Sweeps over Gamma
# --------------------------------------------------------------------------------------
def _sweep_chunk(args):
    """Continuation along a contiguous block of Gamma values (runs in a worker)."""
    Gammas, coupling, h, gamma, check_unique, n_initial, target = args
    mf = lmg_meanfield()
    out = []
    prev = None
    for G in Gammas:
        p = np.array([coupling, h, G, gamma])
        pdict = {"coupling": coupling, "h": h, "Gamma": float(G), "gamma": gamma}
        runs = []
        if prev is not None:
            # warm start: a point of the previous attractor, nudged off a possible equilibrium
            x0 = prev.point + 1e-3 * np.array([1.0, -1.0, 0.5])[: mf.n]
            s = _rate_scale(mf, p, x0)
            T0 = prev.period if np.isfinite(prev.period) else 10.0 / s
            runs.append(find_attractor(mf, p, x0, t_transient=2 * T0, t_chunk=max(1.5 * T0, 20.0 / s),
                                       target=target))
        if check_unique or prev is None:
            for x0 in random_states(mf, n_initial):
                runs.append(find_attractor(mf, p, x0, target=target))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", MultipleAttractorsWarning)
            res = _combine(mf, p, pdict, tuple(runs), "warn", 1e-6, target)
        out.append(res)
        prev = runs[0] if res.unique else runs[-1]
    return out


def sweep_gamma(
    Gammas,
    *,
    coupling: float,
    h: float,
    gamma: float = 1.0,
    workers: int | None = None,
    check_unique: bool = False,
    n_initial: int = 4,
    target: float = 1e-6,
) -> SweepResult:
    """Eq. (13) for the LMG model over a grid of Γ, fast.

    The grid is split into ``workers`` contiguous blocks run in parallel processes. Within
    a block each Γ starts from a point of the previous Γ's attractor (continuation) with a
    short transient, and periodic orbits are refined by Newton shooting, so most points
    cost a few periods of integration. The first Γ of each block is started from
    ``n_initial`` random states. With ``check_unique=True`` every Γ is also started from
    ``n_initial`` random states and disagreements are reported in ``unique`` (slower);
    without it, a branch followed by continuation in a region of coexisting attractors is
    not detected.

    Returns
    -------
    SweepResult
        Arrays aligned with ``Gammas``; ``elapsed`` is the wall time in seconds.
    """
    import time

    t0 = time.perf_counter()
    coupling = _finite_real("coupling", coupling)
    h = _finite_real("h", h)
    gamma = _rate("gamma", gamma)
    G = np.asarray(Gammas, dtype=float).ravel()
    if G.size == 0 or not np.all(np.isfinite(G)) or np.any(G < 0):
        raise ModelError("Gammas must be a non-empty array of finite rates >= 0")
    if workers is None:
        workers = min(os.cpu_count() or 1, 2)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ModelError(f"workers must be an integer >= 1, got {workers!r}")
    workers = min(workers, G.size)
    lmg_meanfield()  # derive once here; forked workers inherit the cache
    blocks = [blk for blk in np.array_split(G, workers) if blk.size]
    args = [(blk, coupling, h, gamma, check_unique, n_initial, target) for blk in blocks]
    if workers == 1:
        parts = [_sweep_chunk(a) for a in args]
    else:
        import multiprocessing as mp

        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as ex:
            parts = list(ex.map(_sweep_chunk, args))
    res = [r for part in parts for r in part]
    out = SweepResult(
        parameter="Gamma",
        values=G,
        IM_per_N=np.array([r.IM_per_N for r in res]),
        attractor=np.array([r.attractor for r in res]),
        xi_mean=np.array([r.xi_mean for r in res]),
        period=np.array([r.period for r in res]),
        error_estimate=np.array([r.error_estimate for r in res]),
        converged=np.array([r.converged for r in res]),
        unique=np.array([r.unique for r in res]),
        params={"coupling": coupling, "h": h, "gamma": gamma},
        elapsed=time.perf_counter() - t0,
        workers=workers,
    )
    bad = ~out.converged
    if bad.any():
        warnings.warn(
            f"{int(bad.sum())} of {G.size} sweep points did not reach the error target {target:.0e} "
            f"(Gamma = {G[bad][:5].tolist()}{'...' if bad.sum() > 5 else ''})",
            ConvergenceWarning, stacklevel=2,
        )
    if not out.unique.all():
        warnings.warn(
            f"multiple attractors at Gamma = {G[~out.unique][:5].tolist()}", MultipleAttractorsWarning,
            stacklevel=2,
        )
    return out
