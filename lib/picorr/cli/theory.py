"""``python -m picorr theory``: the thermodynamic-limit I_M/N of the driven-dissipative LMG
model from its mean-field attractor, Eq. (13) (Eqs. 14-19 for the model).

Example::

    python -m picorr theory --coupling 3 --h 0.5 --Gamma 2.7 --gamma 1 --json
"""

from __future__ import annotations

import math
import sys
import warnings

from . import CLIError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "theory",
        help="lim I_M/N of the LMG model from the mean-field attractor (Eq. 13)",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("--coupling", type=float, required=True, help="exchange 𝒥 (Eq. 15)")
    p.add_argument("--h", type=float, default=0.0, help="transverse field h (default 0)")
    p.add_argument("--Gamma", type=float, required=True, help="collective decay rate Γ")
    p.add_argument("--gamma", type=float, default=1.0, help="local pumping rate γ (default 1)")
    p.add_argument("--n-initial", type=int, default=4, dest="n_initial",
                   help="number of random initial conditions checked for a unique attractor")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial conditions")
    p.add_argument("--target", type=float, default=1e-6, help="error target for I_M/N (default 1e-6)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(run=run)


def run(args) -> dict:
    from ..macroscopic import im_per_n_h0, lmg_macroscopic

    if args.n_initial < 1:
        raise CLIError(f"--n-initial must be >= 1, got {args.n_initial}")
    if not (math.isfinite(args.target) and args.target > 0):
        raise CLIError(f"--target must be a positive number, got {args.target}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = lmg_macroscopic(args.coupling, args.h, args.Gamma, args.gamma,
                              n_initial=args.n_initial, seed=args.seed, target=args.target)
    notes = [str(w.message) for w in caught]
    for n in notes:
        print(f"picorr: warning: {n}", file=sys.stderr)
    out = {
        "IM_per_N": res.IM_per_N,
        "attractor": res.attractor,
        "m_mean": [float(v) for v in res.m_mean],
        "error_estimate": res.error_estimate,
        "converged": res.converged,
        "unique": res.unique,
        "period": res.period,
        "S_of_mean": res.S_of_mean,
        "mean_S": res.mean_S,
        "attractors": [
            {"kind": a.kind, "IM_per_N": a.IM_per_N, "period": a.period, "error_estimate": a.error_estimate}
            for a in res.attractors
        ],
        "params": res.params,
    }
    if args.h == 0 and args.gamma > 0:
        out["IM_per_N_closed_form"] = im_per_n_h0(args.Gamma, args.gamma)
    if notes:
        out["warnings"] = notes
    return out
