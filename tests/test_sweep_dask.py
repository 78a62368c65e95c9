"""``python -m picorr sweep --scheduler``: a real Dask cluster on 127.0.0.1.

The module starts ``dask scheduler`` and two ``dask worker`` processes (free ports, bound to
127.0.0.1 only) and stops them at the end. It checks that the cluster gives the local
numbers, that a worker killed mid-sweep costs only its running point, and that a sweep
killed locally is finished on the cluster reusing the local points.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

from picorr.sweep import grid, load_sweep, run_sweep  # noqa: E402


def snapshot(d: Path) -> dict:
    return {f.name: (f.read_bytes(), f.stat().st_mtime_ns) for f in sorted(d.glob("*.json"))}


def cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "picorr", "sweep", *args],
                          capture_output=True, text=True, timeout=300, **kw)


class Cluster:
    """A scheduler and workers as subprocesses (each in its own process group)."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.procs: dict = {}
        sched_file = tmp / "scheduler.json"
        self._start("scheduler", ["scheduler", "--host", "127.0.0.1", "--port", "0",
                                  "--no-dashboard", "--scheduler-file", str(sched_file)])
        deadline = time.monotonic() + 60
        self.address = None
        while time.monotonic() < deadline and self.address is None:
            try:
                self.address = json.loads(sched_file.read_text())["address"]
            except (OSError, ValueError, KeyError):
                time.sleep(0.1)
        assert self.address and self.address.startswith("tcp://127.0.0.1:"), self.log("scheduler")
        self.client = distributed.Client(self.address, timeout="20s")
        for name in ("w1", "w2"):
            self.start_worker(name)
        self.client.wait_for_workers(2, timeout=60)

    def _start(self, name, args):
        log = open(self.tmp / f"{name}.log", "w")
        self.procs[name] = subprocess.Popen([sys.executable, "-m", "dask", *args],
                                            stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def log(self, name) -> str:
        return (self.tmp / f"{name}.log").read_text()[-3000:]

    def start_worker(self, name):
        self._start(name, ["worker", self.address, "--host", "127.0.0.1", "--nthreads", "1",
                           "--nworkers", "1", "--no-dashboard", "--name", name,
                           "--death-timeout", "60"])

    def worker_address(self, name) -> str:
        for addr, w in self.client.scheduler_info(n_workers=-1)["workers"].items():
            if w.get("name") == name:
                return addr
        raise KeyError(name)

    def kill(self, name, sig=signal.SIGKILL):
        proc = self.procs.pop(name)
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def close(self):
        self.client.close()
        for name in [n for n in self.procs if n != "scheduler"] + ["scheduler"]:
            if name in self.procs:
                self.kill(name, signal.SIGTERM)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("dask"))
    yield c
    c.close()


def test_cluster_gives_the_local_numbers(cluster, tmp_path):
    args = ["--N", "10,14", "--coupling", "3", "--h", "0.5", "--Gamma", "0.5:2.0:0.5",
            "--gamma", "1", "--json"]
    res = cli(*args, "--out", str(tmp_path / "cluster"), "--scheduler", cluster.address)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert (summary["points"], summary["computed"], summary["reused"]) == (8, 8, 0)

    pts = grid([10, 14], 3.0, [0.5], [0.5, 1.0, 1.5, 2.0], 1.0)
    run_sweep(pts, tmp_path / "local", workers=1, progress=False)
    remote, local = load_sweep(tmp_path / "cluster"), load_sweep(tmp_path / "local")
    assert remote.keys == local.keys and len(remote) == 8
    np.testing.assert_allclose(remote.IM_per_N, local.IM_per_N, rtol=0, atol=1e-12)
    np.testing.assert_allclose(remote.m, local.m, rtol=0, atol=1e-12)
    # the cluster's worker processes computed them (and this process wrote them)
    worker_pids = set(cluster.client.run(os.getpid).values())
    assert {r["meta"]["pid"] for r in remote.records} <= worker_pids


def test_isolated_points_run_in_fresh_children_of_the_workers(cluster, tmp_path):
    """With isolation (the default from ISOLATE_FROM_N on) each point runs in a fresh child
    of a worker: its record's process is no worker and no other point's, so its memory
    and recorded peak are its own; the numbers equal the local ones."""
    pts = grid([6], 3.0, [0.5], [0.5, 1.0, 1.5, 2.0], 1.0)
    ex = cluster.client.get_executor(pure=False)
    rep = run_sweep(pts, tmp_path / "iso", executor=ex, progress=False, isolate=True)
    assert rep.computed == 4 and not rep.failed
    run_sweep(pts, tmp_path / "local", workers=1, progress=False)
    iso, local = load_sweep(tmp_path / "iso"), load_sweep(tmp_path / "local")
    np.testing.assert_allclose(iso.IM_per_N, local.IM_per_N, rtol=0, atol=1e-12)
    pids = [r["meta"]["pid"] for r in iso.records]
    worker_pids = set(cluster.client.run(os.getpid).values())
    assert len(set(pids)) == 4 and not set(pids) & worker_pids


def test_worker_killed_mid_sweep_loses_only_its_point(cluster, tmp_path):
    cluster.start_worker("victim")
    cluster.client.wait_for_workers(3, timeout=60)
    victim = cluster.worker_address("victim")
    out = tmp_path / "sweep"
    points = 9 * 3
    proc = subprocess.Popen(
        [sys.executable, "-m", "picorr", "sweep", "--N", "24:40:2", "--coupling", "3",
         "--h", "0.5", "--Gamma", "0.5,1.0,1.5", "--gamma", "1", "--out", str(out),
         "--scheduler", cluster.address, "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lost = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        running = cluster.client.processing(workers=[victim]).get(victim, [])
        if running and out.is_dir() and len(list(out.glob("*.json"))) >= 2:
            lost = running
            cluster.kill("victim")  # SIGKILL, worker and nanny, while it runs a point
            break
        time.sleep(0.01)
    stdout, stderr = proc.communicate(timeout=240)
    assert lost, "the victim never ran a point before the sweep ended"
    assert proc.returncode == 0, stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert (summary["points"], summary["computed"], summary["reused"]) == (points, points, 0)
    table = load_sweep(out)
    assert len(table) == points
    assert len(set(zip(table.N, table.Gamma))) == points  # every point exactly once
    assert len(list(out.glob("*.json"))) == points


def test_local_sweep_killed_then_finished_on_the_cluster(cluster, tmp_path):
    out = tmp_path / "sweep"
    args = ["--N", "8:30:1", "--coupling", "3", "--h", "0", "--Gamma", "0.1:1.0:0.1",
            "--gamma", "1", "--out", str(out), "--json"]
    points = 23 * 10
    proc = subprocess.Popen([sys.executable, "-m", "picorr", "sweep", *args, "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.is_dir() and len(list(out.glob("*.json"))) >= 20:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the local sweep ended before the kill"
    before = snapshot(out)
    assert 20 <= len(before) < points

    res = cli(*args, "--scheduler", cluster.address)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["reused"] == len(before)
    assert summary["computed"] + summary["reused"] == summary["points"] == points
    after = snapshot(out)
    assert len(after) == points and all(after[k] == v for k, v in before.items())


def test_unreachable_scheduler_is_one_line(tmp_path):
    with socket.socket() as s:  # a port on which nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    res = cli("--N", "10", "--coupling", "3", "--h", "0.5", "--Gamma", "1", "--gamma", "1",
              "--out", str(tmp_path / "out"), "--scheduler", f"tcp://127.0.0.1:{port}")
    assert time.monotonic() - t0 < 30
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "--scheduler" in lines[0] and "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists()
