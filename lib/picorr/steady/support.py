"""The support mask of large-N solves: leave out the (J, M) where the state is negligible.

Populations of a permutation-invariant steady state obey a large-deviation law,
``ln p_N(j, m) ~ -N I(j, m)`` with ``j = 2J/N`` and ``m = 2M/N``, so a solution at a smaller
``N_c`` predicts where ``p_N`` falls below ``eps`` (relative to its largest value):
``(N / N_c) log p_{N_c}(j, m) < log eps``. Each block ``J`` keeps the rows (``M`` values)
between the first and last predicted above ``eps``, widened by a margin and by the
neighbouring blocks' rows; coherences ``rho_{J,M,M'}`` are kept when both ``M`` and ``M'``
are (positivity bounds ``|rho_{J,M,M'}|^2 <= p_{J,M} p_{J,M'}``).

The prediction is checked, not trusted: the returned state's residual is evaluated on the
mask widened by the reach of the Liouvillian (:func:`dilate`), so the flux into the rows
left out counts in the residual that must pass the tolerance.
"""

from __future__ import annotations

import numpy as np

from ..dicke import BlockLayout, block_sizes, j_values
from ..liouvillian import LiouvillianAction
from ..states import BlockState
from ._result import hermitian_row_weights

#: Relative population below which (J, M) rows are left out of the rate equations (h = 0):
#: their sparse LU is cheap, so the mask there keeps the answer to round-off.
MASK_EPS = 1e-16

#: The same for the coherence-window method, where the rows kept are what sets time and
#: memory. Dropping rows below eps changes I_M/N by about 3 eps and shows as a flux into
#: them (the leak residual) of the same size. Measured for the LMG model at N = 400,
#: Gamma = 1.68, whole solves in one process: eps = 1e-16 keeps 59 % of the rows, leak
#: 2.5e-16, 52 s, 2.41 GB; 1e-12 keeps 50 %, I_M/N changed by 3.1e-12, leak 3.1e-12, 40 s,
#: 2.11 GB; 1e-10 keeps 45 %, I_M/N changed by 2.8e-10, leak 2.9e-10. 1e-12 leaves a
#: factor of 300 to the scan's default tolerance of 1e-9 in I_M/N.
WINDOW_MASK_EPS = 1e-12

#: Relative amplitude below which coherences are left out of the window method, order by
#: order (:func:`predict_bands`). Measured for the LMG model (h = 0.5, Gamma = 1.68), whole
#: solves against the same row mask without bands: at N = 400, 1e-12 keeps 82 % of the
#: elements, I_M/N changed by 1.2e-12, leak 6.0e-12, 29.6 s, 2.03 GB; 1e-11 keeps 75 %, 1.4e-11,
#: leak 6.4e-11, 26.1 s, 1.93 GB; 1e-10 keeps 67 %, 1.8e-10, leak 9.5e-10 (relative residual
#: 3.3e-11, a third of the default tolerance), 24.2 s, 1.76 GB. At N = 1000, 1e-11 keeps 69 %,
#: I_M/N changed by 1.35e-11. 1e-11 leaves a factor of 70 to the scan's 1e-9.
WINDOW_BAND_EPS = 1e-11


def _m_range(N: int, rows) -> tuple[np.ndarray, np.ndarray]:
    """Per block: the kept M as [m_lo, m_hi] (twice M, integers); empty blocks give lo > hi."""
    J2 = np.rint(2 * j_values(N)).astype(np.int64)
    r = np.asarray(rows, dtype=np.int64)
    return J2 - 2 * (r[:, 1] - 1), J2 - 2 * r[:, 0]


def _rows_from_m(N: int, m_lo2: np.ndarray, m_hi2: np.ndarray) -> tuple:
    J2 = np.rint(2 * j_values(N)).astype(np.int64)
    n = block_sizes(N)
    m_lo2 = np.maximum(m_lo2, -J2)
    m_hi2 = np.minimum(m_hi2, J2)
    lo = (J2 - m_hi2 + 1) // 2  # i = J - M, rounded inwards to the block's grid
    hi = (J2 - m_lo2) // 2 + 1
    lo, hi = np.clip(lo, 0, n), np.clip(hi, 0, n)
    hi = np.maximum(hi, lo)
    return tuple(zip(lo.tolist(), hi.tolist()))


