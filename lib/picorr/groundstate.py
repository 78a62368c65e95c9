"""Multipartite mutual information of the ferromagnetic LMG ground state (Appendix B, Fig. 2).

For ``coupling < 0`` (the paper's 𝒥 < 0) the ground state of the LMG Hamiltonian (15)
lies in the fully symmetric block ``J = N/2`` and is pure, so ``S(rho_T) = 0`` and Eq. (7)
gives ``I_M = N b(|m|)`` with the Bloch vector of Eq. (33),

    m_a = 2 <g| J_a |g> / N,

``b`` the binary entropy of Eq. (19), and ``|g>`` the lowest eigenvector of

    H_J = coupling (J_x^2 + J_y^2) / N + h J_x = coupling (J (J+1) - J_z^2) / N + h J_x.

In the basis ``|J, M>``, ``M = J, J-1, ..., -J``, the first term is diagonal and ``J_x``
couples neighbouring ``M`` only: ``H_J`` is tridiagonal, and its lowest eigenpair is found
with ``scipy.linalg.eigh_tridiagonal`` (LAPACK stebz bisection plus stein inverse iteration,
O(N) memory and time).

h = 0 is handled explicitly. For even N the ground state is the Dicke state ``|J, 0>``:
``m = 0`` and ``I_M/N = ln 2`` exactly. For odd N the two states ``|J, ±1/2>`` are degenerate
and the ground state is not unique; what is returned is the ``h -> 0`` limit of the
(unique) ground state at ``h != 0``: degenerate perturbation theory in ``h J_x`` selects
``(|J, 1/2> - |J, -1/2>)/sqrt 2`` (the ``h -> 0+`` side; ``h -> 0-`` flips ``m_x`` and leaves
``|m|`` unchanged), with ``m = (-(N+1)/(2N), 0, 0)``. This makes ``I_M/N`` continuous in
``h`` at ``h = 0``, equal to ``b((N+1)/(2N)) ≈ b(1/2) ≈ 0.562``, not ``ln 2``. The result is
flagged ``degenerate=True``. (The other natural choice, the equal mixture of the two
states, i.e. the zero-temperature limit of the Gibbs state, is not pure: it has
``m = 0`` and ``S(rho_T) = ln 2``, so ``I_M/N = ln 2 - (ln 2)/N``; it is given in
``IM_per_N_mixture`` for reference.)

Conventions: ``J_a = V_a / 2`` (the paper's global Pauli sums ``V_a``); entropies in nats.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from scipy.linalg import eigh_tridiagonal

from .macroscopic import b
from .models import ModelError, _finite_real, validate_N

__all__ = ["GroundStateResult", "ground_state", "lmg_tridiagonal"]


@dataclass(frozen=True)
class GroundStateResult:
    """Ground state of the ferromagnetic LMG Hamiltonian at ``J = N/2`` (Appendix B).

    Attributes
    ----------
    N : int
    coupling, h : float
        The paper's 𝒥 (< 0) and h.
    IM_per_N : float
        ``b(|m|)`` (nats per unit), Eqs. (7), (19), (33).
    m : ndarray
        ``(m_x, m_y, m_z)`` of Eq. (33); ``m_y = 0`` (``H_J`` is real).
    energy : float
        Ground-state energy.
    gap : float
        Distance to the next level (0 when degenerate).
    degenerate : bool
        True for odd N at h = 0 (see the module docstring for what is returned then).
    IM_per_N_mixture : float
        For a degenerate ground state, ``I_M/N`` of the equal mixture of the degenerate
        states (a mixed state); equal to ``IM_per_N`` otherwise.
    method : str
        ``'diagonal'`` (h = 0) or ``'eigh_tridiagonal'``.
    elapsed : float
        Seconds.
    """

    N: int
    coupling: float
    h: float
    IM_per_N: float
    m: np.ndarray
    energy: float
    gap: float
    degenerate: bool
    IM_per_N_mixture: float
    method: str
    elapsed: float


def lmg_tridiagonal(N: int, coupling: float, h: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Diagonal, off-diagonal and ``M`` values of ``H_J`` at ``J = N/2`` (basis
    ``M = J, ..., -J``).

    ``<M|H_J|M> = coupling (J(J+1) - M^2) / N`` and
    ``<M-1|H_J|M> = (h/2) sqrt((J+M)(J-M+1))``.
    """
    J = N / 2
    M = J - np.arange(N + 1, dtype=float)
    diag = coupling * (J * (J + 1) - M * M) / N
    Mk = M[:-1]
    off = 0.5 * h * np.sqrt((J + Mk) * (J - Mk + 1))
    return diag, off, M


def _m_from_vector(g: np.ndarray, M: np.ndarray, N: int) -> np.ndarray:
    """Eq. (33) for a real normalised vector ``g`` in the basis ``M = J, ..., -J``."""
    J = N / 2
    Mk = M[:-1]
    jx = float(np.dot(np.sqrt((J + Mk) * (J - Mk + 1)), g[:-1] * g[1:]))  # <J_x> = sum sqrt(.) g_k g_k+1
    jz = float(np.dot(M, g * g))
    return np.array([2 * jx / N, 0.0, 2 * jz / N])


def ground_state(N: int, coupling: float, h: float) -> GroundStateResult:
    """``I_M / N`` of the ground state of the ferromagnetic LMG model, Appendix B.

    Parameters
    ----------
    N : int
        Number of qubits, >= 2.
    coupling : float
        The paper's 𝒥; must be < 0 (ferromagnetic: the ground state lies at J = N/2).
    h : float
        Transverse field.

    Returns
    -------
    GroundStateResult
    """
    t0 = time.perf_counter()
    N = validate_N(N)
    coupling = _finite_real("coupling", coupling)
    h = _finite_real("h", h)
    if coupling >= 0:
        raise ModelError(
            f"coupling must be < 0 (ferromagnetic; only then is the ground state in the J = N/2 "
            f"block), got {coupling!r}"
        )
    J = N / 2
    if h == 0:
        if N % 2 == 0:  # Dicke state |J, 0>
            m = np.zeros(3)
            E = coupling * J * (J + 1) / N
            gap = abs(coupling) / N  # to |J, ±1>
            I = b(0.0)
            return GroundStateResult(N, coupling, h, I, m, E, gap, False, I, "diagonal",
                                     time.perf_counter() - t0)
        # odd N: |J, ±1/2> degenerate; the h -> 0+ limit selects (|1/2> - |-1/2>)/sqrt 2
        m = np.array([-(N + 1) / (2 * N), 0.0, 0.0])
        E = coupling * (J * (J + 1) - 0.25) / N
        I = b(abs(m[0]))
        I_mix = b(0.0) - math.log(2) / N
        return GroundStateResult(N, coupling, h, I, m, E, 0.0, True, I_mix, "diagonal",
                                 time.perf_counter() - t0)
    diag, off, M = lmg_tridiagonal(N, coupling, h)
    w, v = eigh_tridiagonal(diag, off, select="i", select_range=(0, 1), lapack_driver="stebz")
    g = v[:, 0]
    g = g / np.linalg.norm(g)
    m = _m_from_vector(g, M, N)
    I = b(min(float(np.linalg.norm(m)), 1.0))
    return GroundStateResult(N, coupling, h, I, m, float(w[0]), float(w[1] - w[0]), False, I,
                             "eigh_tridiagonal", time.perf_counter() - t0)
