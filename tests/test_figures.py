"""picorr.figures (the data behind the book's figures) and picorr.plotting."""

from __future__ import annotations

import sys
import types

import matplotlib

matplotlib.use("Agg")  # tests draw off screen; the book itself never sets a backend

import numpy as np
import pytest

from picorr import lmg, steady_state
from picorr import figures, plotting
from picorr.dicke import ln_dim
from picorr.groundstate import ground_state
from picorr.macroscopic import b, im_per_n_h0, lmg_macroscopic
from picorr.states import product_state


@pytest.mark.parametrize("N, h", [(8, 0.5), (12, 0.0), (25, 0.0)])
def test_finite_n_curve_is_steady_state_point_by_point(N, h):
    G = [0.4, 1.0, 1.68, 3.0]
    c = figures.finite_n_curve(N, 3.0, h, G)
    assert c.N == N and c.source == "live" and c.parameter == "Gamma"
    for g, im, m in zip(G, c.IM_per_N, c.m):
        s = steady_state(lmg(N, 3.0, h, g, 1.0))
        assert im == pytest.approx(s.IM_per_N, abs=1e-12)
        np.testing.assert_allclose(m, s.m, atol=1e-12)
    assert c.method == ("rates" if h == 0 else "direct")


def test_theory_curve_h0_is_closed_form_and_matches_integration():
    G = np.array([0.5, 1.3, 1.68, 2.5])
    c = figures.theory_curve(G, 3.0, 0.0)
    np.testing.assert_allclose(c.IM_per_N, im_per_n_h0(G), atol=0)
    # the closed form against an independent numerical attractor at one point
    assert c.IM_per_N[2] == pytest.approx(lmg_macroscopic(3.0, 0.0, 1.68, 1.0).IM_per_N, abs=1e-6)
    # Eq. (17): m_z = gamma / Gamma on the cycle, 1 at the fixed point
    np.testing.assert_allclose(c.m[:, 2], [1.0, 1 / 1.3, 1 / 1.68, 1 / 2.5])


def test_theory_curve_h_nonzero_matches_single_points():
    G = np.array([0.5, 1.68, 3.0])
    c = figures.theory_curve(G, 3.0, 0.5, workers=1)
    for g, v in zip(G, c.IM_per_N):
        assert v == pytest.approx(lmg_macroscopic(3.0, 0.5, g, 1.0).IM_per_N, abs=1e-5)
    assert c.extra["attractor"][0] == "fixed_point" and c.IM_per_N[0] == 0.0


def test_fig1_data_without_directory_computes_a_smaller_version(tmp_path):
    d = figures.fig1_data("fig_missing", coupling=3.0, h=0.0, sizes=[50, 400], grid=(0.2, 4, 0.1),
                          live_sizes=[20, 10], live_Gammas=[0.5, 2.0], root=tmp_path)
    assert d.live and d.sizes == [10, 20]
    assert d.command == ("python -m picorr sweep --N 50,400 --coupling 3 --h 0 --Gamma 0.2:4:0.1 "
                         "--gamma 1 --out data/fig_missing")
    assert d.curves[1].IM_per_N[1] == pytest.approx(steady_state(lmg(20, 3, 0, 2.0, 1)).IM_per_N, abs=1e-12)


def test_fig1_data_command_with_finer_ranges_is_what_the_sweep_parses(tmp_path):
    """A base grid plus finer ranges is quoted as one comma-separated --Gamma list, and the
    sweep's own parser turns it back into exactly the intended values."""
    from picorr.sweep import parse_values

    d = figures.fig1_data("fig_missing", coupling=3.0, h=0.0, sizes=[50],
                          grid=((0.2, 1.0, 0.2), (0.5, 0.7, 0.1)), live_sizes=[6],
                          live_Gammas=[0.5], root=tmp_path)
    spec = d.command.split("--Gamma ")[1].split()[0]
    assert spec == "0.2:1:0.2,0.5:0.7:0.1"
    assert parse_values(spec) == (0.2, 0.4, 0.6, 0.8, 1.0, 0.5, 0.7)


def test_fig1_data_reads_a_sweep_directory(tmp_path, monkeypatch):
    (tmp_path / "data" / "fig").mkdir(parents=True)
    seen = []

    def load_sweep(path):  # stands in for the command line's loader
        seen.append(path)
        return {"N": np.array([40, 20, 20, 40, 20]), "h": np.array([0.5, 0.5, 0.5, 0.5, 0.0]),
                "Gamma": np.array([2.0, 2.0, 1.0, 1.0, 1.0]), "IM_per_N": np.array([0.4, 0.2, 0.1, 0.3, 9.0]),
                "m": np.arange(15.0).reshape(5, 3), "seconds": np.array([5.0, 4.0, 3.0, 2.0, 1.0])}

    monkeypatch.setitem(sys.modules, "picorr.sweep", types.SimpleNamespace(load_sweep=load_sweep))
    d = figures.fig1_data("fig", coupling=3.0, h=0.5, sizes=[20, 40], grid=(1, 2, 1), live_sizes=[5],
                          live_Gammas=[1.0], root=tmp_path)
    assert seen == [tmp_path / "data" / "fig"] and d.source == "data"
    assert d.sizes == [20, 40]
    np.testing.assert_allclose(d.curves[0].Gamma, [1.0, 2.0])
    np.testing.assert_allclose(d.curves[0].IM_per_N, [0.1, 0.2])  # sorted by Gamma; h = 0 row dropped
    np.testing.assert_allclose(d.curves[1].IM_per_N, [0.3, 0.4])
    np.testing.assert_allclose(d.curves[1].m[0], [9.0, 10.0, 11.0])
    np.testing.assert_allclose(d.curves[0].extra["seconds"], [3.0, 4.0])  # each point's cost
    assert "peak_rss_gb" not in d.curves[0].extra  # not recorded here: not invented


