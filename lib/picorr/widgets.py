"""The interactive explorer of the book's last chapter: sliders for the LMG parameters
(𝒥, h, Γ, γ) and N, showing the mean-field trajectory and its attractor (Eqs. 5, 16), the
macroscopic ``lim I_M/N`` of Eq. (13), and, for small N, the exact finite-N value
(Appendix A) computed live.

The computation (:func:`explore`) and the drawing (:func:`render`) are plain functions,
so the static page of the book shows :func:`static_figure` -- the explorer's first state
-- while :func:`explorer` wires the same two functions to ipywidgets for Binder or a local
Jupyter. Every update takes well under a second: the mean-field equations are three ODEs,
Eq. (13) is evaluated from one initial condition, and the finite-N steady state is solved
only where that is fast (h = 0 by the rate equations up to :data:`FINITE_N_MAX_H0`;
otherwise up to :data:`FINITE_N_MAX`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp

from .macroscopic import MacroscopicResult, lmg_macroscopic
from .meanfield import lmg_meanfield
from .models import ModelError, lmg
from .steady import SteadyState, steady_state

__all__ = [
    "DEFAULTS",
    "FINITE_N_MAX",
    "FINITE_N_MAX_H0",
    "ExplorerResult",
    "explore",
    "render",
    "static_figure",
    "Explorer",
    "explorer",
]

#: The explorer's first state: the paper's Fig. 1(b) parameters near the maximum of I_M/N.
DEFAULTS = {"coupling": 3.0, "h": 0.5, "Gamma": 1.68, "gamma": 1.0, "N": 20}

#: Largest N solved live when h != 0 (full Dicke-block Liouvillian, ~0.1 s at N = 30).
FINITE_N_MAX = 30
#: Largest N solved live when h = 0 (rate equations, Eqs. 30-31, ~0.2 s at N = 200).
FINITE_N_MAX_H0 = 200

#: Keywords for Eq. (13) in the explorer: one initial condition (fast). The result equals
#: :func:`~picorr.macroscopic.lmg_macroscopic` with its defaults when the attractor is unique.
THEORY_OPTIONS = {"n_initial": 1}


@dataclass(frozen=True)
class ExplorerResult:
    """One state of the explorer.

    Attributes
    ----------
    params : dict                 -- coupling, h, Gamma, gamma, N
    t : ndarray                   -- times of the transient trajectory (units of 1/gamma)
    trajectory : ndarray (k, 3)   -- m(t) from the initial state, Eq. (16)
    cycle : ndarray (q, 3)        -- one period of the attractor (a single point for a fixed point)
    theory : MacroscopicResult    -- Eq. (13)
    finite : SteadyState or None  -- the exact finite-N steady state (None: N too large)
    finite_note : str             -- why ``finite`` is None, if it is
    seconds : float
    """

    params: dict
    t: np.ndarray
    trajectory: np.ndarray
    cycle: np.ndarray
    theory: MacroscopicResult
    finite: SteadyState | None
    finite_note: str
    seconds: float

    @property
    def IM_per_N_theory(self) -> float:
        return float(self.theory.IM_per_N)

    @property
    def IM_per_N_finite(self) -> float | None:
        return None if self.finite is None else float(self.finite.IM_per_N)


def _finite_n_allowed(N: int, h: float) -> bool:
    return N <= (FINITE_N_MAX_H0 if h == 0 else FINITE_N_MAX)


def explore(coupling: float = DEFAULTS["coupling"], h: float = DEFAULTS["h"], Gamma: float = DEFAULTS["Gamma"],
            gamma: float = DEFAULTS["gamma"], N: int = DEFAULTS["N"], *, finite_n: bool = True,
            t_max: float = 40.0, n_points: int = 1500) -> ExplorerResult:
    """Everything the explorer shows at one parameter point.

    The trajectory starts from the same initial state Eq. (13) uses (the first of
    :func:`~picorr.meanfield.random_states`) and runs for ``t_max / gamma``. The attractor
    and the value of Eq. (13) come from :func:`~picorr.macroscopic.lmg_macroscopic`; the
    finite-N value from :func:`~picorr.steady_state` when N is small enough (see the
    module docstring) and ``finite_n`` is set.
    """
    t0 = time.perf_counter()
    if gamma <= 0:
        raise ModelError(f"gamma must be > 0 in the explorer (it sets the time unit), got {gamma!r}")
    from .figures import meanfield_trajectory

    t, traj = meanfield_trajectory(coupling, h, Gamma, gamma, t_max=t_max / gamma, n_points=n_points)
    mf = lmg_meanfield()
    g, pl = mf.g_list, [float(coupling), float(h), float(Gamma), float(gamma)]
    theory = lmg_macroscopic(coupling, h, Gamma, gamma, **THEORY_OPTIONS)
    att = theory.attractors[0]
    if att.kind == "fixed_point":
        cycle = np.atleast_2d(att.point)
    else:
        period = att.period if np.isfinite(att.period) else 20.0 / gamma
        tc = np.linspace(0.0, period, 400)
        cyc = solve_ivp(lambda t, x: g(x.tolist(), pl), (0.0, period), att.point, method="DOP853",
                        t_eval=tc, rtol=1e-10, atol=1e-12)
        cycle = cyc.y.T
    finite, note = None, ""
    N = int(N)
    if not finite_n:
        note = "finite N switched off"
    elif not _finite_n_allowed(N, h):
        note = f"N = {N} is too large to solve live (limit {FINITE_N_MAX} for h != 0)"
    else:
        finite = steady_state(lmg(N, coupling, h, Gamma, gamma))
    params = {"coupling": float(coupling), "h": float(h), "Gamma": float(Gamma), "gamma": float(gamma), "N": N}
    return ExplorerResult(params, t, traj, cycle, theory, finite, note, time.perf_counter() - t0)


def render(result: ExplorerResult, fig=None):
    """Draw an :class:`ExplorerResult`: (a) the trajectory and attractor projected on the
    ``(m_x, m_y)`` plane, (b) ``m(t)``, (c) ``I_M/N``: theory and finite N. Returns the
    figure (a new one unless ``fig`` is given, which is cleared and reused)."""
    from . import plotting

    plotting.notebook_display()
    with plotting.styled():
        if fig is None:
            from matplotlib.figure import Figure  # not registered with pyplot: shown only when displayed

            fig = Figure(figsize=(10.0, 3.6), layout="constrained")
        fig.clear()
        axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.0, 1.35, 0.75]})
        _draw(result, axes)
    return fig


def _draw(result: ExplorerResult, axes) -> None:
    from . import plotting

    ax_xy, ax_t, ax_i = axes
    p = result.params
    tr, cyc = result.trajectory, result.cycle
    plotting.plot_bloch_projection(ax_xy, tr, color="0.6", lw=0.6, label="transient")
    kind = result.theory.attractor
    if cyc.shape[0] == 1:
        ax_xy.plot(cyc[:, 0], cyc[:, 1], "o", color=plotting.THEORY_COLOR, ms=7, label="fixed point")
    else:
        ax_xy.plot(cyc[:, 0], cyc[:, 1], "-", color=plotting.THEORY_COLOR, lw=2.2, label="attractor")
    mbar = result.theory.xi_mean
    ax_xy.plot([mbar[0]], [mbar[1]], "k+", ms=10, mew=1.6, label=r"$\overline{\mathbf{m}}$")
    ax_xy.legend(loc="lower left", fontsize=8)
    ax_xy.set_title(f"attractor: {kind.replace('_', ' ')}")
    for k, (lab, col) in enumerate(zip(("$m_x$", "$m_y$", "$m_z$"), ("C0", "C1", "C3"))):
        ax_t.plot(result.t * p["gamma"], tr[:, k], color=col, lw=1.0, label=lab)
    ax_t.set_xlabel(r"$\gamma t$")
    ax_t.set_ylim(-1.05, 1.05)
    ax_t.legend(loc="lower right", ncols=3, fontsize=9)
    ax_t.set_title(rf"$\mathcal{{J}}={p['coupling']:g}$, $h={p['h']:g}$, "
                   rf"$\Gamma={p['Gamma']:g}$, $\gamma={p['gamma']:g}$")
    labels = [r"$N\to\infty$" + "\n(Eq. 13)"]
    values = [result.IM_per_N_theory]
    colors = [plotting.THEORY_COLOR]
    if result.finite is not None:
        labels.append(f"$N = {p['N']}$\n(exact)")
        values.append(result.IM_per_N_finite)
        colors.append(plotting.size_colors([p["N"]])[p["N"]])
    bars = ax_i.bar(range(len(values)), values, color=colors, width=0.6)
    for bar, v in zip(bars, values):
        ax_i.text(bar.get_x() + bar.get_width() / 2, v, f"{v:.3f}", ha="center", va="bottom", fontsize=10)
    ax_i.set_xticks(range(len(values)), labels)
    ax_i.set_ylim(0, max(0.4, 1.25 * max(values)))
    ax_i.set_ylabel(r"$I_M/N$ (nats)")
    ax_i.grid(axis="x", visible=False)
    if result.finite is None and result.finite_note:
        ax_i.text(0.5, 0.97, result.finite_note, transform=ax_i.transAxes, ha="center", va="top",
                  fontsize=7, wrap=True)


def static_figure(**params):
    """The explorer's first state as a figure (what the static HTML page shows)."""
    kw = dict(DEFAULTS)
    kw.update(params)
    return render(explore(**kw))


