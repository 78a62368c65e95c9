"""Mean-field equations of permutation-invariant models, derived symbolically (Eqs. 3-5).

The drift ``g(xi)`` of Eq. (5) is *derived*, not typed: for the product state
``rho_xi^{(x)N}`` with the single-unit state of Eq. (3),

    rho_xi = (1_d + xi . v) / d,

this module computes the exact time derivative of the expectation of every global operator
``V_alpha = sum_i v_alpha^(i)`` under the Lindblad equation (1), as a SymPy expression in
``N`` and ``xi``, and takes ``N -> infinity``. The computation is plain operator algebra on
*words* of global operators ``A_tot = sum_i A^(i)`` (``A`` any single-unit d x d matrix):
in a product state,

    < A1_tot A2_tot ... Ak_tot > = sum_{set partitions pi of (1..k)}
                                   N (N-1) ... (N-|pi|+1)  prod_{B in pi} Tr(rho_xi prod_{j in B} A_j),

(each block ``B`` is one unit, the operators on it multiplied in their original order).
This identity is exact at every N, so the module also gives the exact finite-N derivative
of ``<V_alpha>/N`` for product states (:func:`product_state_drift`), whose N -> infinity
limit is ``g`` and whose deviation from ``g`` is O(1/N).

The single-unit basis ``v`` is any set of ``d^2 - 1`` traceless Hermitian matrices; the
default is the generalized Gell-Mann basis (:func:`gell_mann`, normalised to
``Tr(v_a v_b) = 2 delta_ab``), which is the Pauli basis for d = 2 and the eight Gell-Mann
matrices for d = 3. With that normalisation Eq. (3) gives ``<v_alpha> = (2/d) xi_alpha``;
for qubits ``xi`` is the Bloch vector ``m = <sigma>``. A pure qudit state has
``|xi|^2 = d (d - 1) / 2``.

Models are described by :class:`UnitModel` (any d): a Hamiltonian with a single-unit part
and symmetrised products of two global operators divided by N, collective jumps
``(Gamma_m / N) D[L_m,tot]``, and local jumps ``gamma_n sum_i D[L_n^(i)]`` (Eq. 1).
Entries may be numbers or SymPy expressions (parameters kept as symbols). Qubit models
(:class:`picorr.models.QubitModel`) are converted by :func:`from_qubit_model`; the LMG model
with symbolic parameters is :func:`lmg_meanfield`. A d = 3 example, spin-1 units with the
LMG Hamiltonian, is :func:`spin1_lmg`.

Conventions: hbar = 1; the paper's ``V_alpha = 2 J_alpha`` for qubits.
"""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import sympy as sp
from sympy.utilities.iterables import multiset_partitions

from .models import ModelError, QubitModel

__all__ = [
    "gell_mann",
    "UnitModel",
    "MeanField",
    "FixedPoint",
    "derive_meanfield",
    "product_state_drift",
    "qubit_unit_model",
    "from_qubit_model",
    "lmg_meanfield",
    "spin1_lmg",
    "fixed_points",
    "classify_fixed_point",
    "random_states",
    "lmg_limit_cycle_h0",
    "state_matrix",
    "xi_from_state",
]


# --------------------------------------------------------------------------------------
# Single-unit basis
# --------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def gell_mann(d: int) -> tuple[sp.ImmutableMatrix, ...]:
    """The generalized Gell-Mann basis of su(d): ``d^2 - 1`` traceless Hermitian matrices
    with ``Tr(v_a v_b) = 2 delta_ab``.

    Order: for each pair ``j < k`` the symmetric ``E_jk + E_kj`` then the antisymmetric
    ``-i (E_jk - E_kj)``, then the ``d - 1`` diagonal ones. For d = 2 this is
    ``(sigma_x, sigma_y, sigma_z)``; for d = 3 it is the eight Gell-Mann matrices (up to
    order: ``lambda_1, lambda_2, lambda_4, lambda_5, lambda_6, lambda_7, lambda_3, lambda_8``).
    """
    if isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 2:
        raise ModelError(f"d must be an integer >= 2, got {d!r}")
    out = []
    for j in range(d):
        for k in range(j + 1, d):
            S = sp.zeros(d, d)
            S[j, k] = S[k, j] = 1
            A = sp.zeros(d, d)
            A[j, k] = -sp.I
            A[k, j] = sp.I
            out += [sp.ImmutableMatrix(S), sp.ImmutableMatrix(A)]
    for l in range(1, d):
        D = sp.zeros(d, d)
        for j in range(l):
            D[j, j] = 1
        D[l, l] = -l
        out.append(sp.ImmutableMatrix(D * sp.sqrt(sp.Rational(2, l * (l + 1)))))
    return tuple(out)