def test_convergence_picks_the_grid_point():
    c1 = figures.finite_n_curve(10, 3.0, 0.0, [1.0, 2.0])
    c2 = figures.finite_n_curve(20, 3.0, 0.0, [1.5, 2.0])
    N, v = figures.convergence([c1, c2], 2.0)
    assert N.tolist() == [10, 20]
    np.testing.assert_allclose(v, [c1.IM_per_N[1], c2.IM_per_N[1]])
    assert figures.convergence([c1, c2], 1.5)[0].tolist() == [20]


def test_ground_state_curve():
    c = figures.ground_state_curve(40, -1.0, [0.0, 0.05])
    assert c.IM_per_N[0] == pytest.approx(np.log(2))  # the Dicke state
    assert c.IM_per_N[1] == pytest.approx(ground_state(40, -1.0, 0.05).IM_per_N)


def test_partition_distribution_concentrates_on_the_eigenvalue():
    r = 0.6
    x, p = figures.partition_distribution(200, r)
    assert p.sum() == pytest.approx(1.0, abs=1e-10)
    mean = float(np.sum(x * p))
    assert abs(mean - (1 + r) / 2) < 0.02
    widths = [np.sqrt(np.sum(p * (x - np.sum(x * p)) ** 2)) for x, p in
              (figures.partition_distribution(n, r) for n in (25, 100))]
    assert widths[1] < 0.6 * widths[0]  # narrows like 1/sqrt(N)


def test_dicke_populations_sum_to_one_and_give_mz():
    st = product_state(12, [0.0, 0.0, 0.4])
    J, M, p = figures.dicke_populations(st)
    assert p.sum() == pytest.approx(1.0)
    assert 2 * np.sum(M * p) / 12 == pytest.approx(0.4)


def test_cost_vs_n_and_block_count():
    c = figures.cost_vs_n([10, 20], 3.0, 0.0, 2.0)
    assert c["method"].tolist() == ["rates", "rates"]
    assert c["unknowns"].tolist() == [sum(int(2 * J + 1) for J in np.arange(0, 5.5)),
                                      sum(int(2 * J + 1) for J in np.arange(0, 10.5))]
    bc = figures.block_count(7)
    assert bc["hilbert_check"] == pytest.approx(2**7)
    assert bc["in_block"] == sum((2 * J + 1) ** 2 for J in (0.5, 1.5, 2.5, 3.5))


def test_plotting_helpers_draw_data():
    fig, ax = plotting.figure()
    G = np.linspace(0.2, 4, 20)
    (line,) = plotting.plot_theory(ax, G, im_per_n_h0(G))
    (pts,) = plotting.plot_finite_n(ax, G, 0.5 * im_per_n_h0(G), 50, color="k")
    plotting.im_axes(ax)
    assert line.get_color() == plotting.THEORY_COLOR and len(pts.get_xdata()) == 20
    assert ax.get_ylim()[0] == 0.0
    cols = plotting.size_colors([400, 50, 100])
    assert list(cols) == [50, 100, 400] and cols[50] != cols[400]
    im = plotting.plot_matrix(ax, np.diag([1.0, 1e-3, 0.0]))
    assert im.get_array().mask[2, 2]


def test_local_minima_finds_the_interior_dip_not_the_edge():
    from picorr.figures import local_minima

    x = np.linspace(0, 4, 81)
    y = np.exp(-((x - 1.6) ** 2)) + 0.3 * np.exp(-((x - 3.0) ** 2) / 0.1) - 0.1 * x
    dips = local_minima(x, y, 2.0, 3.5)
    # the dip lies between the two maxima (1.6 and 3.0), where y' changes sign from - to +
    assert dips.size == 1 and 2.3 < dips[0] < 2.9
    d = np.gradient(y, x)
    i = np.argmin(np.abs(x - dips[0]))
    assert d[i - 1] < 0 < d[i + 1]
    assert local_minima(x, -x).size == 0  # monotonic: no interior minimum


def test_data_note_names_the_source_and_the_command(tmp_path):
    from picorr.figures import data_note, fig1_data

    live = fig1_data("absent", coupling=3.0, h=0.0, gamma=1.0, sizes=[50], grid=(0.2, 1.0, 0.4),
                     live_sizes=[6], live_Gammas=np.array([0.5, 1.5]), root=tmp_path)
    text = data_note(live)
    assert "computed live" in text and live.command in text and "N = 6" in text


