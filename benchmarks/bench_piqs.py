#!/usr/bin/env python3
"""The same LMG steady state from QuTiP's PIQS and from picorr: I_M/N, m, wall time, memory.

QuTiP is an optional benchmark dependency (``pip install 'qutip>=5,<6'``), not a
requirement of the project. Each solve runs as its own process; wall time is the whole
process (imports included) and memory its peak RSS (wait4). PIQS builds its Liouvillian on
the padded (N/2+1)^4 Dicke space and solves it with ``qutip.steadystate``; its blocks are
read with ``piqs.dicke_blocks`` and fed to the same entropy formula (Eq. 27). PIQS's own
residual ``||L rho||`` and trace error are recorded: they bound how closely the two can
agree (QuTiP's direct solve keeps the trace by a weighted row, to about 1e-9 here).
Each size is run ``--repeat`` times (default 3), PIQS and picorr alternately so that both
see the same machine; the records keep every wall time, and the speed-up is the ratio of the
medians: on a 2-core machine one picorr process at N = 60 took 0.90 s and the next, with
the same command, 1.34 s.
``--out`` writes the records (machine, load, commit, command) for the book's chapter 4.

    .venv/bin/python benchmarks/bench_piqs.py --N 40,60
    .venv/bin/python benchmarks/bench_piqs.py --N 40,60 --out data/benchmarks/piqs.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from bench_steady import write_records

PIQS_POINT = r"""
import json, sys, time
import numpy as np
import qutip
from qutip import piqs
from picorr.dicke import ln_dim
from picorr.information import binary_entropy
N, coupling, h, Gamma, gamma = int(sys.argv[1]), *map(float, sys.argv[2:6])
t0 = time.perf_counter()
jx, jy, jz = piqs.jspin(N)
H = (coupling / N) * (jx * jx + jy * jy) + h * jx
# PIQS's rates multiply D[.] directly: collective_emission -> (Gamma/N) D[J_-],
# pumping -> gamma sum_i D[sigma_+^(i)] (Eq. 14)
L = piqs.Dicke(N, hamiltonian=H, collective_emission=Gamma / N, pumping=gamma).liouvillian()
rho = qutip.steadystate(L)
residual = float(np.linalg.norm((L * qutip.operator_to_vector(rho)).full()))
trace_error = abs(complex(rho.tr()) - 1)
m = [2 / N * float(np.real(qutip.expect(op, rho))) for op in (jx, jy, jz)]
S = 0.0
for k, b in enumerate(piqs.dicke_blocks(rho)):
    b = np.asarray(b.full() if hasattr(b, "full") else b)
    lam = np.linalg.eigvalsh((b + b.conj().T) / 2)
    pos = lam[lam > 0]
    S += float(-np.sum(pos * np.log(pos)) + ln_dim(N, N / 2 - k) * np.sum(lam))
IM = N * float(binary_entropy(np.linalg.norm(m))) - S
print(json.dumps({"IM_per_N": IM / N, "m": m, "seconds": time.perf_counter() - t0,
                  "residual": residual, "trace_error": trace_error,
                  "liouvillian_dim": L.shape[0], "qutip": qutip.__version__}))
"""


def timed(cmd):
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out, err = proc.stdout.read(), proc.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd[:4])}: {err.strip().splitlines()[-1:]}")
    return json.loads(out.strip().splitlines()[-1]), wall, usage.ru_maxrss * 1024 / 1e9


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--N", default="40,60")
    ap.add_argument("--coupling", type=float, default=3.0)
    ap.add_argument("--h", type=float, default=0.5)
    ap.add_argument("--Gamma", type=float, default=1.68)
    ap.add_argument("--gamma", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=3,
                    help="processes of each solver per size (the median is reported)")
    ap.add_argument("--out", default=None, help="write the records to this JSON file")
    a = ap.parse_args(argv)
    if a.repeat < 1:
        ap.error(f"--repeat must be at least 1, got {a.repeat}")
    par = [str(x) for x in (a.coupling, a.h, a.Gamma, a.gamma)]
    print(f"# load average {os.getloadavg()[0]:.2f}; coupling {a.coupling}, h {a.h}, "
          f"Gamma {a.Gamma}, gamma {a.gamma}")
    print(f"{'N':>4} {'PIQS s':>8} {'PIQS GB':>8} {'picorr s':>9} {'picorr GB':>9} "
          f"{'speed-up':>9} {'|dI_M/N|':>9} {'|dm|':>9}")
    records = []
    for N in (int(x) for x in a.N.split(",")):
        runs_q, runs_p = [], []
        for _ in range(a.repeat):
            runs_q.append(timed([sys.executable, "-c", PIQS_POINT, str(N), *par]))
            runs_p.append(timed([sys.executable, "-m", "picorr", "steady", "--N", str(N),
                                 "--coupling", par[0], "--h", par[1], "--Gamma", par[2],
                                 "--gamma", par[3], "--json"]))
        q, p = runs_q[-1][0], runs_p[-1][0]
        spread = max(max(r["IM_per_N"] for r, _, _ in runs) - min(r["IM_per_N"] for r, _, _ in runs)
                     for runs in (runs_q, runs_p))
        if spread > 1e-12:  # each solver is deterministic: a spread means a broken run
            raise SystemExit(f"N = {N}: I_M/N differs by {spread:.1e} between repeated runs")
        tq = statistics.median(w for _, w, _ in runs_q)
        tp = statistics.median(w for _, w, _ in runs_p)
        mq = max(m for _, _, m in runs_q)
        mp = max(m for _, _, m in runs_p)
        dI = abs(q["IM_per_N"] - p["IM_per_N"])
        dm = max(abs(x - y) for x, y in zip(q["m"], p["m"]))
        print(f"{N:>4} {tq:>8.2f} {mq:>8.2f} {tp:>9.2f} {mp:>9.2f} {tq / tp:>8.1f}x "
              f"{dI:>9.1e} {dm:>9.1e}   picorr runs "
              + " ".join(f"{w:.2f}" for _, w, _ in runs_p), flush=True)
        records.append({"N": N, "coupling": a.coupling, "h": a.h, "Gamma": a.Gamma,
                        "gamma": a.gamma, "repeats": a.repeat, "piqs_wall": tq,
                        "piqs_walls": [w for _, w, _ in runs_q], "piqs_peak_gb": mq,
                        "piqs_IM_per_N": q["IM_per_N"], "piqs_residual": q["residual"],
                        "piqs_trace_error": q["trace_error"],
                        "piqs_liouvillian_dim": q["liouvillian_dim"], "qutip": q["qutip"],
                        "picorr_wall": tp, "picorr_walls": [w for _, w, _ in runs_p],
                        "picorr_peak_gb": mp,
                        "picorr_IM_per_N": p["IM_per_N"], "picorr_method": p["method"],
                        "picorr_relative_residual": p["relative_residual"],
                        "speedup": tq / tp, "IM_per_N_difference": dI, "m_difference": dm})
    if a.out:
        write_records(a.out, records, keep=None)


if __name__ == "__main__":
    main()
