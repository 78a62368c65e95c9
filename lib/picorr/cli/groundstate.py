"""``python -m picorr groundstate``: I_M/N of the ferromagnetic LMG ground state at
J = N/2 (Appendix B, Fig. 2).

Example::

    python -m picorr groundstate --N 1000 --coupling -1 --h 0.01 --json
"""

from __future__ import annotations

import math

from . import CLIError


def _int_like(text: str) -> int:
    """An integer, also written as ``1e6``."""
    try:
        v = float(text)
    except ValueError:
        raise CLIError(f"--N must be an integer >= 2, got {text!r}") from None
    if not (math.isfinite(v) and v.is_integer()):
        raise CLIError(f"--N must be an integer >= 2, got {text!r}")
    return int(v)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "groundstate",
        help="I_M/N of the ferromagnetic LMG ground state (Appendix B)",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("--N", type=str, required=True, help="number of qubits (e.g. 1000 or 1e6)")
    p.add_argument("--coupling", type=float, required=True, help="exchange 𝒥 < 0 (ferromagnetic)")
    p.add_argument("--h", type=float, default=0.0, help="transverse field h (default 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(run=run)


def run(args) -> dict:
    from ..groundstate import ground_state

    N = _int_like(args.N)
    r = ground_state(N, args.coupling, args.h)
    return {
        "IM_per_N": r.IM_per_N,
        "m": [float(v) for v in r.m],
        "N": r.N,
        "coupling": r.coupling,
        "h": r.h,
        "energy": r.energy,
        "gap": r.gap,
        "degenerate": r.degenerate,
        "IM_per_N_mixture": r.IM_per_N_mixture,
        "method": r.method,
        "elapsed": r.elapsed,
    }