def _sympify_matrix(name: str, A, d: int) -> sp.ImmutableMatrix:
    try:
        M = sp.ImmutableMatrix(A)
    except (TypeError, ValueError, sp.SympifyError) as exc:
        raise ModelError(f"{name} must be a {d}x{d} matrix: {exc}") from None
    if M.shape != (d, d):
        raise ModelError(f"{name} must be a {d}x{d} matrix, got shape {M.shape}")
    M = M.applyfunc(_exact)
    if any(x.is_number and not x.is_finite for x in M):
        raise ModelError(f"{name} must have finite entries")
    return M


def _exact(x) -> sp.Expr:
    """Numbers become exact SymPy numbers (a float becomes the rational it represents), so
    that cancellations in the derivation are exact; symbolic expressions are kept."""
    if isinstance(x, sp.Basic):
        return x
    if isinstance(x, bool):
        raise ModelError(f"expected a number, got {x!r}")
    if isinstance(x, numbers.Integral):
        return sp.Integer(int(x))
    if isinstance(x, numbers.Real):
        if not math.isfinite(float(x)):
            raise ModelError(f"expected a finite number, got {x!r}")
        return sp.Rational(float(x))
    if isinstance(x, numbers.Complex):
        z = complex(x)
        if not (math.isfinite(z.real) and math.isfinite(z.imag)):
            raise ModelError(f"expected a finite number, got {x!r}")
        return sp.Rational(z.real) + sp.I * sp.Rational(z.imag)
    return sp.sympify(x)


def _is_hermitian(M: sp.ImmutableMatrix) -> bool:
    diff = (M - M.H).applyfunc(sp.simplify)
    return all(x == 0 for x in diff)


def _rate_value(name: str, r) -> sp.Expr:
    r = _exact(r)
    if r.is_number:
        if not (r.is_real and r.is_finite) or r < 0:
            raise ModelError(f"{name} must be a finite rate >= 0, got {r}")
    elif r.is_extended_real is False or r.is_extended_negative:
        raise ModelError(f"{name} must be a real, non-negative rate, got {r}")
    return r


# --------------------------------------------------------------------------------------
# The model description
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UnitModel:
    """A permutation-invariant model of N identical d-level units (Eq. 1), for the
    mean-field derivation. Operators are single-unit d x d matrices; ``A_tot`` denotes
    ``sum_i A^(i)``.

    Parameters
    ----------
    d : int
        Local dimension (2 for qubits, 3 for qutrits).
    H1 : d x d Hermitian matrix
        One-body Hamiltonian: ``H ⊃ H1_tot``.
    H2 : sequence of ``(K, A, B)``
        Two-body terms ``H ⊃ (K / N) (A_tot B_tot + B_tot A_tot) / 2`` with ``K`` real and
        ``A``, ``B`` Hermitian (so every term is Hermitian).
    collective : sequence of ``(Gamma, L)``
        Collective jumps entering as ``(Gamma / N) D[L_tot]``.
    local : sequence of ``(gamma, L)``
        Local jumps entering as ``gamma sum_i D[L^(i)]``.
    basis : sequence of ``d^2 - 1`` matrices, optional
        Traceless Hermitian, linearly independent single-unit operators ``v_alpha``; the
        generalized Gell-Mann basis (:func:`gell_mann`) by default.
    params : sequence of SymPy symbols
        The free parameters appearing in the entries (kept symbolic in the derivation and
        passed as numbers to the compiled functions, in this order).
    coords : sequence of str, optional
        Names of the components of ``xi`` (default ``xi1, xi2, ...``; ``mx, my, mz`` for
        qubit models built here).
    name : str
        A label.

    Entries may be numbers or SymPy expressions in ``params``. Floats are converted to the
    exact rationals they represent.
    """

    d: int
    H1: object = None
    H2: tuple = ()
    collective: tuple = ()
    local: tuple = ()
    basis: tuple | None = None
    params: tuple = ()
    coords: tuple | None = None
    name: str = "model"

    def __post_init__(self):
        d = self.d
        if isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 2:
            raise ModelError(f"d must be an integer >= 2, got {d!r}")
        d = int(d)
        object.__setattr__(self, "d", d)
        H1 = sp.zeros(d, d) if self.H1 is None else self.H1
        H1 = _sympify_matrix("H1", H1, d)
        if not _is_hermitian(H1):
            raise ModelError("H1 must be Hermitian")
        object.__setattr__(self, "H1", H1)
        H2 = []
        for n, term in enumerate(self.H2):
            try:
                K, A, B = term
            except (TypeError, ValueError):
                raise ModelError(f"H2[{n}] must be a triple (K, A, B)") from None
            K = _exact(K)
            if K.is_extended_real is False or (K.is_number and not K.is_real):
                raise ModelError(f"H2[{n}] coupling K must be real, got {K}")
            A = _sympify_matrix(f"H2[{n}] A", A, d)
            B = _sympify_matrix(f"H2[{n}] B", B, d)
            if not (_is_hermitian(A) and _is_hermitian(B)):
                raise ModelError(f"H2[{n}]: A and B must be Hermitian")
            H2.append((K, A, B))
        object.__setattr__(self, "H2", tuple(H2))
        for attr, rname in (("collective", "Gamma"), ("local", "gamma")):
            items = []
            for n, term in enumerate(getattr(self, attr)):
                try:
                    r, L = term
                except (TypeError, ValueError):
                    raise ModelError(f"{attr}[{n}] must be a pair ({rname}, L)") from None
                items.append(
                    (_rate_value(f"{attr}[{n}] {rname}", r), _sympify_matrix(f"{attr}[{n}] L", L, d))
                )
            object.__setattr__(self, attr, tuple(items))
        basis = gell_mann(d) if self.basis is None else tuple(self.basis)
        if len(basis) != d * d - 1:
            raise ModelError(f"basis must have d^2 - 1 = {d * d - 1} elements, got {len(basis)}")
        basis = tuple(_sympify_matrix(f"basis[{a}]", v, d) for a, v in enumerate(basis))
        for a, v in enumerate(basis):
            if not v.free_symbols == set():
                raise ModelError(f"basis[{a}] must be numeric")
            if sp.simplify(v.trace()) != 0 or not _is_hermitian(v):
                raise ModelError(f"basis[{a}] must be traceless and Hermitian")
        G = sp.Matrix(len(basis), len(basis), lambda a, b: sp.nsimplify((basis[a] * basis[b]).trace()))
        if G.det() == 0:
            raise ModelError("basis must be linearly independent")
        object.__setattr__(self, "basis", basis)
        params = tuple(self.params)
        for p in params:
            if not isinstance(p, sp.Symbol):
                raise ModelError(f"params must be SymPy symbols, got {p!r}")
        free = set()
        for M in [H1, *[x for t in H2 for x in t[1:]], *[t[1] for t in self.collective], *[t[1] for t in self.local]]:
            free |= M.free_symbols
        for t in (*H2, *self.collective, *self.local):
            free |= t[0].free_symbols
        missing = free - set(params)
        if missing:
            raise ModelError(
                f"params must list every symbol used in the model; missing {sorted(map(str, missing))}"
            )
        object.__setattr__(self, "params", params)
        n = d * d - 1
        coords = tuple(f"xi{a + 1}" for a in range(n)) if self.coords is None else tuple(self.coords)
        if len(coords) != n or len(set(coords)) != n:
            raise ModelError(f"coords must be {n} distinct names")
        object.__setattr__(self, "coords", coords)

    @property
    def n(self) -> int:
        """Number of components of ``xi``, ``d^2 - 1``."""
        return self.d * self.d - 1


