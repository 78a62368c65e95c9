"""Predict the peak memory of a Krylov or coherence-window solve before it starts, and
refuse a solve that would not fit instead of being killed by the operating system.

The model (bytes), for the Hermitian real form on the window ``|q| <= Q``:

* sector factors: every sector q is a 2-D lattice on ``(J, M)`` with ``s_q`` complex
  unknowns; its LU has about ``fill(s_q) * s_q`` entries, 12 bytes each for the real
  sector 0 and 20 bytes for the complex sectors q > 0. ``fill`` is the measured growth of
  the fill of these lattices in the sectors' ordering (:func:`fill_per_unknown`);
* with single-precision factors (``precision='single'``, :class:`.krylov.RefinedFactor`)
  8 and 12 bytes an entry, plus the sector blocks that the refinement multiplies by,
  :data:`BLOCK_ENTRIES` entries per unknown in double precision;
* the Krylov basis: ``restart + 1`` vectors over the even sectors (the ones GMRES iterates
  on, :func:`.krylov.solve_sectors`), 8 bytes each;
* everything else (the operator, its folded real form and its blocks, the assembly's
  triplets, the state): ``OTHER_FIXED_BYTES + OTHER_BYTES * n`` for ``n`` real unknowns,
  plus the interpreter (:data:`BASE_BYTES`).

Refitted on 2026-12-03 for the nested-dissection factors (commit 1f819b0,
``benchmarks/bench_memory.py --sizes 200,400,600,1000 --Gamma 1.68,2.7``, shipped in
``data/benchmarks/memory_calibration.json``): the estimated factors were 1.02-1.05 times
the measured ones, and the estimate 1.09-1.15 times the peaks from N = 400 on and 1.28-1.33
at N = 200. The new ordering lowered the peaks at N = 1000 from 5.28 to 5.04 GB
(Gamma = 1.68) and from 7.90 to 7.38 GB (Gamma = 2.7), with I_M/N unchanged to 1e-15.
The calibration below, of the minimum-degree factors, set the fixed part and the bytes
per unknown, which the ordering does not change.

Recalibrated on 2026-12-02 (commit after 5724cda, ``benchmarks/bench_memory.py --sizes
200,400,600,1000 --Gamma 1.68,2.7``, fresh processes, two threads, h = 0.5): once the
changes listed below had lowered the memory outside the factors, the peak was the measured
factors, the estimated Krylov basis and -0.18 to 0.31 GB (the basis's estimate counts all
``restart + 1`` vectors), where the earlier law, 1055 * (n / 1e6) ** -0.2 bytes per real
unknown, gave 0.8-5.4 GB: the estimate was 1.63-1.82 times the peak, and it refused N = 2000
at Gamma = 1.68 with 33.3 GB where the factors and the basis are about 22 GB. The fixed
part and the bytes per unknown are round values with the estimate at least 1.05 times each
of the eight calibration peaks: 1.06-1.15 times them from N = 400 on (0.11-0.83 GB over),
1.38-1.40 at N = 200 (0.26 GB over); ``tests/test_engine.py`` checks the model against
the shipped runs. A partial run at N = 2000, Gamma = 1.68 with single-precision factors
(stopped in its first window, after 57 minutes and 228 GMRES iterations) had reached
15.62 GB against an estimate of the factors and the basis of 16.97 GB.

With single-precision factors the model also held at N = 2000, Gamma = 2.7 (commit
edcb437, ``data/benchmarks/steady_N2000_G2.7.json``, the whole scan solved): the estimate
of its last window was 23.39 GB against a measured peak of 21.36 GB (1.09 times), the peak
coming where the second window was assembled while the first one's factors were held.
Since single-precision scans are lean (:func:`.window.solve_window`, ``lean``: no sector
blocks kept for the refinement, no factors carried between windows), the same point peaked
at 19.64 GB (commit cc1b2c6, ``data/benchmarks/steady_N2000_G2.7_lean.json``), in the
second window's GMRES; the model still counts the blocks (:data:`BLOCK_ENTRIES`), so for a
lean scan it errs further on the side of refusing.

The earlier calibration, kept for the record of what lowered the memory since:

Calibrated on the peak RSS of whole solves in fresh processes with two threads (h = 0.5):
N = 200, 300, 400, 600 at Gamma = 1.68 and 2.0 (``benchmarks/bench_memory.py``) and the 15
two-thread points of the N = 800 and N = 1000 dip sweeps (``data/dip_h05_800``,
``data/dip_h05_1000``, Gamma = 2.0-3.4). The non-factor memory per real unknown rises from
about 650 bytes at N = 200 to 950 at N = 600 and falls to 720-760 at N = 1000, so a
constant (the earlier 750 bytes) was only 1.02-1.03 times the peak at N = 600 but 1.15-1.17
times it at N = 1000, which would refuse N = 1000 solves at low Gamma that fit. The
decreasing law is scaled so that the estimate is at least 1.05 times each of the 23
calibration peaks: 1.05-1.08 times at N = 600, 1.10-1.16 at N = 800, 1.08-1.10 at
N = 1000 and 1.2-1.6 times at N = 200-400 (where the excess is under 0.6 GB).
``tests/test_engine.py`` checks the estimate against a fresh measurement.

The calibration predates the coherence bands, the fixed mmap threshold
(:func:`limit_heap_retention`), the assembly of the fold by block ranges of rows
(:meth:`.HermitianFold.assemble`) and the factors freed in the thread that made them
(:class:`.krylov.OwnedFactor`), which all lower the memory per real unknown of the masked
solves; the estimate is then higher than the peak by more (N = 1000, Gamma = 1.68: 9.3 GB
against a measured 8.46 GB with the bands and the threshold, and 6.9 GB with all four),
which errs on the side of refusing. So does it after two later changes: the folded
system freed once split and ``A_ee`` not kept (:func:`.krylov.solve_sectors`), and freed
heap blocks handed back during the assembly (:func:`.liouvillian.stack_rows`); and after
the system split by colour straight from its assembled row blocks
(:func:`.krylov.colour_split`), which at N = 800, Gamma = 2.7 lowered the peak from 5.62
to 5.31 GB; and after nothing over the whole system but the fold's labels was held through
GMRES, ``A_eo`` was applied from ``A_oe`` (:func:`.krylov.transpose_scale`) and the
assembly stopped making the layout's float coordinate tables
(:meth:`.BlockLayout.coordinates`): at N = 1000, Gamma = 2.7 the first two lowered the
peak from 8.50 to 7.97 GB (whole process, ``/usr/bin/time``, same machine state), the
first window's GMRES still being the peak (7.90 GB in a 0.05 s RSS timeline, beside 7.89 GB
in the assembly of the last window, which the third lowers). With all three, the benchmark
(``benchmarks/bench_steady.py``, commit 7ba36e4) measured 7.94 GB there (8.50 before), and
5.24 GB at Gamma = 1.68 (5.63).
"""

