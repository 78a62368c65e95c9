"""``python -m picorr sweep``: many LMG steady states, one file per point, resumable.

Example::

    python -m picorr sweep --N 30,40 --coupling 3 --h 0.5 --Gamma 0.5:3.0:0.25 --gamma 1 \\
        --out data/sweep --json
    python -m picorr sweep ... --scheduler tcp://HOST:8786     # on a Dask cluster

Values of ``--N``, ``--h`` and ``--Gamma`` are comma-separated lists and/or
``start:stop:step`` ranges (stop included). Each finished point is written atomically to
``DIR/<key>.json``; run the same command again after an interruption and only the missing
points are computed.
"""

from __future__ import annotations

import re
import sys

from . import CLIError

_ADDRESS = re.compile(r"^(tcp|tls)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="a grid of LMG steady states, one JSON file per point, resumable",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("--N", required=True,
                   help="qubit numbers (integers >= 2): a list 30,40 or a range 10:40:10")
    p.add_argument("--coupling", type=float, required=True, help="exchange 𝒥 (Eq. 15)")
    p.add_argument("--h", required=True, help="transverse fields h: a list or start:stop:step")
    p.add_argument("--Gamma", required=True,
                   help="collective decay rates Γ >= 0: a list or start:stop:step (stop included)")
    p.add_argument("--gamma", type=float, required=True, help="local pumping rate γ >= 0")
    p.add_argument("--out", required=True, help="the sweep directory (created if missing)")
    p.add_argument("--method", default="auto",
                   choices=("auto", "rates", "direct", "krylov", "window"),
                   help="solver (default: chosen per point from its symmetry and size)")
    p.add_argument("--tol", type=float, default=1e-10, help="accepted relative residual")
    p.add_argument("--workers", type=int, default=None,
                   help="points computed at once on this machine (default: its cores); "
                        "each point may use cores // workers threads")
    p.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="send the points to this running Dask distributed scheduler")
    p.add_argument("--recompute-stale", action="store_true", dest="recompute_stale",
                   help="recompute stored points whose method or tol differ from the request")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(run=run)


def _connect(address: str):
    """A ``dask.distributed.Client`` for ``address``, or a one-line :class:`CLIError`."""
    if not _ADDRESS.match(address) or not 0 < int(_ADDRESS.match(address)[3]) < 65536:
        raise CLIError(f"--scheduler must look like tcp://HOST:PORT, got {address!r}")
    try:
        import logging

        from distributed import Client
    except ImportError:
        raise CLIError("--scheduler needs Dask distributed: pip install 'dask[distributed]'"
                       ) from None
    logging.getLogger("distributed").setLevel(logging.ERROR)
    try:
        client = Client(address, timeout="5s")
    except Exception as exc:  # noqa: BLE001 - any failure to connect is the address's
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CLIError(f"--scheduler {address}: cannot connect within 5 s ({first})") from None
    try:
        versions = client.run(_picorr_version) if client.scheduler_info()["workers"] else {}
    except Exception as exc:  # noqa: BLE001
        client.close()
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CLIError(f"--scheduler {address}: the workers cannot run picorr ({first})"
                       ) from None
    from .. import __version__

    if not versions:
        print(f"picorr: --scheduler {address} has no workers yet; points wait for them",
              file=sys.stderr)
    others = sorted({v for v in versions.values() if v != __version__})
    if others:
        print(f"picorr: warning: workers run picorr {', '.join(others)}, this is "
              f"{__version__}", file=sys.stderr)
    return client


def _picorr_version() -> str:
    from .. import __version__

    return __version__


def run(args) -> dict:
    from ..sweep import (SolverSettings, SweepError, available_cores, grid, parse_values,
                         run_sweep, validate_points)

    try:
        Ns = parse_values(args.N, name="--N", integer=True)
        hs = parse_values(args.h, name="--h")
        Gammas = parse_values(args.Gamma, name="--Gamma")
    except SweepError as exc:
        raise CLIError(str(exc)) from None
    bad = [n for n in Ns if n < 2]
    if bad:
        raise CLIError(f"--N must be integers >= 2, got {bad[0]}")
    if args.workers is not None and args.workers < 1:
        raise CLIError(f"--workers must be >= 1, got {args.workers}")
    if args.workers is not None and args.scheduler:
        raise CLIError("--workers is for local runs; with --scheduler the cluster's workers "
                       "run the points")
    # a local worker may use its share of the cores (the pool's BLAS budget) for the
    # coherence sectors too; a cluster's workers get one thread each
    threads = 1 if args.scheduler else max(1, available_cores() // (args.workers or available_cores()))
    settings = SolverSettings(method=args.method, tol=args.tol, blas_threads=threads)
    points = grid(Ns, args.coupling, hs, Gammas, args.gamma)
    validate_points(points, settings)  # ModelError names the parameter

    client = _connect(args.scheduler) if args.scheduler else None
    try:
        executor = client.get_executor(pure=False) if client is not None else None
        report = run_sweep(points, args.out, settings=settings, executor=executor,
                           workers=args.workers, recompute_stale=args.recompute_stale)
    except SweepError as exc:
        raise CLIError(str(exc)) from None
    except OSError as exc:
        raise CLIError(f"--out {args.out}: {exc.strerror or exc}") from None
    finally:
        if client is not None:
            client.close()
    if report.failed:
        key, why = report.failed[0]
        raise CLIError(
            f"{len(report.failed)} of {report.points} points failed (e.g. {key}: {why}); "
            f"{report.computed} computed and {report.reused} reused are in {report.out}")
    out = report.as_dict()
    out["executor"] = args.scheduler or f"local, {args.workers or 'all'} worker(s)"
    return out