# --------------------------------------------------------------------------------------
# Product-state expectations of words of global operators
# --------------------------------------------------------------------------------------
def _falling(N, k: int):
    out = sp.Integer(1)
    for j in range(k):
        out *= N - j
    return out


def _word_expectation(word, tr_rho, N, product):
    """``< A1_tot ... Ak_tot >`` in ``rho^{(x)N}`` (the module docstring's identity)."""
    k = len(word)
    total = sp.Integer(0)
    for partition in multiset_partitions(list(range(k))):
        term = _falling(N, len(partition))
        for block in partition:
            term *= tr_rho(product(tuple(word[j] for j in block)))
        total += term
    return total


def _adjoint_words(model: UnitModel, V):
    """The adjoint Lindbladian applied to ``V_tot`` as ``(coefficient, word)`` pairs:

    ``i[H, V] + sum_m (Gamma_m/N)(L^+ V L - {L^+ L, V}/2) + sum_n gamma_n sum_i (...)^(i)``
    """
    N = _N
    terms = []
    # one-body Hamiltonian: i [H1_tot, V_tot] = (i [H1, V])_tot
    terms.append((sp.Integer(1), (sp.I * (model.H1 * V - V * model.H1),)))
    # two-body: (K/N) (A B + B A)/2
    for K, A, B in model.H2:
        c = sp.I * K / N / 2
        for X, Y in ((A, B), (B, A)):
            terms.append((c, (X, Y, V)))
            terms.append((-c, (V, X, Y)))
    # collective jumps (Gamma/N) D[L_tot]
    for Gamma, L in model.collective:
        Ld = L.H
        c = Gamma / N
        terms.append((c, (Ld, V, L)))
        terms.append((-c / 2, (Ld, L, V)))
        terms.append((-c / 2, (V, Ld, L)))
    # local jumps gamma sum_i D[L^(i)]: a one-body operator
    for gamma, L in model.local:
        Ld = L.H
        M = Ld * V * L - (Ld * L * V + V * Ld * L) / 2
        terms.append((gamma, (M,)))
    return terms


_N = sp.Symbol("N", positive=True)


def _xi_symbols(model: UnitModel):
    return tuple(sp.Symbol(c, real=True) for c in model.coords)


