"""The Dicke basis of N spin-1/2 units: spin values, multiplicities, collective operators.

A permutation-invariant state of N qubits decomposes as (Eq. 20 of the paper)

    rho_T = (+)_J  rho_J (x) 1_{dim_J} / dim_J,      J = N/2 mod 1, ..., N/2,

with ``dim_J`` the multiplicity of spin ``J`` (Eq. 21). This module holds the facts every
other module needs about that decomposition, each in one place:

* the spin values ``J`` and the magnetic quantum numbers ``M`` of a block, and the
  convention that a block is indexed by ``i = J - M`` (row) and ``k = J - M'`` (column), so
  index 0 is the state ``|J, M = J>`` (the QuTiP convention);
* ``ln dim_J`` through log-gamma, so that N = 10^6 does not overflow;
* the layout that stores all in-block elements ``rho_{J, M, M'}`` as one vector, optionally
  restricted to a window ``|M - M'| <= Q`` on the coherence order;
* collective operators written as polynomials in ``J_+, J_-, J_z`` and evaluated as banded
  matrices, vectorised over many ``(J, M)`` at once.

Conventions: spin operators ``J_a = sum_i sigma_a^(i) / 2`` (the paper's ``V_a = 2 J_a``),
``J_pm = J_x pm i J_y``; hbar = 1.
"""

from __future__ import annotations

import math

from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = [
    "j_values",
    "ln_dim",
    "block_sizes",
    "spin_matrices",
    "CollectivePolynomial",
    "BlockLayout",
]


