"""Permutation-invariant qubit models: the data that the finite-N engine and the
mean-field theory both read (Eq. 1 of the paper).

A model is a frozen description, validated when it is made:

    d rho_T/dt = -i [H, rho_T] + sum_m (Gamma_m / N) D[L_m] rho_T
                 + sum_{n in {-, +, z}} gamma_n sum_i D[sigma_n^(i)] rho_T,

    H = (1/N) sum_{ab} K_ab J_a J_b + sum_a c_a J_a,        a, b in {x, y, z},
    L_m = a_+ J_+ + a_- J_- + a_z J_z,

with ``K`` real symmetric (so ``H`` is Hermitian), ``J_a`` collective spin operators
(``J_a = V_a / 2`` in the paper's notation) and ``D[A] rho = A rho A^+ - {A^+ A, rho}/2``.
The 1/N in front of the quadratic part and of the collective rates is the scaling under
which the mean-field limit N -> infinity exists; ``K``, ``c``, ``Gamma_m`` and ``gamma_n``
are the intensive parameters.

The driven-dissipative Lipkin-Meshkov-Glick model (Eqs. 14-15) is :func:`lmg`.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from .dicke import CollectivePolynomial

__all__ = ["CollectiveJump", "QubitModel", "lmg", "ModelError"]

_AXES = "xyz"


class ModelError(ValueError):
    """Invalid model parameters. The message names the parameter and what is allowed."""


def _finite_real(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ModelError(f"{name} must be a finite real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ModelError(f"{name} must be a finite real number, got {value!r}")
    return v


def _rate(name: str, value) -> float:
    v = _finite_real(name, value)
    if v < 0:
        raise ModelError(f"{name} must be a finite rate >= 0, got {value!r}")
    return v


def _finite_complex(name: str, value) -> complex:
    if isinstance(value, bool) or not isinstance(value, numbers.Number):
        raise ModelError(f"{name} must be a finite number, got {value!r}")
    v = complex(value)
    if not (math.isfinite(v.real) and math.isfinite(v.imag)):
        raise ModelError(f"{name} must be a finite number, got {value!r}")
    return v


def validate_N(N, *, name: str = "N") -> int:
    """Return N as an int if it is an integer >= 2; raise :class:`ModelError` otherwise."""
    if isinstance(N, bool) or not isinstance(N, numbers.Integral):
        if isinstance(N, numbers.Real) and float(N).is_integer() and not isinstance(N, bool):
            N = int(N)
        else:
            raise ModelError(f"{name} must be an integer >= 2, got {N!r}")
    if N < 2:
        raise ModelError(f"{name} must be an integer >= 2, got {N!r}")
    return int(N)


@dataclass(frozen=True)
class CollectiveJump:
    """A collective jump ``L = a_plus J_+ + a_minus J_- + a_z J_z`` with rate ``Gamma``,
    entering Eq. (1) as ``(Gamma / N) D[L]``."""

    Gamma: float
    a_plus: complex = 0.0
    a_minus: complex = 0.0
    a_z: complex = 0.0

    def __post_init__(self):
        object.__setattr__(self, "Gamma", _rate("Gamma", self.Gamma))
        for f in ("a_plus", "a_minus", "a_z"):
            object.__setattr__(self, f, _finite_complex(f, getattr(self, f)))

    @property
    def operator(self) -> CollectivePolynomial:
        """``L`` as a polynomial in ``J_+, J_-, J_z``."""
        return CollectivePolynomial.from_dict({"p": self.a_plus, "m": self.a_minus, "z": self.a_z})

    @property
    def active(self) -> bool:
        return self.Gamma > 0 and any(c != 0 for c in (self.a_plus, self.a_minus, self.a_z))


@dataclass(frozen=True)
class QubitModel:
    """A permutation-invariant model of N qubits (Eq. 1). See the module docstring.

    Parameters
    ----------
    N : int
        Number of qubits, >= 2.
    K : 3x3 real symmetric, optional
        Quadratic part of the Hamiltonian, ``H ⊃ (1/N) sum_ab K_ab J_a J_b``.
    c : 3 reals, optional
        Linear part, ``H ⊃ sum_a c_a J_a`` (a field along x, y, z).
    jumps : sequence of :class:`CollectiveJump`
        Collective jumps, each entering as ``(Gamma/N) D[L]``.
    gamma_minus, gamma_plus, gamma_z : float >= 0
        Local emission ``D[sigma_-]``, pumping ``D[sigma_+]`` and dephasing ``D[sigma_z]``
        rates, identical on every unit.
    name : str
        A label, used in results and file metadata.
    """

    N: int
    K: tuple = ((0.0,) * 3,) * 3
    c: tuple = (0.0, 0.0, 0.0)
    jumps: tuple = ()
    gamma_minus: float = 0.0
    gamma_plus: float = 0.0
    gamma_z: float = 0.0
    name: str = "model"

    def __post_init__(self):
        object.__setattr__(self, "N", validate_N(self.N))
        K = np.asarray(self.K, dtype=object)
        if K.shape != (3, 3):
            raise ModelError(f"K must be a 3x3 matrix, got shape {K.shape}")
        Kf = tuple(
            tuple(_finite_real(f"K[{_AXES[a]}{_AXES[b]}]", K[a, b]) for b in range(3))
            for a in range(3)
        )
        for a in range(3):
            for b in range(a):
                if Kf[a][b] != Kf[b][a]:
                    raise ModelError(
                        f"K must be symmetric (K[{_AXES[a]}{_AXES[b]}] = {Kf[a][b]} but "
                        f"K[{_AXES[b]}{_AXES[a]}] = {Kf[b][a]}); write a J_a J_b coupling "
                        "as equal halves on both sides"
                    )
        c = tuple(self.c)
        if len(c) != 3:
            raise ModelError(f"c must have 3 components (x, y, z), got {len(c)}")
        cf = tuple(_finite_real(f"c[{_AXES[a]}]", c[a]) for a in range(3))
        jumps = tuple(self.jumps)
        for j in jumps:
            if not isinstance(j, CollectiveJump):
                raise ModelError(f"jumps must be CollectiveJump objects, got {type(j).__name__}")
        object.__setattr__(self, "K", Kf)
        object.__setattr__(self, "c", cf)
        object.__setattr__(self, "jumps", jumps)
        for f in ("gamma_minus", "gamma_plus", "gamma_z"):
            object.__setattr__(self, f, _rate(f, getattr(self, f)))
        if not isinstance(self.name, str):
            raise ModelError(f"name must be a string, got {self.name!r}")

    # -- derived operators ---------------------------------------------------------------
    @property
    def hamiltonian(self) -> CollectivePolynomial:
        """``H`` as a polynomial in ``J_+, J_-, J_z`` (the 1/N included)."""
        spins = [CollectivePolynomial.spin(a) for a in _AXES]
        H = CollectivePolynomial()
        for a in range(3):
            if self.c[a]:
                H = H + self.c[a] * spins[a]
            for b in range(3):
                if self.K[a][b]:
                    H = H + (self.K[a][b] / self.N) * (spins[a] * spins[b])
        return H

    @property
    def local_rates(self) -> dict[str, float]:
        """``{'-': gamma_minus, '+': gamma_plus, 'z': gamma_z}``."""
        return {"-": self.gamma_minus, "+": self.gamma_plus, "z": self.gamma_z}

    @property
    def is_dissipative(self) -> bool:
        return any(j.active for j in self.jumps) or any(r > 0 for r in self.local_rates.values())

    @property
    def has_u1_symmetry(self) -> bool:
        """True when the dynamics commutes with rotations about z, so the coherence order
        ``q = M - M'`` is conserved and a unique steady state is diagonal (Eqs. 30-31).

        Holds when H contains only ``J_z``, ``J_z^2`` and ``J_x^2 + J_y^2`` (equal
        coefficients, no cross terms), and each collective jump is a multiple of one of
        ``J_+``, ``J_-``, ``J_z``. Local sigma_-, sigma_+, sigma_z always respect it.
        """
        K, c = self.K, self.c
        if c[0] or c[1]:
            return False
        if K[0][1] or K[0][2] or K[1][2] or K[0][0] != K[1][1]:
            return False
        for j in self.jumps:
            if j.active and sum(x != 0 for x in (j.a_plus, j.a_minus, j.a_z)) > 1:
                return False
        return True

    def replace(self, **changes) -> "QubitModel":
        """A copy with some fields changed (validated again)."""
        from dataclasses import replace

        return replace(self, **changes)


def lmg(N: int, coupling: float, h: float, Gamma: float, gamma: float) -> QubitModel:
    """The driven-dissipative Lipkin-Meshkov-Glick model, Eqs. (14)-(15).

    ``H = (coupling/N)(J_x^2 + J_y^2) + h J_x`` (the paper's ``𝒥``, with
    ``V_a = 2 J_a``), collective decay ``(Gamma/N) D[J_-]`` and local pumping
    ``gamma D[sigma_+]`` on every qubit. All rates in the same units (the paper uses gamma).
    """
    N = validate_N(N)
    coupling = _finite_real("coupling", coupling)
    h = _finite_real("h", h)
    Gamma = _rate("Gamma", Gamma)
    gamma = _rate("gamma", gamma)
    return QubitModel(
        N=N,
        K=((coupling, 0, 0), (0, coupling, 0), (0, 0, 0)),
        c=(h, 0.0, 0.0),
        jumps=(CollectiveJump(Gamma=Gamma, a_minus=1.0),),
        gamma_plus=gamma,
        name="lmg",
    )