@functools.lru_cache(maxsize=64)
def _exact_drift(model: UnitModel):
    """``d xi / dt`` for the product state at finite N, exact (a SymPy column in N, xi)."""
    xi = _xi_symbols(model)
    d = model.d
    basis = model.basis
    # Tr(rho X) = (Tr X + sum_b xi_b Tr(v_b X)) / d, with Tr(v_b X) = sum_ij (v_b)_ji X_ij
    # summed over the few non-zero entries of v_b.
    nz = [[(i, j, v[j, i]) for i in range(d) for j in range(d) if v[j, i] != 0] for v in basis]

    @functools.lru_cache(maxsize=None)
    def tr_rho(X):
        out = X.trace()
        for x, entries in zip(xi, nz):
            out += x * sum(c * X[i, j] for i, j, c in entries)
        return out / d

    @functools.lru_cache(maxsize=None)
    def product(mats):
        out = mats[0]
        for M in mats[1:]:
            out = out * M
        return sp.ImmutableMatrix(out.applyfunc(sp.expand))

    n = model.n
    E = []
    for V in basis:
        e = sp.Integer(0)
        for c, word in _adjoint_words(model, V):
            e += c * _word_expectation(word, tr_rho, _N, product)
        E.append(e)
    # <V_alpha_tot> = N Tr(rho v_alpha) = (N/d) sum_b G_ab xi_b with G_ab = Tr(v_a v_b)
    G = sp.Matrix(n, n, lambda a, b: sp.nsimplify((basis[a] * basis[b]).trace()))
    Ginv = G.inv()
    rhs = (d / _N) * Ginv * sp.Matrix(E)
    rhs = rhs.applyfunc(sp.expand)
    return xi, sp.ImmutableMatrix(rhs)


def product_state_drift(model: UnitModel):
    """The exact time derivative of ``xi`` for the product state ``rho_xi^{(x)N}`` at finite
    N, from Eq. (1) (not only its N -> infinity limit).

    Returns
    -------
    N : sympy.Symbol
    xi : tuple of sympy.Symbol
    rhs : sympy.ImmutableMatrix
        ``d xi_alpha / dt`` with ``xi_alpha`` defined by ``<V_alpha> / N = Tr(rho_xi v_alpha)``;
        a Laurent polynomial in N whose N -> infinity limit is the drift ``g`` of Eq. (5).
    """
    xi, rhs = _exact_drift(model)
    return _N, xi, rhs


def _real_part_checked(expr: sp.Expr) -> sp.Expr:
    expr = sp.expand(expr)
    if expr.has(sp.I):
        re, im = expr.as_real_imag()
        im = sp.simplify(im)
        if im != 0:
            raise ModelError(f"the derived drift is not real (imaginary part {im}); is H Hermitian?")
        expr = sp.expand(sp.simplify(re))
    return expr


def _limit_N(expr: sp.Expr) -> sp.Expr:
    """``lim_{N -> oo}`` of a Laurent polynomial in N; positive powers must cancel."""
    expr = sp.expand(expr)
    eps = sp.Symbol("eps", positive=True)
    e = sp.expand(expr.subs(_N, 1 / eps))
    poly = sp.Poly(sp.expand(e * eps**8), eps)  # no term has N^8 or beyond
    coeffs = dict(zip((m[0] for m in poly.monoms()), poly.coeffs()))
    for power, c in coeffs.items():
        if power < 8 and sp.simplify(c) != 0:
            raise ModelError(
                "the drift diverges as N -> infinity (check the 1/N scaling of the two-body "
                "terms and of the collective rates)"
            )
    return sp.expand(coeffs.get(8, sp.Integer(0)))


