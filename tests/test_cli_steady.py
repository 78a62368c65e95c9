"""``python -m picorr steady``: the stable JSON line, readable output, one-line errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

import bruteforce as bf


def run(*args):
    return subprocess.run([sys.executable, "-m", "picorr", "steady", *args],
                          capture_output=True, text=True, timeout=300)


def test_json_last_line_matches_full_lindblad():
    N, coupling, h, Gamma, gamma = 5, 3.0, 0.5, 1.68, 1.0
    proc = run("--N", str(N), "--coupling", "3", "--h", "0.5", "--Gamma", "1.68", "--gamma", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("N", "IM_per_N", "m", "residual", "seconds", "method"):
        assert key in out
    K = [[coupling, 0, 0], [0, coupling, 0], [0, 0, 0]]
    L = bf.lindbladian(bf.hamiltonian(N, K, [h, 0, 0]), bf.dissipator_terms(N, [(Gamma, 0, 1, 0)], {"+": gamma}))
    ref = bf.observables(bf.steady_state(L, 2**N), N)
    assert abs(out["IM_per_N"] - ref["I_M"] / N) < 1e-9
    np.testing.assert_allclose(out["m"], ref["m"], atol=1e-9)
    assert out["N"] == N and out["residual"] < 1e-10


def test_readable_summary():
    proc = run("--N", "12", "--coupling", "3", "--h", "0", "--Gamma", "2", "--gamma", "1")
    assert proc.returncode == 0
    assert "IM_per_N" in proc.stdout and "rates" in proc.stdout


@pytest.mark.parametrize(
    "args,word",
    [
        (["--N", "1", "--coupling", "3", "--h", "0.5", "--Gamma", "1", "--gamma", "1"], "N"),
        (["--N", "4.5", "--coupling", "3", "--h", "0.5", "--Gamma", "1", "--gamma", "1"], "--N"),
        (["--N", "10", "--coupling", "3", "--h", "0.5", "--Gamma", "-1", "--gamma", "1"], "Gamma"),
        (["--N", "10", "--coupling", "3", "--h", "nan", "--Gamma", "1", "--gamma", "1"], "h"),
        (["--N", "10", "--coupling", "3", "--h", "0.5", "--Gamma", "1"], "--gamma"),
        (["--N", "10", "--coupling", "3", "--h", "0.5", "--Gamma", "0", "--gamma", "0"], "dissipation"),
        (["--N", "10", "--coupling", "3", "--h", "0.5", "--Gamma", "1", "--gamma", "1", "--tol", "2"], "tol"),
        (["--N", "150", "--coupling", "3", "--h", "0.5", "--Gamma", "1", "--gamma", "1",
          "--max-memory", "0.01"], "--N 150: N = 150 needs an estimated"),
        (["--N", "50", "--coupling", "3", "--h", "0.5", "--Gamma", "1", "--gamma", "1",
          "--max-memory", "-1"], "--max-memory"),
        (["--N", "120", "--coupling", "3", "--h", "0.5", "--Gamma", "1", "--gamma", "1",
          "--window-tol", "0"], "--window-tol must be a number in (0, 1)"),
        (["--N", "40", "--coupling", "3", "--h", "0.5", "--Gamma", "1", "--gamma", "1",
          "--window-tol", "1e-6"], "--window-tol applies to the window method only"),
    ],
)
def test_bad_input_is_one_line(args, word):
    proc = run(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert word in lines[0]


def test_window_tolerance_sets_the_truncation_error():
    """``--window-tol`` sets the window scan's tolerance: at N = 120 the default (1e-9) stops
    at an estimated error of a few 1e-12, so 1e-12 needs a larger window, whose estimate is
    below it and whose I_M/N is within the default's estimate of the default solve."""
    base = ["--N", "120", "--coupling", "3", "--h", "0.5", "--Gamma", "1.68", "--gamma", "1",
            "--json"]
    ref = run(*base)
    tight = run(*base, "--window-tol", "1e-12")
    assert ref.returncode == 0 and tight.returncode == 0, tight.stderr
    ref, tight = (json.loads(p.stdout.strip().splitlines()[-1]) for p in (ref, tight))
    assert ref["method"] == tight["method"] == "window"
    assert 1e-12 < ref["window_error_estimate"] < 1e-9
    assert tight["window_error_estimate"] < 1e-12 and tight["window"] > ref["window"]
    assert abs(tight["IM_per_N"] - ref["IM_per_N"]) <= ref["window_error_estimate"]
    # the scan is in the JSON: its windows, iterations and times agree with the result
    for out in (ref, tight):
        scan = out["scan"]
        assert len(scan) == out["windows_tried"] >= 2 and scan[-1]["window"] == out["window"]
        assert sum(s["iterations"] for s in scan) == out["iterations"]
        assert scan[-1]["IM_per_N"] == out["IM_per_N"]
        assert scan[0]["change_IM_per_N"] is None  # no previous window (inf in Python)
        times = [s["seconds"] for s in scan]
        assert 0 < times[0] and times == sorted(times) and times[-1] <= out["seconds"]


