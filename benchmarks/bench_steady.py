#!/usr/bin/env python3
"""Time and peak memory of finite-N steady states against N, for both paths.

Each point is a separate ``python -m picorr steady ... --json`` process; wall time is the
whole process (imports included) and peak memory is its maximum resident set size (from
``wait4``). Prints a table; ``--out`` also writes the records (with the machine, the load
and the commit) as the JSON file that the book's chapter 4 plots.

    .venv/bin/python benchmarks/bench_steady.py            # the issue's sizes
    .venv/bin/python benchmarks/bench_steady.py --sizes-h 60,120 --sizes-h0 400,1000
    .venv/bin/python benchmarks/bench_steady.py --out data/benchmarks/steady.json

``--progress`` echoes each window of the window-method points to standard error as it ends
(N, window, GMRES iterations, the factors' size and precision, seconds since the start), and
the records keep each point's scan and the time of its coarse solve.

The book's two files (chapter 4):

    .venv/bin/python benchmarks/bench_steady.py --sizes-h 20,40,60,80,120,200,400,600,800,1000,2000 \
        --sizes-h0 100,200,400,800,1000,2000,4000,10000 --out data/benchmarks/steady.json
    .venv/bin/python benchmarks/bench_steady.py --Gamma 2.7 --sizes-h 20,40,60,80,120,200,400,600,800,1000,2000 \
        --sizes-h0 "" --out data/benchmarks/steady_G2.7.json

N = 2000 at h = 0.5 (chapter 4), with GMRES restarted every 30 iterations keeping 10
harmonic Ritz vectors, which holds half the Krylov basis of the default restart of 60:

    .venv/bin/python benchmarks/bench_steady.py --sizes-h 2000 --sizes-h0 "" --restart 30 \
        --deflate 10 --out data/benchmarks/steady_N2000.json
    .venv/bin/python benchmarks/bench_steady.py --Gamma 2.7 --sizes-h 2000 --sizes-h0 "" \
        --restart 30 --deflate 10 --window-tol 1e-8 --progress --timeout 6600 \
        --out data/benchmarks/steady_N2000_G2.7.json

(the second, at the tolerance of the large-N targets, is stopped if unfinished after 110
minutes, and its record keeps the progress it had made; steady_N2000_G2.7_start44.json is
the same with --timeout 5400 before the start rule of the last size changed, and
steady_N2000_G2.7_refined.json with --timeout 6000 before the mixed-precision refinement).

At the issue's convergence tolerance of I_M/N, 1e-8 (the solver's default window_tol is
1e-9), both Gammas in one file, which the chapter compares with the two above:

    .venv/bin/python benchmarks/bench_steady.py --Gamma 1.68,2.7 --window-tol 1e-8 \
        --sizes-h 600,800,1000 --sizes-h0 "" --out data/benchmarks/steady_window_tol.json
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import threading
import time


def run_point(N, h, Gamma, coupling=3.0, gamma=1.0, method="auto", extra=(), timeout=None):
    """One point in its own process: its JSON record with the wall time and peak memory, or
    a record with ``error`` (the solver's one-line message). A point still running after
    ``timeout`` seconds is killed and recorded as ``stopped``, with its wall time, its peak
    memory so far and the progress lines it had printed (``--progress``); a finished point
    keeps them too."""
    cmd = [sys.executable, "-m", "picorr", "steady", "--N", str(N), "--coupling", str(coupling),
           "--h", str(h), "--Gamma", str(Gamma), "--gamma", str(gamma), "--method", method,
           "--json", *extra]
    echo = "--progress" in extra
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err_lines = []

    def pump():  # the point's standard error, echoed as it comes with --progress
        for line in proc.stderr:
            err_lines.append(line)
            if echo:
                print(f"    {line.rstrip()}", file=sys.stderr, flush=True)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    killed = threading.Event()

    def stop():
        killed.set()
        proc.kill()

    timer = None if timeout is None else threading.Timer(timeout, stop)
    if timer is not None:
        timer.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if timer is not None:
        timer.cancel()
    stopped = killed.is_set() and os.WIFSIGNALED(status)
    reader.join()
    out, err = proc.stdout.read(), "".join(err_lines)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if stopped:
        return {"N": N, "h": h, "Gamma": Gamma, "wall": wall,
                "peak_gb": usage.ru_maxrss * 1024 / 1e9, "stopped": True,
                "error": f"stopped by the benchmark's --timeout after {wall:.0f} s",
                "progress": [ln.rstrip() for ln in err_lines]}
    if proc.returncode != 0:
        return {"N": N, "h": h, "Gamma": Gamma, "wall": wall,
                "error": err.strip().splitlines()[-1]}
    res = json.loads(out.strip().splitlines()[-1])
    res.update(wall=wall, peak_gb=usage.ru_maxrss * 1024 / 1e9, h=h, Gamma=Gamma)
    if echo:  # what the run printed on the way, kept as for a stopped point
        res["progress"] = [ln.rstrip() for ln in err_lines]
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes-h", default="20,40,60,80,120", help="N values for h = 0.5")
    ap.add_argument("--sizes-h0", default="100,200,400,800", help="N values for h = 0")
    ap.add_argument("--Gamma", default="1.68",
                    help="Gamma, or several separated by commas (one file per Gamma for the "
                    "book's table and plot of cost against N)")
    ap.add_argument("--window-tol", type=float, default=None, metavar="TOL",
                    help="passed to each h != 0 point (sizes solved by the window method only, "
                    "N > 100)")
    ap.add_argument("--factor-precision", default=None, choices=("auto", "double", "single"),
                    help="passed to each h != 0 point of N > 20 (default: the solver's, auto)")
    ap.add_argument("--restart", type=int, default=None,
                    help="GMRES restart length, passed like --factor-precision")
    ap.add_argument("--deflate", type=int, default=None,
                    help="harmonic Ritz vectors kept across GMRES restarts, passed like "
                    "--factor-precision")
    ap.add_argument("--progress", action="store_true",
                    help="echo each window's progress line to standard error (points solved by "
                    "the window method)")
    ap.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                    help="kill a point still running after this many seconds and record it as "
                    "stopped, with its peak memory so far and its progress lines")
    ap.add_argument("--out", default=None, help="write the records to this JSON file")
    args = ap.parse_args(argv)
    if args.timeout is not None and not args.timeout > 0:
        ap.error(f"--timeout must be a positive number of seconds, got {args.timeout}")
    if args.progress:  # the window method from this N on; asked of the library in a child
        # process, so that this one (whose image a forked point may count in its peak memory)
        # stays small
        window_from = int(subprocess.run(
            [sys.executable, "-c", "from picorr.steady._select import KRYLOV_MAX_N as n; "
             "print(n + 1)"], capture_output=True, text=True, check=True).stdout)
    try:
        Gammas = [float(g) for g in args.Gamma.split(",") if g]
    except ValueError:
        ap.error(f"--Gamma must be numbers separated by commas, got {args.Gamma!r}")
    if not Gammas:
        ap.error("--Gamma needs at least one value")
    extra_h = () if args.window_tol is None else ("--window-tol", repr(args.window_tol))
    gmres_only = ()  # options of the krylov and window methods (not N <= 20: direct)
    for option, value in (("--factor-precision", args.factor_precision),
                          ("--restart", args.restart), ("--deflate", args.deflate)):
        if value is not None:
            gmres_only += (option, str(value))
    records = []
    print(f"# load average {os.getloadavg()[0]:.2f}; coupling 3, gamma 1, Gamma {args.Gamma}"
          + ("" if args.window_tol is None else f", window_tol {args.window_tol:g} (h != 0)"))
    print(f"{'h':>4} {'N':>6} {'method':>8} {'unknowns':>10} {'its':>5} {'wall s':>8} "
          f"{'peak GB':>8} {'rel.res':>9} {'I_M/N':>14}")
    for G in Gammas:
        for h, sizes in ((0.5, args.sizes_h), (0.0, args.sizes_h0)):
            for N in (int(x) for x in sizes.split(",") if x):
                extra = (extra_h + (gmres_only if N > 20 else ())) if h != 0 else ()
                if args.progress and h != 0 and N >= window_from:
                    extra += ("--progress",)
                run_sizes(records, N, h, G, extra, args.timeout)
    if args.out:
        write_records(args.out, records, window_tol=args.window_tol)


def run_sizes(records, N, h, Gamma, extra, timeout=None) -> None:
    """Run one point, append its record and print its row of the table."""
    r = run_point(N, h, Gamma, extra=extra, timeout=timeout)
    records.append(r)
    if "error" in r:
        print(f"{h:>4} {N:>6} error after {r['wall']:.1f} s: {r['error']}")
        return
    print(f"{h:>4} {N:>6} {r['method']:>8} {r['unknowns']:>10} {r['iterations']:>5} "
          f"{r['wall']:>8.2f} {r['peak_gb']:>8.2f} {r['relative_residual']:>9.1e} "
          f"{r['IM_per_N']:>14.10f}", flush=True)


KEEP = ("N", "h", "Gamma", "method", "window", "unknowns", "iterations", "wall", "peak_gb",
        "relative_residual", "IM_per_N", "support_fraction", "band_fraction",
        "memory_estimate_GB", "window_error_estimate", "factor_precision", "factor_GB",
        "restart", "deflate", "lean", "coarse_seconds", "scan", "error", "stopped", "progress")


def write_records(path, records, keep=KEEP, window_tol=None) -> None:
    """The records (their fields ``keep``, or all when None) with what is needed to judge
    them: machine, load, commit, command, and ``window_tol`` when one was passed."""
    import platform
    from pathlib import Path

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    meta = {"command": f"benchmarks/{Path(sys.argv[0]).name} " + shlex.join(sys.argv[1:]),
            "commit": commit, "cores": os.cpu_count(), "machine": platform.machine(),
            "python": platform.python_version(), "load_average_end": os.getloadavg()[0],
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if window_tol is not None:
        meta["window_tol"] = window_tol
    out = {"meta": meta, "records": [r if keep is None else {k: r[k] for k in keep if k in r}
                                     for r in records]}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(out, indent=1) + "\n")
    print(f"# wrote {path}")


if __name__ == "__main__":
    main()
