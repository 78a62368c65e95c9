"""The Liouvillian of a permutation-invariant qubit model on the in-block elements
``rho_{J, M, M'}`` (Appendix A, Eqs. 22-26, generalised).

The state is a vector over a :class:`~picorr.dicke.BlockLayout`; the Liouvillian is a
sparse matrix ``L`` with ``d rho/dt = L rho``. Every term is written as a *transition*:
an element ``(J, M, M')`` feeds ``(J + dJ, M + dM, M' + dM')`` with a coefficient that is
a vectorised function of ``(J, M, M')``. Assembly evaluates all transitions for all stored
elements at once and drops those whose target is not stored (outside the block, or outside
the coherence window of the layout).

Collective part (within each block J; Eq. 23 generalised). With the effective
non-Hermitian generator ``G = -i H - (1/2) sum_m (Gamma_m/N) L_m^+ L_m``,

    L_coll rho = G rho + rho G^+ + sum_m (Gamma_m/N) L_m rho L_m^+ .

Local part (couples J to J - 1, J, J + 1; Eqs. 24-26 for sigma_+, and their
generalisation to sigma_- and sigma_z). For a single-unit operator ``a`` in
{sigma_+, sigma_-, sigma_z} with rate ``gamma_a``, the gain ``sum_i a_i rho a_i^+`` sends
``rho_{J, M, M'}`` to ``rho_{J + dJ, M + s, M' + s}`` (s = +1, -1, 0) with coefficient

    gamma_a * w_a * c_dJ(J) * g_{a, dJ}(J, M) * g_{a, dJ}(J, M'),

    c_{-1} = (N/2 + J + 1) / (J (2J + 1)),  c_0 = (N/2 + 1) / (J (J + 1)),
    c_{+1} = (N/2 - J) / ((J + 1)(2J + 1)),

where for sigma_+ (w = 1/2; Eq. 26) g_{-1} = B_+, g_0 = A_+, g_{+1} = D_+; sigma_- is the
same with M -> -M (a global spin flip maps sigma_+ to sigma_-); and for sigma_z (w = 2,
the q = 0 component of the same rank-1 tensor, sigma_z = 2 s_z) g_{-1} = sqrt(J^2 - M^2),
g_0 = M, g_{+1} = sqrt((J+1)^2 - M^2). The loss ``-(1/2){sum_i a_i^+ a_i, rho}`` is diagonal:
``sum_i a_i^+ a_i`` = N/2 - J_z (sigma_+), N/2 + J_z (sigma_-), N (sigma_z).
These formulas are checked against the full 2^N-dimensional Lindblad equation in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .dicke import BlockLayout, CollectivePolynomial
from .models import QubitModel

__all__ = ["liouvillian", "preserves_coherence_order"]


# --------------------------------------------------------------------------------------
# Local channels (Eqs. 24-26 and their generalisation)
# --------------------------------------------------------------------------------------
def _c(dJ: int, N: int, J: np.ndarray) -> np.ndarray:
    """The J-dependent weights c_dJ(J) of the local channels; 0 where undefined (J = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if dJ == -1:
            c = (N / 2 + J + 1) / (J * (2 * J + 1))
        elif dJ == 0:
            c = (N / 2 + 1) / (J * (J + 1))
        else:
            c = (N / 2 - J) / ((J + 1) * (2 * J + 1))
    return np.where(np.isfinite(c), c, 0.0)


def _g_plus(dJ: int, J: np.ndarray, M: np.ndarray) -> np.ndarray:
    """A_+, B_+, D_+ of Eq. (26) for dJ = 0, -1, +1 (clipped to 0 outside the block)."""
    if dJ == -1:
        return np.sqrt(np.clip((J - M) * (J - M - 1), 0, None))  # B_+
    if dJ == 0:
        return np.sqrt(np.clip((J - M) * (J + M + 1), 0, None))  # A_+
    return -np.sqrt(np.clip((J + M + 1) * (J + M + 2), 0, None))  # D_+


def _g_z(dJ: int, J: np.ndarray, M: np.ndarray) -> np.ndarray:
    if dJ == -1:
        return np.sqrt(np.clip(J * J - M * M, 0, None))
    if dJ == 0:
        return M
    return np.sqrt(np.clip((J + 1) ** 2 - M * M, 0, None))


#: channel -> (shift s of M and M', weight w, g(dJ, J, M), number operator n(N, M))
LOCAL_CHANNELS = {
    "+": (+1, 0.5, _g_plus, lambda N, M: N / 2 - M),
    "-": (-1, 0.5, lambda dJ, J, M: _g_plus(dJ, J, -M), lambda N, M: N / 2 + M),
    "z": (0, 2.0, _g_z, lambda N, M: np.full_like(M, float(N))),
}


# --------------------------------------------------------------------------------------
# Assembly
# --------------------------------------------------------------------------------------
@dataclass
class _Triplets:
    rows: list
    cols: list
    vals: list
    half: bool = False

    def add(self, layout: BlockLayout, src: np.ndarray, dJ: int, di, dk, val) -> None:
        """Transitions from stored elements ``src`` to (block + dJ, row + di, col + dk)."""
        jidx, i, k = (a[src] for a in layout.elements)
        # row index i = J - M: in block J' = J + dJ, M + dM sits at row (J + dJ) - (M + dM)
        tgt = layout.index(jidx + dJ, i + dJ + di, k + dJ + dk)
        ok = (tgt >= 0) & (val != 0)
        if self.half:  # keep only targets with q = M - M' = k - i >= 0
            ok &= (k + dk) >= (i + di)
        itype = np.int32 if layout.size < 2**31 else np.int64
        self.rows.append(tgt[ok].astype(itype))
        self.cols.append(src[ok].astype(itype))
        self.vals.append(np.asarray(val, dtype=complex)[ok])

    def columns(self, n: int, first: int, count: int) -> sp.csc_matrix:
        """The transitions gathered so far as the ``count`` columns from ``first`` on of an
        ``n``-row matrix (duplicates summed); the triplets are then dropped."""
        rows = np.concatenate(self.rows) if self.rows else np.zeros(0, np.int64)
        cols = np.concatenate(self.cols) - first if self.cols else np.zeros(0, np.int64)
        vals = np.concatenate(self.vals) if self.vals else np.zeros(0, complex)
        self.rows, self.cols, self.vals = [], [], []
        out = sp.csc_matrix((vals, (rows, cols)), shape=(n, count))
        out.sum_duplicates()
        return out


def _generator(model: QubitModel) -> CollectivePolynomial:
    """``G = -i H - (1/2) sum_m (Gamma_m/N) L_m^+ L_m``."""
    G = -1j * model.hamiltonian
    for jump in model.jumps:
        if jump.active:
            L = jump.operator
            G = G + (-0.5 * jump.Gamma / model.N) * (L.dagger() * L)
    return G


#: Source elements assembled at once: bounds the triplets alive during assembly (tens of MB
#: for the LMG model) whatever the size of the layout.
ASSEMBLY_CHUNK = 1 << 17


def _transitions(model: QubitModel, layout: BlockLayout, src: np.ndarray, t: _Triplets,
                 G: CollectivePolynomial) -> None:
    """Every term of the Liouvillian acting on the stored elements ``src``, into ``t``."""
    N = model.N
    J, M, Mp = (a[src] for a in layout.JMM)
    # -- collective: G rho + rho G^+ + sum (Gamma/N) L rho L^+ --------------------------
    for d, f in G.bands(J, M).items():  # (G rho)_{M + d, M'} <- f_d(M) rho_{M, M'}
        t.add(layout, src, 0, -d, 0, f)
    for d, f in G.bands(J, Mp).items():  # (rho G^+)_{M, M' + d} <- conj f_d(M') rho_{M, M'}
        t.add(layout, src, 0, 0, -d, np.conj(f))
    for jump in model.jumps:
        if not jump.active:
            continue
        bl = jump.operator.bands(J, M)
        blp = jump.operator.bands(J, Mp)
        for d, f in bl.items():
            for dp, fp in blp.items():
                t.add(layout, src, 0, -d, -dp, (jump.Gamma / N) * f * np.conj(fp))
    # -- local: gain to J - 1, J, J + 1 and diagonal loss --------------------------------
    loss = np.zeros(src.size)
    for name, rate in model.local_rates.items():
        if rate == 0:
            continue
        s, w, g, n = LOCAL_CHANNELS[name]
        for dJ in (-1, 0, 1):
            coef = rate * w * _c(dJ, N, J) * g(dJ, J, M) * g(dJ, J, Mp)
            t.add(layout, src, dJ, -s, -s, coef)
        loss -= 0.5 * rate * (n(N, M) + n(N, Mp))
    t.add(layout, src, 0, 0, 0, loss)


def liouvillian(model: QubitModel, layout: BlockLayout | None = None, *,
                hermitian_rows: bool = False) -> sp.csr_matrix:
    """Sparse Liouvillian on the stored elements of ``layout`` (default: all of them).

    Returns the complex CSR matrix ``L`` with ``d rho/dt = L rho`` for ``rho`` stored as in
    :class:`~picorr.dicke.BlockLayout`. With a coherence window, transitions to unstored
    elements are dropped (the truncated Liouvillian ``L_Q``). ``hermitian_rows=True`` keeps
    only the rows with ``q = M - M' >= 0`` (the others are empty): for a Hermitian ``rho``
    they determine the rest, and they are all the Hermitian fold needs.

    The columns are assembled :data:`ASSEMBLY_CHUNK` source elements at a time, so the
    memory beyond the result stays bounded at large N.
    """
    if layout is None:
        layout = BlockLayout(model.N)
    if layout.N != model.N:
        raise ValueError(f"layout is for N = {layout.N} but the model has N = {model.N}")
    n = layout.size
    G = _generator(model)
    parts = []
    for first in range(0, max(n, 1), ASSEMBLY_CHUNK):
        src = np.arange(first, min(n, first + ASSEMBLY_CHUNK))
        t = _Triplets([], [], [], hermitian_rows)
        _transitions(model, layout, src, t, G)
        parts.append(t.columns(n, first, src.size))
        del t
    L = parts[0] if len(parts) == 1 else sp.hstack(parts, format="csc")
    del parts
    return L.tocsr()


def preserves_coherence_order(model: QubitModel) -> bool:
    """True when the Liouvillian conserves ``q = M - M'`` (the model's U(1) symmetry), so
    that the diagonal layout ``window = 0`` is an exact invariant subspace (Eqs. 30-31)."""
    return model.has_u1_symmetry