def test_data_note_says_which_points_of_an_unfinished_sweep_are_missing(tmp_path):
    from picorr.figures import coverage, data_note, fig1_data, point_cost
    from picorr.sweep import grid, run_sweep

    run_sweep(grid([4, 6], 3.0, [0.0], [1.0, 1.5], 1.0), tmp_path / "data" / "part", workers=1,
              progress=False)
    kw = dict(coupling=3.0, h=0.0, gamma=1.0, sizes=[4, 6], live_sizes=[4], live_Gammas=[1.0],
              root=tmp_path)
    part = fig1_data("part", grid=(1.0, 2.0, 0.5), **kw)
    assert part.missing == ((4, 2.0), (6, 2.0)) and part.expected == 6
    text = data_note(part)
    assert "holds 4 of its 6 points (missing: N = 4 at Γ = 2; N = 6 at Γ = 2)" in text
    assert part.command in text
    whole = fig1_data("part", grid=(1.0, 1.5, 0.5), **kw)
    assert whole.missing == () and "not finished" not in data_note(whole)
    assert coverage(part) == "4 of its 6 points so far, at Γ/γ = 1, 1.5"
    assert coverage(whole) == "all 4 points of its grid, Γ/γ = 1 … 1.5"
    live = fig1_data("absent", grid=(1.0, 2.0, 0.5), **kw)
    assert coverage(live).startswith("none in this checkout")
    # the cost of a point of the largest N, read back from the point files themselves
    import json

    recs = [json.loads(f.read_text()) for f in (tmp_path / "data" / "part").glob("N=6_*.json")]
    assert len(recs) == 2
    minutes, gb = point_cost(whole)
    assert minutes == pytest.approx(np.median([r["seconds"] for r in recs]) / 60, rel=1e-12)
    assert gb == max(r["peak_rss_gb"] for r in recs) > 0
    assert all(np.isnan(point_cost(live)))


def test_fig1_panel_draws_theory_and_every_size():
    import matplotlib.pyplot as plt
    from picorr import plotting
    from picorr.figures import fig1_data, theory_curve

    d = fig1_data("absent", coupling=3.0, h=0.0, gamma=1.0, sizes=[50], grid=(0.2, 1.0, 0.4),
                  live_sizes=[6, 8], live_Gammas=np.array([0.5, 1.5]), root="/nonexistent")
    th = theory_curve(np.array([0.5, 1.5]), coupling=3.0, h=0.0)
    fig, ax = plt.subplots()
    plotting.fig1_panel(ax, d, th, "t")
    assert len(ax.lines) >= 3  # theory, two sizes (plus the Hopf line)
    plt.close(fig)


def test_benchmark_records_load_and_plot(tmp_path):
    import json

    from picorr import plotting
    from picorr.figures import load_benchmark

    recs = [{"N": 400, "h": 0.5, "wall": 40.0, "peak_gb": 3.7, "method": "window",
             "support_fraction": 0.59},
            {"N": 200, "h": 0.5, "wall": 6.0, "peak_gb": 1.3, "method": "window"},
            {"N": 800, "h": 0.0, "wall": 12.0, "peak_gb": 0.6, "method": "rates"},
            {"N": 1000, "h": 0.5, "error": "--N 1000: needs 25 GB"}]
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"meta": {"commit": "x"}, "records": recs}))
    b = load_benchmark(path)
    assert list(b["by_h"]) == [0.0, 0.5]
    np.testing.assert_array_equal(b["by_h"][0.5]["N"], [200, 400])  # sorted by N
    np.testing.assert_array_equal(b["by_h"][0.5]["wall"], [6.0, 40.0])
    assert b["by_h"][0.5]["support_fraction"].tolist() == [None, 0.59]  # a field only some have
    assert b["errors"][0]["N"] == 1000
    fig, (a1, a2) = plotting.figure(2)
    plotting.cost_panels(a1, a2, b)
    lines = {ln.get_label(): ln for ln in a1.get_lines()}
    np.testing.assert_array_equal(lines[r"$h = 0.5\gamma$"].get_ydata(), [6.0, 40.0])
    assert a2.get_yscale() == "log"
    # a second benchmark at another Gamma adds its h != 0 line, and every line says its Gamma
    for r in recs:
        r["Gamma"] = 1.68
    path.write_text(json.dumps({"meta": {"commit": "x"}, "records": recs}))
    other = [dict(r, Gamma=2.7, wall=2 * r["wall"]) for r in recs if "error" not in r]
    path2 = tmp_path / "b2.json"
    path2.write_text(json.dumps({"meta": {"commit": "x"}, "records": other}))
    fig, (a1, a2) = plotting.figure(2)
    plotting.cost_panels(a1, a2, load_benchmark(path), load_benchmark(path2))
    lines = {ln.get_label(): ln for ln in a1.get_lines()}
    assert sorted(lines) == sorted(["$h = 0$ (rate equations)",
                                    r"$h = 0.5\gamma$, $\Gamma = 1.68\gamma$",
                                    r"$h = 0.5\gamma$, $\Gamma = 2.7\gamma$"])
    np.testing.assert_array_equal(lines[r"$h = 0.5\gamma$, $\Gamma = 2.7\gamma$"].get_ydata(),
                                  [12.0, 80.0])


def test_measured_at_picks_one_solve_and_gives_nan_for_a_missing_one(tmp_path):
    import json

    from picorr.figures import load_benchmark, measured_at

    recs = [{"N": 400, "h": 0.5, "wall": 40.0, "peak_gb": 3.7},
            {"N": 1000, "h": 0.5, "wall": 175.0, "peak_gb": 5.04},
            {"N": 1000, "h": 0.0, "wall": 1.2, "peak_gb": 0.16},
            {"N": 2000, "h": 0.5, "error": "--N 2000: needs 60 GB"}]
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"meta": {}, "records": recs}))
    b = load_benchmark(path)
    assert measured_at(b, 1000) == 5.04
    assert measured_at(b, 1000, "wall") == 175.0
    assert measured_at(b, 1000, h=0.0) == 0.16
    for missing in (measured_at(b, 2000), measured_at(b, 600), measured_at(b, 1000, "window"),
                    measured_at(b, 1000, h=-0.5)):
        assert np.isnan(missing)