# --------------------------------------------------------------------------------------
# The mean-field result
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MeanField:
    """The mean-field equations (5) of a model, symbolic and compiled.

    Attributes
    ----------
    model : UnitModel
    xi : tuple of sympy.Symbol
        The components of the generalized Bloch vector (Eq. 3).
    params : tuple of sympy.Symbol
        Free parameters, in the order the numerical functions take them.
    g : sympy.ImmutableMatrix
        The drift ``g(xi)`` (column), Eq. (5).
    jacobian : sympy.ImmutableMatrix
        ``d g / d xi``.
    rhs : callable ``rhs(xi, p) -> ndarray``
        ``g`` evaluated numerically (``xi`` a length-n array, ``p`` the parameter values).
    jac : callable ``jac(xi, p) -> ndarray``
        The Jacobian evaluated numerically, shape (n, n).
    g_list : callable ``g_list(xi_list, p_list) -> list``
        ``g`` on Python lists of floats (scalar code, the fast path for integrators).
    variational : callable ``variational(y_list, p_list) -> list``
        ``(g(xi), J(xi) Phi)`` for ``y = (xi, Phi)`` with ``Phi`` an n x n matrix stored row
        by row: the variational equations giving the monodromy of a periodic orbit.
    basis_numeric : ndarray
        The basis ``v_alpha`` as a complex array of shape (n, d, d).
    """

    model: UnitModel
    xi: tuple
    params: tuple
    g: sp.ImmutableMatrix
    jacobian: sp.ImmutableMatrix
    rhs: Callable = field(repr=False, compare=False)
    jac: Callable = field(repr=False, compare=False)
    g_list: Callable = field(repr=False, compare=False)
    variational: Callable = field(repr=False, compare=False)
    basis_numeric: np.ndarray = field(repr=False, compare=False)

    @property
    def d(self) -> int:
        return self.model.d

    @property
    def n(self) -> int:
        return self.model.n

    @property
    def equations(self) -> dict[str, sp.Expr]:
        """``{component name: d component / dt}``."""
        return {str(x): e for x, e in zip(self.xi, self.g)}

    def param_values(self, values=None, **kw) -> np.ndarray:
        """Parameter values as an array in the order of :attr:`params`, from a sequence or
        keywords by symbol name; each must be a finite real number."""
        if values is not None and kw:
            raise ModelError("give parameter values either as a sequence or as keywords")
        names = [str(p) for p in self.params]
        if values is None:
            unknown = set(kw) - set(names)
            if unknown:
                raise ModelError(f"unknown parameter(s) {sorted(unknown)}; expected {names}")
            missing = [n for n in names if n not in kw]
            if missing:
                raise ModelError(f"missing parameter(s) {missing}")
            values = [kw[n] for n in names]
        values = list(values)
        if len(values) != len(names):
            raise ModelError(f"expected {len(names)} parameter values {names}, got {len(values)}")
        out = []
        for n, v in zip(names, values):
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
                raise ModelError(f"{n} must be a finite real number, got {v!r}")
            out.append(float(v))
        return np.array(out)

    def basis_arrays(self) -> np.ndarray:
        """The single-unit basis ``v_alpha`` as a complex array of shape (n, d, d)."""
        return self.basis_numeric


def _compile(xi, params, exprs):
    f = sp.lambdify((xi, params), exprs, modules="numpy", cse=True)
    return f


def derive_meanfield(model) -> MeanField:
    """Derive the mean-field equations (5) of a model with SymPy.

    Parameters
    ----------
    model : UnitModel or picorr.models.QubitModel
        A QubitModel is converted by :func:`from_qubit_model` (its N is irrelevant here).

    Returns
    -------
    MeanField
        ``g = lim_{N -> oo} d xi/dt`` for product states (see the module docstring), its
        Jacobian, and both compiled for fast numerical evaluation.
    """
    if isinstance(model, QubitModel):
        model = from_qubit_model(model)
    if not isinstance(model, UnitModel):
        raise ModelError(f"model must be a UnitModel or QubitModel, got {type(model).__name__}")
    return _derive(model)


@functools.lru_cache(maxsize=64)
def _derive(model: UnitModel) -> MeanField:
    xi, exact = _exact_drift(model)
    g = sp.ImmutableMatrix([_real_part_checked(_limit_N(e)) for e in exact])
    Jm = sp.ImmutableMatrix(g.jacobian(sp.Matrix(xi)).applyfunc(sp.expand))
    params = model.params
    f_g = _compile(xi, params, list(g))
    f_J = _compile(xi, params, Jm)
    n = model.n

    def rhs(x, p):
        return np.asarray(f_g(x, p), dtype=float).reshape(n)

    def jac(x, p):
        return np.asarray(f_J(x, p), dtype=float).reshape(n, n)

    # scalar code on Python floats for the integrators' hot loop
    g_list = sp.lambdify((xi, params), list(g), modules="math", cse=True)
    Phi = sp.Matrix(n, n, lambda i, j: sp.Symbol(f"Phi_{i}_{j}", real=True))
    var_exprs = list(g) + list(Jm * Phi)
    var = sp.lambdify((list(xi) + list(Phi), params), var_exprs, modules="math", cse=True)
    basis = np.array([np.array(v.evalf(), dtype=complex) for v in model.basis])
    return MeanField(model=model, xi=xi, params=params, g=g, jacobian=Jm, rhs=rhs, jac=jac,
                     g_list=g_list, variational=var, basis_numeric=basis)


# --------------------------------------------------------------------------------------
# Qubit models and the LMG example
# --------------------------------------------------------------------------------------
_SIGMA = {
    "x": sp.ImmutableMatrix([[0, 1], [1, 0]]),
    "y": sp.ImmutableMatrix([[0, -sp.I], [sp.I, 0]]),
    "z": sp.ImmutableMatrix([[1, 0], [0, -1]]),
    "+": sp.ImmutableMatrix([[0, 1], [0, 0]]),  # sigma_+ = (sigma_x + i sigma_y)/2, |0> = up
    "-": sp.ImmutableMatrix([[0, 0], [1, 0]]),
}


