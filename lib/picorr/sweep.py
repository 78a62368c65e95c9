"""Parameter sweeps of the LMG steady state: one JSON file per finished point, resumable.

A sweep is a grid of points (N, 𝒥, h, Γ, γ) of the driven-dissipative LMG model
(Eqs. 14-15), each solved by :func:`picorr.steady_state` with the same solver settings.
The submitting process alone writes the output directory: each finished point becomes one
file ``<key>.json`` (the keys of ``python -m picorr steady --json`` at the top level, with
``settings`` and ``meta`` beside them), written atomically (temporary file in the same
directory, fsync, :func:`os.replace`). A point counts as finished exactly when its JSON
file exists, so a sweep killed at any moment (SIGKILL included) and run again reuses every
finished point untouched and computes only the others.

The runner is written against :class:`concurrent.futures.Executor`: a local process pool
(:func:`local_executor`, BLAS threads limited per worker) or the executor of a
``dask.distributed.Client`` (``client.get_executor()``). Points travel to the workers and
results travel back; no shared file system is needed.

What makes a stored point *stale* is a different requested solver setting (``method``,
``tol``): such a point is never reused silently (:class:`StaleResultsError`) and is
recomputed only on request. The package version, git commit, host and time are metadata,
recorded with every point but not compared.

:func:`load_sweep` reads a directory back as NumPy arrays (JSON only, never pickle).
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime
import json
import multiprocessing
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from itertools import product
from pathlib import Path

import numpy as np

from .jsonutil import plain
from .models import ModelError, lmg

__all__ = [
    "Point",
    "SolverSettings",
    "SweepError",
    "StaleResultsError",
    "SweepReport",
    "SweepTable",
    "parse_values",
    "grid",
    "validate_points",
    "plan_sweep",
    "run_sweep",
    "compute_point",
    "compute_point_isolated",
    "PointProcessDied",
    "local_executor",
    "write_atomic",
    "load_sweep",
]

#: Version of the on-disk layout of a point file (``meta.format``).
FORMAT = 1

#: A sweep refuses ranges with more values than this (a typo such as a step of 1e-9).
MAX_VALUES = 100_000

#: The requested solver settings that decide whether a stored point can be reused.
STALENESS_KEYS = ("method", "tol")

_LOCK = ".sweep.lock"
_TMP = ".tmp"


class SweepError(ValueError):
    """Invalid sweep input or state; the message names the parameter or file."""


class StaleResultsError(SweepError):
    """Stored points were computed with other solver settings than requested."""


# --------------------------------------------------------------------------- parsing


def _decimal(text: str, name: str) -> Decimal:
    try:
        d = Decimal(text.strip())
    except InvalidOperation:
        raise SweepError(f"{name}: {text.strip()!r} is not a number") from None
    if not d.is_finite():
        raise SweepError(f"{name}: {text.strip()!r} is not a finite number")
    return d


def _value(d: Decimal, name: str, integer: bool):
    if integer:
        if d != d.to_integral_value():
            raise SweepError(f"{name} must be integers, got {d}")
        return int(d)
    return float(d) + 0.0  # + 0.0 turns -0.0 into 0.0


def _range(item: str, name: str, integer: bool) -> list:
    parts = item.split(":")
    if len(parts) != 3:
        raise SweepError(f"{name}: range {item!r} must be start:stop:step (stop included)")
    start, stop, step = (_decimal(p, name) for p in parts)
    if step == 0:
        raise SweepError(f"{name}: range {item!r} has step 0")
    n = (stop - start) / step
    if n < 0:
        raise SweepError(f"{name}: range {item!r} is empty (the step points away from stop)")
    k = int(n.to_integral_value())
    if abs(n - k) > Decimal("1e-9") * max(1, k):
        raise SweepError(
            f"{name}: range {item!r} does not reach its stop: (stop - start)/step = "
            f"{float(n):.6g} is not an integer"
        )
    if k + 1 > MAX_VALUES:
        raise SweepError(f"{name}: range {item!r} has {k + 1} values (more than {MAX_VALUES})")
    values = [start + i * step for i in range(k)] + [stop]
    return [_value(v, name, integer) for v in values]


def parse_values(text, *, name: str = "value", integer: bool = False) -> tuple:
    """Values from a comma-separated list of numbers and ``start:stop:step`` ranges.

    The stop of a range is included; the number of steps ``(stop - start)/step`` must be an
    integer (to 1e-9). Arithmetic is decimal, so ``"0.1:0.3:0.1"`` gives exactly the floats
    ``0.1, 0.2, 0.3`` that the same numbers typed as a list give. Repeated values are
    dropped (first occurrence kept).

    Parameters
    ----------
    text : str
        e.g. ``"30,40"``, ``"0.5:3.0:0.25"``, ``"10:20:5,40"``.
    name : str
        The parameter's name, used in error messages (e.g. ``"--Gamma"``).
    integer : bool
        Require integers (returns ints).

    Raises
    ------
    SweepError
        Empty input, a malformed or empty range, a non-number, a non-finite number, or a
        non-integer where integers are required; the message starts with ``name``.
    """
    if not isinstance(text, str):
        text = str(text)
    if not text.strip():
        raise SweepError(f"{name}: no values given")
    out: list = []
    for item in text.split(","):
        if not item.strip():
            raise SweepError(f"{name}: empty item in {text!r}")
        if ":" in item:
            out.extend(_range(item, name, integer))
        else:
            out.append(_value(_decimal(item, name), name, integer))
        if len(out) > MAX_VALUES:
            raise SweepError(f"{name}: more than {MAX_VALUES} values")
    return tuple(dict.fromkeys(out))


# --------------------------------------------------------------------------- points


def _fmt(x: float) -> str:
    """Canonical text of a float: the shortest repr that round-trips (``0.3``, ``1e-05``)."""
    return repr(float(x) + 0.0)


@dataclass(frozen=True, order=True)
class Point:
    """One point of an LMG sweep (Eqs. 14-15); ordered by (N, h, Γ, 𝒥, γ)."""

    N: int
    h: float
    Gamma: float
    coupling: float
    gamma: float

    @property
    def key(self) -> str:
        """The file stem: deterministic, one per point, e.g.
        ``N=40_coupling=3.0_h=0.5_Gamma=1.25_gamma=1.0``."""
        return (f"N={int(self.N)}_coupling={_fmt(self.coupling)}_h={_fmt(self.h)}"
                f"_Gamma={_fmt(self.Gamma)}_gamma={_fmt(self.gamma)}")

    def params(self) -> dict:
        return {"N": int(self.N), "coupling": float(self.coupling), "h": float(self.h),
                "Gamma": float(self.Gamma), "gamma": float(self.gamma)}

    def model(self):
        return lmg(self.N, self.coupling, self.h, self.Gamma, self.gamma)


def grid(N, coupling, h, Gamma, gamma) -> list[Point]:
    """Every combination of the given values (each a number or a sequence), sorted."""
    def seq(v):
        return tuple(v) if isinstance(v, (list, tuple, np.ndarray)) else (v,)

    pts = {Point(int(n), float(hh) + 0.0, float(G) + 0.0, float(c) + 0.0, float(g) + 0.0)
           for n, c, hh, G, g in product(seq(N), seq(coupling), seq(h), seq(Gamma), seq(gamma))}
    return sorted(pts)


@dataclass(frozen=True)
class SolverSettings:
    """How every point is solved. ``method`` and ``tol`` (the requested values) decide
    staleness; ``blas_threads`` (the threads each point may use: BLAS, and the coherence
    sectors of the Krylov solvers) is recorded but does not change the result beyond
    round-off."""

    method: str = "auto"
    tol: float = 1e-10
    blas_threads: int = 1

    def criteria(self) -> dict:
        return {"method": self.method, "tol": float(self.tol)}

    def as_dict(self) -> dict:
        return {"method": self.method, "tol": float(self.tol), "blas_threads": self.blas_threads}


def validate_points(points, settings: SolverSettings) -> None:
    """Build every point's model once and check it can be solved as requested.

    Raises :class:`~picorr.models.ModelError` (N < 2, non-finite or negative rates, a bad
    method or tolerance, no dissipation, 'rates' without U(1) symmetry) before any work.
    """
    from .steady import METHODS

    if settings.method not in METHODS:
        raise ModelError(f"method must be one of {', '.join(METHODS)}, got {settings.method!r}")
    tol = settings.tol
    if isinstance(tol, bool) or not (isinstance(tol, (int, float)) and 0 < tol < 1):
        raise ModelError(f"tol must be a number in (0, 1), got {tol!r}")
    if not (isinstance(settings.blas_threads, int) and settings.blas_threads >= 1):
        raise ModelError(f"blas_threads must be an integer >= 1, got {settings.blas_threads!r}")
    for p in points:
        model = p.model()
        if not model.is_dissipative:
            raise ModelError(
                f"Gamma and gamma are both 0 at {p.key}: no dissipation, so no unique "
                "steady state")
        if settings.method == "rates" and not model.has_u1_symmetry:
            raise ModelError(f"method 'rates' needs h = 0 (U(1) symmetry), got h = {p.h}")


# --------------------------------------------------------------------------- the point


@lru_cache(maxsize=1)
def _provenance() -> dict:
    """What code computes here: package version, git commit (None outside a checkout)."""
    import scipy

    from . import __version__

    root = Path(__file__).resolve().parents[2]
    commit = dirty = None
    if (root / ".git").exists():
        try:
            commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                    text=True, timeout=10).stdout.strip() or None
            st = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                cwd=root, capture_output=True, text=True, timeout=10)
            dirty = bool(st.stdout.strip()) if st.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            pass
    return {"picorr_version": __version__, "git_commit": commit, "git_dirty": dirty,
            "python": platform.python_version(), "numpy": np.__version__,
            "scipy": scipy.__version__}


@lru_cache(maxsize=1)
def _restore_malloc_thresholds() -> bool:
    """Undo a small ``MALLOC_TRIM_THRESHOLD_`` in this process (glibc only); True if done.

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also turns off
    glibc's adaptive mmap threshold: every large temporary of a solve is then mapped and
    page-faulted afresh, and a Krylov solve at N = 100 ran 1.2-2x slower than in a local
    process. Thresholds of 32 MiB (mmap) and 64 MiB (trim), where glibc's adaptive ones
    settle, give back the local speed. Only a worker that runs points is affected.
    """
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ or not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        ok = libc.mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1
        return libc.mallopt(M_TRIM_THRESHOLD, 64 << 20) == 1 and ok
    except (OSError, AttributeError):
        return False


def _release_free_memory() -> None:
    """Hand the heap freed by a finished point back to the system (glibc ``malloc_trim``).

    A long-lived worker's resident size otherwise grows from point to point (measured:
    9.6 to 15.9 GB over ten N = 600 points), because SuperLU allocates on several threads
    and glibc keeps the freed pages in per-thread arenas; the next, larger solve then
    competes with memory that nothing uses."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import ctypes.util

        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def compute_point(point: Point, settings: SolverSettings) -> dict:
    """Solve one point; return its record (plain JSON values), or ``{"error": ...}``.

    This is the function the workers run. It never raises for a point that cannot be
    solved (the error is part of the result: retrying would give the same), so an
    exception from its future always means the worker or the executor failed.
    """
    from .steady import steady_state

    malloc_restored = _restore_malloc_thresholds()
    started = _utc_now()
    t0 = time.perf_counter()
    base = {**point.params(), "model": "lmg", "settings": settings.as_dict()}
    provenance = _POOL_PROVENANCE or _provenance()
    meta = {"format": FORMAT, **provenance, "host": socket.gethostname(),
            "pid": os.getpid(), "started": started, "malloc_restored": malloc_restored}
    try:
        res = steady_state(point.model(), method=settings.method, tol=settings.tol,
                           blas_threads=settings.blas_threads, threads=settings.blas_threads)
        out = res.summary()
    except Exception as exc:  # noqa: BLE001 - reported with the point, not retried
        msg = str(exc).splitlines()[0] if str(exc) else ""
        return {**base, "error": f"{type(exc).__name__}: {msg}",
                "meta": {**meta, "seconds": time.perf_counter() - t0}}
    seconds = time.perf_counter() - t0
    del res
    _release_free_memory()
    out["seconds"] = seconds
    out.update(base)
    out["meta"] = {**meta, "seconds": seconds, "finished": _utc_now()}
    return out


