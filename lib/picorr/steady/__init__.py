"""Steady states of permutation-invariant models: one entry point, several methods.

:func:`steady_state` picks a method from the model's structure and size and records the
choice in the result. Every method returns a :class:`SteadyState` with the same evidence
fields (residual, trace, Hermiticity, positivity, truncation, iterations, time, memory).

Methods
-------
``rates``   the diagonal (coherence order q = 0) sector only: the O(N^2) rate equations
            (Eqs. 30-31, generalised), exact when the model has the U(1) symmetry.
``direct``  sparse LU of the full in-block Liouvillian (Eqs. 22-26) with the trace
            condition; O(N^3) unknowns, the fastest choice up to N of about 20.
``krylov``  GMRES in the Hermitian real form (q >= 0 only) on the Schur complement of
            the odd coherence sectors, the even ones eliminated with their exact LU
            (block Jacobi over q for models that couple q to q +- 2); the same unknowns,
            far less memory and time at larger N.
``window``  the same on a coherence window |M - M'| <= Q, raised until I_M/N and m change
            by less than a tolerance (the large-N method).
"""

from ._result import (
    NoUniqueSteadyStateError,
    NotConvergedError,
    SteadyState,
    SteadyStateError,
)
from ._select import METHODS, steady_state
from .memory import InsufficientMemoryError, estimate_peak_bytes

__all__ = [
    "steady_state",
    "SteadyState",
    "SteadyStateError",
    "NoUniqueSteadyStateError",
    "NotConvergedError",
    "InsufficientMemoryError",
    "estimate_peak_bytes",
    "METHODS",
]