def test_compare_runs_reads_the_same_point_from_two_files(tmp_path):
    import json

    from picorr.figures import compare_runs

    new, old = tmp_path / "new.json", tmp_path / "old.json"
    for path, peak, wall, im in ((new, 18.5, 1673.0, 0.26937889290729820),
                                 (old, 20.0, 1624.5, 0.26937889290729830)):
        path.write_text(json.dumps({"meta": {}, "records": [
            {"N": 2000, "h": 0.5, "Gamma": 1.68, "wall": wall, "peak_gb": peak,
             "IM_per_N": im}]}))
    c = compare_runs(new, old, 2000)
    assert c["peak_gb"] == 20.0 and c["wall_min"] == pytest.approx(1624.5 / 60)
    assert c["saved_gb"] == pytest.approx(1.5)
    assert c["same"] == abs(0.26937889290729820 - 0.26937889290729830)
    gone = compare_runs(new, tmp_path / "missing.json", 2000)
    assert all(np.isnan(v) for v in gone.values())
    half = compare_runs(tmp_path / "missing.json", old, 2000)
    assert half["peak_gb"] == 20.0 and np.isnan(half["saved_gb"]) and np.isnan(half["same"])


def test_benchmark_table_has_every_record_and_the_refusals(tmp_path):
    import json

    from picorr.figures import benchmark_table, load_benchmark

    recs = [{"N": 400, "h": 0.5, "wall": 40.04, "peak_gb": 3.7, "method": "window", "window": 37,
             "unknowns": 1598508, "iterations": 55, "IM_per_N": 0.2581565980063606},
            {"N": 4000, "h": 0.0, "wall": 9.3, "peak_gb": 0.85, "method": "rates", "window": 0,
             "unknowns": 207504, "iterations": 0, "IM_per_N": 0.32433697206167},
            {"N": 2000, "h": 0.5, "error": "--N 2000: needs 60 GB"}]
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"meta": {"commit": "abc", "date": "today", "cores": 2,
                                         "command": "bench"}, "records": recs}))
    t = benchmark_table(load_benchmark(path)).splitlines()
    assert t[2] == "| 0 | 4000 | rates | 0 | 207,504 | 0 | 9.3 | 0.85 | 0.3243369721 |"
    assert t[3] == "| 0.5 | 400 | window | 37 | 1,598,508 | 55 | 40.0 | 3.70 | 0.2581565980 |"
    assert t[4] == "| 0.5 | 2000 | refused | | | | | | --N 2000: needs 60 GB |"
    assert t[-1] == "Measured today at commit `abc`, 2 cores, with `bench`."
    for r in recs:
        r["Gamma"] = 2.7
    path.write_text(json.dumps({"meta": {"commit": "abc", "date": "today", "cores": 2,
                                         "command": "bench"}, "records": recs}))
    t = benchmark_table(load_benchmark(path)).splitlines()
    assert t[-1] == "Measured today at commit `abc`, 2 cores, Γ = 2.7γ, with `bench`."
    recs[2]["wall"] = 12.84  # how long the refusal took, where the benchmark recorded it
    path.write_text(json.dumps({"meta": {"commit": "abc", "date": "today", "cores": 2,
                                         "command": "bench"}, "records": recs}))
    t = benchmark_table(load_benchmark(path)).splitlines()
    assert t[4] == "| 0.5 | 2000 | refused | | | | 12.8 | | --N 2000: needs 60 GB |"
    recs[0]["factor_precision"] = "single"  # a solve with single-precision factors says so
    path.write_text(json.dumps({"meta": {"commit": "abc", "date": "today", "cores": 2,
                                         "command": "bench"}, "records": recs}))
    t = benchmark_table(load_benchmark(path)).splitlines()
    assert t[3].startswith("| 0.5 | 400 | window (single) | 37 |")
    assert t[2].startswith("| 0 | 4000 | rates | 0 |")
    from picorr.figures import refusals_text

    recs[2]["error"] = "picorr: error: --N 2000: needs 60 GB"
    path.write_text(json.dumps({"meta": {"commit": "abc", "date": "today", "cores": 2,
                                         "command": "bench"}, "records": recs}))
    b = load_benchmark(path)
    assert refusals_text(b) == ("Asked for N = 2000 at Γ = 2.7γ (h = 0.5γ), the solver refused "
                                "after 13 s: “needs 60 GB”.")
    assert refusals_text(b, b).count("Asked for") == 2
    b["errors"] = []
    assert refusals_text(b) == ""