class Explorer:
    """Sliders for 𝒥, h, Γ, γ and N wired to :func:`explore` and :func:`render`.

    Attributes
    ----------
    widget : ipywidgets.VBox   -- what to display
    sliders : dict             -- the controls by parameter name
    result : ExplorerResult    -- the current state (updated by every callback)
    figure : matplotlib Figure -- the current drawing
    """

    def __init__(self, **initial):
        import ipywidgets as W

        kw = dict(DEFAULTS)
        kw.update(initial)
        style = {"description_width": "3em"}
        layout = W.Layout(width="32em")
        self.sliders = {
            "coupling": W.FloatSlider(value=kw["coupling"], min=-5.0, max=5.0, step=0.1, description="𝒥",
                                      style=style, layout=layout, continuous_update=False),
            "h": W.FloatSlider(value=kw["h"], min=-2.0, max=2.0, step=0.05, description="h",
                               style=style, layout=layout, continuous_update=False),
            "Gamma": W.FloatSlider(value=kw["Gamma"], min=0.0, max=5.0, step=0.02, description="Γ",
                                   style=style, layout=layout, continuous_update=False),
            "gamma": W.FloatSlider(value=kw["gamma"], min=0.1, max=3.0, step=0.05, description="γ",
                                   style=style, layout=layout, continuous_update=False),
            "N": W.IntSlider(value=kw["N"], min=2, max=FINITE_N_MAX_H0, step=1, description="N",
                             style=style, layout=layout, continuous_update=False),
        }
        self.finite_box = W.Checkbox(value=True, description="finite N (exact, live)")
        self.status = W.HTML()
        self.output = W.Output()
        self.figure = render(self._compute())
        for s in self.sliders.values():
            s.observe(self.update, names="value")
        self.finite_box.observe(self.update, names="value")
        self.widget = W.VBox([W.HBox([W.VBox(list(self.sliders.values())), W.VBox([self.finite_box, self.status])]),
                              self.output])
        self._show()

    def _compute(self) -> ExplorerResult:
        vals = {k: s.value for k, s in self.sliders.items()}
        self.result = explore(**vals, finite_n=self.finite_box.value if hasattr(self, "finite_box") else True)
        return self.result

    def _show(self) -> None:
        from IPython.display import display

        r = self.result
        fin = "" if r.finite is None else f", finite N = {r.params['N']}: {r.IM_per_N_finite:.4f}"
        self.status.value = (f"I<sub>M</sub>/N: theory {r.IM_per_N_theory:.4f}{fin} "
                             f"<br>({r.seconds:.2f} s)")
        self.output.clear_output(wait=True)
        with self.output:
            display(self.figure)

    def update(self, change=None) -> ExplorerResult:
        """Recompute and redraw for the current slider values (the callback)."""
        try:
            self._compute()
        except (ModelError, ValueError) as exc:
            self.status.value = f"<b>not computed:</b> {exc}"
            return self.result
        render(self.result, self.figure)
        self._show()
        return self.result

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


def explorer(**initial) -> Explorer:
    """Build the interactive explorer (display it, or its ``.widget``, in a notebook)."""
    return Explorer(**initial)