def qubit_unit_model(
    K=((0, 0, 0), (0, 0, 0), (0, 0, 0)),
    c=(0, 0, 0),
    jumps=(),
    gamma_minus=0,
    gamma_plus=0,
    gamma_z=0,
    params=(),
    name="qubit model",
) -> UnitModel:
    """A qubit model in the conventions of :class:`picorr.models.QubitModel`, with entries
    that may be SymPy expressions.

    ``H = (1/N) sum_ab K_ab J_a J_b + sum_a c_a J_a`` with ``J_a = sum_i sigma_a^(i) / 2``
    (the paper's ``V_a = 2 J_a``), collective jumps given as ``(Gamma, a_plus, a_minus, a_z)``
    meaning ``(Gamma/N) D[a_plus J_+ + a_minus J_- + a_z J_z]``, and local rates for
    ``D[sigma_-]``, ``D[sigma_+]``, ``D[sigma_z]``. The basis is Pauli, so ``xi = m``.
    """
    s = {a: _SIGMA[a] / 2 for a in "xyz"}  # single-unit spin-1/2 operators
    K = [[_exact(K[a][b]) for b in range(3)] for a in range(3)]
    for a in range(3):
        for b in range(a):
            if sp.simplify(K[a][b] - K[b][a]) != 0:
                raise ModelError(f"K must be symmetric (K[{'xyz'[a]}{'xyz'[b]}] != K[{'xyz'[b]}{'xyz'[a]}])")
    H1 = sum((_exact(c[a]) * s[ax] for a, ax in enumerate("xyz")), sp.zeros(2, 2))
    H2 = tuple(
        (K[a][b], s["xyz"[a]], s["xyz"[b]]) for a in range(3) for b in range(3) if K[a][b] != 0
    )
    coll = []
    for j in jumps:
        Gamma, ap, am, az = j
        L = _exact(ap) * _SIGMA["+"] + _exact(am) * _SIGMA["-"] + _exact(az) * s["z"]
        coll.append((Gamma, L))
    local = tuple(
        (r, _SIGMA[k])
        for r, k in ((gamma_minus, "-"), (gamma_plus, "+"), (gamma_z, "z"))
        if _exact(r) != 0
    )
    return UnitModel(
        d=2,
        H1=H1,
        H2=H2,
        collective=tuple(coll),
        local=local,
        basis=(_SIGMA["x"], _SIGMA["y"], _SIGMA["z"]),
        params=tuple(params),
        coords=("mx", "my", "mz"),
        name=name,
    )


def from_qubit_model(model: QubitModel) -> UnitModel:
    """Convert a :class:`picorr.models.QubitModel` (numbers) to a :class:`UnitModel`."""
    return qubit_unit_model(
        K=model.K,
        c=model.c,
        jumps=tuple((j.Gamma, j.a_plus, j.a_minus, j.a_z) for j in model.jumps if j.active),
        gamma_minus=model.gamma_minus,
        gamma_plus=model.gamma_plus,
        gamma_z=model.gamma_z,
        name=model.name,
    )


LMG_PARAMS = ("coupling", "h", "Gamma", "gamma")


@functools.lru_cache(maxsize=1)
def lmg_meanfield() -> MeanField:
    """The mean-field equations of the driven-dissipative LMG model, Eqs. (14)-(16), derived
    with symbolic parameters ``(coupling, h, Gamma, gamma)`` (the paper's 𝒥, h, Γ, γ).

    The model is the same one :func:`picorr.models.lmg` describes:
    ``H = (coupling/N)(J_x^2 + J_y^2) + h J_x``, ``(Gamma/N) D[J_-]``, ``gamma D[sigma_+]``.
    """
    coupling = sp.Symbol("coupling", real=True)
    h = sp.Symbol("h", real=True)
    Gamma = sp.Symbol("Gamma", nonnegative=True)
    gamma = sp.Symbol("gamma", nonnegative=True)
    um = qubit_unit_model(
        K=((coupling, 0, 0), (0, coupling, 0), (0, 0, 0)),
        c=(h, 0, 0),
        jumps=((Gamma, 0, 1, 0),),
        gamma_plus=gamma,
        params=(coupling, h, Gamma, gamma),
        name="lmg",
    )
    return derive_meanfield(um)


def _spin1():
    r2 = sp.sqrt(2)
    Sp = sp.ImmutableMatrix([[0, r2, 0], [0, 0, r2], [0, 0, 0]])  # basis m = +1, 0, -1
    Sx = (Sp + Sp.T) / 2
    Sy = (Sp - Sp.T) / (2 * sp.I)
    Sz = sp.ImmutableMatrix(sp.diag(1, 0, -1))
    return Sx, Sy, Sz, Sp