# --------------------------------------------------------------------------------------
# Spin values and multiplicities (Eqs. 20-21)
# --------------------------------------------------------------------------------------
def j_values(N: int) -> np.ndarray:
    """Spin values ``J = N/2 mod 1, ..., N/2`` in increasing order (Eq. 20)."""
    return (N % 2) / 2 + np.arange(N // 2 + 1, dtype=float)


def ln_dim(N: int, J) -> np.ndarray:
    """Natural log of the multiplicity of spin ``J`` among N spins-1/2 (Eq. 21).

    ``dim_J = (2J+1) N! / ((N/2+J+1)! (N/2-J)!)``, evaluated with log-gamma so that it
    stays finite for any N (``dim_J`` itself overflows a float beyond N of about 1000).
    """
    J = np.asarray(J, dtype=float)
    return (
        np.log(2 * J + 1)
        + _lgamma(N + 1)
        - _lgamma(N / 2 + J + 2)
        - _lgamma(N / 2 - J + 1)
    )


def _lgamma(x) -> np.ndarray:
    """ln Gamma(x) elementwise with :func:`math.lgamma` (importing scipy.special for its
    ``gammaln`` costs a third of a second at every start of the command line)."""
    x = np.asarray(x, dtype=float)
    return np.asarray(np.frompyfunc(math.lgamma, 1, 1)(x), dtype=float)


def block_sizes(N: int) -> np.ndarray:
    """Sizes ``2J + 1`` of the blocks, in the order of :func:`j_values`."""
    return (2 * j_values(N) + 1).astype(np.int64)


def m_values(J: float) -> np.ndarray:
    """``M = J, J-1, ..., -J``: the row/column order of a block (index ``i = J - M``)."""
    return J - np.arange(int(round(2 * J)) + 1, dtype=float)


def spin_matrices(J: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense spin-J matrices ``(J_x, J_y, J_z)`` in the basis ``M = J, ..., -J``."""
    M = m_values(J)
    jp = np.diag(np.sqrt(np.clip(J * (J + 1) - M[1:] * (M[1:] + 1), 0, None)), 1)
    jm = jp.T
    return (jp + jm) / 2, (jp - jm) / 2j, np.diag(M)


# --------------------------------------------------------------------------------------
# Collective operators as polynomials in J_+, J_-, J_z
# --------------------------------------------------------------------------------------
_SHIFT = {"p": 1, "m": -1, "z": 0}


def _elementary(letter: str, J: np.ndarray, M: np.ndarray) -> np.ndarray:
    """Matrix element ``<J, M + shift| O |J, M>`` of ``O`` in {J_+ ('p'), J_- ('m'), J_z ('z')}.

    Zero (not NaN) where the target state does not exist, so that products of operators
    evaluated along a path that leaves the block vanish.
    """
    if letter == "z":
        return M.astype(float, copy=True)
    s = _SHIFT[letter]
    return np.sqrt(np.clip(J * (J + 1) - M * (M + s), 0.0, None))


@dataclass(frozen=True)
class CollectivePolynomial:
    """A polynomial in the collective operators, ``sum_w c_w  w``, each word ``w`` a product
    of ``J_+``, ``J_-``, ``J_z`` (letters 'p', 'm', 'z', applied right to left).

    Acting within every block J, it is a banded matrix: ``O |J, M> = sum_d f_d(J, M)
    |J, M + d>``, and :meth:`bands` evaluates the ``f_d`` for arrays of ``(J, M)``.
    """

    terms: tuple[tuple[str, complex], ...] = ()

    @staticmethod
    def from_dict(d: dict[str, complex]) -> "CollectivePolynomial":
        return CollectivePolynomial(tuple((w, complex(c)) for w, c in d.items() if c != 0))

    @staticmethod
    def spin(axis: str) -> "CollectivePolynomial":
        """``J_x``, ``J_y``, ``J_z``, ``J_+`` or ``J_-`` by name ('x', 'y', 'z', '+', '-')."""
        table = {
            "x": {"p": 0.5, "m": 0.5},
            "y": {"p": -0.5j, "m": 0.5j},
            "z": {"z": 1.0},
            "+": {"p": 1.0},
            "-": {"m": 1.0},
        }
        if axis not in table:
            raise ValueError(f"axis must be one of 'x', 'y', 'z', '+', '-', got {axis!r}")
        return CollectivePolynomial.from_dict(table[axis])

    def _as_dict(self) -> dict[str, complex]:
        out: dict[str, complex] = {}
        for w, c in self.terms:
            out[w] = out.get(w, 0) + c
        return out

    def __add__(self, other: "CollectivePolynomial") -> "CollectivePolynomial":
        d = self._as_dict()
        for w, c in other.terms:
            d[w] = d.get(w, 0) + c
        return CollectivePolynomial.from_dict(d)

    def __mul__(self, other):
        if isinstance(other, CollectivePolynomial):  # operator product self . other
            d: dict[str, complex] = {}
            for w1, c1 in self.terms:
                for w2, c2 in other.terms:
                    d[w1 + w2] = d.get(w1 + w2, 0) + c1 * c2
            return CollectivePolynomial.from_dict(d)
        return CollectivePolynomial.from_dict({w: c * other for w, c in self.terms})

    __rmul__ = __mul__

    def dagger(self) -> "CollectivePolynomial":
        swap = {"p": "m", "m": "p", "z": "z"}
        return CollectivePolynomial.from_dict(
            {"".join(swap[x] for x in reversed(w)): np.conj(c) for w, c in self.terms}
        )

    def bands(self, J, M) -> dict[int, np.ndarray]:
        """``{d: f_d(J, M)}`` with ``O|J, M> = sum_d f_d(J, M) |J, M + d>``, vectorised."""
        J = np.asarray(J, dtype=float)
        M = np.asarray(M, dtype=float)
        out: dict[int, np.ndarray] = {}
        for word, c in self.terms:
            val = np.ones(np.broadcast(J, M).shape, dtype=complex) * c
            Mc = M
            for letter in reversed(word):
                val = val * _elementary(letter, J, Mc)
                Mc = Mc + _SHIFT[letter]
            d = sum(_SHIFT[x] for x in word)
            out[d] = out[d] + val if d in out else val
        return out

    def matrix(self, J: float) -> np.ndarray:
        """Dense matrix of the operator in block ``J`` (basis ``M = J, ..., -J``)."""
        M = m_values(J)
        n = M.size
        out = np.zeros((n, n), dtype=complex)
        for d, f in self.bands(np.full(n, J), M).items():
            i = np.arange(n)
            tgt = i - d  # index of M + d is (J - M - d)
            ok = (tgt >= 0) & (tgt < n)
            out[tgt[ok], i[ok]] += f[ok]
        return out


# --------------------------------------------------------------------------------------
# The vectorised block state: which elements rho_{J, M, M'} are stored, and where
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BlockLayout:
    """Where each in-block element ``rho_{J, M, M'}`` lives in a vector.

    Elements are ordered by ``J`` (increasing), then row ``i = J - M``, then column
    ``k = J - M'``. With ``window = Q`` only elements with ``|M - M'| <= Q`` are stored (the
    coherence-order truncation; ``Q = 0`` keeps the diagonal only, which is exact for models
    with a U(1) symmetry). ``window=None`` stores every element: ``sum_J (2J+1)^2`` of them.

    ``rows`` (optional) restricts each block to a square ``i, k`` in ``[lo_J, hi_J)``, one
    pair per block (``lo = hi`` drops the block): the support mask of large-N solves, which
    leaves out the (J, M) where the state is negligible. It is symmetric in ``M <-> M'``, as
    the Hermitian fold requires.

    ``bands`` (optional, with a window ``Q``) restricts the coherences further, order by
    order: an array of shape ``(blocks, Q, 2)`` whose entry ``[J, q - 1]`` is the range
    ``[lo, hi]`` of ``i + k`` (twice the centre of the element, ``2J - M - M'``) kept at
    coherence order ``|M - M'| = q >= 1``. The diagonal is left to ``rows``. The ranges are
    widened on construction so that each shrinks by at least one from one order to the
    next (``lo`` rises, ``hi`` falls); every row of a block then keeps one contiguous run of
    columns, and the kept set is symmetric in ``M <-> M'``. ``bands`` is stored as a tuple
    of tuples, like ``rows``.
    """

    N: int
    window: int | None = None
    rows: tuple | None = None
    bands: tuple | None = None

    def __post_init__(self):
        if self.window is not None and (int(self.window) != self.window or self.window < 0):
            raise ValueError(f"window must be None or an integer >= 0, got {self.window!r}")
        if self.rows is not None:
            r = np.asarray(self.rows)
            n = block_sizes(self.N)
            if r.shape != (n.size, 2) or np.any(r[:, 0] < 0) or np.any(r[:, 1] > n) \
                    or np.any(r[:, 0] > r[:, 1]):
                raise ValueError("rows must hold one pair 0 <= lo <= hi <= 2J+1 per block")
            object.__setattr__(self, "rows", tuple(map(tuple, r.astype(int).tolist())))
        if self.bands is not None:
            if self.window is None:
                raise ValueError("bands need a window Q: one range per block and order 1..Q")
            b = np.array(self.bands, dtype=np.int64).reshape(-1, int(self.window), 2) \
                if int(self.window) > 0 else np.zeros((block_sizes(self.N).size, 0, 2), np.int64)
            if b.shape[0] != block_sizes(self.N).size:
                raise ValueError(f"bands must have shape (blocks, Q, 2) = "
                                 f"({block_sizes(self.N).size}, {self.window}, 2), "
                                 f"got {np.shape(self.bands)}")
            b = b.copy()
            for q in range(b.shape[1] - 2, -1, -1):  # each order inside the previous one
                b[:, q, 0] = np.minimum(b[:, q, 0], b[:, q + 1, 0] - 1)
                b[:, q, 1] = np.maximum(b[:, q, 1], b[:, q + 1, 1] + 1)
            object.__setattr__(self, "bands", tuple(map(tuple, b.reshape(b.shape[0], -1)
                                                        .tolist())))

    @cached_property
    def band_array(self) -> np.ndarray | None:
        """``bands`` as an int64 array of shape ``(blocks, Q, 2)``, or None."""
        if self.bands is None:
            return None
        return np.array(self.bands, dtype=np.int64).reshape(len(self.bands), -1, 2)

    # -- per block -----------------------------------------------------------------------
    @cached_property
    def J(self) -> np.ndarray:
        """Spin values of the blocks (increasing)."""
        return j_values(self.N)

    @cached_property
    def _row_bounds(self):
        """For every (block, row i): first and one-past-last column k, and the row offset."""
        sizes = block_sizes(self.N)
        nJ, nmax = sizes.size, int(sizes.max())
        i = np.arange(nmax)[None, :]
        n = sizes[:, None]
        Q = nmax if self.window is None else int(self.window)
        if self.rows is None:
            rlo, rhi = np.zeros_like(n), n
        else:
            r = np.asarray(self.rows, dtype=np.int64)
            rlo, rhi = r[:, :1], r[:, 1:]
        lo = np.broadcast_to(np.maximum(rlo, i - Q), (nJ, nmax))
        hi = np.minimum(np.minimum(n, rhi), i + Q + 1)
        if self.bands is not None and Q > 0:
            # orders kept to the right (k = i + q) and left (k = i - q) of each diagonal:
            # the ranges are nested (see the class doc), so they are counts of leading orders
            b = self.band_array
            right = np.zeros((nJ, nmax), dtype=np.int64)
            left = np.zeros((nJ, nmax), dtype=np.int64)
            for q in range(1, Q + 1):
                blo, bhi = b[:, q - 1, :1], b[:, q - 1, 1:]
                right += (2 * i + q >= blo) & (2 * i + q <= bhi)
                left += (2 * i - q >= blo) & (2 * i - q <= bhi)
            lo = np.maximum(lo, i - left)
            hi = np.minimum(hi, i + right + 1)
        length = np.where((i >= rlo) & (i < np.minimum(n, rhi)), np.maximum(hi - lo, 0), 0)
        start = np.zeros((nJ, nmax), dtype=np.int64)
        flat = np.cumsum(length.ravel())
        start.ravel()[1:] = flat[:-1]
        return lo.astype(np.int64), length.astype(np.int64), start, int(flat[-1])

    def precompute(self, *, coordinates: bool = True) -> "BlockLayout":
        """Compute the lazily computed tables now (``JMM`` too unless ``coordinates`` is
        False), so that threads sharing the layout read them instead of each making its own."""
        for name in ("J", "_row_bounds", "block_offsets", "elements", "band_array") \
                + (("JMM",) if coordinates else ()):
            getattr(self, name)
        return self

    def forget(self, *names: str) -> "BlockLayout":
        """Drop the lazily computed per-element tables ``names`` (default ``elements`` and
        ``JMM``: three int64 and three float arrays over the elements, 0.34 GB at N = 1000,
        window 34 with its mask); they are computed again when asked. A large solve holds
        the layout through its factorisation and GMRES, which need none of them."""
        for name in names or ("elements", "JMM"):
            if name not in ("elements", "JMM", "diagonal", "band_array"):
                raise ValueError(f"names must be per-element tables of the layout "
                                 f"('elements', 'JMM', 'diagonal', 'band_array'), got {name!r}")
            self.__dict__.pop(name, None)
        return self

    @property
    def size(self) -> int:
        """Number of stored elements (unknowns)."""
        return self._row_bounds[3]

    @cached_property
    def block_offsets(self) -> np.ndarray:
        """Index of the first element of each block; last entry is ``size``."""
        lo, length, start, total = self._row_bounds
        return np.append(start[:, 0], total)

    # -- per element ---------------------------------------------------------------------
    @cached_property
    def elements(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(jidx, i, k)`` for every stored element, in storage order (int64 arrays)."""
        lo, length, start, total = self._row_bounds
        jj, ii = np.nonzero(length > 0)
        lens = length[jj, ii]
        jidx = np.repeat(jj, lens)
        i = np.repeat(ii, lens)
        first = np.repeat(start[jj, ii], lens)
        k = np.repeat(lo[jj, ii], lens) + (np.arange(total) - first)
        return jidx, i, k

    @cached_property
    def JMM(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(J, M, M')`` of every stored element (float arrays, half-integers exact)."""
        jidx, i, k = self.elements
        J = self.J[jidx]
        return J, J - i, J - k

    def coordinates(self, idx) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(J, M, M')`` of the stored elements ``idx``: :attr:`JMM` at ``idx`` (the same
        numbers), taken from :attr:`elements` when ``JMM`` has not been made, so that the
        assembly, which asks for a range at a time, never holds the whole float tables
        (0.17 GB at N = 1000, window 34 with its mask)."""
        if "JMM" in self.__dict__:
            return tuple(a[idx] for a in self.JMM)
        jidx, i, k = (a[idx] for a in self.elements)
        J = self.J[jidx]
        return J, J - i, J - k

    def index(self, jidx, i, k) -> np.ndarray:
        """Storage index of ``(block, row, column)``; -1 where the element is not stored
        (outside the block or outside the window). Vectorised."""
        lo, length, start, _ = self._row_bounds
        jidx = np.asarray(jidx, dtype=np.int64)
        i = np.asarray(i, dtype=np.int64)
        k = np.asarray(k, dtype=np.int64)
        jidx, i, k = np.broadcast_arrays(jidx, i, k)
        shape = jidx.shape
        jidx, i, k = jidx.ravel(), i.ravel(), k.ravel()
        nJ, nmax = lo.shape
        inb = (jidx >= 0) & (jidx < nJ) & (i >= 0) & (i < nmax)
        flat = jidx * nmax + i  # one flat lookup instead of three 2-D fancy indexings
        flat[~inb] = 0
        off = k - lo.ravel().take(flat)
        ok = inb & (off >= 0) & (off < length.ravel().take(flat))
        out = start.ravel().take(flat)
        out += off
        out[~ok] = -1
        return out.reshape(shape)

    @cached_property
    def diagonal(self) -> np.ndarray:
        """Storage indices of the diagonal elements ``rho_{J, M, M}`` (block by block)."""
        jidx, i, k = self.elements
        return np.nonzero(i == k)[0]

    @property
    def trace_row(self) -> int:
        """The element ``(J = N/2, M = N/2, M' = N/2)``: its equation is replaced by the
        trace condition in steady-state solves. With a ``rows`` mask that leaves it out: the
        first diagonal element of the highest block kept."""
        if self.rows is None:
            return int(self.index(self.J.size - 1, 0, 0))
        top = max(j for j, (lo, hi) in enumerate(self.rows) if hi > lo)
        lo = self.rows[top][0]
        return int(self.index(top, lo, lo))
