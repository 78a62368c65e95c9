"""The data behind the book's figures: load it from ``data/`` when the command line has
produced it, compute a smaller version when it has not.

Every function returns plain arrays in frozen dataclasses; plotting is
:mod:`picorr.plotting`'s job. The figures of the paper:

* Fig. 1 -- ``I_M/N`` against Gamma for the LMG model: :func:`theory_curve` (Eq. 13) and
  :func:`finite_n_curve` (the master equation at one N), gathered by :func:`fig1_data`,
  which reads a sweep directory (``python -m picorr sweep ... --out data/...``) when it
  exists and otherwise computes the curves live at smaller sizes and says so.
* Fig. 2 -- the ground state of the ferromagnetic LMG model: :func:`ground_state_curve`.

and the illustrations of the chapters: :func:`dicke_populations` (the ``p_{J,M}`` of a
steady state), :func:`partition_distribution` (Eq. 10 for a product state) and
:func:`cost_vs_n` (what a steady state costs).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .dicke import j_values, ln_dim
from .groundstate import ground_state
from .models import ModelError, lmg
from .states import BlockState, product_state
from .steady import steady_state

__all__ = [
    "data_note",
    "local_minima",
    "Curve",
    "FigureData",
    "finite_n_curve",
    "theory_curve",
    "sweep_command",
    "grid_spec",
    "book_root",
    "data_dir",
    "fig1_data",
    "convergence",
    "ground_state_curve",
    "dicke_populations",
    "partition_distribution",
    "cost_vs_n",
    "block_count",
    "meanfield_trajectory",
]


# --------------------------------------------------------------------------------------
# Curves
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Curve:
    """``I_M/N`` along one parameter (Gamma for Fig. 1, h for Fig. 2).

    Attributes
    ----------
    N : int or None            -- system size (None: the N -> infinity theory)
    x : ndarray                -- the parameter values (``parameter`` names it)
    IM_per_N : ndarray         -- nats per unit
    m : ndarray, shape (k, 3)  -- the Bloch vector (time-averaged for the theory)
    parameter : str            -- 'Gamma' or 'h'
    params : dict              -- the fixed parameters (coupling, h or Gamma, gamma)
    method : str               -- how it was computed ('rates', 'krylov', 'closed form', ...)
    source : str               -- 'live' (computed now) or 'data' (loaded from disk)
    seconds : float            -- wall time of the computation (0 for loaded data)
    extra : dict               -- per-point extras (e.g. the attractor kind of the theory)
    """

    N: int | None
    x: np.ndarray
    IM_per_N: np.ndarray
    m: np.ndarray
    parameter: str
    params: dict
    method: str
    source: str
    seconds: float
    extra: dict = field(default_factory=dict)

    @property
    def Gamma(self) -> np.ndarray:
        if self.parameter != "Gamma":
            raise AttributeError(f"this curve runs along {self.parameter!r}, not Gamma")
        return self.x


def _grid(values, name: str) -> np.ndarray:
    a = np.atleast_1d(np.asarray(values, dtype=float))
    if a.ndim != 1 or a.size == 0 or not np.all(np.isfinite(a)):
        raise ModelError(f"{name} must be a non-empty 1-d array of finite numbers")
    return a


def finite_n_curve(N: int, coupling: float, h: float, Gammas, gamma: float = 1.0, **options) -> Curve:
    """``I_M/N`` of the exact finite-N steady state (Appendix A) over a grid of Gamma.

    One :func:`picorr.steady_state` call per point (``options`` are passed on); the method
    it chose is recorded (``'rates'`` for h = 0, Eqs. 30-32).
    """
    G = _grid(Gammas, "Gammas")
    t0 = time.perf_counter()
    im, ms, methods = [], [], set()
    for g in G:
        s = steady_state(lmg(N, coupling, h, float(g), gamma), **options)
        im.append(s.IM_per_N)
        ms.append(s.m)
        methods.add(s.method)
    return Curve(int(N), G, np.array(im), np.array(ms), "Gamma",
                 {"coupling": float(coupling), "h": float(h), "gamma": float(gamma)},
                 "+".join(sorted(methods)), "live", time.perf_counter() - t0)


def theory_curve(Gammas, coupling: float, h: float, gamma: float = 1.0, *, workers: int | None = None,
                 closed_form: bool = True) -> Curve:
    """``lim I_M/N`` of Eq. (13) over a grid of Gamma.

    For h = 0 (and ``closed_form``) the closed form of Eqs. (17)-(19) is used
    (:func:`picorr.macroscopic.im_per_n_h0`); otherwise the mean-field equations are
    integrated to their attractor at every Gamma by :func:`picorr.macroscopic.sweep_gamma`.
    """
    from .macroscopic import im_per_n_h0, sweep_gamma

    G = _grid(Gammas, "Gammas")
    t0 = time.perf_counter()
    params = {"coupling": float(coupling), "h": float(h), "gamma": float(gamma)}
    if h == 0 and closed_form:
        im = np.asarray(im_per_n_h0(G, gamma), dtype=float)
        mz = np.where(G > gamma, gamma / np.where(G > 0, G, 1.0), 1.0)
        m = np.column_stack([np.zeros_like(G), np.zeros_like(G), mz])
        kind = np.where(G > gamma, "limit_cycle", "fixed_point")
        return Curve(None, G, im, m, "Gamma", params, "closed form (Eqs. 17-19)", "live",
                     time.perf_counter() - t0, {"attractor": kind})
    sw = sweep_gamma(G, coupling=coupling, h=h, gamma=gamma, workers=workers)
    return Curve(None, G, np.asarray(sw.IM_per_N, float), np.asarray(sw.xi_mean, float), "Gamma", params,
                 "mean-field attractor (sweep_gamma)", "live", time.perf_counter() - t0,
                 {"attractor": sw.attractor, "converged": sw.converged, "period": sw.period})


# --------------------------------------------------------------------------------------
# Sweep directories under data/
# --------------------------------------------------------------------------------------
def grid_spec(start: float, stop: float, step: float) -> str:
    """The command line's ``start:stop:step`` grid notation."""
    return f"{start:g}:{stop:g}:{step:g}"