#: On an executor other than the local pool (a Dask cluster, whose worker processes live
#: for many points), points from this N on are computed in a fresh child process each.
#: A long-lived process keeps the heap of its earlier points: measured at N = 800 with two
#: threads, one worker peaked at 10.7, 18.3 and over 19.7 GB in its first three points,
#: where a fresh process needs 11.2 GB. Below this N a point costs less than the child's
#: start (about a second).
ISOLATE_FROM_N = 200


class PointProcessDied(RuntimeError):
    """The child process computing a point died (killed, e.g. out of memory) or failed
    outside the solve; the runner treats it like a lost worker and resubmits the point."""


def _child_command() -> list[str]:
    return [sys.executable, "-c", "from picorr.sweep import _child_main; _child_main()"]


def _child_main() -> None:
    """Entry point of the child of :func:`compute_point_isolated`: a point and settings as
    JSON on stdin, its record as one JSON line on stdout."""
    job = json.loads(sys.stdin.read())
    rec = compute_point(Point(**job["point"]), SolverSettings(**job["settings"]))
    sys.stdout.write(json.dumps(plain(rec)) + "\n")


def compute_point_isolated(point: Point, settings: SolverSettings) -> dict:
    """:func:`compute_point` in a fresh Python process, so that the point's memory (and its
    recorded peak) is its own and is all returned to the system when it ends. Raises
    :class:`PointProcessDied` when the child does not return a record."""
    package_root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [package_root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    job = json.dumps({"point": point.params(), "settings": settings.as_dict()})
    proc = subprocess.run(_child_command(), input=job, capture_output=True, text=True, env=env)
    if proc.returncode < 0:
        raise PointProcessDied(f"the process computing {point.key} was killed by signal "
                               f"{-proc.returncode} (out of memory?)")
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = proc.stderr.strip().splitlines()
        raise PointProcessDied(f"the process computing {point.key} exited with status "
                               f"{proc.returncode}: {tail[-1] if tail else 'no output'}")
    return json.loads(lines[-1])


# --------------------------------------------------------------------------- files


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is either absent/old or complete.

    The bytes go to a hidden temporary file in the same directory, are fsynced, and the
    file is renamed over ``path`` (:func:`os.replace`, atomic on POSIX); the directory is
    fsynced so that the rename survives a crash.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{_TMP}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def write_point(out, point: Point, record: dict, arrays: dict | None = None) -> Path:
    """Store one finished point: arrays (if any) as ``<key>.<name>.npy`` first, then the
    JSON file, which marks the point as finished and names the arrays."""
    import io

    out = Path(out)
    record = dict(record)
    if arrays:
        names = {}
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.save(buf, np.asarray(arr), allow_pickle=False)
            fname = f"{point.key}.{name}.npy"
            write_atomic(out / fname, buf.getvalue())
            names[name] = fname
        record["arrays"] = names
    path = out / f"{point.key}.json"
    text = json.dumps(plain(record), indent=1, allow_nan=False) + "\n"
    write_atomic(path, text.encode())
    return path


def read_point(path) -> dict:
    """The record of a point file (raises ``ValueError`` for a damaged file)."""
    return json.loads(Path(path).read_text())


def load_array(path, record: dict, name: str) -> np.ndarray:
    """An array stored beside a point file (``record['arrays'][name]``), without pickle."""
    return np.load(Path(path) / record["arrays"][name], allow_pickle=False)


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class Plan:
    """What a sweep over ``out`` has to do: points to compute, points to reuse, and stored
    points that cannot be reused as they are (``(point, reason)``)."""

    todo: tuple
    reused: tuple
    stale: tuple


def _stale_reason(point: Point, rec, settings: SolverSettings) -> str | None:
    if not isinstance(rec, dict) or "error" in rec:
        return "not a finished point"
    for k, v in point.params().items():
        if rec.get(k) != v:
            return f"stored {k} = {rec.get(k)!r} differs from the file name"
    stored = rec.get("settings") or {}
    for k, v in settings.criteria().items():
        if stored.get(k) != v:
            return f"stored {k} = {stored.get(k)!r}, requested {v!r}"
    return None


def plan_sweep(points, out, settings: SolverSettings) -> Plan:
    """Compare the requested points with what ``out`` holds (reads only)."""
    out = Path(out)
    todo, reused, stale = [], [], []
    for p in points:
        path = out / f"{p.key}.json"
        if not path.exists():
            todo.append(p)
            continue
        try:
            rec = read_point(path)
        except (OSError, ValueError) as exc:
            stale.append((p, f"unreadable ({exc})"))
            continue
        reason = _stale_reason(p, rec, settings)
        (stale.append((p, reason)) if reason else reused.append(p))
    return Plan(tuple(todo), tuple(reused), tuple(stale))


def _lock(out: Path):
    """Hold an exclusive lock on ``out`` (released by the kernel if we are killed)."""
    import fcntl

    f = open(out / _LOCK, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise SweepError(f"--out {out}: another sweep is writing this directory") from None
    return f


def _remove_leftovers(out: Path) -> int:
    """Remove temporary files that a killed sweep left (we hold the lock: none is live)."""
    n = 0
    for p in out.glob(f".*{_TMP}"):
        try:
            p.unlink()
            n += 1
        except OSError:
            pass
    return n


# --------------------------------------------------------------------------- executors


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


_THREAD_LIMIT = None


def _exit_with(conn) -> None:
    """End this process when the submitting process has gone.

    ``conn`` is the read end of a pipe whose only write end the submitting process holds:
    it reaches end-of-file when that process ends in any way (SIGKILL included, and before
    its parent reaps it). A pool worker would otherwise outlive a killed sweep: it holds
    the write ends of its own queues, so it never sees them close. Its running point is
    lost, which costs nothing: only the submitting process writes results.
    """
    import threading

    def watch():
        try:
            while True:
                conn.recv_bytes()
        except (EOFError, OSError):
            os._exit(1)

    threading.Thread(target=watch, name="picorr-parent-watch", daemon=True).start()


#: The provenance of the code a local pool runs, from the submitting process (see
#: :func:`_init_worker`); None in other processes, which read their own checkout.
_POOL_PROVENANCE: dict | None = None


def _init_worker(blas_threads: int, parent_alive=None, provenance: dict | None = None) -> None:
    """Pool-worker initializer: at most ``blas_threads`` BLAS/OpenMP threads, leave Ctrl-C
    to the submitting process, and exit when that process has gone (``parent_alive``, see
    :func:`_exit_with`).

    ``provenance`` is what the submitting process read of its checkout when the pool was
    made. The workers run the code their fork server imported then, so a point records that,
    not the checkout's state when the point starts (a commit made during a long sweep)."""
    global _THREAD_LIMIT, _POOL_PROVENANCE
    from threadpoolctl import threadpool_limits

    _POOL_PROVENANCE = provenance

    if parent_alive is not None:
        _exit_with(parent_alive)

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[var] = str(blas_threads)
    _THREAD_LIMIT = threadpool_limits(limits=blas_threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def local_executor(workers: int | None = None) -> cf.ProcessPoolExecutor:
    """A pool of ``workers`` processes (default: the cores), each limited to
    ``max(1, cores // workers)`` BLAS threads so that the pool does not oversubscribe.

    Workers are forked from a fork server that has imported picorr (fast to start, and no
    file descriptor of the submitting process, such as the directory lock, is inherited).
    Each worker computes one point and exits (``max_tasks_per_child=1``):
    a long-lived worker kept the heap of its earlier points even after ``malloc_trim``
    (measured at N = 800, two threads: a peak of 10.7 GB in its first point, 18.3 GB in its
    second, over 19.7 GB into its third; that third point alone in a fresh process: 11.2 GB),
    so that the memory check refuses, or the machine runs out. A fresh process also
    makes each point's recorded peak memory its own.
    """
    workers = workers or available_cores()
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["picorr.sweep"])
    budget = max(1, available_cores() // workers)
    alive_r, alive_w = ctx.Pipe(duplex=False)
    ex = cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, max_tasks_per_child=1,
                                initializer=_init_worker,
                                initargs=(budget, alive_r, _provenance.__wrapped__()))
    ex._picorr_alive = (alive_r, alive_w)  # open as long as the pool (closing ends workers)
    return ex


def _terminate(executor) -> None:
    """Stop a local pool now (its running points are lost; nothing was written by them)."""
    executor.shutdown(wait=False, cancel_futures=True)
    for proc in list((getattr(executor, "_processes", None) or {}).values()):
        try:
            proc.terminate()
        except Exception:  # noqa: BLE001
            pass


# --------------------------------------------------------------------------- running


@dataclass(frozen=True)
class SweepReport:
    """The outcome of :func:`run_sweep`. ``computed + reused + len(failed) == points``;
    ``stale`` of the computed ones replaced stored points with other settings."""

    points: int
    computed: int
    reused: int
    stale: int
    failed: tuple
    out: str
    seconds: float
    resubmitted: int = 0

    def as_dict(self) -> dict:
        return {"points": self.points, "computed": self.computed, "reused": self.reused,
                "stale": self.stale, "failed": len(self.failed), "out": self.out,
                "seconds": self.seconds, "resubmitted": self.resubmitted}


def _is_killed_worker(exc) -> bool:
    return type(exc).__name__ == "KilledWorker"


def run_sweep(
    points,
    out,
    *,
    settings: SolverSettings = SolverSettings(),
    executor: cf.Executor | None = None,
    workers: int | None = None,
    recompute_stale: bool = False,
    progress: bool = True,
    max_attempts: int = 3,
    isolate: bool | None = None,
) -> SweepReport:
    """Compute every point not already finished in ``out`` and store each as it finishes.

    Parameters
    ----------
    points : sequence of Point
    out : path
        The sweep directory (created if missing). Only this process writes it.
    settings : SolverSettings
    executor : concurrent.futures.Executor, optional
        Where points run, e.g. ``dask.distributed.Client(addr).get_executor()``. Default: a
        local process pool of ``workers`` processes (:func:`local_executor`), recreated if
        a worker process dies.
    recompute_stale : bool
        Recompute stored points whose settings differ from ``settings``; otherwise such
        points raise :class:`StaleResultsError` before any work starts.
    max_attempts : int
        A point whose worker died this many times (or a local pool that broke this many
        times in a row without finishing a point) is given up.
    isolate : bool, optional
        On ``executor``: compute each point in a fresh child process of the worker
        (:func:`compute_point_isolated`). Default (None): for points with
        ``N >= ISOLATE_FROM_N``. The local pool gives every point a fresh process anyway.

    Returns
    -------
    SweepReport
        Points whose solve failed (e.g. not converged) are in ``failed`` as
        ``(key, message)`` and have no file.

    Notes
    -----
    The local pool starts its workers from a fork server, so a script that calls this
    function needs the usual ``if __name__ == "__main__":`` guard (notebooks do not).
    """
    t0 = time.perf_counter()
    points = sorted(dict.fromkeys(points))
    validate_points(points, settings)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SweepError(f"--out {out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    lock = _lock(out)
    own_pool = executor is None
    ex = None
    pending: dict = {}  # future -> point
    try:
        _remove_leftovers(out)
        plan = plan_sweep(points, out, settings)
        if plan.stale and not recompute_stale:
            p, why = plan.stale[0]
            raise StaleResultsError(
                f"--out {out}: {len(plan.stale)} stored point(s) were computed with other "
                f"settings (e.g. {p.key}: {why}); rerun with --recompute-stale to recompute "
                "them, or choose another --out")
        stale_keys = {p.key for p, _ in plan.stale}
        # the largest points first: the long ones start early and the tail is short
        todo = sorted(list(plan.todo) + [p for p, _ in plan.stale], key=lambda p: (-p.N, p))
        state = {"computed": 0, "resubmitted": 0, "stalls": 0}
        failed: list = []
        attempts: dict = {}
        if todo:
            from tqdm.auto import tqdm

            ex = local_executor(workers) if own_pool else executor
            bar = tqdm(total=len(todo), desc="sweep", unit="pt", file=sys.stderr,
                       disable=not progress, dynamic_ncols=True)

            def say(msg):
                bar.write(f"picorr: {msg}", file=sys.stderr)

            def submit(p):
                alone = not own_pool and (p.N >= ISOLATE_FROM_N if isolate is None else isolate)
                fn = compute_point_isolated if alone else compute_point
                pending[ex.submit(fn, p, settings)] = p

            def finish(p, rec):
                if "error" in rec:
                    failed.append((p.key, rec["error"]))
                    say(f"{p.key}: {rec['error']}")
                else:
                    write_point(out, p, rec)
                    state["computed"] += 1
                    state["stalls"] = 0
                bar.update(1)

            def give_up(p, why):
                failed.append((p.key, why))
                say(f"{p.key}: given up ({why})")
                bar.update(1)

            with bar:
                if plan.reused:
                    say(f"reusing {len(plan.reused)} finished point(s) in {out}")
                for p in todo:
                    submit(p)
                while pending:
                    done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                    broken = False
                    for fut in done:
                        p = pending.pop(fut)
                        try:
                            rec = fut.result()
                        except BrokenProcessPool:
                            if not own_pool:
                                raise
                            broken = True
                            pending[fut] = p  # resubmitted to a new pool below
                            continue
                        except Exception as exc:  # the worker or the executor failed
                            attempts[p] = attempts.get(p, 0) + 1
                            first = str(exc).splitlines()[0] if str(exc) else ""
                            why = f"{type(exc).__name__}: {first}"
                            if _is_killed_worker(exc) or attempts[p] >= max_attempts:
                                give_up(p, why)
                            else:
                                say(f"{p.key}: {why}; resubmitting")
                                state["resubmitted"] += 1
                                submit(p)
                            continue
                        finish(p, rec)
                    if broken:
                        # A worker process died: every unfinished future of this pool is
                        # lost. Keep the results that made it; resubmit the rest to a new pool.
                        state["stalls"] += 1
                        lost = []
                        for fut, p in list(pending.items()):
                            del pending[fut]
                            if fut.done() and not fut.cancelled() and fut.exception() is None:
                                finish(p, fut.result())
                            else:
                                lost.append(p)
                        _terminate(ex)
                        ex = None
                        if state["stalls"] >= max_attempts:
                            say(f"the worker pool broke {state['stalls']} times in a row without "
                                "finishing a point (out of memory?)")
                            for p in lost:
                                give_up(p, "its worker process died repeatedly")
                            break
                        say(f"a worker process died; resubmitting {len(lost)} point(s)")
                        ex = local_executor(workers)
                        state["resubmitted"] += len(lost)
                        for p in lost:
                            submit(p)
    except BaseException:
        for fut in pending:
            fut.cancel()
        if own_pool and ex is not None:
            _terminate(ex)
        raise
    finally:
        lock.close()
    if own_pool and ex is not None:
        ex.shutdown(wait=True)
    failed_keys = {k for k, _ in failed}
    return SweepReport(
        points=len(points), computed=state["computed"], reused=len(plan.reused),
        stale=sum(1 for p in todo if p.key in stale_keys and p.key not in failed_keys),
        failed=tuple(failed), out=str(out), seconds=time.perf_counter() - t0,
        resubmitted=state["resubmitted"])


# --------------------------------------------------------------------------- loading

_PARAMS = ("N", "coupling", "h", "Gamma", "gamma")
_FLOATS = ("IM_per_N", "I_M", "S_T", "S_1", "residual", "relative_residual", "trace",
           "hermiticity_error", "min_eigenvalue", "seconds", "peak_rss_gb")


@dataclass(frozen=True, eq=False)
class SweepTable:
    """A sweep directory as columns, one row per point, sorted by (N, h, Γ, 𝒥, γ).

    Parameters ``N`` (int), ``coupling``, ``h``, ``Gamma``, ``gamma``; results
    ``IM_per_N``, ``I_M``, ``S_T``, ``S_1`` (nats), ``m`` (n×3: m_x, m_y, m_z), the evidence
    ``residual``, ``relative_residual``, ``trace``, ``hermiticity_error``,
    ``min_eigenvalue``, ``iterations``, ``method`` (used) and ``tol`` (requested), and the
    cost ``seconds``, ``peak_rss_gb`` (the peak of the process that computed the point: its
    own in a local sweep, where each point has a fresh process, and on a cluster from
    ``ISOLATE_FROM_N`` on; for smaller points on a cluster, whose workers run several of
    them, an upper bound for this one). ``keys`` are the file stems,
    ``records`` the full JSON records (with ``settings`` and ``meta``).
    """

    N: np.ndarray
    coupling: np.ndarray
    h: np.ndarray
    Gamma: np.ndarray
    gamma: np.ndarray
    IM_per_N: np.ndarray
    I_M: np.ndarray
    S_T: np.ndarray
    S_1: np.ndarray
    m: np.ndarray
    residual: np.ndarray
    relative_residual: np.ndarray
    trace: np.ndarray
    hermiticity_error: np.ndarray
    min_eigenvalue: np.ndarray
    iterations: np.ndarray
    method: np.ndarray
    tol: np.ndarray
    seconds: np.ndarray
    peak_rss_gb: np.ndarray
    keys: tuple = ()
    records: tuple = field(default=(), repr=False)

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def from_records(cls, records, keys=None) -> SweepTable:
        records = list(records)
        keys = list(keys) if keys is not None else [Point(
            **{k: r[k] for k in ("N", "h", "Gamma", "coupling", "gamma")}).key for r in records]
        order = sorted(range(len(records)), key=lambda i: tuple(
            records[i][k] for k in ("N", "h", "Gamma", "coupling", "gamma")))
        records = [records[i] for i in order]
        keys = [keys[i] for i in order]

        def col(name, dtype=float):
            vals = [r.get(name) for r in records]
            if dtype is float:
                vals = [np.nan if v is None else v for v in vals]
            return np.array(vals, dtype=dtype)

        return cls(
            N=col("N", int), coupling=col("coupling"), h=col("h"), Gamma=col("Gamma"),
            gamma=col("gamma"),
            **{k: col(k) for k in _FLOATS},
            m=np.array([r["m"] for r in records], dtype=float).reshape(len(records), 3),
            iterations=col("iterations", int),
            method=np.array([r.get("method", "") for r in records], dtype=str),
            tol=np.array([(r.get("settings") or {}).get("tol", np.nan) for r in records],
                         dtype=float),
            keys=tuple(keys), records=tuple(records))

    def where(self, **params) -> SweepTable:
        """The rows whose parameters equal the given values, e.g. ``t.where(N=40, h=0.5)``."""
        mask = np.ones(len(self), dtype=bool)
        for k, v in params.items():
            if k not in _PARAMS:
                raise KeyError(f"where() takes parameters {_PARAMS}, got {k!r}")
            mask &= getattr(self, k) == v
        idx = np.flatnonzero(mask)
        return SweepTable.from_records([self.records[i] for i in idx],
                                       [self.keys[i] for i in idx])


def load_sweep(path) -> SweepTable:
    """Read a sweep directory (its ``*.json`` point files; JSON only, never pickle)."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no sweep directory at {path}")
    records, keys = [], []
    for f in sorted(path.glob("*.json")):
        if f.name.startswith("."):
            continue
        try:
            rec = read_point(f)
        except ValueError as exc:
            raise ValueError(f"{f}: not a valid point file ({exc})") from None
        if "error" in rec:
            continue
        records.append(rec)
        keys.append(f.stem)
    return SweepTable.from_records(records, keys)
