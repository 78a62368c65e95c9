"""``python -m picorr steady``: the finite-N steady state of the LMG model (Eqs. 14-15)."""

from __future__ import annotations

import sys
import time

from ..models import lmg
from . import CLIError


def add_lmg_arguments(p) -> None:
    """The LMG parameters shared by several commands (rates in units of your choice)."""
    p.add_argument("--coupling", type=float, required=True, help="exchange 𝒥 (Eq. 15)")
    p.add_argument("--h", type=float, required=True, help="transverse field h (Eq. 15)")
    p.add_argument("--Gamma", type=float, required=True, help="collective decay rate Γ")
    p.add_argument("--gamma", type=float, required=True, help="local pumping rate γ")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "steady",
        help="exact finite-N steady state of the LMG model and its correlations",
        description="Solve the permutation-invariant master equation (14) for the LMG "
        "model at finite N; print I_M/N (nats), the magnetisation and the evidence.",
    )
    p.add_argument("--N", type=int, required=True, help="number of qubits (integer >= 2)")
    add_lmg_arguments(p)
    p.add_argument(
        "--method",
        default="auto",
        choices=("auto", "rates", "direct", "krylov", "window"),
        help="solver (default: chosen from the model's symmetry and size)",
    )
    p.add_argument("--tol", type=float, default=1e-10, help="accepted relative residual")
    p.add_argument("--window-tol", type=float, default=None, metavar="TOL",
                   help="window method only: the largest estimated error of I_M/N and m "
                   "that the coherence truncation may leave (default 1e-9)")
    p.add_argument("--max-memory", type=float, default=None, metavar="GB",
                   help="refuse a solve whose estimated peak memory exceeds this many GB "
                   "(default: the memory available)")
    p.add_argument("--factor-precision", default=None, choices=("auto", "double", "single"),
                   dest="factor_precision",
                   help="krylov and window methods: storage precision of the sector factors "
                   "(default auto: single, about 0.6 times the factor memory and twice the "
                   "time, only when double does not fit)")
    p.add_argument("--restart", type=int, default=None,
                   help="krylov and window methods: GMRES restart length, the Krylov vectors "
                   "held (default 60)")
    p.add_argument("--deflate", type=int, default=None,
                   help="krylov and window methods: harmonic Ritz vectors kept across each "
                   "GMRES restart, 0 to restart plainly (default: a third of the restart, at most "
                   "20; at most restart // 2)")
    p.add_argument("--progress", action="store_true",
                   help="window method only: one line per coherence window (and per coarse "
                   "solve) on standard error, with the seconds since the start")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(run=run)


def run(args) -> dict:
    from ..information import NegativeEigenvalueError
    from ..steady import SteadyStateError, steady_state

    from ..steady import InsufficientMemoryError
    from ..steady._select import choose_method

    model = lmg(args.N, args.coupling, args.h, args.Gamma, args.gamma)
    opts = {}
    if args.max_memory is not None:
        if not args.max_memory > 0:
            raise CLIError(f"--max-memory must be a positive number of GB, got {args.max_memory}")
        opts["max_memory"] = args.max_memory * 1e9
    if args.window_tol is not None:
        if not 0 < args.window_tol < 1:
            raise CLIError(f"--window-tol must be a number in (0, 1), got {args.window_tol}")
        method = choose_method(model) if args.method == "auto" else args.method
        if method != "window":
            raise CLIError(f"--window-tol applies to the window method only, and --N {args.N} "
                           f"is solved by {method!r} without truncation; add --method window "
                           "to truncate")
        opts["window_tol"] = args.window_tol
    if args.progress:
        method = choose_method(model) if args.method == "auto" else args.method
        if method != "window":
            raise CLIError(f"--progress applies to the window method only, and --N {args.N} "
                           f"is solved by {method!r} in one step")
        start = time.perf_counter()

        def report(line: str) -> None:
            print(f"[{time.perf_counter() - start:8.1f} s] {line}", file=sys.stderr, flush=True)
        opts["progress"] = report
    for option, name in (("--factor-precision", "factor_precision"), ("--restart", "restart"),
                         ("--deflate", "deflate")):
        value = getattr(args, name)
        if value is None:
            continue
        method = choose_method(model) if args.method == "auto" else args.method
        if method not in ("krylov", "window"):
            raise CLIError(f"{option} applies to the krylov and window methods, and "
                           f"--N {args.N} is solved by {method!r}")
        opts[name] = value
    if "restart" in opts and opts["restart"] < 1:
        raise CLIError(f"--restart must be a positive integer, got {opts['restart']}")
    if "deflate" in opts:
        from ..steady.gmres import check_deflate
        try:
            check_deflate(opts["deflate"], opts.get("restart", 60))
        except ValueError as exc:
            raise CLIError(f"--{exc}") from None
    t0 = time.perf_counter()
    try:
        res = steady_state(model, method=args.method, tol=args.tol, **opts)
    except InsufficientMemoryError as exc:
        raise CLIError(f"--N {args.N}: {exc}") from None
    except (SteadyStateError, NegativeEigenvalueError) as exc:
        raise CLIError(str(exc)) from None
    out = res.summary()
    out["seconds"] = time.perf_counter() - t0
    out.update(model="lmg", coupling=args.coupling, h=args.h, Gamma=args.Gamma, gamma=args.gamma)
    return out
