#!/usr/bin/env python3
"""Per-point overhead of a sweep on a Dask cluster against the local pool, and the speed-up
of two local workers over one.

The same points (each >= 5 s: h = 0.5, N = 120, the Krylov method) run through
:func:`picorr.sweep.run_sweep` on a local pool of 1 worker and on a Dask cluster of 1 worker
(``dask scheduler`` + ``dask worker --nthreads 1`` started here on 127.0.0.1, already
running when the clock starts), alternately and twice each so that a change of the
machine's load hits both, and then on a local pool of 2 workers. Wall time includes
starting the local pool, shipping points and results, and writing the files; "in-point" is
the time measured inside each point (the solve), so wall - in-point is what the path itself
costs.

    .venv/bin/python benchmarks/bench_sweep.py                 # 3 points of N = 120
    .venv/bin/python benchmarks/bench_sweep.py --N 90 --Gamma 1.0,2.0
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from picorr.sweep import SolverSettings, grid, load_sweep, parse_values, run_sweep


def start_cluster(tmp: Path):
    sched_file = tmp / "scheduler.json"
    procs = [subprocess.Popen(
        [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
         "--no-dashboard", "--scheduler-file", str(sched_file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)]
    deadline = time.monotonic() + 60
    while not sched_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.2)
    address = json.loads(sched_file.read_text())["address"]
    procs.append(subprocess.Popen(
        [sys.executable, "-m", "dask", "worker", address, "--host", "127.0.0.1",
         "--nthreads", "1", "--nworkers", "1", "--no-dashboard"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
    from distributed import Client

    client = Client(address, timeout="20s")
    client.wait_for_workers(1, timeout=60)
    return client, procs


def stop(procs):
    for p in reversed(procs):
        try:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(p.pid, signal.SIGKILL)


def measure(label, points, out, settings, workers=1, **kw):
    t0 = time.perf_counter()
    if "executor" not in kw:
        kw["workers"] = workers
    rep = run_sweep(points, out, settings=settings, progress=False, **kw)
    wall = time.perf_counter() - t0
    assert rep.computed == len(points) and not rep.failed, rep
    inside = float(load_sweep(out).seconds.sum())
    return {"label": label, "wall": wall, "inside": inside, "n": len(points), "workers": workers}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--N", type=int, default=120)
    ap.add_argument("--h", type=float, default=0.5)
    ap.add_argument("--Gamma", default="1.0,1.5,2.0")
    ap.add_argument("--method", default="krylov")
    args = ap.parse_args(argv)
    points = grid([args.N], 3.0, [args.h], parse_values(args.Gamma, name="--Gamma"), 1.0)
    settings = SolverSettings(method=args.method, tol=1e-10)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        load0 = os.getloadavg()
        client, procs = start_cluster(tmp)
        try:
            executor = client.get_executor(pure=False)
            for rep in (1, 2):
                rows.append(measure("local, 1 worker", points, tmp / f"l1-{rep}", settings))
                rows.append(measure("dask, 1 worker", points, tmp / f"d1-{rep}", settings,
                                    executor=executor))
        finally:
            client.close()
            stop(procs)
        rows.append(measure("local, 2 workers", points, tmp / "l2", settings, workers=2))
        load1 = os.getloadavg()
    n = len(points)
    print(f"# {n} points: N = {args.N}, h = {args.h}, Gamma = {args.Gamma}, "
          f"method {args.method}, coupling 3, gamma 1; {os.cpu_count()} cores")
    print(f"# load average (1 min) {load0[0]:.2f} before, {load1[0]:.2f} after")
    print(f"{'path':<18} {'wall s':>8} {'in-point s':>11} {'wall/pt s':>10} "
          f"{'in-pt/pt s':>11} {'(wall-in)/pt s':>15}")
    for r in rows:
        path = f"{(r['wall'] - r['inside']) / n:>15.3f}" if r["workers"] == 1 else f"{'-':>15}"
        print(f"{r['label']:<18} {r['wall']:>8.2f} {r['inside']:>11.2f} {r['wall'] / n:>10.2f} "
              f"{r['inside'] / n:>11.2f} {path}")
    l1 = {k: sum(r[k] for r in rows if r["label"] == "local, 1 worker") for k in ("wall", "inside")}
    d1 = {k: sum(r[k] for r in rows if r["label"] == "dask, 1 worker") for k in ("wall", "inside")}
    l2 = rows[-1]
    if min(r["inside"] / n for r in rows if r["workers"] == 1) < 5:
        print("# warning: some points took less than 5 s; raise --N")
    wall_over = (d1["wall"] - l1["wall"]) / l1["wall"]
    path_over = ((d1["wall"] - d1["inside"]) - (l1["wall"] - l1["inside"])) / l1["inside"]
    print(f"dask vs local (1 worker each, both runs): wall per point {100 * wall_over:+.1f} %; "
          f"path cost (wall - in-point) per point {100 * path_over:+.2f} % of a point's solve")
    print(f"speed-up of 2 local workers over 1: {(l1['wall'] / 2) / l2['wall']:.2f}x "
          f"(in-point time per point {l1['inside'] / 2 / n:.2f} s -> {l2['inside'] / n:.2f} s)")

if __name__ == "__main__":
    main()
