#!/usr/bin/env python3
"""Fill and time of the sector factors by ordering: SuperLU's minimum degree ('mmd') against
METIS's nested dissection ('nested-dissection'), ``picorr.steady.direct.factorize``.

Builds the folded LMG system (h = 0.5) on the unmasked coherence window ``Q``, takes the
diagonal blocks of the chosen sectors (``picorr.steady.krylov.sector_blocks``: q = 0 real,
q > 0 complex) and factors each with both orderings, in this thread, best of ``--repeat``.
Prints the factor entries per unknown, the time (ordering included) and the relative
residual of a solve with each.

    .venv/bin/python benchmarks/bench_ordering.py --N 400,1000 --window 4 --sectors 0,1,4

The book's file (chapter 4):

    .venv/bin/python benchmarks/bench_ordering.py --N 400,600,1000 --window 4 --sectors 0,1,4 \
        --out data/benchmarks/ordering.json
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def compare(N: int, Gamma: float, window: int, sectors, repeat: int = 2) -> list[dict]:
    from picorr import models
    from picorr.dicke import BlockLayout
    from picorr.steady.direct import ORDERINGS, factorize
    from picorr.steady.krylov import assemble_fold, sector_blocks

    model = models.lmg(N, 3.0, 0.5, Gamma, 1.0)
    fold, _ = assemble_fold(model, BlockLayout(N, window), keep_operator=False)
    A, _ = fold.bordered(consume=True)
    blocks = {key: blk for key, _, _, blk in sector_blocks(A, fold.q, fold.complex_partner())}
    del A, fold
    out = []
    rng = np.random.default_rng(1)
    for q in sectors:
        blk = blocks[q]
        n = blk.shape[0]
        b = rng.standard_normal(n).astype(blk.dtype)
        rec = {"N": N, "Gamma": Gamma, "window": window, "q": q, "unknowns": n,
               "dtype": blk.dtype.name}
        for ordering in ORDERINGS:
            best = np.inf
            for _ in range(repeat):
                t0 = time.perf_counter()
                lu = factorize(blk, ordering)
                best = min(best, time.perf_counter() - t0)
                nnz = lu.nnz
                x = lu.solve(b)
                del lu
            res = float(np.linalg.norm(blk @ x - b) / np.linalg.norm(b))
            rec[ordering] = {"fill": nnz / n, "seconds": best, "residual": res}
        out.append(rec)
        mmd, nd = rec["mmd"], rec["nested-dissection"]
        print(f"N {N:>5} q {q:>3} {rec['dtype']:>10} {n:>9,} unknowns: mmd {mmd['fill']:6.1f}"
              f"/unknown {mmd['seconds']:6.2f} s | nd {nd['fill']:6.1f}/unknown "
              f"{nd['seconds']:6.2f} s ({nd['fill'] / mmd['fill']:.3f}) | residuals "
              f"{mmd['residual']:.1e} {nd['residual']:.1e}", flush=True)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--N", default="400,1000", help="N values")
    ap.add_argument("--Gamma", type=float, default=2.7)
    ap.add_argument("--window", type=int, default=4, help="coherence window Q")
    ap.add_argument("--sectors", default="0,1,4", help="sectors q to factor (0 <= q <= Q)")
    ap.add_argument("--repeat", type=int, default=2, help="timings per factorization")
    ap.add_argument("--out", default=None, help="write the records to this JSON file")
    args = ap.parse_args(argv)
    sectors = [int(q) for q in args.sectors.split(",") if q]
    if any(not 0 <= q <= args.window for q in sectors):
        ap.error(f"--sectors must lie in 0..{args.window} (the --window), got {args.sectors}")
    records = []
    for N in (int(n) for n in args.N.split(",") if n):
        records += compare(N, args.Gamma, args.window, sectors, args.repeat)
    if args.out:
        from bench_steady import write_records

        write_records(args.out, records, keep=None)


if __name__ == "__main__":
    main()