def test_stopped_points_are_told_apart_from_refusals(tmp_path):
    """A point that ``bench_steady.py --timeout`` stopped is a 'stopped' row with its peak
    so far, left out of the refusals and told by stopped_text with its last window."""
    import json

    from picorr.figures import benchmark_table, load_benchmark, refusals_text, stopped_text

    line = ("[  1500.0 s] N = 2000, window 50: 300 iterations (12.00 GB of single-precision "
            "factors), I_M/N = 0.205000000000, change inf, error estimate inf")
    recs = [{"N": 2000, "h": 0.5, "Gamma": 2.7, "wall": 5400.4, "peak_gb": 19.61,
             "stopped": True, "error": "stopped by the benchmark's --timeout after 5400 s",
             "progress": ["[   300.0 s] N = 1000: support mask from N = 500 keeps 53% of "
                          "the (J, M) rows", line]},
            {"N": 4000, "h": 0.5, "Gamma": 2.7, "wall": 20.0, "error": "--N 4000: needs 99 GB"}]
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"meta": {"commit": "abc", "date": "today", "cores": 2,
                                         "command": "bench"}, "records": recs}))
    b = load_benchmark(path)
    t = benchmark_table(b).splitlines()
    assert t[2] == ("| 0.5 | 2000 | stopped | | | | 5400.4 | 19.61 | `stopped by the "
                    "benchmark's --timeout after 5400 s` |")
    assert t[3].startswith("| 0.5 | 4000 | refused |")
    assert refusals_text(b).count("Asked for") == 1 and "N = 4000" in refusals_text(b)
    assert stopped_text(b) == (
        "The run at N = 2000 at Γ = 2.7γ (h = 0.5γ) had not finished when the benchmark "
        "stopped it after 90 minutes, with a peak memory of 19.6 GB so far. The last window "
        f"it had finished: “{line}”.")
    # stopped in its first window at N = 2000, after the coarse solves (a window at N = 1000
    # is the coarse solve's, not the point's)
    recs[0]["progress"] = ["[   241.3 s] N = 1000, window 38: 34 iterations (5.31 GB of "
                           "double-precision factors), I_M/N = 0.205883172051, change 1.7e-09, "
                           "error estimate 1.7e-09",
                           "[   248.0 s] N = 2000: support mask from N = 1000 keeps 42% of the "
                           "(J, M) rows"]
    path.write_text(json.dumps({"meta": {}, "records": recs}))
    assert stopped_text(load_benchmark(path)).endswith(
        "Its coarse solves had ended after 248 s (“[   248.0 s] N = 2000: support mask from "
        "N = 1000 keeps 42% of the (J, M) rows”), and its first window at N = 2000 had not "
        "finished.")
    # a mixed-precision refinement's step within that window is told too, not as a window
    step = ("[  2500.0 s] N = 2000 (window 44): refinement step 1 cut the residual to 9.9e-05 "
            "in 239 iterations")
    recs[0]["progress"].append(step)
    path.write_text(json.dumps({"meta": {}, "records": recs}))
    assert stopped_text(load_benchmark(path)).endswith(
        f"had not finished. Its last step of refinement there: “{step}”.")
    from picorr.figures import progress_block
    block = progress_block(load_benchmark(path))
    assert block.startswith("Progress lines of the run at N = 2000 until it was stopped:\n\n"
                            "```text\n[   241.3 s] N = 1000, window 38")
    assert block.endswith(f"{step}\n```") and block.count("\n") == len(recs[0]["progress"]) + 3
    from picorr.figures import progress_windows
    assert progress_windows(load_benchmark(path), 1000) == [(38, 34)]
    assert progress_windows(load_benchmark(path), 2000) == []  # a step is not a window
    # a finished point run with --progress keeps its lines too; two of them, with scans of
    # different lengths, load as columns of objects
    done = [{"N": n, "h": 0.5, "Gamma": 2.7, "method": "window", "wall": 1.0, "peak_gb": 1.0,
             "window": 8, "unknowns": 10, "iterations": 3, "IM_per_N": 0.2,
             "scan": [{"window": 8}] * k, "progress": [f"[ 1.0 s] N = {n}, window 8: "
                                                      f"{k} iterations, I_M/N = 0.2"] * k}
            for n, k in ((300, 1), (600, 2))]
    path.write_text(json.dumps({"meta": {}, "records": recs + done}))
    both = load_benchmark(path)
    assert list(both["by_h"][0.5]["scan"][1]) == [{"window": 8}] * 2
    assert progress_windows(both, 600) == [(8, 2), (8, 2)]
    assert progress_block(both).count("Progress lines of the run at N = 600:\n") == 1
    assert progress_block(both).count("until it was stopped") == 1
    recs[0]["progress"] = recs[0]["progress"][:1]  # not even the coarse solves
    path.write_text(json.dumps({"meta": {}, "records": recs}))
    assert stopped_text(load_benchmark(path)).endswith("It had finished no window at N = 2000.")
    assert stopped_text(load_benchmark(path), load_benchmark(path)).count("The run at") == 2
    recs.pop(0)
    path.write_text(json.dumps({"meta": {}, "records": recs}))
    assert stopped_text(load_benchmark(path)) == ""
    assert progress_block(load_benchmark(path)) == ""  # a refusal has no progress to show


def test_cold_start_table_reads_the_benchmark_record(tmp_path):
    """``bench_cold_start.py --out`` as a table: one row a window, the positivity from the
    record, and the fewest and most iterations."""
    import json

    from picorr.figures import cold_start_table

    rec = {"N": 1000, "Gamma": 2.7, "restart": 30, "deflate": 10, "gmres_tol": 1e-10,
           "factor_precision": "double",
           "windows": [{"window": 30, "iterations": 91, "seconds": 250.2, "positive": False,
                        "IM_per_N": float("nan")},
                       {"window": 34, "iterations": 92, "seconds": 261.0, "positive": True,
                        "IM_per_N": 0.205883170369}]}
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"meta": {"date": "today", "commit": "abc", "command": "cold"},
                                "record": rec}))
    table, summary = cold_start_table(path)
    lines = table.splitlines()
    assert lines[2] == "| 30 | 91 | no | nan |"
    assert lines[3] == "| 34 | 92 | yes | 0.205883170369 |"
    assert lines[-1].startswith("Measured today at commit `abc`, N = 1000, Γ = 2.7γ, "
                                "double-precision factors, GMRES(30) keeping 10, to 1e-10")
    assert summary == {"N": 1000, "windows": [30, 34], "iterations": (91, 92),
                       "iterations_text": "91 to 92", "positive": [34]}
    from picorr.figures import run_limit
    assert run_limit({"meta": {"command": "bench --timeout 5400 --out x"}}) == "90 minutes"
    assert run_limit({"meta": {"command": "bench"}}) == run_limit(None) == "(no limit)"