from __future__ import annotations

import numpy as np

from ..dicke import BlockLayout
from ._result import SteadyStateError

#: Storage precisions of the sector factors (:class:`.krylov.SectorPreconditioner`).
PRECISIONS = ("double", "single")

#: Bytes per factor entry (value and SuperLU's row index) by precision, for the real
#: (sector 0) and the complex sectors.
FACTOR_ENTRY_BYTES = {"double": (12, 20), "single": (8, 12)}

#: Bytes per entry of a sector block kept in double precision (CSR value and column index),
#: real (sector 0) and complex sectors.
BLOCK_ENTRY_BYTES = (12, 20)


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else a ValueError naming them."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def single_dtype(dtype):
    """The single-precision type of a real or complex double-precision ``dtype``."""
    return np.complex64 if np.dtype(dtype).kind == "c" else np.float32


#: Entries per unknown of the sector blocks that single-precision factors keep for their
#: refinement (:class:`.krylov.RefinedFactor`), stored at 12 or 20 bytes an entry
#: (measured 4.6-4.9 at N = 40 and 80, LMG, both colours).
BLOCK_ENTRIES = 5.0

#: Folded form, its blocks, assembly and state: a fixed part and bytes per real unknown
#: (module doc).
OTHER_FIXED_BYTES = 0.35e9
OTHER_BYTES = 40.0

#: Interpreter, NumPy, SciPy and SymPy loaded (bytes).
BASE_BYTES = 0.15e9