def test_factor_precision_option():
    """``--factor-precision single`` solves with single-precision factors to the same I_M/N;
    the choice is in the JSON; methods without sector factors refuse the option."""
    base = ["--N", "120", "--coupling", "3", "--h", "0.5", "--Gamma", "2.7", "--gamma", "1",
            "--json"]
    ref, low = run(*base), run(*base, "--factor-precision", "single")
    assert ref.returncode == 0 and low.returncode == 0, low.stderr
    ref, low = (json.loads(p.stdout.strip().splitlines()[-1]) for p in (ref, low))
    assert ref["factor_precision"] == "double" and low["factor_precision"] == "single"
    assert abs(low["IM_per_N"] - ref["IM_per_N"]) < 1e-12
    rates = run("--N", "50", "--coupling", "3", "--h", "0", "--Gamma", "2.7", "--gamma", "1",
                "--factor-precision", "single")
    assert rates.returncode != 0 and len(rates.stderr.strip().splitlines()) == 1
    assert "--factor-precision applies to the krylov and window methods" in rates.stderr


def test_restart_and_deflate_options():
    """``--restart`` and ``--deflate`` reach the solver (they are in the JSON) and leave the
    answer as it is; bad values and methods without GMRES are refused in one line that
    names the option."""
    base = ["--N", "120", "--coupling", "3", "--h", "0.5", "--Gamma", "1.68", "--gamma", "1",
            "--json"]
    ref, short = run(*base), run(*base, "--restart", "8", "--deflate", "4")
    assert ref.returncode == 0 and short.returncode == 0, short.stderr
    ref, short = (json.loads(p.stdout.strip().splitlines()[-1]) for p in (ref, short))
    assert (ref["restart"], ref["deflate"]) == (60, 20)
    assert (short["restart"], short["deflate"]) == (8, 4)
    assert abs(short["IM_per_N"] - ref["IM_per_N"]) < 1e-11
    for extra, message in ((("--restart", "8", "--deflate", "5"),
                            "--deflate must be an integer from 0 to restart // 2 = 4, got 5"),
                           (("--restart", "0"), "--restart must be a positive integer, got 0")):
        bad = run(*base, *extra)
        assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1
        assert message in bad.stderr
    rates = run("--N", "50", "--coupling", "3", "--h", "0", "--Gamma", "2.7", "--gamma", "1",
                "--deflate", "4")
    assert rates.returncode != 0 and "--deflate applies to the krylov and window methods" \
        in rates.stderr


def test_progress_option_reports_each_window_on_stderr():
    """``--progress`` prints one line per window (N, window, iterations, factors, I_M/N)
    with the seconds since the start, on standard error, matching the JSON's scan; a
    method without windows refuses it in one line that names the option."""
    import re

    proc = run("--N", "120", "--coupling", "3", "--h", "0.5", "--Gamma", "1.68", "--gamma", "1",
               "--progress", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    lines = proc.stderr.strip().splitlines()
    pattern = re.compile(r"\[ *(\d+\.\d) s\] N = 120, window (\d+): (\d+) iterations "
                         r"\(\d+\.\d\d GB of double-precision factors\), I_M/N = (0\.\d{12})")
    found = [pattern.match(line) for line in lines]
    assert all(found) and len(found) == len(out["scan"]) == out["windows_tried"]
    for f, s in zip(found, out["scan"]):
        assert (int(f[2]), int(f[3])) == (s["window"], s["iterations"])
        assert float(f[4]) == pytest.approx(s["IM_per_N"], abs=1e-12)
    assert [float(f[1]) for f in found] == sorted(float(f[1]) for f in found)
    rates = run("--N", "50", "--coupling", "3", "--h", "0", "--Gamma", "2.7", "--gamma", "1",
                "--progress")
    assert rates.returncode != 0 and len(rates.stderr.strip().splitlines()) == 1
    assert "--progress applies to the window method only, and --N 50 is solved by 'rates'" \
        in rates.stderr