def test_curves_on_grid_merges_sizes_and_marks_missing_points():
    from types import SimpleNamespace as NS

    from picorr.figures import curves_on_grid

    c1 = NS(N=80, x=np.array([1.9, 2.0000000000000004, 2.1]), IM_per_N=np.array([0.1, 0.2, 0.3]))
    c2 = NS(N=400, x=np.array([2.1]), IM_per_N=np.array([0.5]))
    c3 = NS(N=10, x=np.array([2.0]), IM_per_N=np.array([0.9]))
    theory = NS(N=None, x=np.array([2.0]), IM_per_N=np.array([1.0]))
    out = curves_on_grid([NS(curves=(c1, c3, theory)), NS(curves=(c2,))], [2.0, 2.1], min_N=20)
    assert list(out) == [80, 400]
    np.testing.assert_array_equal(out[80], [0.2, 0.3])
    assert np.isnan(out[400][0]) and out[400][1] == 0.5


def test_piqs_comparison_table_lists_each_size_with_its_speedup_and_difference(tmp_path):
    import json

    from picorr.figures import piqs_comparison

    def rec(N, tq, tp, dI):
        return {"N": N, "piqs_wall": tq, "piqs_peak_gb": 1.5, "picorr_wall": tp,
                "picorr_peak_gb": 0.1, "speedup": tq / tp, "picorr_IM_per_N": 0.25,
                "IM_per_N_difference": dI, "piqs_residual": 3e-9, "qutip": "5.3.1",
                "piqs_trace_error": 2e-9 if N == 40 else 5e-10,
                "picorr_relative_residual": 1e-16}

    path = tmp_path / "p.json"
    path.write_text(json.dumps({"meta": {"commit": "abc", "date": "today", "cores": 2,
                                         "command": "bench"},
                                "records": [rec(60, 120.0, 1.5, 2e-8), rec(40, 20.0, 1.0, 4e-8)]}))
    out = piqs_comparison(path)
    t = out["table"].splitlines()
    assert t[2] == "| 40 | 20.0 | 1.50 | 1.00 | 0.10 | 20x | 0.2500000000 | 4.0e-08 | 3.0e-09 |"
    assert t[3] == "| 60 | 120.0 | 1.50 | 1.50 | 0.10 | 80x | 0.2500000000 | 2.0e-08 | 3.0e-09 |"
    assert t[-1] == "Measured today at commit `abc`, 2 cores, QuTiP 5.3.1, with `bench`."
    assert out["largest"]["N"] == 60 and out["worst_difference"] == 4e-8
    assert out["text"] == (
        "At $N = 60$ the block solver is 80 times faster than PIQS, whole process against "
        "whole process (1.5 s against 120 s, 0.10 GB against 1.5 GB). The two values of "
        "$I_M/N$ differ by at most 4e-08. QuTiP's steady states leave a residual "
        "$\\lVert \\mathcal L \\rho \\rVert$ of up to 3e-09 and a trace error of up to 2e-09; "
        "the block solver's relative residual is at most 1e-16.")
    # repeated runs (bench_piqs.py --repeat): medians in the table, the spread in words
    reps = [{**rec(40, 20.0, 1.0, 4e-8), "repeats": 3},
            {**rec(60, 120.0, 1.5, 2e-8), "repeats": 3, "picorr_walls": [1.5, 1.2, 2.0]}]
    path.write_text(json.dumps({"meta": {"commit": "abc", "date": "today", "cores": 2,
                                         "command": "bench"}, "records": reps}))
    out = piqs_comparison(path)
    assert out["table"].splitlines()[-1] == (
        "Each time is the median of 3 processes, PIQS and picorr alternately. Measured today "
        "at commit `abc`, 2 cores, QuTiP 5.3.1, with `bench`.")
    assert ("(1.5 s against 120 s, 0.10 GB against 1.5 GB). The block solver's 3 processes "
            "took 1.20–2.00 s: against PIQS's median, 60 times faster for the slowest and 100 "
            "for the fastest. The two") in out["text"]
    path.write_text(json.dumps({"meta": {}, "records": []}))
    with pytest.raises(ValueError, match="no records"):
        piqs_comparison(path)


