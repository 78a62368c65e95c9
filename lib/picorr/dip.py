"""Does the theory's dip appear at finite N? The measures used to answer it.

The theory for h = 0.5 gamma, J = 3 gamma has a local minimum ("dip") of I_M/N in Gamma
between its maximum and Gamma ~ 3.5 gamma. For each finite-N curve on a Gamma grid this
module reports

* whether it has an interior local minimum in the window (a dip),
* its *flattest descent*: the largest slope dI/dGamma between neighbouring grid points in
  the window (negative while the curve only falls; it must turn positive for a dip),
* its distance from the theory at the theory's dip.

The flattest slope is then extrapolated in 1/N (:mod:`picorr.extrapolate`) over the sizes
whose flattest point is the same feature as the largest size's (:func:`same_feature`). If
the limit is positive beyond its error bar, the fitted line crosses zero at the size ``N*``
where the dip is predicted to appear. :func:`dip_sentence` states the result in words, so that the book's
conclusion follows the data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .extrapolate import extrapolate


@dataclass(frozen=True)
class DipReport:
    N: np.ndarray
    has_dip: np.ndarray  # bool per N
    dip_Gamma: np.ndarray  # location of the finite-N local minimum (NaN if none)
    flattest_slope: np.ndarray  # max dI/dGamma in the window, per N
    flattest_Gamma: np.ndarray  # where (midpoint of the grid interval)
    gap_at_theory_dip: np.ndarray  # I_N - I_theory at the theory's dip Gamma (NaN: not covered)
    theory_dip_Gamma: float
    slope_limit: float  # 1/N extrapolation of flattest_slope
    slope_limit_error: float
    onset_N: float  # where the fitted line crosses zero (NaN if not predicted)
    slope_sizes: np.ndarray  # the sizes the extrapolation used (see dip_report)
    onset_range: tuple = (float("nan"), float("nan"))  # N* with the limit at +- its error
    dip_depth: np.ndarray | None = None  # lower neighbour minus the minimum (NaN if no dip)
    #: When some size has a dip: the report of the smaller sizes alone, whose 1/N trend
    #: predicted the onset before the first size with a dip was computed (else None).
    before: "DipReport | None" = None


def flattest_descent(G, y) -> tuple[float, float]:
    """(Gamma midpoint, slope) of the largest finite-difference slope of ``y(G)``."""
    G = np.asarray(G, float)
    y = np.asarray(y, float)
    s = np.diff(y) / np.diff(G)
    i = int(np.argmax(s))
    return float(0.5 * (G[i] + G[i + 1])), float(s[i])


def _interior_minimum(G, y) -> tuple[float, float]:
    """(Gamma, depth) of the first interior local minimum of ``y(G)``; the depth is how far
    it lies below the lower of its two neighbours. NaNs when there is none."""
    idx = [i for i in range(1, len(y) - 1) if y[i] < y[i - 1] and y[i] < y[i + 1]]
    if not idx:
        return float("nan"), float("nan")
    i = idx[0]
    return float(G[i]), float(min(y[i - 1], y[i + 1]) - y[i])


def dip_report(G, curves: dict, theory_dip_Gamma: float, theory_at_dip: float,
               window: tuple[float, float]) -> DipReport:
    """Measures of :mod:`picorr.dip` for the curves ``{N: y(G)}`` restricted to ``window``
    (NaN entries, grid points a size lacks, are skipped)."""
    G = np.asarray(G, float)
    sel = (G >= window[0] - 1e-12) & (G <= window[1] + 1e-12)
    # a size may lack some grid points (a sweep still running, or a narrower sweep); one
    # with fewer than three points in the window has no slope to compare and is left out
    Ns = np.array(sorted(n for n in curves
                         if np.isfinite(np.asarray(curves[n], float)[sel]).sum() >= 3), dtype=int)
    has, where, depth, fs, fg, gap = [], [], [], [], [], []
    for n in Ns:
        y = np.asarray(curves[n], float)[sel]
        g = G[sel]
        ok = np.isfinite(y)
        g, y = g[ok], y[ok]
        m, d = _interior_minimum(g, y)
        has.append(np.isfinite(m))
        where.append(m)
        depth.append(d)
        a, b = flattest_descent(g, y)
        fg.append(a)
        fs.append(b)
        inside = g[0] - 1e-12 <= theory_dip_Gamma <= g[-1] + 1e-12  # no extrapolation
        gap.append(float(np.interp(theory_dip_Gamma, g, y) - theory_at_dip) if inside
                   else np.nan)
    fs, fg = np.array(fs), np.array(fg)
    use = same_feature(fg, np.min(np.diff(G[sel])) if sel.sum() > 1 else 0.0)
    limit, err, onset, rng = np.nan, np.nan, np.nan, (np.nan, np.nan)
    if use.sum() >= 2:
        e = extrapolate(Ns[use], fs[use])
        limit, err = e.limit, e.error
        if limit > 0 and not (np.isfinite(err) and limit - err <= 0):
            # the linear fit a + b/N crosses zero at N* = -b/a
            V = np.vander(1.0 / Ns[use], 2, increasing=True)
            a, b = np.linalg.lstsq(V, fs[use], rcond=None)[0]
            onset = float(-b / a) if a > 0 and b < 0 else np.nan
            if np.isfinite(onset) and np.isfinite(err):
                # the same slope b with the limit at the ends of its error bar
                rng = (float(-b / (limit + err)), float(-b / (limit - err)))
    before = None
    if any(has):
        first = int(Ns[np.array(has)][0])
        smaller = {n: y for n, y in curves.items() if n < first}
        if smaller:
            before = dip_report(G, smaller, theory_dip_Gamma, theory_at_dip, window)
    return DipReport(Ns, np.array(has), np.array(where), fs, fg, np.array(gap),
                     float(theory_dip_Gamma), float(limit), float(err), float(onset), Ns[use],
                     rng, np.array(depth), before)


#: Fewest sizes that track the same feature for the extrapolation to use only them.
MIN_FEATURE_SIZES = 3


def same_feature(flattest_Gamma, step: float) -> np.ndarray:
    """Which sizes' flattest descents are the same feature as the largest size's.

    At small N the flattest point of a curve sits elsewhere (at N = 80 near the window's
    edge, 3.35 gamma) and drifts as N grows; a 1/N law describes one feature, so the
    extrapolation takes the sizes whose flattest point lies within one grid ``step`` of the
    largest size's, provided there are at least :data:`MIN_FEATURE_SIZES` of them (the
    largest sizes, the asymptotic regime); otherwise every size.
    """
    g = np.asarray(flattest_Gamma, float)
    if g.size == 0:
        return np.zeros(0, bool)
    near = np.abs(g - g[-1]) <= step * (1 + 1e-9)
    # only a run of sizes that ends at the largest one
    run = np.zeros_like(near)
    for i in range(g.size - 1, -1, -1):
        if not near[i]:
            break
        run[i] = True
    return run if run.sum() >= MIN_FEATURE_SIZES else np.ones_like(near)


def dip_sentence(r: DipReport) -> str:
    """The answer in words, following the numbers of ``r``."""
    nmax = int(r.N.max())
    if r.has_dip.any():
        first = int(r.N[r.has_dip].min())
        where = float(r.dip_Gamma[r.N == first][0])
        deep = float(r.dip_depth[r.N == first][0]) if r.dip_depth is not None else np.nan
        size = f", {deep:.1e} below the lower neighbouring grid point" if np.isfinite(deep) else ""
        head = (f"Yes: the finite-N curves have a local minimum from N = {first} on "
                f"(at Γ ≈ {where:.1f}γ for N = {first}{size}).")
    else:
        head = (f"Not yet: up to N = {nmax} no finite-N curve has a local minimum in the "
                f"window; each still falls monotonically.")
    slope = (f" The flattest descent rises with N, from {r.flattest_slope[0]:.4f} "
             f"(N = {int(r.N[0])}) to {r.flattest_slope[-1]:.4f} (N = {nmax}) per unit Γ/γ"
             if r.flattest_slope[-1] > r.flattest_slope[0] else
             f" The flattest descent does not rise with N ({r.flattest_slope[0]:.4f} at "
             f"N = {int(r.N[0])}, {r.flattest_slope[-1]:.4f} at N = {nmax})")
    if np.isfinite(r.slope_limit):
        err = "" if not np.isfinite(r.slope_limit_error) else f" ± {r.slope_limit_error:.4f}"
        which = ("" if r.slope_sizes.size == r.N.size else
                 f" over N = {', '.join(str(int(n)) for n in r.slope_sizes)} (the sizes whose "
                 "flattest descent lies within one grid step of the largest size's)")
        slope += f"; extrapolated in 1/N{which} it tends to {r.slope_limit:.4f}{err}."
    else:
        slope += "."
    def onset(rep: DipReport) -> str:
        lo, hi = rep.onset_range
        span = (f" (between N ≈ {min(lo, hi):.0f} and {max(lo, hi):.0f} with the extrapolated "
                "slope at either end of its error bar)") if np.isfinite(lo) and np.isfinite(hi) else ""
        return f"N ≈ {rep.onset_N:.0f}{span}"

    if r.has_dip.any():
        b = r.before
        if b is not None and np.isfinite(b.onset_N):
            trend = (f" Before it was computed, the 1/N trend of the smaller sizes (N = "
                     f"{', '.join(str(int(n)) for n in b.slope_sizes)}) had predicted the dip "
                     f"from {onset(b)}.")
        elif b is not None and b.slope_sizes.size >= 2:  # one size has no trend
            trend = (" The 1/N trend of the smaller sizes alone had not predicted it (the "
                     "extrapolated slope was not positive beyond its error bar).")
        else:
            trend = ""
    elif np.isfinite(r.onset_N):
        trend = f" The 1/N trend predicts the dip from {onset(r)}."
    else:
        trend = (" The 1/N trend of the data does not predict an onset: the extrapolated slope"
                 " is not positive beyond its error bar.")
    covered = np.flatnonzero(np.isfinite(r.gap_at_theory_dip))
    gap = (f" At the theory's dip (Γ = {r.theory_dip_Gamma:.4f}γ) the N = "
           f"{int(r.N[covered[-1]])} curve lies {r.gap_at_theory_dip[covered[-1]]:+.4f} from "
           "the theory." if covered.size else "")
    if covered.size and int(r.N[covered[-1]]) != nmax:
        gap += f" (The N = {nmax} data do not reach the theory's dip.)"
    return head + slope + trend + gap
