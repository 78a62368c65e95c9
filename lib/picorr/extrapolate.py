"""Extrapolation of finite-N data to N -> infinity, with a stated model choice and error bar.

At each parameter point the values ``y(N)`` (e.g. I_M/N) are fitted by least squares in
``x = 1/N`` with two models,

    linear     y = a + b x
    quadratic  y = a + b x + c x^2       (needs at least 4 sizes),

and ``a`` is the extrapolated limit. **Criterion:** the quadratic model is chosen when it
has enough points (>= 4) and lowers the root-mean-square residual by more than
:data:`QUADRATIC_GAIN` relative to the linear one (the data resolve the curvature);
otherwise the linear model. **Error bar:** the larger of the spread between the two models'
limits and twice the chosen fit's standard error of ``a`` (from the residual variance and the
design matrix). With fewer than 4 sizes only the linear model exists and the error bar is
twice its standard error; two sizes fit a line exactly and leave no estimate of the error,
which is then NaN rather than a misleading zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .models import ModelError

#: Factor by which the quadratic fit must lower the RMS residual to be chosen.
QUADRATIC_GAIN = 3.0


@dataclass(frozen=True)
class Extrapolation:
    """The N -> infinity limit at one parameter point."""

    limit: float
    error: float
    model: str  # "linear" or "quadratic" (in 1/N)
    limit_linear: float
    limit_quadratic: float  # NaN with fewer than 4 sizes
    rms_linear: float
    rms_quadratic: float
    sizes: tuple


def _fit(x: np.ndarray, y: np.ndarray, degree: int) -> tuple[float, float, float]:
    """Least-squares polynomial fit; returns (a, standard error of a, rms residual)."""
    V = np.vander(x, degree + 1, increasing=True)
    coef, *_ = np.linalg.lstsq(V, y, rcond=None)
    res = y - V @ coef
    dof = x.size - (degree + 1)
    rms = float(np.sqrt(np.mean(res**2)))
    if dof <= 0:
        return float(coef[0]), float("nan"), rms
    s2 = float(res @ res) / dof
    cov = s2 * np.linalg.inv(V.T @ V)
    return float(coef[0]), float(np.sqrt(max(cov[0, 0], 0.0))), rms


def extrapolate(N, y) -> Extrapolation:
    """Extrapolate ``y(N)`` to ``N -> infinity`` (see the module's criterion and error bar)."""
    N = np.asarray(N, dtype=float)
    y = np.asarray(y, dtype=float)
    if N.ndim != 1 or N.shape != y.shape:
        raise ModelError("N and y must be 1-D arrays of the same length")
    if N.size < 2 or np.unique(N).size != N.size:
        raise ModelError(f"N must hold at least 2 distinct sizes, got {N.tolist()}")
    if np.any(N < 1) or not np.all(np.isfinite(y)):
        raise ModelError("N must be >= 1 and y finite")
    x = 1.0 / N
    a1, se1, r1 = _fit(x, y, 1)
    a2, se2, r2 = (np.nan, np.nan, np.nan)
    if N.size >= 4:
        a2, se2, r2 = _fit(x, y, 2)
    quad = N.size >= 4 and r2 * QUADRATIC_GAIN < r1
    limit, se = (a2, se2) if quad else (a1, se1)
    spread = abs(a1 - a2) if N.size >= 4 else np.nan
    error = float(np.nanmax([spread, 2 * se])) if np.isfinite([spread, se]).any() else np.nan
    return Extrapolation(limit=float(limit), error=error, model="quadratic" if quad else "linear",
                         limit_linear=a1, limit_quadratic=float(a2), rms_linear=r1,
                         rms_quadratic=float(r2), sizes=tuple(int(n) for n in N))


def extrapolate_curves(Ns, Gammas, values, *, min_N: int = 1) -> dict[str, np.ndarray]:
    """Extrapolate at each Gamma: ``values[i, j]`` is y at ``Ns[i]``, ``Gammas[j]`` (NaN where
    missing). Sizes below ``min_N`` are left out. Returns arrays ``Gamma``, ``limit``,
    ``error``, ``model`` and ``n_sizes``."""
    Ns = np.asarray(Ns, dtype=float)
    values = np.asarray(values, dtype=float)
    out = {"Gamma": np.asarray(Gammas, float), "limit": [], "error": [], "model": [], "n_sizes": []}
    for j in range(values.shape[1]):
        ok = np.isfinite(values[:, j]) & (Ns >= min_N)
        if ok.sum() < 2:
            out["limit"].append(np.nan), out["error"].append(np.nan)
            out["model"].append("none"), out["n_sizes"].append(int(ok.sum()))
            continue
        e = extrapolate(Ns[ok], values[ok, j])
        out["limit"].append(e.limit), out["error"].append(e.error)
        out["model"].append(e.model), out["n_sizes"].append(int(ok.sum()))
    return {k: np.asarray(v) for k, v in out.items()}


def compare_with_theory(extrap: dict, theory) -> dict[str, np.ndarray]:
    """The extrapolation (:func:`extrapolate_curves`) against the theory, point by point.

    ``theory`` holds the theory's value at each of ``extrap["Gamma"]`` (evaluated there, not
    interpolated). Returns the arrays of ``extrap`` plus ``theory``, ``difference`` (limit
    minus theory), ``sigma`` (difference over the error bar; NaN where the error bar is not
    known) and ``consistent`` (|difference| <= error bar), and the summary ``n_consistent``,
    ``n_compared`` (points with a finite limit and error bar) and ``worst`` (the index of the
    largest |sigma|, -1 when nothing is compared).
    """
    limit = np.asarray(extrap["limit"], float)
    error = np.asarray(extrap["error"], float)
    theory = np.asarray(theory, float)
    if theory.shape != limit.shape:
        raise ModelError(f"theory must have one value per Gamma ({limit.size}), got shape "
                         f"{theory.shape}")
    diff = limit - theory
    known = np.isfinite(diff) & np.isfinite(error) & (error > 0)
    sigma = np.full(diff.shape, np.nan)
    sigma[known] = diff[known] / error[known]
    consistent = known & (np.abs(diff) <= error)
    worst = int(np.nanargmax(np.abs(sigma))) if known.any() else -1
    return {**extrap, "theory": theory, "difference": diff, "sigma": sigma,
            "consistent": consistent, "n_consistent": int(consistent.sum()),
            "n_compared": int(known.sum()), "worst": worst}


def misses(comparison: dict, lo: float = -np.inf, hi: float = np.inf) -> np.ndarray:
    """The Gamma values in ``[lo, hi]`` at which the extrapolation of
    :func:`compare_with_theory` is compared with the theory and lies outside its error bar."""
    G = np.asarray(comparison["Gamma"], float)
    missed = ~np.asarray(comparison["consistent"]) & np.isfinite(comparison["sigma"])
    eps = 1e-9 * max(1.0, float(np.nanmax(np.abs(G)))) if G.size else 0.0
    return G[missed & (G >= lo - eps) & (G <= hi + eps)]


def max_difference_away_from(comparison: dict, centre: float, margin: float) -> float:
    """The largest |extrapolation - theory| over the Gamma values further than ``margin``
    from ``centre`` (e.g. away from a transition where finite-size effects are largest);
    NaN when no such point has a finite difference."""
    if not margin >= 0:
        raise ModelError(f"margin must be >= 0, got {margin}")
    G = np.asarray(comparison["Gamma"], float)
    d = np.abs(np.asarray(comparison["difference"], float))
    far = (np.abs(G - centre) > margin) & np.isfinite(d)
    return float(d[far].max()) if far.any() else float("nan")