def test_tolerance_comparison_pairs_each_point_with_the_default_run(tmp_path):
    import json

    from picorr.figures import tolerance_comparison

    def rec(N, G, Q, its, wall, peak, IM):
        return {"N": N, "h": 0.5, "Gamma": G, "method": "window", "window": Q,
                "iterations": its, "wall": wall, "peak_gb": peak, "IM_per_N": IM}

    meta = {"commit": "abc", "date": "today", "cores": 2, "command": "bench"}
    strict_a, strict_b, loose = (tmp_path / n for n in ("a.json", "b.json", "l.json"))
    strict_a.write_text(json.dumps({"meta": meta, "records": [
        rec(1000, 1.68, 40, 100, 190.0, 5.2, 0.25), rec(600, 1.68, 30, 60, 60.0, 2.0, 0.24),
        {"N": 2000, "h": 0.5, "Gamma": 1.68, "wall": 8.0, "error": "refused"}]}))
    strict_b.write_text(json.dumps({"meta": meta, "records": [
        rec(1000, 2.7, 42, 134, 320.0, 7.9, 0.2058831721234505)]}))
    loose.write_text(json.dumps({"meta": {**meta, "window_tol": 1e-8}, "records": [
        rec(1000, 2.7, 38, 115, 218.0, 7.85, 0.20588317205127554),
        rec(1000, 1.68, 36, 90, 150.0, 5.0, 0.25 + 3e-9),
        {"N": 2000, "h": 0.5, "Gamma": 2.7, "wall": 8.0, "error": "refused"}]}))
    out = tolerance_comparison(loose, strict_a, strict_b)
    assert out["window_tol"] == 1e-8
    t = out["table"].splitlines()
    assert t[2] == ("| 1.68 | 1000 | 40 → 36 | 100 → 90 | 190.0 → 150.0 | 5.20 → 5.00 | "
                    "0.2500000030 | 3.0e-09 |")
    assert t[3].startswith("| 2.7 | 1000 | 42 → 38 | 134 → 115 | 320.0 → 218.0 | 7.90 → 7.85 |")
    assert t[3].endswith("| 7.2e-11 |") and len(t) == 6  # header, rule, 2 rows, blank, source
    assert t[5].endswith("the default ones today at `abc`. Where both stopped at the same "
                         "window, the state is the same and a difference of time is the "
                         "machine's.")
    assert [p["Gamma"] for p in out["rows"]] == [1.68, 2.7]
    assert out["worst_difference"] == pytest.approx(3e-9, rel=1e-6)
    assert out["text"] == (
        "At `window_tol` = 1e-08 the scan stopped at a smaller window than at the default "
        "tolerance for 2 of the 2 points. "
        "$N = 1000$ took 150 s at Γ = 1.68γ (default: 190 s) and "
        "218 s at Γ = 2.7γ (default: 320 s), peaking at 7.85 GB. Against the default "
        "tolerance's larger windows, $I_M/N$ differs by at most 3.0e-09 over these 2 points, "
        "below the tolerance asked for.")
    # a difference beyond the tolerance is said, not hidden
    bad = json.loads(loose.read_text())
    bad["records"][1]["IM_per_N"] = 0.25 + 2e-8
    loose.write_text(json.dumps(bad))
    assert "more than the tolerance asked for" in tolerance_comparison(
        loose, strict_a, strict_b)["text"]
    with pytest.raises(ValueError, match="N = 1000, h = 0.5, Gamma = 2.7 has no record"):
        tolerance_comparison(loose, strict_a)
    loose.write_text(json.dumps({"meta": meta, "records": []}))
    with pytest.raises(ValueError, match="no window_tol"):
        tolerance_comparison(loose, strict_a)


def test_extrapolation_and_its_difference_from_the_theory_are_drawn_point_by_point():
    import matplotlib.pyplot as plt
    from picorr import plotting
    from picorr.extrapolate import compare_with_theory

    ex = {"Gamma": np.array([1.0, 2.0, 3.0]), "limit": np.array([0.3, 0.2, 0.15]),
          "error": np.array([1e-3, 2e-3, 1e-3])}
    comp = compare_with_theory(ex, [0.3005, 0.199, 0.1])
    fig, (a1, a2) = plt.subplots(2)
    plotting.plot_limit(a1, ex)
    plotting.difference_panel(a2, comp)
    (bars,) = a1.containers
    assert np.allclose(bars.lines[0].get_xdata(), [1.0, 2.0, 3.0])
    assert np.allclose(bars.lines[0].get_ydata(), [0.3, 0.2, 0.15])
    inside, outside = a2.containers
    assert np.allclose(inside.lines[0].get_xdata(), [1.0, 2.0])
    assert np.allclose(inside.lines[0].get_ydata(), [-5e-4, 1e-3])
    assert np.allclose(outside.lines[0].get_xdata(), [3.0])
    assert np.allclose(outside.lines[0].get_ydata(), [0.05])
    plt.close(fig)


def test_limit_vs_theory_recovers_the_closed_form_from_1_over_N_curves():
    from types import SimpleNamespace as NS

    from picorr.figures import limit_vs_theory
    from picorr.models import ModelError
    from picorr.macroscopic import im_per_n_h0

    G = np.array([0.5, 1.5, 2.0, 3.0])
    exact = np.asarray(im_per_n_h0(G, 1.0))  # Eq. (18), independent of the fitting code

    def curve(N, x):
        return NS(N=N, x=x, IM_per_N=np.asarray(im_per_n_h0(x, 1.0)) + 0.7 / N - 9.0 / N**2)

    small = NS(curves=(curve(10, G), curve(100, G), curve(200, G[:3])))
    big = NS(curves=(curve(400, G), curve(800, G[1:])))
    out = limit_vs_theory([small, big], coupling=3.0, h=0.0, min_N=50)
    assert np.allclose(out["G"], G) and list(out["curves"]) == [100, 200, 400, 800]
    assert out["limit"]["n_sizes"].tolist() == [3, 4, 4, 3]
    assert np.allclose(out["theory"].IM_per_N, exact, atol=1e-14)
    # four sizes resolve the 1/N^2 term exactly; three are fitted by a line, with a bias
    assert np.allclose(out["comparison"]["difference"][1:3], 0.0, atol=1e-10)
    assert np.all(np.abs(out["comparison"]["difference"]) < 1e-3)
    with pytest.raises(ModelError, match="no finite-N curve"):
        limit_vs_theory([small], coupling=3.0, h=0.0, min_N=1000)