def spin1_lmg(coupling=None, h=None, Gamma=None, gamma=None) -> UnitModel:
    """A d = 3 example: the LMG model of Eqs. (14)-(15) with spin-1 units.

    ``H = (coupling/N)(S_x^2 + S_y^2) + h S_x`` with ``S_a = sum_i s_a^(i)`` (spin-1
    matrices ``s_a``), collective decay ``(Gamma/N) D[S_-]`` and local pumping
    ``gamma D[s_+ / sqrt 2]`` on every unit. Parameters left as ``None`` stay symbolic.
    The state is described in the Gell-Mann basis (8 components of ``xi``).
    """
    syms = {
        "coupling": sp.Symbol("coupling", real=True),
        "h": sp.Symbol("h", real=True),
        "Gamma": sp.Symbol("Gamma", nonnegative=True),
        "gamma": sp.Symbol("gamma", nonnegative=True),
    }
    given = {"coupling": coupling, "h": h, "Gamma": Gamma, "gamma": gamma}
    vals = {}
    params = []
    for k, v in given.items():
        if v is None:
            vals[k] = syms[k]
            params.append(syms[k])
        else:
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
                raise ModelError(f"{k} must be a finite real number, got {v!r}")
            if k in ("Gamma", "gamma") and v < 0:
                raise ModelError(f"{k} must be a finite rate >= 0, got {v!r}")
            vals[k] = _exact(v)
    Sx, Sy, Sz, Sp = _spin1()
    return UnitModel(
        d=3,
        H1=vals["h"] * Sx,
        H2=((vals["coupling"], Sx, Sx), (vals["coupling"], Sy, Sy)),
        collective=((vals["Gamma"], Sp.T),),
        local=((vals["gamma"], Sp / sp.sqrt(2)),),
        params=tuple(params),
        name="spin1_lmg",
    )


# --------------------------------------------------------------------------------------
# States
# --------------------------------------------------------------------------------------
def state_matrix(mf: MeanField, xi) -> np.ndarray:
    """``rho_xi = (1 + xi . v)/d`` (Eq. 3); ``xi`` of shape (..., n) gives (..., d, d)."""
    v = mf.basis_arrays()
    xi = np.asarray(xi, dtype=float)
    return (np.eye(mf.d) + np.einsum("...a,aij->...ij", xi, v)) / mf.d


def xi_from_state(mf: MeanField, rho) -> np.ndarray:
    """The ``xi`` of Eq. (3) for a single-unit density matrix ``rho`` (shape (..., d, d))."""
    v = mf.basis_arrays()
    G = np.einsum("aij,bji->ab", v, v).real
    t = np.einsum("...ij,aji->...a", np.asarray(rho, dtype=complex), v).real  # Tr(rho v_a)
    return mf.d * np.linalg.solve(G, t[..., None])[..., 0] if t.ndim > 1 else mf.d * np.linalg.solve(G, t)


# --------------------------------------------------------------------------------------
# Fixed points
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FixedPoint:
    """A zero of the drift, ``g(xi*) = 0``, with its linear stability.

    Attributes
    ----------
    xi : ndarray
        The fixed point.
    eigenvalues : ndarray
        Eigenvalues of the Jacobian at ``xi``, sorted by decreasing real part.
    stability : str
        ``'stable'`` (all real parts < -tol), ``'unstable'`` (some > tol) or ``'marginal'``.
    physical : bool
        ``rho_xi`` is positive semidefinite (within 1e-9).
    residual : float
        ``max |g(xi)|``.
    """

    xi: np.ndarray
    eigenvalues: np.ndarray
    stability: str
    physical: bool
    residual: float


def classify_fixed_point(mf: MeanField, x, p, *, tol: float = 1e-9) -> FixedPoint:
    """Linear stability of a zero ``x`` of the drift: eigenvalues of the Jacobian of Eq. (5)
    (``'stable'`` if all real parts < -tol, ``'unstable'`` if one is > tol, else
    ``'marginal'``) and positivity of ``rho_x``."""
    x = np.asarray(x, dtype=float)
    ev = np.linalg.eigvals(mf.jac(x, p))
    ev = ev[np.argsort(-ev.real)]
    top = ev.real[0]
    stability = "stable" if top < -tol else ("unstable" if top > tol else "marginal")
    lam = np.linalg.eigvalsh(state_matrix(mf, x))
    return FixedPoint(
        xi=x,
        eigenvalues=ev,
        stability=stability,
        physical=bool(lam.min() >= -1e-9),
        residual=float(np.abs(mf.rhs(x, p)).max()),
    )


def random_states(mf: MeanField, n: int, *, seed: int = 0, purity: float = 0.9) -> np.ndarray:
    """``n`` reproducible initial conditions: ``xi`` of ``purity |psi><psi| + (1-purity) 1/d``
    for random pure states ``psi`` (seeded), shape (n, d^2 - 1)."""
    rng = np.random.default_rng(seed)
    d = mf.d
    psi = rng.normal(size=(n, d)) + 1j * rng.normal(size=(n, d))
    psi /= np.linalg.norm(psi, axis=1, keepdims=True)
    rho = purity * np.einsum("ni,nj->nij", psi, psi.conj()) + (1 - purity) * np.eye(d) / d
    return np.array([xi_from_state(mf, r) for r in rho])


