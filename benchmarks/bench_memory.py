#!/usr/bin/env python3
"""The memory estimate of the large-N solver (``picorr.steady.memory``) against measured peaks.

Runs each point as a fresh ``python -m picorr steady`` process (peak RSS from ``wait4``, as
in ``bench_steady.py``) and prints the estimate, the peak, their ratio and the measured
sector-factor memory. ``--sweeps`` also lists the points of sweep directories with the
estimate recorded when they ran (the model of their commit).

    .venv/bin/python benchmarks/bench_memory.py                     # N = 200..600
    .venv/bin/python benchmarks/bench_memory.py --sizes 200,300 --Gamma 1.68
    .venv/bin/python benchmarks/bench_memory.py --sizes "" --sweeps data/dip_h05_800
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench_steady import run_point


def row(N, Gamma, window, est, peak, factors, threads="", precision="", est_factors=None,
        est_krylov=None, unknowns=None):
    more = "" if est_factors is None else \
        f" {est_factors:>8.2f} {est_krylov:>8.2f} {unknowns / 1e6:>8.2f} {precision:>6}"
    return (f"{N:>6} {Gamma:>6.2f} {window:>4} {est:>8.2f} {peak:>8.2f} {est / peak:>6.3f} "
            f"{factors:>9.2f} {threads:>3}{more}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="200,300,400,600", help="N values (h = 0.5)")
    ap.add_argument("--Gamma", default="1.68,2.0", help="Gamma values")
    ap.add_argument("--sweeps", nargs="*", default=[], help="sweep directories to list")
    ap.add_argument("--factor-precision", default=None, choices=("auto", "double", "single"),
                    help="passed to each point")
    ap.add_argument("--out", default=None, help="write the records to this JSON file")
    args = ap.parse_args(argv)
    extra = () if args.factor_precision is None else ("--factor-precision",
                                                       args.factor_precision)
    print(f"{'N':>6} {'Gamma':>6} {'Q':>4} {'est GB':>8} {'peak GB':>8} {'ratio':>6} "
          f"{'factor GB':>9} {'thr':>3} {'est fac':>8} {'est kry':>8} {'n / 1e6':>8} {'prec':>6}")
    records = []
    for G in (float(g) for g in args.Gamma.split(",") if g):
        for N in (int(n) for n in args.sizes.split(",") if n):
            r = run_point(N, 0.5, G, extra=extra)
            records.append(r)
            if "error" in r:
                print(f"{N:>6} {G:>6.2f} error: {r['error']}")
                continue
            print(row(N, G, r["window"], r["memory_estimate_GB"], r["peak_gb"],
                      r["factor_GB"] + r.get("refined_blocks_GB", 0.0), r.get("threads", ""),
                      r.get("factor_precision", ""), r.get("memory_estimate_factors_GB"),
                      r.get("memory_estimate_krylov_GB"), r.get("real_unknowns")), flush=True)
    if args.out:
        from bench_steady import write_records

        write_records(args.out, records, keep=None)
    for d in args.sweeps:
        for f in sorted(Path(d).glob("*.json")):
            r = json.loads(f.read_text())
            if r.get("memory_estimate_GB") and r.get("peak_rss_gb"):
                print(row(r["N"], r["Gamma"], r["window"], r["memory_estimate_GB"],
                          r["peak_rss_gb"], r["factor_GB"], r.get("threads", "")))


if __name__ == "__main__":
    main()