def dilate(N: int, rows, by: int) -> tuple:
    """``rows`` widened by ``by`` in M and by the rows of the neighbouring blocks J +- 1
    (the Liouvillian moves J by at most 1 and M by at most 1 per term)."""
    lo2, hi2 = _m_range(N, rows)
    empty = lo2 > hi2
    lo2 = np.where(empty, np.iinfo(np.int64).max // 4, lo2)
    hi2 = np.where(empty, -np.iinfo(np.int64).max // 4, hi2)
    nlo, nhi = lo2.copy(), hi2.copy()
    nlo[1:] = np.minimum(nlo[1:], lo2[:-1])
    nlo[:-1] = np.minimum(nlo[:-1], lo2[1:])
    nhi[1:] = np.maximum(nhi[1:], hi2[:-1])
    nhi[:-1] = np.maximum(nhi[:-1], hi2[1:])
    return _rows_from_m(N, nlo - 2 * by, nhi + 2 * by)


def predict_rows(N: int, coarse_state, eps: float = MASK_EPS, margin: int | None = None):
    """Rows to keep at ``N`` from the steady state ``coarse_state`` (a BlockState) at a
    smaller N, by the large-deviation scaling; ``margin`` rows added on each side (default
    ``2 + N // 50``)."""
    lay = coarse_state.layout
    Nc = lay.N
    d = lay.diagonal
    Jc, Mc, _ = lay.JMM
    p = np.maximum(coarse_state.rho[d].real, 1e-300)
    logp = np.log10(p / p.max()) * (N / Nc)
    # the coarse populations on a (j, m) grid: rows 2*Jc, columns 2*Mc + Nc
    grid = np.full((Nc + 1, 2 * Nc + 1), -np.inf)
    grid[np.rint(2 * Jc[d]).astype(int), np.rint(2 * Mc[d]).astype(int) + Nc] = logp
    # each fine (J, M) looks up the nearest coarse (Jc, Mc) of the same parity grid
    J = j_values(N)
    keep_lo = np.full(J.size, 1, dtype=np.int64)
    keep_hi = np.full(J.size, 0, dtype=np.int64)
    jc_all = np.rint(2 * j_values(Nc)).astype(int)  # allowed 2*Jc
    for b, Jv in enumerate(J):
        M = Jv - np.arange(int(round(2 * Jv)) + 1)
        j2 = Jv * Nc / N * 2
        jc2 = jc_all[np.argmin(np.abs(jc_all - j2))]
        mc2 = np.rint(M * Nc / N * 2).astype(int)
        mc2 = np.clip(mc2, -jc2, jc2)
        mc2 += (mc2 + jc2) % 2 * np.where(mc2 < jc2, 1, -1)  # same parity as 2*Jc
        ok = grid[jc2, mc2 + Nc] >= np.log10(eps)
        if ok.any():
            idx = np.flatnonzero(ok)
            keep_lo[b], keep_hi[b] = idx[0], idx[-1] + 1
    rows = tuple(zip(keep_lo.tolist(), np.maximum(keep_hi, keep_lo).tolist()))
    rows = tuple((lo, hi) if hi > lo else (0, 0) for lo, hi in rows)
    margin = 2 + N // 50 if margin is None else int(margin)
    return dilate(N, rows, margin)


#: An empty band (lo > hi) that does not widen the orders below it.
EMPTY = 2**40


def predict_bands(N: int, window: int, coarse_state, eps: float = WINDOW_MASK_EPS,
                  margin: int | None = None) -> np.ndarray:
    """Coherence bands (see :class:`.BlockLayout`, ``bands``) for orders ``1..window`` at
    ``N`` from the steady state ``coarse_state`` at a smaller ``N_c``.

    The large-deviation law of the populations holds for every element:
    ``ln |rho_N(j, mu, q/N)| ~ -N I(j, mu, q/N)`` with ``mu = (M + M')/N`` the centre of the
    element, relative to the largest element. (The same law makes the window needed grow like
    sqrt(N): for ``I`` quadratic in ``q/N``, the decay in q is ``exp(-c q^2 / N)``.) So the
    coarse elements above ``eps ** (N_c / N)`` of the largest, scaled by ``N / N_c`` in J, in
    the centre and in q, predict where the fine ones are above ``eps``. For each fine block
    and order the centre range is taken over the nearest coarse block and its two
    neighbours, at the coarse order ``floor(q N_c / N)`` (amplitudes fall with q), widened
    by ``margin`` (default ``2 + N // 50``, as for the rows) on each side. Returns an int
    array ``(blocks, window, 2)`` of ranges of ``i + k`` (empty where ``lo > hi``).
    """
    lay = coarse_state.layout
    Nc = lay.N
    jidx, i, k = lay.elements
    a = np.abs(coarse_state.rho)
    la = np.log10(np.maximum(a, 1e-300) / a.max()) * (N / Nc)
    keep = la >= np.log10(eps)
    qc_all = np.abs(i - k)[keep]
    jc = jidx[keep]
    Mcen = (lay.J[jc] - (i[keep] + k[keep]) / 2.0) * (N / Nc)  # centre, fine units
    nJc = lay.J.size
    Qc = int(qc_all.max()) if qc_all.size else 0
    big = np.inf
    mlo = np.full((nJc, Qc + 1), big)
    mhi = np.full((nJc, Qc + 1), -big)
    np.minimum.at(mlo, (jc, qc_all), Mcen)
    np.maximum.at(mhi, (jc, qc_all), Mcen)
    # neighbouring coarse blocks
    mlo = np.minimum(mlo, np.minimum(np.r_[mlo[1:], mlo[-1:]], np.r_[mlo[:1], mlo[:-1]]))
    mhi = np.maximum(mhi, np.maximum(np.r_[mhi[1:], mhi[-1:]], np.r_[mhi[:1], mhi[:-1]]))
    margin = 2 + N // 50 if margin is None else int(margin)
    J = j_values(N)
    jcoarse = np.rint(J * Nc / N * 2) / 2  # nearest coarse J on the coarse grid
    b_of = np.clip(np.searchsorted(lay.J, jcoarse - 0.25), 0, nJc - 1)
    out = np.empty((J.size, int(window), 2), dtype=np.int64)
    for q in range(1, int(window) + 1):
        qc = min(int(q * Nc // N), Qc)
        lo_m, hi_m = mhi[b_of, qc] + margin, mlo[b_of, qc] - margin  # M high -> i + k low
        ok = np.isfinite(lo_m) & np.isfinite(hi_m)
        # i + k = 2J - 2 M_centre, rounded outwards
        out[:, q - 1, 0] = np.where(ok, np.floor(2 * J - 2 * np.where(ok, lo_m, 0)), EMPTY)
        out[:, q - 1, 1] = np.where(ok, np.ceil(2 * J - 2 * np.where(ok, hi_m, 0)), -EMPTY)
    return out


def support_fraction(N: int, rows) -> float:
    """Kept share of the (J, M) rows."""
    r = np.asarray(rows)
    return float((r[:, 1] - r[:, 0]).sum() / block_sizes(N).sum())


def masked_layout(N: int, window: int, rows) -> BlockLayout:
    return BlockLayout(N, window, rows=rows)


def embed(rho: np.ndarray, old: BlockLayout, new: BlockLayout) -> np.ndarray:
    """Carry the elements of ``rho`` (over ``old``) into the layout ``new`` (zeros elsewhere)."""
    out = np.zeros(new.size, dtype=rho.dtype)
    idx = new.index(*old.elements)
    ok = idx >= 0
    out[idx[ok]] = rho[ok]
    return out


def widened(model, layout: BlockLayout, rho: np.ndarray, *, hermitian_rows: bool = False):
    """``(state, L, leak)``: the solution ``rho`` of a masked layout carried onto the mask
    widened by the Liouvillian's reach (:func:`dilate`), the Liouvillian there (as a
    :class:`.LiouvillianAction`, assembled a block range at a time for each product and
    never held whole), and the residual ``||(L rho)_e||`` over the elements ``e`` the mask
    left out (the flux into them; weighted as in :func:`.hermitian_row_weights` when only
    q >= 0 rows are kept). The residual of the returned state on ``L`` then counts that
    flux."""
    N = model.N
    wide = BlockLayout(N, layout.window, rows=dilate(N, layout.rows, 2))
    state = BlockState(wide, embed(rho, layout, wide))
    from .krylov import default_threads
    L = LiouvillianAction(model, wide, hermitian_rows=hermitian_rows, threads=default_threads())
    outside = np.ones(wide.size, bool)
    outside[wide.index(*layout.elements)] = False
    r2 = np.abs(L @ (state.rho / state.trace)) ** 2
    if hermitian_rows:
        r2 *= hermitian_row_weights(wide)
    return state, L, float(np.sqrt(np.sum(r2[outside])))
