"""``picorr.sweep`` and ``python -m picorr sweep``: parsing, point files, staleness, resume
after SIGKILL, and one-line refusals of bad input before any work starts."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from picorr import lmg, steady_state
from picorr.sweep import (
    Point,
    SolverSettings,
    StaleResultsError,
    SweepError,
    grid,
    load_sweep,
    parse_values,
    run_sweep,
    write_atomic,
)


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "picorr", "sweep", *args],
                          capture_output=True, text=True, timeout=timeout)


def snapshot(d: Path) -> dict:
    """Every point file's bytes and modification time."""
    return {f.name: (f.read_bytes(), f.stat().st_mtime_ns) for f in sorted(d.glob("*.json"))}


# ---------------------------------------------------------------- parsing


def test_range_includes_stop_and_matches_typed_values():
    v = parse_values("0.5:3.0:0.25", name="--Gamma")
    assert len(v) == 11 and v[0] == 0.5 and v[-1] == 3.0
    assert v == tuple(0.5 + 0.25 * i for i in range(11))  # exact in binary
    # decimal steps give the floats one would type, not accumulated round-off
    assert parse_values("0.1:0.7:0.1") == (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
    assert parse_values("3:1:-1") == (3.0, 2.0, 1.0)
    assert parse_values("2:2:1") == (2.0,)


def test_lists_ranges_and_integers():
    assert parse_values("30,40", name="--N", integer=True) == (30, 40)
    assert parse_values("10:20:5, 40", name="--N", integer=True) == (10, 15, 20, 40)
    assert parse_values("1, 1.0, 2") == (1.0, 2.0)  # repeats dropped
    assert parse_values("-0") == (0.0,) and str(parse_values("-0")[0]) == "0.0"
    assert all(type(n) is int for n in parse_values("8:12:2", integer=True))


@pytest.mark.parametrize("text,integer,word", [
    ("", False, "no values"),
    ("1,,2", False, "empty item"),
    ("1:2", False, "start:stop:step"),
    ("1:2:3:4", False, "start:stop:step"),
    ("1:2:0", False, "step 0"),
    ("2:1:0.5", False, "empty"),
    ("0:1:0.3", False, "not an integer"),
    ("abc", False, "not a number"),
    ("nan", False, "finite"),
    ("1:inf:1", False, "finite"),
    ("4.5", True, "integers"),
    ("10:11:0.5", True, "integers"),
    ("0:1e9:1", False, "more than"),
])
def test_malformed_values_name_the_parameter(text, integer, word):
    with pytest.raises(SweepError) as err:
        parse_values(text, name="--Gamma", integer=integer)
    msg = str(err.value)
    assert msg.startswith("--Gamma") and word in msg and "\n" not in msg


def test_point_key_is_canonical():
    p = Point(N=40, h=0.5, Gamma=1.25, coupling=3, gamma=1)
    assert p.key == "N=40_coupling=3.0_h=0.5_Gamma=1.25_gamma=1.0"
    # a value reached by a range has the same key as the value typed
    g = parse_values("0.1:0.3:0.1")[-1]
    assert Point(10, 0.0, g, 3.0, 1.0).key == Point(10, 0.0, 0.3, 3.0, 1.0).key
    assert Point(10, -0.0, 0.3, 3.0, 1.0).key == Point(10, 0.0, 0.3, 3.0, 1.0).key
    pts = grid([20, 10], 3.0, [0.5, 0.0], [2.0, 1.0], 1.0)
    assert [(p.N, p.h, p.Gamma) for p in pts] == sorted((p.N, p.h, p.Gamma) for p in pts)
    assert len({p.key for p in pts}) == len(pts) == 8


# ---------------------------------------------------------------- files


def test_atomic_write_leaves_old_file_or_new_file(tmp_path, monkeypatch):
    target = tmp_path / "a.json"
    write_atomic(target, b"old")
    assert target.read_bytes() == b"old"

    def crash(src, dst):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        write_atomic(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]  # no temporary left
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"


def test_point_equals_direct_solve_and_loads_back(tmp_path):
    """The stored point is steady_state called directly (to 1e-12), with its metadata."""
    pts = grid([6, 9], 3.0, [0.5], [0.75, 1.5], 1.0)
    settings = SolverSettings(method="auto", tol=1e-10)
    rep = run_sweep(pts, tmp_path, settings=settings, workers=2, progress=False)
    assert (rep.points, rep.computed, rep.reused, rep.failed) == (4, 4, 0, ())
    table = load_sweep(tmp_path)
    assert len(table) == 4 and table.m.shape == (4, 3)
    assert list(zip(table.N, table.Gamma)) == [(6, 0.75), (6, 1.5), (9, 0.75), (9, 1.5)]
    for i, p in enumerate(pts):
        ref = steady_state(lmg(p.N, p.coupling, p.h, p.Gamma, p.gamma), tol=1e-10)
        assert abs(table.IM_per_N[i] - ref.IM_per_N) < 1e-12
        np.testing.assert_allclose(table.m[i], ref.m, rtol=0, atol=1e-12)
        assert table.method[i] == ref.method and table.residual[i] < 1e-8
    rec = json.loads((tmp_path / f"{pts[0].key}.json").read_text())
    for k in ("IM_per_N", "m", "residual", "method", "iterations", "seconds", "N", "coupling",
              "h", "Gamma", "gamma"):
        assert k in rec
    assert rec["settings"] == {"method": "auto", "tol": 1e-10, "blas_threads": 1}
    for k in ("picorr_version", "git_commit", "host", "seconds", "started", "python"):
        assert k in rec["meta"]
    assert len(table.where(N=9)) == 2 and set(table.where(Gamma=1.5).N) == {6, 9}


def test_command_line_gives_each_local_worker_its_share_of_the_cores(tmp_path):
    """One local worker may use every core for the coherence sectors (recorded with the
    point); threads do not make a point stale."""
    from picorr.sweep import available_cores

    proc = cli("--N", "6", "--coupling", "3", "--h", "0.5", "--Gamma", "1", "--gamma", "1",
               "--out", str(tmp_path), "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    (f,) = tmp_path.glob("*.json")
    assert json.loads(f.read_text())["settings"]["blas_threads"] == available_cores()
    assert SolverSettings(blas_threads=2).criteria() == SolverSettings().criteria()


def test_each_local_point_runs_in_a_fresh_process(tmp_path):
    """A long-lived worker kept the heap of its earlier points (module doc of
    ``local_executor``), so every point gets its own process: three points on one worker
    are computed by three different processes, none of them this one."""
    run_sweep(grid([6], 3.0, [0.5], [1.0, 2.0, 3.0], 1.0), tmp_path, workers=1, progress=False)
    pids = {json.loads(f.read_text())["meta"]["pid"] for f in tmp_path.glob("*.json")}
    assert len(pids) == 3 and os.getpid() not in pids


def test_an_isolated_point_is_computed_in_a_child_process():
    """compute_point_isolated gives the in-process record's numbers, from another process
    whose peak memory is its own."""
    import picorr.sweep as sw

    (p,) = grid([8], 3.0, [0.5], [1.0], 1.0)
    here = sw.compute_point(p, SolverSettings())
    child = sw.compute_point_isolated(p, SolverSettings())
    assert child["meta"]["pid"] != os.getpid()
    assert abs(child["IM_per_N"] - here["IM_per_N"]) < 1e-14
    np.testing.assert_allclose(child["m"], here["m"], atol=1e-14)
    assert 0 < child["peak_rss_gb"] < 1.0


def test_a_child_that_dies_is_a_lost_worker_not_a_result(monkeypatch, tmp_path):
    """A child killed (e.g. by the out-of-memory killer) or failing outside the solve raises
    PointProcessDied, which the runner resubmits like a lost worker and finally gives up;
    points below ISOLATE_FROM_N run in the worker itself."""
    from concurrent.futures import ThreadPoolExecutor

    import picorr.sweep as sw

    (p,) = grid([8], 3.0, [0.5], [1.0], 1.0)
    monkeypatch.setattr(sw, "_child_command", lambda: [
        sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"])
    with pytest.raises(sw.PointProcessDied, match="killed by signal 9"):
        sw.compute_point_isolated(p, SolverSettings())
    monkeypatch.setattr(sw, "ISOLATE_FROM_N", 8)
    with ThreadPoolExecutor(1) as ex:  # an executor of the caller's, like Dask's
        rep = run_sweep(grid([4, 8], 3.0, [0.5], [1.0], 1.0), tmp_path, executor=ex,
                        progress=False, max_attempts=2)
    assert rep.computed == 1 and rep.resubmitted == 1
    ((key, why),) = rep.failed
    assert key == p.key and "PointProcessDied" in why and "signal 9" in why
    (done,) = tmp_path.glob("*.json")  # N = 4, below ISOLATE_FROM_N: in this process
    assert done.name.startswith("N=4_") and json.loads(done.read_text())["meta"]["pid"] == os.getpid()
    monkeypatch.setattr(sw, "_child_command", lambda: [
        sys.executable, "-c", "import sys; sys.stderr.write('boom\\n'); sys.exit(3)"])
    with pytest.raises(sw.PointProcessDied, match="exited with status 3: boom"):
        sw.compute_point_isolated(p, SolverSettings())


def test_a_pool_point_records_the_provenance_read_when_the_pool_was_made(monkeypatch):
    """Pool workers run the code their fork server imported when the pool was made, so a
    point records the submitter's reading of the checkout then, not the checkout at the
    time the point starts (a commit made during a long sweep)."""
    import picorr.sweep as sw

    then = {"picorr_version": "0", "git_commit": "abc", "git_dirty": False}
    monkeypatch.setattr(sw, "_POOL_PROVENANCE", then)
    (p,) = grid([4], 3.0, [0.0], [1.0], 1.0)
    rec = sw.compute_point(p, SolverSettings())
    assert {k: rec["meta"][k] for k in then} == then
    monkeypatch.setattr(sw, "_POOL_PROVENANCE", None)  # outside a pool: the own checkout
    assert sw.compute_point(p, SolverSettings())["meta"]["git_commit"] == sw._provenance()["git_commit"]


def test_resume_reuses_and_staleness_is_refused(tmp_path):
    pts = grid([8, 12], 3.0, [0.0], [1.0, 2.0, 3.0], 1.0)
    run_sweep(pts, tmp_path, workers=1, progress=False)
    before = snapshot(tmp_path)
    rep = run_sweep(pts + grid([16], 3.0, [0.0], [1.0], 1.0), tmp_path, workers=1,
                    progress=False)
    assert (rep.points, rep.computed, rep.reused) == (7, 1, 6)
    after = snapshot(tmp_path)
    assert all(after[k] == v for k, v in before.items())  # untouched: bytes and mtime
    # another tolerance: not reused silently, nothing written
    with pytest.raises(StaleResultsError, match="--recompute-stale"):
        run_sweep(pts, tmp_path, settings=SolverSettings(tol=1e-8), workers=1, progress=False)
    assert snapshot(tmp_path) == after
    rep = run_sweep(pts, tmp_path, settings=SolverSettings(tol=1e-8), workers=1,
                    progress=False, recompute_stale=True)
    assert (rep.computed, rep.reused, rep.stale) == (6, 0, 6)
    assert set(load_sweep(tmp_path).where(N=8).tol) == {1e-8}


def test_failed_point_is_reported_not_stored(tmp_path):
    """A point whose solve fails is reported with its reason and leaves no file."""
    pts = grid([10], 3.0, [0.5], [1.0], 1.0)
    rep = run_sweep(pts, tmp_path, settings=SolverSettings(method="krylov", tol=1e-30),
                    workers=1, progress=False)
    assert rep.computed == 0 and len(rep.failed) == 1
    assert rep.failed[0][0] == pts[0].key and "Error" in rep.failed[0][1]
    assert not list(tmp_path.glob("*.json"))


# ---------------------------------------------------------------- kill and resume


def test_sigkill_mid_sweep_then_resume(tmp_path):
    out = tmp_path / "sweep"
    args = ["--N", "8:30:1", "--coupling", "3", "--h", "0", "--Gamma", "0.1:2.0:0.1",
            "--gamma", "1", "--out", str(out), "--workers", "2", "--json"]
    points = 23 * 20
    proc = subprocess.Popen([sys.executable, "-m", "picorr", "sweep", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.is_dir() and len(list(out.glob("*.json"))) >= 30:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the sweep ended before it could be killed"
    # a temporary file of a write that a kill interrupted, as a crash would leave it
    (out / ".N=99_half-written.json.12345.tmp").write_text('{"IM_per')
    before = snapshot(out)
    assert 30 <= len(before) < points

    res = cli(*args)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["points"] == points
    assert summary["computed"] + summary["reused"] == points
    assert summary["reused"] == len(before)
    after = snapshot(out)
    assert len(after) == points
    assert all(after[k] == v for k, v in before.items())  # nothing finished was touched
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    table = load_sweep(out)
    assert len(set(zip(table.N, table.Gamma))) == points


def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d))
    return out


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_pool_worker_killed_mid_sweep_is_replaced(tmp_path):
    """SIGKILL the pool's workers mid-sweep: their points are resubmitted to a new pool.

    Every point has a fresh worker process, so a worker found a moment ago may already have
    finished its point and be exiting; the points here take a good fraction of a second
    each, and every worker alive at that moment is killed, so that running points are hit."""
    out = tmp_path / "sweep"
    points = 6 * 7
    proc = subprocess.Popen(
        [sys.executable, "-m", "picorr", "sweep", "--N", "30:40:2", "--coupling", "3", "--h",
         "0.5", "--Gamma", "0.5:2.0:0.25", "--gamma", "1", "--out", str(out), "--workers", "2",
         "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.is_dir() and len(list(out.glob("*.json"))) >= 4:
            break
        time.sleep(0.02)
    # the workers are the children of the fork server, a child of the sweep
    workers = [w for c in _children(proc.pid) for w in _children(c)]
    assert workers and proc.poll() is None, "the sweep ended before a worker could be killed"
    for w in workers:
        os.kill(w, signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, stderr
    assert "worker process died" in stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["computed"] == summary["points"] == points
    assert len(list(out.glob("*.json"))) == points


# ---------------------------------------------------------------- the command line


@pytest.mark.parametrize("change,word", [
    ({"--N": "1"}, "--N"),
    ({"--N": "4.5"}, "--N"),
    ({"--N": "10:20:3"}, "--N"),
    ({"--Gamma": "-1"}, "Gamma"),
    ({"--Gamma": "nan"}, "--Gamma"),
    ({"--Gamma": "1:2"}, "--Gamma"),
    ({"--Gamma": "2:1:0.5"}, "--Gamma"),
    ({"--Gamma": ""}, "--Gamma"),
    ({"--gamma": "inf"}, "gamma"),
    ({"--h": "0.5,inf"}, "--h"),
    ({"--Gamma": "0", "--gamma": "0"}, "dissipation"),
    ({"--tol": "2"}, "tol"),
    ({"--workers": "0"}, "--workers"),
    ({"--method": "rates"}, "rates"),
    ({"--scheduler": "localhost:8786"}, "--scheduler"),
    ({"--scheduler": "tcp://127.0.0.1:99999"}, "--scheduler"),
])
def test_bad_input_is_refused_before_any_work(tmp_path, change, word):
    opts = {"--N": "10", "--coupling": "3", "--h": "0.5", "--Gamma": "1", "--gamma": "1",
            "--out": str(tmp_path / "out"), **change}
    t0 = time.monotonic()
    res = cli(*[x for kv in opts.items() for x in kv])
    assert time.monotonic() - t0 < 30
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert word in lines[0]
    assert not (tmp_path / "out").exists()  # refused before any work


def test_local_sweep_does_not_import_dask(tmp_path):
    code = ("import sys; from picorr.cli import main; "
            f"rc = main(['sweep', '--N', '6', '--coupling', '3', '--h', '0', '--Gamma', '1', "
            f"'--gamma', '1', '--out', {str(tmp_path)!r}, '--workers', '1', '--json']); "
            "assert rc == 0; assert 'distributed' not in sys.modules and 'dask' not in "
            "sys.modules, 'dask imported'")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1])["computed"] == 1
