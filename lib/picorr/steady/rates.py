"""The diagonal steady state of a U(1)-symmetric model: rate equations (Eqs. 30-31).

When the dynamics commutes with rotations about z (for the LMG model: h = 0), the coherence
order q = M - M' is conserved and the unique steady state lies in q = 0. The populations
``p_{J,M} = rho_{J,M,M}`` then obey the real rate equations (30)-(31), generalised to every
model of :mod:`picorr.models`: they are the Liouvillian of :mod:`picorr.liouvillian`
restricted to the diagonal layout (``window = 0``), which the tests compare with the
coefficients C_1 ... C_5 typed from the paper. O(N^2) unknowns.
"""

from __future__ import annotations

from ..models import QubitModel
from ._result import SteadyState
from .direct import solve_direct


def solve_rates(model: QubitModel, *, tol: float = 1e-10, mask: bool | None = None) -> SteadyState:
    """Steady state from the rate equations; the model must have the U(1) symmetry.
    ``mask``: leave out negligible populations predicted from N // 2 (default: from
    N = :data:`.direct.RATES_MASK_MIN_N` on; see :func:`.direct.solve_direct`)."""
    if not model.has_u1_symmetry:
        raise ValueError("method 'rates' needs a model with U(1) symmetry")
    return solve_direct(model, window=0, tol=tol, method_name="rates", mask=mask)
