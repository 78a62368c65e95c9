"""The ``theory`` and ``groundstate`` commands: stable JSON output (the last stdout line)
and one-line errors that name the parameter."""

import json
import math
import subprocess
import sys

import pytest


def run(*args):
    return subprocess.run([sys.executable, "-m", "picorr", *args], capture_output=True, text=True, timeout=300)


def last_json(proc):
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def b(x):
    return -sum(p * math.log(p) for p in ((1 + x) / 2, (1 - x) / 2) if p > 0)


def test_theory_json_h05():
    out = last_json(run("theory", "--coupling", "3", "--h", "0.5", "--Gamma", "2.7", "--gamma", "1", "--json"))
    for key in ("IM_per_N", "attractor", "m_mean", "error_estimate"):
        assert key in out
    assert out["attractor"] == "limit_cycle" and out["unique"] and out["converged"]
    assert len(out["m_mean"]) == 3 and out["error_estimate"] < 1e-6
    assert 0.1 < out["IM_per_N"] < 0.3


def test_theory_json_h0_matches_eq18():
    out = last_json(run("theory", "--coupling", "3", "--h", "0", "--Gamma", "1.68", "--gamma", "1", "--json"))
    mz, mxy = 1 / 1.68, math.sqrt(2 * 0.68) / 1.68  # Eq. (17)
    assert out["IM_per_N"] == pytest.approx(b(mz) - b(math.hypot(mz, mxy)), abs=1e-7)  # Eq. (18)
    assert out["m_mean"][2] == pytest.approx(mz, abs=1e-9)


def test_groundstate_json():
    out = last_json(run("groundstate", "--N", "1000", "--coupling", "-1", "--h", "0.01", "--json"))
    assert "IM_per_N" in out and len(out["m"]) == 3
    assert out["IM_per_N"] == pytest.approx(b(math.hypot(*out["m"])), abs=1e-14)
    out0 = last_json(run("groundstate", "--N", "1000", "--coupling", "-1", "--h", "0", "--json"))
    assert out0["IM_per_N"] == pytest.approx(math.log(2), abs=1e-15)


@pytest.mark.parametrize(
    "args, name",
    [
        (["theory", "--coupling", "3", "--Gamma", "-1"], "Gamma"),
        (["theory", "--coupling", "nan", "--Gamma", "1"], "coupling"),
        (["theory", "--coupling", "3", "--Gamma", "abc"], "Gamma"),
        (["theory", "--coupling", "3", "--Gamma", "1", "--gamma", "-2"], "gamma"),
        (["theory", "--coupling", "3"], "Gamma"),
        (["groundstate", "--N", "2.5", "--coupling", "-1"], "N"),
        (["groundstate", "--N", "100", "--coupling", "1"], "coupling"),
        (["groundstate", "--N", "100", "--coupling", "-1", "--h", "inf"], "h"),
    ],
)
def test_invalid_input_one_line(args, name):
    proc = run(*args, "--json")
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert name in lines[0]