def sweep_command(Ns, coupling: float, h: float, Gamma_spec: str, gamma: float, out: str) -> str:
    """The command that writes a Fig. 1 sweep directory (quoted in captions)."""
    Ns = ",".join(str(int(n)) for n in Ns)
    return (f"python -m picorr sweep --N {Ns} --coupling {coupling:g} --h {h:g} "
            f"--Gamma {Gamma_spec} --gamma {gamma:g} --out {out}")


def book_root(start: Path | str | None = None) -> Path:
    """The repository root: ``$PICORR_ROOT`` if set, else the first of ``start`` (default
    the working directory) and its parents holding ``_toc.yml``, else the directory above
    ``lib/`` of this package."""
    env = os.environ.get("PICORR_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(start or Path.cwd()).resolve()
    for p in (here, *here.parents):
        if (p / "_toc.yml").is_file():
            return p
    return Path(__file__).resolve().parents[2]


def data_dir(name: str, root: Path | str | None = None) -> Path:
    """``<book root>/data/<name>``."""
    return (Path(root) if root is not None else book_root()) / "data" / name


@dataclass(frozen=True)
class FigureData:
    """The curves of one Fig. 1 panel and where they came from.

    Attributes
    ----------
    curves : tuple of Curve      -- finite-N curves, increasing N
    source : str                 -- 'data' (loaded from ``path``) or 'live' (computed now)
    path : Path                  -- the sweep directory (read, or to be written)
    command : str                -- the command that writes ``path`` at full size
    params : dict                -- coupling, h, gamma
    seconds : float              -- time spent loading or computing
    missing : tuple              -- ``(N, Gamma)`` points of that command not in ``path``
                                    (loaded data only; a sweep not finished yet)
    expected : int               -- how many points that command computes
    """

    curves: tuple
    source: str
    path: Path
    command: str
    params: dict
    seconds: float
    missing: tuple = ()
    expected: int = 0

    @property
    def sizes(self) -> list[int]:
        return [c.N for c in self.curves]

    @property
    def live(self) -> bool:
        return self.source == "live"


def _field(obj, name):
    if isinstance(obj, dict):
        return obj[name]
    return getattr(obj, name)


def _curves_from_sweep(result, params: dict) -> tuple:
    """Group a loaded sweep (arrays N, h, Gamma, IM_per_N, m) into one curve per N."""
    N = np.asarray(_field(result, "N")).astype(int).ravel()
    G = np.asarray(_field(result, "Gamma"), dtype=float).ravel()
    h = np.asarray(_field(result, "h"), dtype=float).ravel()
    im = np.asarray(_field(result, "IM_per_N"), dtype=float).ravel()
    m = np.asarray(_field(result, "m"), dtype=float).reshape(-1, 3)
    keep = np.isclose(h, params["h"]) & np.isfinite(im)
    # what each point cost (seconds, peak GB of its worker), where the sweep recorded it
    cost = {k: np.asarray(_field(result, k), dtype=float).ravel()
            for k in ("seconds", "peak_rss_gb") if _has_field(result, k)}
    curves = []
    for n in sorted(set(N[keep].tolist())):
        sel = keep & (N == n)
        order = np.argsort(G[sel])
        curves.append(Curve(int(n), G[sel][order], im[sel][order], m[sel][order], "Gamma", dict(params),
                            "sweep", "data", 0.0, {k: v[sel][order] for k, v in cost.items()}))
    return tuple(curves)


def _has_field(obj, name) -> bool:
    return name in obj if isinstance(obj, dict) else hasattr(obj, name)


def fig1_data(name: str, *, coupling: float, h: float, gamma: float = 1.0, sizes, grid: tuple,
              live_sizes, live_Gammas, root: Path | str | None = None) -> FigureData:
    """The finite-N curves of one Fig. 1 panel.

    If ``data/<name>`` exists it is read with ``picorr.sweep.load_sweep`` (the command
    line's loader; imported only then). Otherwise the curves are computed now at
    ``live_sizes`` on ``live_Gammas`` (a smaller version), and ``source == 'live'``.
    ``sizes`` and ``grid = (start, stop, step)`` describe the full sweep, for the
    regenerating command; ``grid`` may also be a tuple of such ranges (a base grid and finer
    ones where the curves turn), joined as the command line's comma-separated list.
    """
    params = {"coupling": float(coupling), "h": float(h), "gamma": float(gamma)}
    path = data_dir(name, root)
    ranges = grid if isinstance(grid[0], (tuple, list)) else (grid,)
    command = sweep_command(sizes, coupling, h, ",".join(grid_spec(*g) for g in ranges), gamma,
                            f"data/{name}")
    t0 = time.perf_counter()
    if path.is_dir():
        from .sweep import load_sweep  # the command line's format; exists once sweeps run

        curves = _curves_from_sweep(load_sweep(path), params)
        if not curves:
            raise ModelError(f"{path} holds no points with h = {h:g}")
        G = np.unique(np.round(np.concatenate([np.arange(a, b + s / 2, s) for a, b, s in ranges]),
                               9))
        have = {(c.N, round(float(x), 9)) for c in curves for x in c.x}
        missing = tuple((int(n), float(g)) for n in sizes for g in G
                        if (int(n), round(float(g), 9)) not in have)
        return FigureData(curves, "data", path, command, params, time.perf_counter() - t0,
                          missing, len(sizes) * G.size)
    curves = tuple(finite_n_curve(int(n), coupling, h, live_Gammas, gamma) for n in sorted(live_sizes))
    return FigureData(curves, "live", path, command, params, time.perf_counter() - t0)


def curves_on_grid(datas, G, *, min_N: int = 1) -> dict[int, np.ndarray]:
    """``{N: I_M/N on the grid G}`` from the curves of several :class:`FigureData` (NaN where
    a size has no point at a grid value; values matched to 1e-9). Sizes below ``min_N`` and
    sizes without any point on the grid are left out."""
    G = np.asarray(G, float)
    out: dict[int, np.ndarray] = {}
    for d in datas:
        for c in d.curves:
            if c.N is None or c.N < min_N:
                continue
            y = out.setdefault(int(c.N), np.full(G.size, np.nan))
            for i, g in enumerate(G):
                hit = np.flatnonzero(np.abs(c.x - g) < 1e-9)
                if hit.size:
                    y[i] = c.IM_per_N[hit[0]]
    return {n: y for n, y in sorted(out.items()) if np.isfinite(y).any()}


def limit_vs_theory(datas, *, coupling: float, h: float, gamma: float = 1.0, min_N: int = 1,
                    G=None, workers: int | None = 1) -> dict:
    """The finite-N curves of ``datas`` (:class:`FigureData`) extrapolated to N -> infinity
    at every Gamma of ``G`` (default: every Gamma any curve has) and compared, point by
    point, with the theory evaluated at those Gammas (:func:`theory_curve`).

    Returns ``{"G", "curves": {N: I_M/N on G}, "limit": extrapolation, "comparison":
    compare_with_theory(...), "theory": Curve}`` (sizes below ``min_N`` are left out).
    """
    from .extrapolate import compare_with_theory, extrapolate_curves

    if G is None:
        G = np.unique(np.round(np.concatenate([c.x for d in datas for c in d.curves
                                               if c.N is not None]), 9))
    G = _grid(G, "G")
    curves = curves_on_grid(datas, G, min_N=min_N)
    if not curves:
        raise ModelError(f"no finite-N curve with N >= {min_N} has a point on the grid")
    limit = extrapolate_curves(list(curves), G, np.array(list(curves.values())), min_N=min_N)
    theory = theory_curve(G, coupling=coupling, h=h, gamma=gamma, workers=workers)
    return {"G": G, "curves": curves, "limit": limit, "theory": theory,
            "comparison": compare_with_theory(limit, theory.IM_per_N)}


def convergence(curves, Gamma: float, *, atol: float = 1e-9) -> tuple[np.ndarray, np.ndarray]:
    """``(N, I_M/N)`` at ``Gamma`` on each curve whose grid contains it (within ``atol``),
    for plots of the approach to the N -> infinity limit."""
    Ns, vals = [], []
    for c in curves:
        i = int(np.argmin(np.abs(c.x - Gamma)))
        if abs(c.x[i] - Gamma) <= atol:
            Ns.append(c.N)
            vals.append(c.IM_per_N[i])
    return np.array(Ns, dtype=int), np.array(vals, dtype=float)


# --------------------------------------------------------------------------------------
# Fig. 2: the ground state
# --------------------------------------------------------------------------------------
def ground_state_curve(N: int, coupling: float, hs) -> Curve:
    """``I_M/N`` of the ferromagnetic LMG ground state (Appendix B) over a grid of h."""
    H = _grid(hs, "hs")
    t0 = time.perf_counter()
    res = [ground_state(N, coupling, float(h)) for h in H]
    return Curve(int(N), H, np.array([r.IM_per_N for r in res]), np.array([r.m for r in res]), "h",
                 {"coupling": float(coupling)}, "eigh_tridiagonal", "live", time.perf_counter() - t0,
                 {"degenerate": np.array([r.degenerate for r in res])})


# --------------------------------------------------------------------------------------
# Illustrations
# --------------------------------------------------------------------------------------
def dicke_populations(state: BlockState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(J, M, p)``: the populations ``p_{J,M} = rho_{J,M,M}`` of a block state (their sum
    is 1; the multiplicity ``dim_J`` is already inside ``rho_J``, Eq. 20)."""
    lay = state.layout
    J, M, Mp = lay.JMM
    d = lay.diagonal
    return J[d], M[d], state.rho[d].real


def partition_distribution(N: int, r: float) -> tuple[np.ndarray, np.ndarray]:
    """Eq. (10) for one product state: the distribution of ``x_1 = lambda_1 / N =
    1/2 + J/N`` (the normalised first row of the Young diagram) in ``rho_xi^{(x)N}`` with
    ``|m| = r``.

    Returns ``(x_1, p)`` with ``p`` the probabilities ``p_J`` of the blocks (summing to 1).
    As N grows, ``p`` concentrates at ``x_1 = (1 + r)/2``, the largest eigenvalue of
    ``rho_xi`` (the vector ``e_xi`` of the paper).
    """
    if not 0 <= r <= 1:
        raise ModelError(f"r must lie in [0, 1], got {r!r}")
    st = product_state(N, [0.0, 0.0, float(r)])
    return 0.5 + j_values(N) / N, st.populations


def cost_vs_n(Ns, coupling: float, h: float, Gamma: float, gamma: float = 1.0) -> dict[str, np.ndarray]:
    """Solve the steady state at each N and report its cost: ``N``, ``unknowns`` (size of
    the solved system), ``seconds`` (wall time of the solve and its checks), ``method``,
    ``IM_per_N`` and ``full_unknowns`` (``4^N``, what the full Lindblad equation would need)."""
    out = {"N": [], "unknowns": [], "seconds": [], "method": [], "IM_per_N": []}
    for n in Ns:
        s = steady_state(lmg(int(n), coupling, h, Gamma, gamma))
        out["N"].append(int(n))
        out["unknowns"].append(s.unknowns)
        out["seconds"].append(s.seconds)
        out["method"].append(s.method)
        out["IM_per_N"].append(s.IM_per_N)
    res = {k: np.array(v) for k, v in out.items()}
    res["full_unknowns"] = 4.0 ** res["N"].astype(float)
    return res


def load_benchmark(path: Path | str) -> dict:
    """The records of ``benchmarks/bench_steady.py --out`` as arrays per field value of h:
    ``{"meta": ..., "by_h": {h: {"N": array, "wall": ..., "peak_gb": ..., ...}},
    "errors": [records that failed, e.g. refused for memory], "records": [all, as read]}``
    (fields that hold lists, such as a scan or progress lines, as arrays of objects)."""
    import json

    raw = json.loads(Path(path).read_text())
    ok = [r for r in raw["records"] if "error" not in r]
    by_h: dict[float, dict] = {}
    for h in sorted({float(r["h"]) for r in ok}):
        rs = sorted((r for r in ok if float(r["h"]) == h), key=lambda r: r["N"])
        keys = dict.fromkeys(k for r in rs for k in r)  # every field any record has
        by_h[h] = {k: _column([r.get(k) for r in rs]) for k in keys}
    return {"meta": raw["meta"], "by_h": by_h,
            "errors": [r for r in raw["records"] if "error" in r], "records": raw["records"]}


def _column(values: list) -> np.ndarray:
    """One field of the records as an array; lists (a scan, progress lines) as objects."""
    if any(isinstance(v, (list, dict)) for v in values):
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out
    return np.array(values)


def measured_at(bench: dict, N: int, field: str = "peak_gb", h: float = 0.5) -> float:
    """One measured ``field`` of a loaded benchmark (:func:`load_benchmark`) at size ``N``
    and field ``h``; NaN when that solve is not in the file (missing or refused)."""
    c = bench["by_h"].get(float(h))
    if c is None or field not in c:
        return float("nan")
    at = np.flatnonzero(c["N"] == N)
    return float(c[field][at[0]]) if at.size and c[field][at[0]] is not None else float("nan")


def compare_runs(path: Path | str, other: Path | str, N: int) -> dict:
    """The same point (size ``N``, h = 0.5) in two benchmark files, e.g. one solve before
    and after a change of method: the other file's peak memory (GB) and wall time
    (minutes), the memory saved by ``path`` (GB) and the largest difference of I_M/N
    (:func:`largest_difference`). NaN for whatever a missing file or point leaves out."""
    nan = float("nan")
    mine = load_benchmark(path) if Path(path).exists() else None
    theirs = load_benchmark(other) if Path(other).exists() else None
    if theirs is None:
        return {"peak_gb": nan, "wall_min": nan, "saved_gb": nan, "same": nan}
    peak = measured_at(theirs, N)
    return {"peak_gb": peak, "wall_min": measured_at(theirs, N, "wall") / 60,
            "saved_gb": peak - measured_at(mine, N) if mine is not None else nan,
            "same": largest_difference(path, other)[0] if mine is not None else nan}


def target_text(bench: dict, N: int, minutes: float, gigabytes: float,
                h: float = 0.5) -> str:
    """Whether the solve at ``N`` (field ``h``) of a loaded benchmark met a target of
    ``minutes`` of wall time and ``gigabytes`` of peak memory, as a phrase: "within both
    targets (30 minutes and 20 GB)", "within the 20 GB target but not the 30-minute one",
    the converse, or "outside both targets"; empty when the point is not in the file."""
    wall, peak = measured_at(bench, N, "wall", h), measured_at(bench, N, "peak_gb", h)
    if not (np.isfinite(wall) and np.isfinite(peak)):
        return ""
    t, m = wall <= 60 * minutes, peak <= gigabytes
    mins, gb = f"{minutes:g}-minute", f"{gigabytes:g} GB"
    if t and m:
        return f"within both targets ({minutes:g} minutes and {gb})"
    if m:
        return f"within the {gb} target but not the {mins} one"
    if t:
        return f"within the {mins} target but not the {gb} one"
    return f"outside both targets ({minutes:g} minutes and {gb})"


def measured_line(meta: dict, detail: str = "") -> str:
    """The sentence under a benchmark table: when, at which commit, on how many cores and
    with which command it was measured (``meta`` of a benchmark file), with ``detail``
    (e.g. the parameters) before the command."""
    return (f"Measured {meta['date']} at commit `{meta['commit']}`, {meta['cores']} cores, "
            f"{detail}with `{meta['command']}`.")


def benchmark_table(bench: dict) -> str:
    """A Markdown table of a loaded benchmark (:func:`load_benchmark`): per size the method,
    the coherence window, unknowns, GMRES iterations, wall time, peak memory and I_M/N, and
    the sizes that were refused, with the line saying when, where and how it was measured.
    A solve with single-precision sector factors says so after its method."""
    rows = ["| $h$ | $N$ | method | $Q$ | unknowns | GMRES its | wall s | peak GB | $I_M/N$ |",
            "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for h, c in bench["by_h"].items():
        for i in range(len(c["N"])):
            Q = c["window"][i] if "window" in c else None
            single = "factor_precision" in c and c["factor_precision"][i] == "single"
            method = f"{c['method'][i]}{' (single)' if single else ''}"
            rows.append(f"| {h:g} | {c['N'][i]} | {method} | {'–' if Q is None else Q} | "
                        f"{c['unknowns'][i]:,} | {c['iterations'][i]} | {c['wall'][i]:.1f} | "
                        f"{c['peak_gb'][i]:.2f} | {c['IM_per_N'][i]:.10f} |")
    for r in bench["errors"]:
        wall = f" {r['wall']:.1f} " if r.get("wall") is not None else " "  # time to refuse
        if r.get("stopped"):  # killed by the benchmark's --timeout: its peak so far
            rows.append(f"| {r['h']:g} | {r['N']} | stopped | | | |{wall}| "
                        f"{r['peak_gb']:.2f} | `{r['error']}` |")  # code: -- stays --
        else:
            rows.append(f"| {r['h']:g} | {r['N']} | refused | | | |{wall}| | {r['error']} |")
    m = bench["meta"]
    Gs = sorted({float(g) for c in bench["by_h"].values() for g in c.get("Gamma", [])
                 if g is not None})
    at = f"Γ = {', '.join(f'{g:g}' for g in Gs)}γ, " if Gs else ""
    return "\n".join(rows) + "\n\n" + measured_line(m, at)


def large_run_text(bench: dict) -> str:
    """One sentence on the largest h != 0 solve of a loaded benchmark (:func:`load_benchmark`):
    its wall time and peak memory, the factors' precision, the GMRES restart and the vectors
    kept across restarts (when recorded), the iterations over the scan, the last window,
    I_M/N and the relative residual. Empty when the benchmark has no h != 0 solve."""
    hs = [h for h in bench["by_h"] if h != 0]
    if not hs:
        return ""
    h = max(hs, key=lambda v: bench["by_h"][v]["N"].max())
    c = bench["by_h"][h]
    i = int(np.argmax(c["N"]))

    def get(name):
        return c[name][i] if name in c else None

    G = get("Gamma")
    at = f"$\\Gamma = {float(G):g}\\gamma$, " if G is not None else ""
    how = []
    if get("factor_precision") is not None:
        how.append(f"{get('factor_precision')}-precision factors")
    if get("restart") is not None:
        kept = "" if get("deflate") is None else f", keeping {int(get('deflate'))} across each"
        how.append(f"GMRES restarted every {int(get('restart'))} iterations{kept}")
    how = f" ({'; '.join(how)})" if how else ""
    return (f"At $N = {int(c['N'][i])}$ ({at}$h = {h:g}\\gamma$) the whole process took "
            f"{c['wall'][i] / 60:.0f} minutes ({c['wall'][i]:.0f} s) and peaked at "
            f"{c['peak_gb'][i]:.1f} GB{how}: {int(c['iterations'][i])} GMRES iterations over "
            f"the windows of the scan, which stopped at $Q = {int(c['window'][i])}$, with "
            f"$I_M/N = {c['IM_per_N'][i]:.10f}$ and a relative residual of "
            f"{c['relative_residual'][i]:.0e}.")


def ordering_table(path: Path | str) -> tuple[str, dict]:
    """``(table, ratios)`` from ``benchmarks/bench_ordering.py --out``: a Markdown table of
    the factor entries per unknown and the time of each sector with both orderings, with
    the line saying when and how it was measured, and the ratio nested dissection / minimum
    degree of the entries at the largest N, ``{"real": ..., "complex": (lowest, highest),
    "N": ...}``."""
    import json

    raw = json.loads(Path(path).read_text())
    rows = ["| $N$ | $q$ | unknowns | min. degree: entries per unknown | s | "
            "nested dissection: entries per unknown | s | ratio |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in raw["records"]:
        a, b = r["mmd"], r["nested-dissection"]
        rows.append(f"| {r['N']} | {r['q']} | {r['unknowns']:,} | {a['fill']:.1f} | "
                    f"{a['seconds']:.2f} | {b['fill']:.1f} | {b['seconds']:.2f} | "
                    f"{b['fill'] / a['fill']:.2f} |")
    m = raw["meta"]
    top = max(r["N"] for r in raw["records"])
    ratio = {r["q"]: r["nested-dissection"]["fill"] / r["mmd"]["fill"]
             for r in raw["records"] if r["N"] == top}
    cplx = [v for q, v in ratio.items() if q > 0]
    rows.append("")
    rows.append(measured_line(m, f"$\\Gamma = {raw['records'][0]['Gamma']:g}\\gamma$, "))
    return "\n".join(rows), {"real": ratio.get(0), "complex": (min(cplx), max(cplx)),
                             "N": top}


def largest_difference(path: Path | str, *others: Path | str, key: str = "IM_per_N"):
    """``(difference, count)``: the largest absolute difference of ``key`` between the
    solved records of the benchmark file ``path`` and those of ``others`` at the same N, h
    and Gamma, and how many such pairs there are (``(nan, 0)`` when none)."""
    import json

    def solved(p):
        return {(r["N"], float(r["h"]), float(r["Gamma"])): r[key]
                for r in json.loads(Path(p).read_text())["records"] if "error" not in r}

    mine = solved(path)
    theirs = {k: v for p in others for k, v in solved(p).items()}
    diffs = [abs(mine[k] - theirs[k]) for k in mine if k in theirs]
    return (max(diffs), len(diffs)) if diffs else (float("nan"), 0)


def refusals_text(*benches: dict) -> str:
    """Plain text on the sizes the benchmarks ``benches`` (:func:`load_benchmark`) asked for
    and the solver refused for memory: when (how long the refusal took, where recorded) and
    the solver's own message. Empty when nothing was refused."""
    out = []
    for b in benches:
        for r in b["errors"]:
            if r.get("stopped"):  # not refused: see stopped_text
                continue
            G = f" at Γ = {float(r['Gamma']):g}γ" if r.get("Gamma") is not None else ""
            when = f" after {float(r['wall']):.0f} s" if r.get("wall") is not None else ""
            # the CLI's prefixes repeat what the sentence says ("--N 2000: ")
            msg = str(r["error"]).removeprefix("picorr: error: ").removeprefix(f"--N {r['N']}: ")
            out.append(f"Asked for N = {r['N']}{G} (h = {float(r['h']):g}γ), the solver "
                       f"refused{when}: “{msg}”.")
    return " ".join(out)


def stopped_text(*benches: dict) -> str:
    """Plain text on the points that the benchmarks ``benches`` (:func:`load_benchmark`)
    stopped unfinished (``bench_steady.py --timeout``): after how long, at what peak memory,
    and how far the solve had got by its progress lines: the last window it had finished at
    the point's own N, or else when its coarse solves had ended (the line of its support
    mask) and that its first window there had not. Empty when none was stopped. The lines
    are read by :func:`.steady.window.parse_progress`, beside the code that writes them."""
    from .steady.window import parse_progress

    out = []
    for b in benches:
        for r in b["errors"]:
            if not r.get("stopped"):
                continue
            N = int(r["N"])
            G = f" at Γ = {float(r['Gamma']):g}γ" if r.get("Gamma") is not None else ""
            lines = r.get("progress") or []
            said = [(ln, parse_progress(ln)) for ln in lines]
            said = [(ln, p) for ln, p in said if p is not None and p["N"] == N]
            own = [ln for ln, p in said if p["kind"] == "window"]
            mask = [(ln, p) for ln, p in said if p["kind"] == "mask"]
            if own:
                far = f" The last window it had finished: “{own[-1]}”."
            elif mask:
                ln, p = mask[-1]
                when = f" after {p['seconds']:.0f} s" if "seconds" in p else ""
                far = (f" Its coarse solves had ended{when} (“{ln}”), and its first "
                       f"window at N = {N} had not finished.")
                steps = [ln for ln, p in said if p["kind"] == "step"]
                if steps:
                    far += f" Its last step of refinement there: “{steps[-1]}”."
            else:
                far = f" It had finished no window at N = {N}."
            out.append(f"The run at N = {N}{G} (h = {float(r['h']):g}γ) had not finished "
                       f"when the benchmark stopped it after {float(r['wall']) / 60:.0f} "
                       f"minutes, with a peak memory of {float(r['peak_gb']):.1f} GB so "
                       f"far.{far}")
    return " ".join(out)


def progress_windows(bench: dict, N: int) -> list[tuple[int, int]]:
    """``(window, GMRES iterations)`` of each window at size ``N`` that the progress lines of
    a loaded benchmark's points (stopped, or finished with ``--progress``;
    :func:`progress_block`) report as finished: the coarse solves' windows when ``N`` is a
    coarse size. Empty when there is none."""
    from .steady.window import parse_progress

    said = [parse_progress(ln) for r in _with_progress(bench) for ln in r["progress"]]
    return [(p["window"], p["iterations"]) for p in said
            if p is not None and p["kind"] == "window" and p["N"] == int(N)]


def _with_progress(bench: dict) -> list[dict]:
    """The records of a loaded benchmark that kept progress lines: stopped points, and
    finished ones run with ``--progress``."""
    return [r for r in bench.get("records", bench["errors"]) if r.get("progress")
            and (r.get("stopped") or "error" not in r)]


def cold_start_table(path: Path | str) -> tuple[str, dict]:
    """The record of ``benchmarks/bench_cold_start.py --out`` (windows at one N solved each
    from a cold start) as a Markdown table with the line saying how it was measured, and a
    summary ``{"N", "windows", "iterations": (fewest, most), "iterations_text" (one number
    when they are equal), "positive": windows that kept the state positive}``."""
    import json

    raw = json.loads(Path(path).read_text())
    rec, meta = raw["record"], raw["meta"]
    rows = ["| $Q$ | GMRES its | positive | $I_M/N$ |", "|---:|---:|---|---:|"]
    for w in rec["windows"]:  # not the seconds: the machine's load changes them, not the its
        rows.append(f"| {w['window']} | {w['iterations']} | "
                    f"{'yes' if w['positive'] else 'no'} | {w['IM_per_N']:.12f} |")
    its = [w["iterations"] for w in rec["windows"]]
    lo, hi = min(its), max(its)
    line = (f"Measured {meta['date']} at commit `{meta['commit']}`, N = {rec['N']}, "
            f"Γ = {rec['Gamma']:g}γ, {rec['factor_precision']}-precision factors, "
            f"GMRES({rec['restart']}) keeping {rec['deflate']}, to {rec['gmres_tol']:.0e}, "
            f"with `{meta['command']}`.")
    return "\n".join(rows) + "\n\n" + line, {
        "N": rec["N"], "windows": [w["window"] for w in rec["windows"]],
        "iterations": (lo, hi), "iterations_text": str(lo) if lo == hi else f"{lo} to {hi}",
        "positive": [w["window"] for w in rec["windows"] if w["positive"]]}


def run_limit(bench: dict | None) -> str:
    """The time limit a benchmark was run with (``--timeout`` in its recorded command), as
    text: "90 minutes"; "(no limit)" when none was set or the file is missing."""
    import re

    limit = re.search(r"--timeout (\d+)", bench["meta"]["command"]) if bench else None
    return f"{int(limit[1]) / 60:.0f} minutes" if limit else "(no limit)"


def progress_block(bench: dict) -> str:
    """The progress lines that the points of a loaded benchmark (:func:`load_benchmark`)
    printed (``bench_steady.py --progress``; a point stopped by ``--timeout`` keeps what it
    had printed), as one fenced text block per point, each under a line naming it; empty
    when no point kept its lines."""
    out = []
    for r in _with_progress(bench):
        until = " until it was stopped" if r.get("stopped") else ""
        out.append(f"Progress lines of the run at N = {int(r['N'])}{until}:"
                   "\n\n```text\n" + "\n".join(r["progress"]) + "\n```")
    return "\n\n".join(out)


def piqs_comparison(path: Path | str) -> dict:
    """The records of ``benchmarks/bench_piqs.py --out`` (QuTiP PIQS against picorr on the
    same steady state): ``{"meta": ..., "table": Markdown, "worst_difference": largest
    |Delta I_M/N|, "largest": the record of the largest N, "text": the comparison in
    words}``."""
    import json

    raw = json.loads(Path(path).read_text())
    recs = sorted(raw["records"], key=lambda r: r["N"])
    if not recs:
        raise ValueError(f"{path}: no records")
    rows = ["| $N$ | PIQS s | PIQS GB | picorr s | picorr GB | speed-up | "
            "$I_M/N$ (picorr) | $\\lvert\\Delta I_M/N\\rvert$ | PIQS residual |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in recs:
        rows.append(f"| {r['N']} | {r['piqs_wall']:.1f} | {r['piqs_peak_gb']:.2f} | "
                    f"{r['picorr_wall']:.2f} | {r['picorr_peak_gb']:.2f} | "
                    f"{r['speedup']:.0f}x | {r['picorr_IM_per_N']:.10f} | "
                    f"{r['IM_per_N_difference']:.1e} | {r['piqs_residual']:.1e} |")
    m = raw["meta"]
    reps = recs[0].get("repeats", 1)
    how = (f"Each time is the median of {reps} processes, PIQS and picorr alternately. "
           if reps > 1 else "")
    table = ("\n".join(rows) + f"\n\n{how}"
             + measured_line(m, f"QuTiP {recs[0].get('qutip', '?')}, "))
    worst = max(r["IM_per_N_difference"] for r in recs)
    big = recs[-1]
    spread = ""
    if len(big.get("picorr_walls", [])) > 1:
        w = big["picorr_walls"]
        spread = (f" The block solver's {len(w)} processes took {min(w):.2f}–{max(w):.2f} s: "
                  f"against PIQS's median, {big['piqs_wall'] / max(w):.0f} times faster for "
                  f"the slowest and {big['piqs_wall'] / min(w):.0f} for the fastest.")
    text = (f"At $N = {big['N']}$ the block solver is {big['speedup']:.0f} times faster than "
            f"PIQS, whole process against whole process ({big['picorr_wall']:.1f} s against "
            f"{big['piqs_wall']:.0f} s, {big['picorr_peak_gb']:.2f} GB against "
            f"{big['piqs_peak_gb']:.1f} GB).{spread} The two values of $I_M/N$ differ by at most "
            f"{worst:.0e}. QuTiP's steady states leave a residual "
            f"$\\lVert \\mathcal L \\rho \\rVert$ of up to "
            f"{max(r['piqs_residual'] for r in recs):.0e} and a trace error of up to "
            f"{max(r['piqs_trace_error'] for r in recs):.0e}; the block solver's relative "
            f"residual is at most {max(r['picorr_relative_residual'] for r in recs):.0e}.")
    return {"meta": m, "table": table, "largest": big, "worst_difference": worst,
            "text": text}


def tolerance_comparison(loose: Path | str, *strict: Path | str) -> dict:
    """The window method at a looser truncation tolerance against the default one.

    ``loose`` is a ``benchmarks/bench_steady.py --window-tol TOL --out`` file (its meta has
    ``window_tol``); ``strict`` are files of the same points at the solver's default
    tolerance (several Gammas may be spread over them). Each point of ``loose`` is paired
    with the record of the same N, h and Gamma in ``strict``, whose larger window is the
    reference for the error that the looser scan leaves in I_M/N. Returns
    ``{"meta", "window_tol", "table": Markdown, "rows": the paired records,
    "worst_difference": largest |Delta I_M/N|, "text": the comparison in words}``; raises
    ValueError when a point of ``loose`` has no partner or ``loose`` has no tolerance."""
    import json

    raw = json.loads(Path(loose).read_text())
    tol = raw["meta"].get("window_tol")
    if tol is None:
        raise ValueError(f"{loose}: no window_tol in its meta (made without --window-tol)")
    ref, sources = {}, []
    for path in strict:
        other = json.loads(Path(path).read_text())
        sources.append(f"{other['meta']['date']} at `{other['meta']['commit']}`")
        for r in other["records"]:
            if "error" not in r:
                ref[int(r["N"]), float(r["h"]), float(r["Gamma"])] = r
    rows, pairs = [], []
    for r in sorted((r for r in raw["records"] if "error" not in r),
                    key=lambda r: (float(r["Gamma"]), r["N"])):
        key = (int(r["N"]), float(r["h"]), float(r["Gamma"]))
        if key not in ref:
            raise ValueError(f"{loose}: N = {key[0]}, h = {key[1]:g}, Gamma = {key[2]:g} has "
                             "no record at the default tolerance to compare with")
        d = ref[key]
        diff = abs(float(r["IM_per_N"]) - float(d["IM_per_N"]))
        pairs.append({"N": key[0], "h": key[1], "Gamma": key[2], "loose": r, "default": d,
                      "IM_per_N_difference": diff})
        rows.append(f"| {key[2]:g} | {key[0]} | {d['window']} → {r['window']} | "
                    f"{d['iterations']} → {r['iterations']} | {d['wall']:.1f} → {r['wall']:.1f} | "
                    f"{d['peak_gb']:.2f} → {r['peak_gb']:.2f} | {r['IM_per_N']:.10f} | "
                    f"{diff:.1e} |")
    if not pairs:
        raise ValueError(f"{loose}: no solved point")
    m = raw["meta"]
    table = "\n".join(
        [f"| Γ/γ | $N$ | $Q$ | GMRES its | wall s | peak GB | $I_M/N$ at {tol:g} | "
         "$\\lvert\\Delta I_M/N\\rvert$ |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        + rows) + (f"\n\nEach column: default tolerance → {tol:g}. The {tol:g} runs were "
                   f"measured {m['date']} at commit `{m['commit']}`, {m['cores']} cores, with "
                   f"`{m['command']}`; the default ones {' and '.join(dict.fromkeys(sources))}."
                   " Where both stopped at the same window, the state is the same and a "
                   "difference of time is the machine's.")
    worst = max(p["IM_per_N_difference"] for p in pairs)
    top = max(p["N"] for p in pairs)
    at_top = [p for p in pairs if p["N"] == top]
    runs = " and ".join(f"{p['loose']['wall']:.0f} s at Γ = {p['Gamma']:g}γ "
                        f"(default: {p['default']['wall']:.0f} s)" for p in at_top)
    peak = max(p["loose"]["peak_gb"] for p in at_top)
    within = "below the tolerance asked for" if worst < tol else \
        "more than the tolerance asked for: the looser scan stopped too early"
    smaller = sum(p["loose"]["window"] < p["default"]["window"] for p in pairs)
    text = (f"At `window_tol` = {tol:g} the scan stopped at a smaller window than at the "
            f"default tolerance for {smaller} of the {len(pairs)} points. "
            f"$N = {top}$ took {runs}, peaking at {peak:.2f} GB. "
            f"Against the default tolerance's larger windows, $I_M/N$ differs by at most "
            f"{worst:.1e} over these {len(pairs)} points, {within}.")
    return {"meta": m, "window_tol": tol, "table": table, "rows": pairs,
            "worst_difference": worst, "text": text}


def block_count(N: int) -> dict[str, float]:
    """How many numbers describe a permutation-invariant state of N qubits: all in-block
    elements ``sum_J (2J+1)^2`` (O(N^3)), the diagonal only ``sum_J (2J+1)`` (O(N^2)),
    against ``4^N`` for a general density matrix; and ``sum_J dim_J (2J+1) = 2^N`` as a check."""
    J = j_values(N)
    size = 2 * J + 1
    return {
        "in_block": float(np.sum(size**2)),
        "diagonal": float(np.sum(size)),
        "full": float(4.0**N),
        "hilbert_check": float(np.sum(np.exp(ln_dim(N, J)) * size)),
    }


def meanfield_trajectory(coupling: float, h: float, Gamma: float, gamma: float = 1.0, *, x0=None,
                         t_max: float = 40.0, n_points: int = 1500, rtol: float = 1e-8):
    """A solution ``m(t)`` of the LMG mean-field equations (16) for ``0 <= t <= t_max``.

    ``x0`` defaults to the first of :func:`picorr.meanfield.random_states` (the state from
    which :func:`picorr.macroscopic.lmg_macroscopic` starts with ``n_initial=1``).
    Returns ``(t, m)`` with ``m`` of shape ``(n_points, 3)``.
    """
    from scipy.integrate import solve_ivp

    from .meanfield import lmg_meanfield, random_states

    mf = lmg_meanfield()
    p = [float(coupling), float(h), float(Gamma), float(gamma)]
    x = random_states(mf, 1)[0] if x0 is None else np.asarray(x0, dtype=float)
    g = mf.g_list
    t_eval = np.linspace(0.0, float(t_max), int(n_points))
    sol = solve_ivp(lambda t, y: g(y.tolist(), p), (0.0, float(t_max)), x, method="DOP853", t_eval=t_eval,
                    rtol=rtol, atol=rtol * 1e-2)
    if sol.status != 0:
        raise RuntimeError(f"integration of Eq. (16) failed: {sol.message}")
    return sol.t, sol.y.T


def local_minima(x, y, lo: float = -np.inf, hi: float = np.inf) -> np.ndarray:
    """Grid points ``x_i`` in ``(lo, hi)`` where ``y`` has a strict interior local minimum
    (``y_{i-1} > y_i < y_{i+1}``), in increasing order: the dip of Fig. 1(b) on a grid.
    Not the minimum over the interval, which sits at its edge when the curve falls there."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    i = np.arange(1, x.size - 1)
    ok = (y[i] < y[i - 1]) & (y[i] < y[i + 1]) & (x[i] > lo) & (x[i] < hi)
    return x[i[ok]]


def coverage(d: FigureData) -> str:
    """Plain text for the prose: which of its sweep's points ``d`` holds ("all 15 points of
    its grid, Γ/γ = 2 … 3.4", "9 of its 15 points so far, at Γ/γ = …", or none when the
    page computed a smaller version live)."""
    if d.live:
        return "none in this checkout (see the note above the figure)"
    G = np.unique(np.round(np.concatenate([c.x for c in d.curves]), 9))
    if not d.missing:
        return f"all {d.expected} points of its grid, Γ/γ = {G[0]:g} … {G[-1]:g}"
    return (f"{d.expected - len(d.missing)} of its {d.expected} points so far, at Γ/γ = "
            + ", ".join(f"{g:g}" for g in G))


def point_cost(d: FigureData) -> tuple[float, float]:
    """``(minutes, GB)``: the median wall time of a point of the largest N in ``d`` and the
    largest peak memory among them, as the sweep recorded them (nan where it did not, and
    for a panel computed live)."""
    extra = d.curves[-1].extra if d.curves else {}
    seconds = np.asarray(extra.get("seconds", []), dtype=float)
    gb = np.asarray(extra.get("peak_rss_gb", []), dtype=float)
    minutes = float(np.median(seconds) / 60) if seconds.size and not d.live else float("nan")
    return minutes, (float(np.max(gb)) if gb.size and not d.live else float("nan"))


def data_note(d: FigureData) -> str:
    """MyST text of an admonition saying where the finite-N points of a Fig. 1 panel come
    from: loaded from ``data/`` (with the command that wrote them), or computed live at
    smaller sizes because the sweep directory is missing (with the command that would make
    it). Chapters display it with ``IPython.display.Markdown``."""
    if d.live:
        return (
            f":::{{admonition}} Smaller version computed live\n:class: warning\n"
            f"The sweep directory `data/{d.path.name}` is not in this checkout, so the finite-N "
            f"points below were computed while this page was built, at the smaller sizes "
            f"N = {', '.join(map(str, d.sizes))} on a coarser grid of Γ "
            f"({d.seconds:.0f} s). The full data are produced by\n\n"
            f"```bash\n{d.command}\n```\n\nand this page then loads them.\n:::"
        )
    if not d.missing:
        return (f":::{{note}}\nThe finite-N points below are loaded from `data/{d.path.name}`, "
                f"written by `{d.command}`.\n:::")
    lacking = "; ".join(
        f"N = {n} at Γ = " + ", ".join(f"{g:g}" for m, g in d.missing if m == n)
        for n in dict.fromkeys(m for m, _ in d.missing))
    return (f":::{{note}}\nThe finite-N points below are loaded from `data/{d.path.name}`, "
            f"written by `{d.command}`. That sweep is not finished: the directory holds "
            f"{d.expected - len(d.missing)} of its {d.expected} points (missing: {lacking}). Running "
            f"the command again computes the missing points and reuses the others.\n:::")