def test_large_run_text_describes_the_largest_solve(tmp_path):
    import json

    from picorr.figures import large_run_text, load_benchmark

    recs = [{"N": 1000, "h": 0.5, "Gamma": 1.68, "wall": 160.0, "peak_gb": 5.2, "window": 52,
             "iterations": 93, "IM_per_N": 0.26630137035, "relative_residual": 1e-11,
             "method": "window"},
            {"N": 2000, "h": 0.5, "Gamma": 1.68, "wall": 2712.4, "peak_gb": 18.84,
             "window": 72, "iterations": 512, "IM_per_N": 0.2703, "relative_residual": 3e-11,
             "method": "window", "factor_precision": "double", "restart": 30, "deflate": 10},
            {"N": 4000, "h": 0.0, "wall": 6.0, "peak_gb": 0.8, "window": 0, "iterations": 0,
             "IM_per_N": 0.3, "relative_residual": 1e-14, "method": "rates"}]
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"meta": {"commit": "x"}, "records": recs}))
    text = large_run_text(load_benchmark(path))
    assert text == ("At $N = 2000$ ($\\Gamma = 1.68\\gamma$, $h = 0.5\\gamma$) the whole process "
                    "took 45 minutes (2712 s) and peaked at 18.8 GB (double-precision factors; "
                    "GMRES restarted every 30 iterations, keeping 10 across each): 512 GMRES "
                    "iterations over the windows of the scan, which stopped at $Q = 72$, with "
                    "$I_M/N = 0.2703000000$ and a relative residual of 3e-11.")
    path.write_text(json.dumps({"meta": {"commit": "x"}, "records": recs[2:]}))
    assert large_run_text(load_benchmark(path)) == ""


def test_ordering_table_reads_the_ordering_benchmark(tmp_path):
    """One row per sector with both orderings' entries and times, the measurement line, and
    the ratios (nested dissection / minimum degree) at the largest N."""
    import json

    from picorr.figures import ordering_table

    def rec(N, q, n, a, b):
        return {"N": N, "Gamma": 2.7, "window": 4, "q": q, "unknowns": n, "dtype": "x",
                "mmd": {"fill": a, "seconds": 1.0, "residual": 1e-15},
                "nested-dissection": {"fill": b, "seconds": 2.0, "residual": 1e-15}}

    meta = {"date": "2026-12-03 09:00 UTC", "commit": "abc1234", "cores": 2,
            "command": "benchmarks/bench_ordering.py --out o.json"}
    path = tmp_path / "o.json"
    path.write_text(json.dumps({"meta": meta, "records": [
        rec(400, 0, 40401, 90.0, 63.0), rec(1000, 0, 251001, 135.0, 81.0),
        rec(1000, 1, 250500, 100.0, 82.0), rec(1000, 4, 249001, 100.0, 80.0)]}))
    table, ratio = ordering_table(path)
    lines = table.splitlines()
    assert len(lines) == 2 + 4 + 2
    assert lines[3] == "| 1000 | 0 | 251,001 | 135.0 | 1.00 | 81.0 | 2.00 | 0.60 |"
    assert "commit `abc1234`" in lines[-1] and "bench_ordering.py --out o.json" in lines[-1]
    assert ratio["N"] == 1000 and ratio["real"] == pytest.approx(0.6)
    assert ratio["complex"] == pytest.approx((0.8, 0.82))


def test_largest_difference_pairs_records_by_size_and_parameters(tmp_path):
    """Only records at the same N, h and Gamma are compared, refusals are skipped, and no
    pair gives nan."""
    import json

    from picorr.figures import largest_difference

    def write(name, recs):
        (tmp_path / name).write_text(json.dumps({"meta": {}, "records": recs}))
        return tmp_path / name

    a = write("a.json", [{"N": 200, "h": 0.5, "Gamma": 1.68, "IM_per_N": 0.25},
                         {"N": 400, "h": 0.5, "Gamma": 2.7, "IM_per_N": 0.2},
                         {"N": 800, "h": 0.5, "Gamma": 2.7, "error": "refused"}])
    b = write("b.json", [{"N": 200, "h": 0.5, "Gamma": 1.68, "IM_per_N": 0.25 + 3e-12},
                         {"N": 400, "h": 0.5, "Gamma": 1.68, "IM_per_N": 0.9}])
    c = write("c.json", [{"N": 400, "h": 0.5, "Gamma": 2.7, "IM_per_N": 0.2 - 1e-10}])
    diff, count = largest_difference(a, b, c)
    assert count == 2 and diff == pytest.approx(1e-10, rel=1e-3)
    diff, count = largest_difference(c, b)
    assert count == 0 and np.isnan(diff)


def test_target_text_says_which_targets_a_point_met(tmp_path):
    """target_text compares a point's wall time and peak memory with the two targets and
    says which it met; a point not in the file gives an empty phrase."""
    import json

    from picorr.figures import load_benchmark, target_text

    path = tmp_path / "b.json"
    for wall, peak, want in ((1700.0, 19.0, "within both targets (30 minutes and 20 GB)"),
                             (3500.0, 18.7, "within the 20 GB target but not the 30-minute one"),
                             (1500.0, 21.4, "within the 30-minute target but not the 20 GB one"),
                             (3100.0, 21.4, "outside both targets (30 minutes and 20 GB)")):
        rec = {"N": 2000, "h": 0.5, "Gamma": 2.7, "method": "window", "wall": wall,
               "peak_gb": peak, "window": 52, "unknowns": 10, "iterations": 3,
               "IM_per_N": 0.2}
        path.write_text(json.dumps({"meta": {}, "records": [rec]}))
        assert target_text(load_benchmark(path), 2000, 30, 20) == want
    assert target_text(load_benchmark(path), 1000, 30, 20) == ""