def fixed_points(mf: MeanField, p, *, guesses=None, n_guesses: int = 24, seed: int = 0,
                 physical_only: bool = True, tol: float = 1e-10) -> tuple[FixedPoint, ...]:
    """Zeros of the drift (Eq. 5) with their stability (Jacobian eigenvalues).

    Newton iterations (``scipy.optimize.root``, method ``'hybr'``, analytic Jacobian) from
    ``guesses`` (default: ``n_guesses`` seeded random states of Eq. 3 plus the basis
    poles); duplicates merged. With ``physical_only`` only fixed points with a positive
    semidefinite ``rho_xi`` are returned. Not a proof that none is missed.
    """
    from scipy.optimize import root

    p = np.asarray(p, dtype=float)
    if guesses is None:
        guesses = list(random_states(mf, n_guesses, seed=seed))
        ev = np.eye(mf.n)
        guesses += list(ev) + list(-ev)
    found: list[FixedPoint] = []
    for x0 in guesses:
        sol = root(lambda x: mf.rhs(x, p), np.asarray(x0, float), jac=lambda x: mf.jac(x, p),
                   method="hybr", options={"xtol": 1e-13})
        if not sol.success or np.abs(mf.rhs(sol.x, p)).max() > tol:
            continue
        if any(np.linalg.norm(sol.x - f.xi) < 1e-7 for f in found):
            continue
        fp = classify_fixed_point(mf, sol.x, p)
        if physical_only and not fp.physical:
            continue
        found.append(fp)
    found.sort(key=lambda f: tuple(-f.xi))
    return tuple(found)


# --------------------------------------------------------------------------------------
# The h = 0 limit cycle of the LMG model (Eq. 17), derived
# --------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def lmg_limit_cycle_h0() -> dict[str, sp.Expr]:
    """Solve the LMG mean-field equations at h = 0 for a uniformly rotating solution,
    ``m = (m_xy sin(omega t), m_xy cos(omega t), m_z)`` (the form of Eq. 17).

    The ansatz is substituted into the *derived* equations (:func:`lmg_meanfield`); the
    coefficients of ``sin``, ``cos`` and the constant part give equations for ``m_xy``,
    ``omega``, ``m_z`` that SymPy solves (the branch with ``m_xy > 0``, which requires
    ``Gamma > gamma``). The solution is then substituted back and the residual simplified
    to zero as a check.

    Returns
    -------
    dict
        ``{'m_xy', 'omega', 'm_z', 't', 'residual'}`` with SymPy expressions in the symbols of
        :func:`lmg_meanfield`; ``residual`` is the simplified left-minus-right side (zeros).
    """
    mf = lmg_meanfield()
    coupling, h, Gamma, gamma = mf.params
    mx, my, mz = mf.xi
    t = sp.Symbol("t", real=True)
    r = sp.Symbol("m_xy", positive=True)
    w = sp.Symbol("omega", real=True)
    z = sp.Symbol("m_z", real=True)
    ansatz = {mx: r * sp.sin(w * t), my: r * sp.cos(w * t), mz: z}
    lhs = [sp.diff(ansatz[x], t) for x in (mx, my, mz)]
    res = [sp.expand(l - gi.subs(h, 0).subs(ansatz)) for l, gi in zip(lhs, mf.g)]
    s, c = sp.sin(w * t), sp.cos(w * t)
    eqs = []
    for e in res:
        e = sp.expand(sp.expand_trig(e))
        e = e.subs({s**2: 1 - c**2})
        e = sp.expand(e)
        poly = sp.Poly(e, s, c)
        eqs += [sp.simplify(co) for co in poly.coeffs()]
    eqs = [e for e in eqs if e != 0]
    sols = sp.solve(eqs, [r, w, z], dict=True)
    # m_xy > 0 cannot be decided symbolically for Gamma > gamma; test it at one such point
    probe = {Gamma: 2, gamma: 1, coupling: 1}
    sols = [s_ for s_ in sols if s_[r].subs(probe).is_positive]
    if len(sols) != 1:
        raise RuntimeError(f"expected one limit-cycle branch with m_xy > 0, got {sols}")
    sol = sols[0]
    check = {mx: sol[r] * sp.sin(sol[w] * t), my: sol[r] * sp.cos(sol[w] * t), mz: sol[z]}
    residual = [
        sp.simplify(sp.diff(check[x], t) - gi.subs(h, 0).subs(check)) for x, gi in zip((mx, my, mz), mf.g)
    ]
    return {"m_xy": sol[r], "omega": sol[w], "m_z": sol[z], "t": t, "residual": residual}
