#!/usr/bin/env python3
"""GMRES iterations of a window solve started cold, against the coherence window.

A window scan (``picorr.steady.window.solve_window``) solves its first window from no
initial guess and every later one from the window before. Whether the first window should
be chosen high (so that it keeps the state positive and counts as a term of the scan's
change) or low (less memory) depends on whether a window too small to keep the state
positive is also a harder system. This script answers that directly: it solves the coarse
N // 2 problem once, predicts the support mask and the coherence bands from it as the scan
does (the same tolerances), and then solves each listed window at N from a cold start, to the scan's tolerance
for a first window (``SCAN_GMRES_TOL``), with the scan's restart and deflation, reporting
the iterations, the seconds and whether the state is positive.

    .venv/bin/python benchmarks/bench_cold_start.py --N 1000 --Gamma 2.7 --windows 30,34,38 \\
        --out data/benchmarks/cold_start.json

Iteration counts do not depend on the machine's load; the seconds do.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

import numpy as np  # noqa: E402

from picorr import lmg, steady_state  # noqa: E402
from picorr.steady.krylov import assemble_fold, solve_fold  # noqa: E402
from picorr.steady.support import (WINDOW_BAND_EPS, WINDOW_MASK_EPS,  # noqa: E402
                                   predict_rows, support_fraction)
from picorr.steady.window import (SCAN_GMRES_TOL, default_start_window,  # noqa: E402
                                  window_correlations, window_layout)


def cold_windows(N: int, Gamma: float, windows: list[int], *, restart: int, deflate: int,
                 precision: str, window_tol: float, h: float = 0.5, progress=print) -> dict:
    """Solve the coarse problem, then each window at ``N`` from a cold start."""
    t0 = time.perf_counter()
    coarse = steady_state(lmg(N // 2, 3.0, h, Gamma, 1.0), method="window",
                          start=default_start_window(N // 2, locate=True),
                          restart=restart, deflate=deflate, window_tol=window_tol)
    rows = predict_rows(N, coarse.state, eps=WINDOW_MASK_EPS)
    progress(f"coarse N = {N // 2}: {time.perf_counter() - t0:.1f} s, window {coarse.window}; "
             f"the mask keeps {support_fraction(N, rows):.0%} of the rows")
    model = lmg(N, 3.0, h, Gamma, 1.0)
    out = []
    for Q in windows:
        t = time.perf_counter()
        layout = window_layout(N, Q, rows, coarse.state, band_eps=WINDOW_BAND_EPS)
        fold, _ = assemble_fold(model, layout, keep_operator=False)
        rho, its, info = solve_fold(fold, gmres_tol=SCAN_GMRES_TOL, restart=restart,
                                    deflate=deflate, precision=precision, maxiter=5000)
        del fold
        IM = float(window_correlations(layout, rho)[1])
        rec = {"window": Q, "iterations": its, "seconds": time.perf_counter() - t,
               "positive": bool(np.isfinite(IM)), "IM_per_N": IM,
               "real_unknowns": info["real_unknowns"],
               **({"refinement": info["refinement"]} if "refinement" in info else {})}
        out.append(rec)
        progress(f"N = {N}, window {Q} from a cold start: {its} iterations, "
                 f"{rec['seconds']:.1f} s, I_M/N = {IM:.12f}")
    return {"N": N, "h": h, "Gamma": Gamma, "restart": restart, "deflate": deflate,
            "factor_precision": precision, "gmres_tol": SCAN_GMRES_TOL,
            "coarse_window": coarse.window, "windows": out}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--N", type=int, default=1000)
    ap.add_argument("--Gamma", type=float, default=2.7)
    ap.add_argument("--windows", default="30,34,38")
    ap.add_argument("--restart", type=int, default=30)
    ap.add_argument("--deflate", type=int, default=10)
    ap.add_argument("--factor-precision", default="double", choices=("double", "single"))
    ap.add_argument("--window-tol", type=float, default=1e-8,
                    help="of the coarse scan (the one that sets the mask)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    windows = [int(w) for w in args.windows.split(",") if w]
    try:  # the code measured: read before the run, not after it
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], text=True,
                                capture_output=True, cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        commit = ""
    rec = cold_windows(args.N, args.Gamma, windows, restart=args.restart,
                       deflate=args.deflate, precision=args.factor_precision,
                       window_tol=args.window_tol,
                       progress=lambda line: print(line, flush=True))
    if args.out:
        meta = {"command": " ".join(["benchmarks/bench_cold_start.py", *(argv or sys.argv[1:])]),
                "commit": commit, "python": platform.python_version(),
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        Path(args.out).write_text(json.dumps({"meta": meta, "record": rec}, indent=1) + "\n")


if __name__ == "__main__":
    main()
