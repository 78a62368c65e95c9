"""Where the macroscopic theory's I_M/N(Gamma) changes character: the Hopf point, the
maximum and the dip, located numerically (nothing typed).

* **Hopf point**: the fixed point of Eq. (5) loses stability where the largest real part of
  its Jacobian's eigenvalues crosses zero; found by Brent's method on that real part,
  following the fixed-point branch.
* **Extrema** of ``I_M/N`` (Eq. 13): zeros of its derivative, a central difference with
  step :data:`DERIVATIVE_STEP`, found by Brent's method inside a grid bracket. The
  location's error estimate is the shift of the zero when the step is doubled. The time
  averages are smooth to about 1e-12 (their third differences at step 1e-3 vary smoothly),
  so the difference quotient is good to ~1e-8 and the location to better than 1e-6.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from .macroscopic import lmg_macroscopic
from .meanfield import fixed_points, lmg_meanfield
from .models import ModelError

#: Central-difference step in Gamma for locating extrema.
DERIVATIVE_STEP = 2e-4


@dataclass(frozen=True)
class Landmark:
    """One located point of the theory curve."""

    kind: str  # "hopf", "maximum" or "minimum"
    Gamma: float
    IM_per_N: float
    error: float  # estimated error of Gamma


def _growth_rate(coupling, h, Gamma, gamma, guess=None) -> float:
    mf = lmg_meanfield()
    fps = fixed_points(mf, [coupling, h, Gamma, gamma],
                       guesses=None if guess is None else [guess])
    if not fps:
        fps = fixed_points(mf, [coupling, h, Gamma, gamma])
    if len(fps) != 1:
        raise ModelError(f"expected one physical fixed point at Gamma = {Gamma}, found {len(fps)}")
    return float(np.max(fps[0].eigenvalues.real))


def hopf_point(coupling: float, h: float, bracket: tuple[float, float], gamma: float = 1.0,
               xtol: float = 1e-10) -> Landmark:
    """The Gamma in ``bracket`` where the fixed point's largest growth rate crosses zero."""
    lo, hi = map(float, bracket)
    f = lambda G: _growth_rate(coupling, h, G, gamma)  # noqa: E731
    flo, fhi = f(lo), f(hi)
    if np.sign(flo) == np.sign(fhi):
        raise ModelError(f"bracket ({lo}, {hi}) does not contain a Hopf point: growth rates "
                         f"{flo:.3g} and {fhi:.3g} have the same sign")
    G = brentq(f, lo, hi, xtol=xtol)
    return Landmark("hopf", float(G), 0.0, float(xtol))


def _IM(coupling, h, G, gamma) -> float:
    r = lmg_macroscopic(coupling, h, G, gamma, on_multiple="raise")
    return r.IM_per_N


def extremum(coupling: float, h: float, bracket: tuple[float, float], gamma: float = 1.0,
             step: float = DERIVATIVE_STEP) -> Landmark:
    """The zero of d(I_M/N)/dGamma in ``bracket`` (a maximum or a minimum)."""
    lo, hi = map(float, bracket)

    def deriv(G, s):
        return (_IM(coupling, h, G + s, gamma) - _IM(coupling, h, G - s, gamma)) / (2 * s)

    dlo, dhi = deriv(lo, step), deriv(hi, step)
    if np.sign(dlo) == np.sign(dhi):
        raise ModelError(f"bracket ({lo}, {hi}) does not contain an extremum: slopes "
                         f"{dlo:.3g} and {dhi:.3g} have the same sign")
    G1 = brentq(lambda G: deriv(G, step), lo, hi, xtol=1e-8)
    # the same zero with twice the step, searched near G1: the shift estimates the error
    w = 1e-4
    a, b = max(lo, G1 - w), min(hi, G1 + w)
    try:
        G2 = brentq(lambda G: deriv(G, 2 * step), a, b, xtol=1e-8)
    except ValueError:  # moved by more than w: report w as the error
        G2 = G1 + w
    kind = "maximum" if dlo > 0 else "minimum"
    return Landmark(kind, float(G1), _IM(coupling, h, G1, gamma), float(abs(G2 - G1)))


def theory_landmarks(coupling: float, h: float, Gammas, IM, attractors, gamma: float = 1.0):
    """Locate the Hopf point (where ``attractors`` changes from 'fixed_point' to
    'limit_cycle') and every interior extremum of ``IM`` on the grid ``Gammas``, refined to
    the precision above. Returns a list of :class:`Landmark` in increasing Gamma."""
    G = np.asarray(Gammas, float)
    y = np.asarray(IM, float)
    att = list(attractors)
    out = []
    for i in range(G.size - 1):
        if {att[i], att[i + 1]} == {"fixed_point", "limit_cycle"}:
            out.append(hopf_point(coupling, h, (G[i], G[i + 1]), gamma))
    lc = np.array([a == "limit_cycle" for a in att])
    seen: list[tuple[float, float]] = []
    for i in range(1, G.size - 1):
        if not lc[i - 1:i + 2].all() or (y[i] - y[i - 1]) * (y[i + 1] - y[i]) >= 0:
            continue
        # the grid's extremum lies in (G[i-1], G[i+1]); the slope's sign changes are found
        # on a finer sampling, since a coarse grid can hide a close maximum-minimum pair
        xs = np.linspace(G[i - 1], G[i + 1], 5)
        d = [(_IM(coupling, h, x + DERIVATIVE_STEP, gamma)
              - _IM(coupling, h, x - DERIVATIVE_STEP, gamma)) for x in xs]
        for a, b, da, db in zip(xs[:-1], xs[1:], d[:-1], d[1:]):
            if da * db < 0 and not any(lo <= a and b <= hi for lo, hi in seen):
                out.append(extremum(coupling, h, (a, b), gamma))
                seen.append((a, b))
    return sorted(out, key=lambda m: m.Gamma)
