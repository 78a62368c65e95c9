"""Restarted GMRES for an operator that is already preconditioned, orthogonalising with
classical Gram-Schmidt and selective reorthogonalisation (block operations on the whole
Krylov basis), optionally with deflated restarting (GMRES-DR).

SciPy's :func:`scipy.sparse.linalg.gmres` orthogonalises each new vector against the basis
one vector at a time (modified Gram-Schmidt, two NumPy passes and a temporary per basis
vector). At the window method's sizes that is a large part of an iteration: against 60
basis vectors of 3.55 M unknowns (N = 1000, Gamma = 2.7) it took 1.02 s, where classical
Gram-Schmidt done twice (the products ``V^T w`` and ``V c`` with the whole basis) took
0.56 s, with one BLAS thread as :func:`.steady_state` runs (the sector solves of one
iteration take about 1.3 s there). Classical Gram-Schmidt repeated once is as accurate as the modified
form ("twice is enough", Giraud, Langou & Rozloznik 2005); the repetition is made only when
the first pass cancelled more than a factor sqrt(2) of the norm, the criterion of
Daniel, Gragg, Kaufman & Stewart (1976). Everything else follows SciPy:
the same Givens rotations, restarts, true residual at each restart and stopping test
``||b - A x|| <= rtol ||b||``.

Deflated restarting (Morgan, SIAM J. Sci. Comput. 24, 20 (2002)): a plain restart throws
the Krylov space away, and with it what it had learnt of the operator's eigenvalues closest
to zero, which then slow every later cycle down again. For the window method these are the
limit cycle's slow modes. With ``deflate = k`` a full cycle that has not converged keeps the
``k`` harmonic Ritz vectors of smallest harmonic Ritz value, together with the residual, as
the first ``k + 1`` vectors of the next cycle's basis. The new basis is a recombination of
the old one made in place, so it costs no memory beyond the ``restart + 1`` vectors of the
basis.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import eig, get_lapack_funcs, qr, solve, solve_triangular
from scipy.linalg.blas import dgemv, sgemv


#: A second Gram-Schmidt pass is made when the first leaves less than this fraction of the
#: vector's norm (Daniel, Gragg, Kaufman & Stewart 1976): cancellation has then cost digits.
REORTHOGONALISE = 1 / np.sqrt(2)

#: Harmonic Ritz vectors kept across a restart by default (``deflate=None``): a third of
#: the restart length, at most this many (20 for the solvers' default restart of 60). A
#: solve that converges within its first cycle is not changed by it.
DEFLATE = 20

#: Basis columns recombined at once at a deflated restart (bounds the temporary).
RECOMBINE_CHUNK = 1 << 14

#: A deflated restart continues from the cycle's own (implicit) residual. When that differs
#: from the true residual ``b - A x`` by more than this fraction of the latter, round-off
#: has separated them and the restart is a plain one from the true residual.
DRIFT = 0.1


def check_deflate(deflate, restart: int) -> int:
    """``deflate`` as an int, or ValueError naming it: an integer from 0 (plain restarts)
    to ``restart // 2``, so that each cycle still adds at least half its basis; None is the
    default, ``min(DEFLATE, restart // 3)``."""
    if deflate is None:
        return min(DEFLATE, max(0, int(restart)) // 3)
    if isinstance(deflate, bool) or not isinstance(deflate, (int, np.integer)) \
            or not 0 <= deflate <= int(restart) // 2:
        raise ValueError(f"deflate must be an integer from 0 to restart // 2 = "
                         f"{int(restart) // 2}, got {deflate!r}")
    return int(deflate)


def harmonic_ritz_basis(H: np.ndarray, rc: np.ndarray, deflate: int) -> np.ndarray:
    """The orthonormal ``(m + 1) x (k + 1)`` coefficients of the next cycle's first basis
    vectors: the real and imaginary parts of the harmonic Ritz vectors of the ``deflate``
    harmonic Ritz values of smallest modulus (a complex pair counts for two, both kept, so
    ``k`` is ``deflate`` or ``deflate + 1``), then the residual's coefficients ``rc``.

    ``H`` is the cycle's ``(m + 1) x m`` Hessenberg matrix (``A V_m = V_{m+1} H``). The
    harmonic Ritz pairs solve ``(H_m + h^2 H_m^{-T} e_m e_m^T) g = theta g``, ``h = H[m, m-1]``
    (Morgan 2002, Eq. 2.3). Raises :class:`numpy.linalg.LinAlgError` when ``H_m`` is
    singular."""
    m = H.shape[1]
    Hm = H[:m, :m]
    em = np.zeros(m)
    em[-1] = 1.0
    G = Hm.copy()
    G[:, -1] += solve(Hm.T, em) * H[m, m - 1] ** 2
    theta, Y = eig(G)
    cols = []
    for i in np.argsort(np.abs(theta), kind="stable"):
        if len(cols) >= deflate:
            break
        if abs(theta[i].imag) <= 1e-12 * abs(theta[i]):
            cols.append(Y[:, i].real)
        elif theta[i].imag > 0:  # one of each conjugate pair spans both
            cols += [Y[:, i].real, Y[:, i].imag]
    P = np.zeros((m + 1, len(cols) + 1))
    P[:m, :-1] = np.array(cols).T
    P[:, -1] = rc
    return qr(P, mode="economic")[0]


def gmres(matvec, b: np.ndarray, x0: np.ndarray | None = None, *, rtol: float = 1e-13,
          restart: int = 60, maxiter: int = 2000, callback=None,
          deflate: int | None = 0, basis: str = "double",
          implicit: bool = False) -> tuple[np.ndarray, int, bool]:
    """Solve ``A x = b`` for a real operator ``matvec`` by GMRES restarted every ``restart``
    iterations, keeping ``deflate`` harmonic Ritz vectors across each restart (GMRES-DR;
    0: plain restarts; None: :func:`check_deflate`'s default). Returns ``(x, iterations, converged)``: converged when the true
    residual ``||b - A x||`` is at most ``rtol ||b||`` within ``maxiter`` iterations in all.
    ``callback(r)`` gets the estimated relative residual after each iteration.

    For the inner solves of a mixed-precision refinement (:func:`.krylov.solve_red_black`),
    whose operator is itself only accurate to about 1e-6: ``basis='single'`` stores the
    Krylov basis in single precision (half its memory; orthogonal to about 1e-7, ample for
    an inner tolerance of 1e-5), and ``implicit=True`` counts a cycle as converged when
    its own (implicit) residual is below ``rtol ||b||``, since the true residual of a
    noisy operator may stall above it; the caller then checks the true residual itself."""
    if basis not in ("double", "single"):
        raise ValueError(f"basis must be 'double' or 'single', got {basis!r}")
    vtype, gemv = (np.float64, dgemv) if basis == "double" else (np.float32, sgemv)
    b = np.asarray(b, dtype=float)
    n = b.size
    bnorm = float(np.linalg.norm(b))
    if bnorm == 0.0:
        return np.zeros(n), 0, True
    atol = rtol * bnorm
    x = np.zeros(n) if x0 is None else np.array(x0, dtype=float)
    r = b - matvec(x) if x.any() else b.copy()
    rnorm = float(np.linalg.norm(r))
    deflate = check_deflate(deflate, restart)
    restart = max(1, min(int(restart), n))
    deflate = min(deflate, restart // 2)
    V = np.empty((restart + 1, n), dtype=vtype)
    Hraw = np.zeros((restart + 1, restart))  # A V[:k] = V[:k+1] Hraw[:k+1, :k]
    c = np.zeros(restart + 1)  # the residual at the cycle's start is V^T c
    kept = 0  # basis vectors carried over by a deflated restart (then kept + 1 in V)
    lartg = get_lapack_funcs("lartg", dtype=np.float64)
    eps = np.finfo(vtype).eps
    its, ptol, ptol_factor = 0, atol, 1.0
    while rnorm > atol and its < maxiter:
        if not kept:
            np.multiply(r, 1.0 / rnorm, out=V[0])
            Hraw[:] = 0.0
            c[:] = 0.0
            c[0] = rnorm
        del r
        # the least-squares problem min ||c - Hraw y|| by a QR made as the cycle goes: the
        # kept leading block (dense after a deflated restart) by Householder, then one
        # Givens rotation per new column
        R = np.zeros((restart + 1, restart))
        Q0 = None
        g = c.copy()
        if kept:
            Q0, R[:kept + 1, :kept] = qr(Hraw[:kept + 1, :kept])
            g[:kept + 1] = Q0.T @ c[:kept + 1]
        rot = np.zeros((restart, 2))
        breakdown, k = False, kept
        for j in range(kept, restart):
            w = V[j + 1]
            w[:] = matvec(V[j])
            Vj = V[:j + 1].T  # n x (j+1), Fortran order: a view
            w0 = float(np.linalg.norm(w))
            h = np.zeros(j + 1)
            hn = w0
            for _ in range(2):  # classical Gram-Schmidt, repeated if it lost digits
                before = hn
                cg = gemv(1.0, Vj, w, trans=1)
                gemv(-1.0, Vj, cg, beta=1.0, y=w, overwrite_y=True)
                h += cg
                hn = float(np.linalg.norm(w))
                if hn > REORTHOGONALISE * before:
                    break
            Hraw[:j + 1, j] = h
            Hraw[j + 1, j] = hn
            if hn <= eps * w0:
                breakdown = True
            else:
                w *= 1.0 / hn
            col = Hraw[:j + 2, j].copy()
            if Q0 is not None:
                col[:kept + 1] = Q0.T @ col[:kept + 1]
            for i in range(kept, j):  # the earlier rotations on the new column
                cs, sn = rot[i]
                col[i], col[i + 1] = cs * col[i] + sn * col[i + 1], -sn * col[i] + cs * col[i + 1]
            cs, sn, mag = lartg(col[j], col[j + 1])
            rot[j] = cs, sn
            col[j], col[j + 1] = mag, 0.0
            R[:j + 2, j] = col
            g[j], g[j + 1] = cs * g[j], -sn * g[j]
            presid = abs(g[j + 1])
            its += 1
            k = j + 1
            if callback is not None:
                callback(presid / bnorm)
            if presid <= ptol or breakdown or its >= maxiter:
                break
        Rk = R[:k, :k]
        gk = g[:k].copy()
        if Rk[k - 1, k - 1] == 0.0:
            gk[k - 1] = 0.0
            Rk[k - 1, k - 1] = 1.0
        y = solve_triangular(Rk, gk)
        x += gemv(1.0, V[:k].T, y.astype(vtype))  # no double copy of a single basis
        r = b - matvec(x)
        rnorm = float(np.linalg.norm(r))
        if rnorm <= atol or breakdown or (implicit and presid <= atol):
            rnorm = min(rnorm, presid) if implicit else rnorm
            break
        # the inner tolerance for the next cycle, as SciPy adapts it (gh-8400)
        ptol_factor = max(eps, 0.25 * ptol_factor) if presid <= ptol else \
            min(1.0, 1.5 * ptol_factor)
        ptol = presid * min(ptol_factor, atol / rnorm)
        kept = 0
        if deflate and k == restart and its < maxiter:
            rc = c - Hraw @ y  # the cycle's own residual, V^T rc
            if abs(float(np.linalg.norm(rc)) - rnorm) <= DRIFT * rnorm:
                try:
                    P = harmonic_ritz_basis(Hraw, rc, deflate)
                except np.linalg.LinAlgError:
                    P = None
                if P is not None:
                    kept = P.shape[1] - 1
                    for c0 in range(0, n, RECOMBINE_CHUNK):  # V[:kept+1] = P^T V, in place
                        c1 = min(n, c0 + RECOMBINE_CHUNK)
                        V[:kept + 1, c0:c1] = P.T @ V[:, c0:c1]
                    Hnew = P.T @ Hraw @ P[:restart, :kept]
                    Hraw[:] = 0.0
                    Hraw[:kept + 1, :kept] = Hnew
                    c[:] = 0.0
                    c[:kept + 1] = P.T @ rc
    return x, its, rnorm <= atol