#: glibc's malloc serves blocks smaller than its mmap threshold from its heaps, and keeps the
#: freed ones there for reuse instead of returning them to the system; by default the
#: threshold rises with the largest block freed, up to 32 MB. A large window solve frees and
#: allocates many blocks of a few to tens of MB (assembly chunks, sparse blocks, sector
#: factors, in two threads' arenas), and the heap then holds GBs the process no longer
#: uses. A fixed threshold of 16 MB maps larger blocks and unmaps them on free. Measured on
#: the whole LMG solve at N = 800 (Gamma = 1.68, one process, peak RSS and wall): default
#: 6.49 GB, 140 s; 16 MB 5.33 GB, 148 s; 4 MB 5.04 GB, 157 s; 1 MB 5.02 GB, 207 s (each
#: page of a freshly mapped block is faulted in again).
MMAP_THRESHOLD_BYTES = 16 * 2**20

_M_MMAP_THRESHOLD = -3  # mallopt parameter number in glibc's malloc.h
_mmap_threshold_set = None


def limit_heap_retention() -> int | None:
    """Fix glibc's mmap threshold at :data:`MMAP_THRESHOLD_BYTES` for this process (once);
    returns the threshold, or None where the C library is not glibc. Called by the window
    method before a large solve; it changes no result, only where freed memory goes."""
    global _mmap_threshold_set
    if _mmap_threshold_set is None:
        _mmap_threshold_set = 0
        try:
            import ctypes

            libc = ctypes.CDLL("libc.so.6")
            if libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1:
                _mmap_threshold_set = MMAP_THRESHOLD_BYTES
        except (OSError, AttributeError):
            pass
    return _mmap_threshold_set or None


