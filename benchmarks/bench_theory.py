"""Benchmark the thermodynamic-limit half: a 200-point Γ sweep of Eq. (13) for the LMG
model (𝒥 = 3γ, h = 0.5γ; target: 30 s on 2 cores) and the N = 10^6 ground state of
Appendix B (target: 10 s). Prints a table.

    .venv/bin/python benchmarks/bench_theory.py [--workers 2] [--points 200]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

from picorr.groundstate import ground_state
from picorr.macroscopic import gamma_star, im_per_n_h0, sweep_gamma
from picorr.meanfield import lmg_meanfield


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--points", type=int, default=200)
    ap.add_argument("--Gmin", type=float, default=0.02)
    ap.add_argument("--Gmax", type=float, default=4.0)
    args = ap.parse_args()

    rows = []
    t0 = time.perf_counter()
    lmg_meanfield()
    rows.append(("derive LMG mean-field equations (SymPy)", time.perf_counter() - t0, "", ""))

    G = np.linspace(args.Gmin, args.Gmax, args.points)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = sweep_gamma(G, coupling=3.0, h=0.5, gamma=1.0, workers=args.workers)
    kinds = {str(k): int(n) for k, n in zip(*np.unique(s.attractor, return_counts=True))}
    rows.append((f"Γ sweep, {args.points} points, h = 0.5γ, {s.workers} workers", s.elapsed, 30.0,
                 f"{kinds}; max error estimate {np.nanmax(s.error_estimate):.1e}; "
                 f"all converged: {bool(s.converged.all())}; warnings: {len(caught)}"))

    s0 = sweep_gamma(G, coupling=3.0, h=0.0, gamma=1.0, workers=args.workers)
    dev = float(np.abs(s0.IM_per_N - im_per_n_h0(G)).max())
    rows.append((f"Γ sweep, {args.points} points, h = 0, {s0.workers} workers", s0.elapsed, 30.0,
                 f"max |time average - Eq. (18)| = {dev:.1e}"))

    t0 = time.perf_counter()
    Gs, Imax = gamma_star()
    rows.append(("locate Γ* (maximum of Eq. 18)", time.perf_counter() - t0, "",
                 f"Γ* = {Gs:.6f} γ, I_M/N = {Imax:.8f}"))

    for N in (10**4, 10**5, 10**6):
        t0 = time.perf_counter()
        r = ground_state(N, -1.0, 0.01)
        rows.append((f"ground state N = {N:.0e}, 𝒥 = -1, h = 0.01", time.perf_counter() - t0,
                     10.0 if N == 10**6 else "", f"I_M/N = {r.IM_per_N:.6e}"))

    print(f"cpu count: {os.cpu_count()}")
    w = max(len(r[0]) for r in rows)
    print(f"{'task':<{w}}  {'seconds':>8}  {'target':>6}  notes")
    for name, sec, target, note in rows:
        tgt = f"{target:>6.0f}" if target != "" else " " * 6
        print(f"{name:<{w}}  {sec:8.2f}  {tgt}  {note}")


if __name__ == "__main__":
    main()
