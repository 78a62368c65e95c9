"""The entry point: choose the method from the model's structure and size."""

from __future__ import annotations

from threadpoolctl import threadpool_limits

from ..models import ModelError, QubitModel
from ._result import NoUniqueSteadyStateError, SteadyState
from .direct import solve_direct
from .krylov import solve_krylov
from .rates import solve_rates
from .window import solve_window

METHODS = ("auto", "rates", "direct", "krylov", "window")

#: Up to this N the full sparse LU is faster than GMRES (and checks uniqueness itself).
DIRECT_MAX_N = 20

#: Up to this N GMRES runs on every element; beyond, on a converged coherence window.
KRYLOV_MAX_N = 100

#: Sizes at which a Krylov solve's uniqueness is checked by a direct solve (both parities).
UNIQUENESS_PROBE_N = (10, 11)


def choose_method(model: QubitModel) -> str:
    """'rates' for U(1)-symmetric models; otherwise 'direct' up to :data:`DIRECT_MAX_N`,
    'krylov' up to :data:`KRYLOV_MAX_N`, and the coherence-window method beyond."""
    if model.has_u1_symmetry:
        return "rates"
    if model.N <= DIRECT_MAX_N:
        return "direct"
    return "krylov" if model.N <= KRYLOV_MAX_N else "window"


def check_uniqueness(model: QubitModel) -> None:
    """Raise :class:`NoUniqueSteadyStateError` when the same model at the probe sizes has no
    unique steady state (a direct solve with a condition estimate decides there).

    Which processes are present, not their size, decides uniqueness in practice, and an
    iterative solver can converge to one of many steady states without noticing; the probe
    catches that at a cost of milliseconds.
    """
    for n in UNIQUENESS_PROBE_N:
        if n == model.N:
            continue
        try:
            solve_direct(model.replace(N=n))
        except NoUniqueSteadyStateError as exc:
            raise NoUniqueSteadyStateError(
                f"no unique steady state: the same model at N = {n} has none ({exc})"
            ) from None


def steady_state(
    model: QubitModel,
    *,
    method: str = "auto",
    tol: float = 1e-10,
    blas_threads: int | None = 1,
    threads: int | None = None,
    max_memory: float | None = None,
    **options,
) -> SteadyState:
    """The unique steady state of ``model`` with its evidence.

    Parameters
    ----------
    model : QubitModel
    method : {'auto', 'rates', 'direct', 'krylov', 'window'}
        'auto' (see :func:`choose_method`): the rate equations when the model has the U(1)
        symmetry (exact, O(N^2) unknowns), the sparse LU for N <= 20, block-Jacobi
        preconditioned GMRES on all elements up to N = 100, and beyond that GMRES on a
        coherence window |M - M'| <= Q raised until I_M/N and m settle ('window').
        The method used is ``result.method``; the window is ``result.window``.
    tol : float
        Largest accepted relative residual ``||L rho|| / (||L||_1 ||rho||)``.
    blas_threads : int or None
        BLAS threads during the solve (None: leave as is). One is fastest for these
        memory-bound sparse solves on small machines (measured: 0.85 s against 3.6 s at
        N = 60 with two threads on two busy cores).
    threads : int or None
        Coherence sectors factored and solved at once by the 'krylov' and 'window' methods
        (SuperLU releases the GIL); None: the cores this process may use.
    max_memory : float or None
        Bytes the 'krylov' and 'window' methods may use: a solve whose estimated peak
        (:func:`estimate_peak_bytes`) exceeds it raises :class:`InsufficientMemoryError`
        before it starts. None: the memory available.
    **options
        Passed to the method (e.g. ``restart``, ``maxiter`` for 'krylov';
        ``factor_precision`` 'auto', 'double' or 'single' for 'krylov' and 'window': the
        storage precision of the sector factors, single only when double does not fit by
        default).

    Raises
    ------
    NoUniqueSteadyStateError
        No dissipation, or a Liouvillian whose steady state is not unique.
    SteadyStateError
        The solve did not produce a stationary state within ``tol``
        (:class:`NotConvergedError` for an iteration budget that ran out).
    NegativeEigenvalueError
        The state has a block eigenvalue more negative than round-off (for 'window', than
        its ``negativity_tol``, 1e-8 of the largest by default: a truncated state is
        non-positive by about its truncation error; the dropped weight is in
        ``result.info['negative_weight']``).
    """
    if not isinstance(model, QubitModel):
        raise ModelError(f"model must be a QubitModel, got {type(model).__name__}")
    if method not in METHODS:
        raise ModelError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if isinstance(tol, bool) or not (isinstance(tol, (int, float)) and 0 < tol < 1):
        raise ModelError(f"tol must be a number in (0, 1), got {tol!r}")
    if not model.is_dissipative:
        raise NoUniqueSteadyStateError(
            "the model has no dissipation (all rates are zero): every function of H is "
            "stationary, so there is no unique steady state"
        )
    if method == "auto":
        method = choose_method(model)
    if method == "rates" and not model.has_u1_symmetry:
        raise ModelError(
            "method 'rates' needs a model with U(1) symmetry (no J_x, J_y fields, J_x^2 and "
            "J_y^2 with equal weight, each collective jump a multiple of one of J_+, J_-, "
            "J_z); use method 'direct' or 'krylov'"
        )
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        if method == "rates":
            return solve_rates(model, tol=tol, **options)
        if method == "direct":
            return solve_direct(model, tol=tol, **options)
        check_uniqueness(model)
        if method == "window":
            return solve_window(model, tol=tol, threads=threads, max_memory=max_memory,
                                **options)
        return solve_krylov(model, tol=tol, threads=threads, max_memory=max_memory, **options)