def release_freed_memory() -> None:
    """Hand the free pages inside glibc's heaps back to the system (``malloc_trim``): blocks
    below the mmap threshold that were freed between others stay mapped otherwise. A no-op
    where the C library is not glibc."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class InsufficientMemoryError(SteadyStateError):
    """The estimated peak memory of a solve exceeds the memory available."""


def layout_sector_sizes(layout) -> np.ndarray:
    """``s_q`` for q = 0..Q of a :class:`.BlockLayout` (any mask and bands): the stored
    elements with ``M - M' = q``, counted from the column run of each row without listing
    the elements."""
    lo, length, _, _ = layout._row_bounds
    i = np.arange(lo.shape[1])[None, :]
    first = np.maximum(lo - i, 0)  # q of the first column at or right of the diagonal
    last = lo + length - 1 - i  # q of the last column
    ok = (length > 0) & (last >= first)
    Q = int(last[ok].max()) if ok.any() else 0
    diff = np.zeros(Q + 2)
    np.add.at(diff, first[ok], 1.0)
    np.add.at(diff, last[ok] + 1, -1.0)
    return np.cumsum(diff)[:Q + 1]


#: Matrices with fewer unknowns are ordered by minimum degree even when nested dissection is
#: asked for (:func:`.direct.factorize`): below about 20 000 unknowns the two fill alike
#: (within 5 %, measured on the sectors at N = 400) and the minimum degree is cheaper. The
#: fill law below switches there too, so the threshold is defined here, with the laws.
ND_MIN = 20_000

#: Fill law of the nested-dissection factors (:data:`.krylov.SECTOR_ORDERING`, from
#: :data:`ND_MIN` unknowns on): entries per unknown at :data:`FILL_AT` unknowns and
#: the power of the growth. Fitted to the unmasked sectors of ``benchmarks/bench_ordering.py``
#: (N = 400, 600, 1000, Gamma = 2.7, q = 0, 1, 4: 60.5-62.3, 69.2-70.2 and 80.4-82.2
#: entries at 40 000, 90 000 and 250 000 unknowns, real and complex alike), with the
#: coefficient raised 3 % for the masked sectors, whose lattices are less regular (74.7 at
#: 129 000 unknowns, N = 1000, where the unmasked law gives 73.0).
FILL_ND = (63.0, 0.155)
FILL_AT = 40200.0

#: Fill law of SuperLU's minimum degree (below :data:`ND_MIN` unknowns): 66.5 entries
#: per unknown at 40 200 unknowns (N = 400) and 99.2 at 250 500 (N = 1000), a power law
#: through both.
FILL_MMD = (66.5, 0.218)


def fill_per_unknown(s):
    """LU entries per unknown of one sector with ``s`` unknowns (measured power laws: minimum
    degree below :data:`ND_MIN` unknowns, nested dissection from there on)."""
    s = np.asarray(s, dtype=float)
    law = np.where(s < ND_MIN, FILL_MMD[0] * (s / FILL_AT) ** FILL_MMD[1],
                   FILL_ND[0] * (s / FILL_AT) ** FILL_ND[1])
    return law if law.ndim else float(law)


def other_bytes(real_unknowns):
    """Memory besides the factors, the Krylov basis and the interpreter (bytes)."""
    return OTHER_FIXED_BYTES + OTHER_BYTES * np.asarray(real_unknowns, dtype=float)


def estimate_peak_bytes(N: int, Q: int, restart: int = 60, rows=None, layout=None,
                        precision: str = "double") -> dict:
    """The predicted peak memory of a solve on the window ``Q`` (and support mask ``rows``)
    and its parts (bytes). ``layout`` (a :class:`.BlockLayout`, e.g. with coherence
    bands) is the layout solved on; by default ``BlockLayout(N, Q, rows=rows)``.
    ``precision`` is the factors' (:data:`PRECISIONS`): single-precision factors take
    :data:`FACTOR_ENTRY_BYTES` and keep their blocks (:data:`BLOCK_ENTRIES`)."""
    check_precision(precision)
    Q = int(min(Q, N))
    if layout is None:
        layout = BlockLayout(N, Q, rows=rows)
    s = layout_sector_sizes(layout)
    s = s[s > 0]
    real_unknowns = s[0] + 2 * s[1:].sum()
    real_b, complex_b = FACTOR_ENTRY_BYTES[precision]
    factors = s[0] * fill_per_unknown(s[0]) * real_b \
        + np.sum(s[1:] * fill_per_unknown(s[1:]) * complex_b)
    if precision == "single":
        real_b, complex_b = BLOCK_ENTRY_BYTES
        factors += BLOCK_ENTRIES * (s[0] * real_b + s[1:].sum() * complex_b)
    iterated = s[0] + 2 * s[2::2].sum()  # the even sectors, q = 0 real
    krylov = (restart + 1) * iterated * 8
    other = other_bytes(real_unknowns) + BASE_BYTES
    return {"total": float(factors + krylov + other), "factors": float(factors),
            "krylov": float(krylov), "other": float(other), "real_unknowns": int(real_unknowns)}


def available_bytes() -> float:
    """Memory this process can still grow into: MemAvailable plus what it already holds."""
    avail = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = float(line.split()[1]) * 1024
                    break
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    avail = (avail or 0.0) + float(line.split()[1]) * 1024
                    break
    except OSError:
        return float("inf")  # not Linux: no estimate of what is free, do not refuse
    return float("inf") if avail is None else avail


def check_memory(N: int, Q: int, restart: int = 60, max_memory: float | None = None,
                 rows=None, layout=None, precision: str = "double") -> dict:
    """Raise :class:`InsufficientMemoryError` when the solve on window ``Q`` is predicted to
    need more than ``max_memory`` bytes (default: :func:`available_bytes`); else return
    the estimate."""
    est = estimate_peak_bytes(N, Q, restart, rows, layout, precision)
    limit = available_bytes() if max_memory is None else float(max_memory)
    if est["total"] > limit:
        single = " single-precision" if precision == "single" else ""
        raise InsufficientMemoryError(
            f"N = {N} needs an estimated {est['total'] / 1e9:.1f} GB of memory at coherence "
            f"window Q = {Q} ({est['factors'] / 1e9:.1f} GB of{single} sector factors), more "
            f"than the {limit / 1e9:.1f} GB available; use a smaller N or a machine with "
            "more memory"
        )
    return est


def choose_precision(N: int, Q: int, restart: int = 60, max_memory: float | None = None,
                     layout=None, precision: str = "auto",
                     at_least: str | None = None) -> tuple[dict, str]:
    """``(estimate, precision)`` for a solve on window ``Q``: ``precision`` 'double' or
    'single' is checked as it is (:func:`check_memory`); 'auto' takes double-precision
    factors when they fit and single-precision ones (:class:`.krylov.RefinedFactor`,
    slower) when only those do. ``at_least='single'`` (a scan that has already gone to
    single precision) keeps single. Raises :class:`InsufficientMemoryError` when the
    chosen (for 'auto': the smaller) estimate does not fit."""
    if precision not in PRECISIONS + ("auto",):
        raise ValueError(f"factor_precision must be one of auto, {', '.join(PRECISIONS)}, "
                         f"got {precision!r}")
    if precision == "auto":
        if at_least != "single":
            try:
                return check_memory(N, Q, restart, max_memory, layout=layout), "double"
            except InsufficientMemoryError:
                pass
        precision = "single"
    return check_memory(N, Q, restart, max_memory, layout=layout,
                        precision=precision), precision
