"""One look for every figure of the book: sizes, colours, axis labels, and the few plot
types that recur (the theory curve of Eq. 13, finite-N points, Bloch-vector trajectories,
block matrices).

Functions take a Matplotlib ``Axes`` (or make a figure) and return what they drew; they do
no physics. Colours: the theory is green, as in the paper's Fig. 1; system sizes take
colours from one sequential map, light for small N and dark for large N.
"""

from __future__ import annotations

from contextlib import contextmanager

import matplotlib as mpl
import numpy as np

__all__ = [
    "fig1_panel",
    "plot_limit",
    "difference_panel",
    "STYLE",
    "THEORY_COLOR",
    "use_style",
    "notebook_display",
    "styled",
    "figure",
    "size_colors",
    "im_axes",
    "plot_theory",
    "plot_finite_n",
    "plot_bloch_projection",
    "plot_matrix",
    "annotate_panel",
]

#: Matplotlib settings shared by every figure.
STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "figure.figsize": (6.4, 3.8),
    "font.size": 12,
    "axes.titlesize": 12,
    "axes.labelsize": 12,
    "xtick.labelsize": 11,
    "ytick.labelsize": 11,
    "legend.fontsize": 10,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "lines.linewidth": 1.6,
    "lines.markersize": 4.5,
    "image.cmap": "viridis",
    "mathtext.fontset": "cm",
}

THEORY_COLOR = "#2ca02c"  # the paper's green theory line
_SIZE_MAP = "plasma_r"


def use_style() -> None:
    """Apply :data:`STYLE` globally (chapters call this once at the top)."""
    mpl.rcParams.update(STYLE)
    notebook_display()


def notebook_display() -> None:
    """In IPython, show Matplotlib figures as PNG images wherever they are displayed or
    glued (myst-nb ``glue``), whatever the backend.

    The figures of this module are not registered with pyplot (so they never appear twice,
    and need no ``plt.close``), and the inline backend registers its image formatter only
    once pyplot has made a figure; this registers one directly. Outside IPython it does
    nothing.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return
    ip = get_ipython()
    if ip is None:
        return
    from matplotlib.figure import Figure

    png = ip.display_formatter.formatters["image/png"]
    png.for_type(Figure, _figure_png)


def _figure_png(fig) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", facecolor="white")
    return buf.getvalue()


@contextmanager
def styled():
    """A context in which new figures and axes take the book's style."""
    with mpl.rc_context(STYLE):
        yield


def figure(ncols: int = 1, nrows: int = 1, *, width: float | None = None, height: float | None = None,
           **kwargs):
    """A figure with a grid of axes in the book's style, with a width that grows with the
    number of columns. Returns ``(fig, axes)`` like ``plt.subplots``.

    The figure is not registered with pyplot, so a notebook shows it only where it is
    displayed or glued (never a second time at the end of the cell) and it needs no
    ``plt.close``.
    """
    from matplotlib.figure import Figure

    notebook_display()
    width = width if width is not None else min(3.4 * ncols + 0.6, 10.0)
    height = height if height is not None else 3.3 * nrows
    with styled():
        fig = Figure(figsize=(width, height), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=True, **kwargs)
    return fig, axes


def size_colors(Ns) -> dict[int, tuple]:
    """A colour for every system size, from light (small N) to dark (large N), on a
    logarithmic scale so that N = 10 ... 400 spread evenly."""
    Ns = sorted({int(n) for n in Ns})
    cmap = mpl.colormaps[_SIZE_MAP]
    if len(Ns) == 1:
        return {Ns[0]: cmap(0.6)}
    logs = np.log(Ns)
    frac = 0.2 + 0.7 * (logs - logs.min()) / (logs.max() - logs.min())
    return {n: cmap(f) for n, f in zip(Ns, frac)}


def im_axes(ax, *, xlabel: str = r"$\Gamma/\gamma$", ylabel: str = r"$I_M/N$ (nats)") -> None:
    """Label an axis for ``I_M/N`` and start its y axis at zero."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0.0)  # I_M >= 0 (subadditivity of the entropy)


def plot_theory(ax, x, y, *, label: str = r"theory, $N\to\infty$ (Eq. 13)", **kwargs):
    """The macroscopic prediction: a solid green line."""
    kw = {"color": THEORY_COLOR, "lw": 2.0, "zorder": 3, "label": label}
    kw.update(kwargs)
    return ax.plot(x, y, "-", **kw)


def plot_finite_n(ax, x, y, N: int, *, color=None, label: str | None = None, **kwargs):
    """Master-equation results at one N: dots joined by a dotted line (as in Fig. 1)."""
    kw = {"color": color, "ms": 4.0, "lw": 0.9, "zorder": 2,
          "label": label if label is not None else f"$N = {N}$"}
    kw.update(kwargs)
    return ax.plot(x, y, "o:", **kw)


def plot_bloch_projection(ax, m, *, color="0.55", lw: float = 0.7, label: str | None = None,
                          circle: bool = True, **kwargs):
    """A Bloch-vector trajectory ``m(t)`` (shape (n, 3)) projected on the ``(m_x, m_y)``
    plane, with the unit circle (the edge of the Bloch ball) for scale."""
    m = np.asarray(m)
    if circle:
        th = np.linspace(0, 2 * np.pi, 200)
        ax.plot(np.cos(th), np.sin(th), color="0.8", lw=0.8, zorder=0)
    out = ax.plot(m[:, 0], m[:, 1], color=color, lw=lw, label=label, **kwargs)
    ax.set_aspect("equal")
    ax.set_xlim(-1.05, 1.05)
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlabel("$m_x$")
    ax.set_ylabel("$m_y$")
    return out


def plot_matrix(ax, A, *, log: bool = True, floor: float = 1e-12, colorbar: bool = True, label=None):
    """``|A_ij|`` as an image (log scale by default; entries below ``floor`` are white)."""
    mag = np.abs(np.asarray(A))
    if log:
        data = np.ma.masked_less(mag, floor)
        norm = mpl.colors.LogNorm(vmin=max(floor, float(data.min()) if data.count() else floor),
                                  vmax=float(mag.max()) if mag.max() > 0 else 1.0)
    else:
        data, norm = mag, None
    cmap = mpl.colormaps["viridis"].with_extremes(bad="white")
    im = ax.imshow(data, cmap=cmap, norm=norm, interpolation="nearest")
    if colorbar:
        ax.figure.colorbar(im, ax=ax, shrink=0.8, label=label)
    return im


def annotate_panel(ax, text: str) -> None:
    """A panel letter such as ``(a)`` in the upper-left corner."""
    ax.text(0.02, 0.97, text, transform=ax.transAxes, va="top", ha="left", fontweight="bold")


def plot_limit(ax, extrap: dict, **kwargs) -> None:
    """The N -> infinity extrapolation (:func:`picorr.extrapolate.extrapolate_curves`):
    squares with their error bars."""
    kw = {"fmt": "s", "ms": 3.5, "color": "C3", "capsize": 2,
          "label": r"extrapolated $N \to \infty$", **kwargs}
    ax.errorbar(extrap["Gamma"], extrap["limit"], yerr=extrap["error"], **kw)


def difference_panel(ax, comparison: dict) -> None:
    """Extrapolation minus theory with its error bar, point by point
    (:func:`picorr.extrapolate.compare_with_theory`); filled where they agree within it."""
    G, d, e = comparison["Gamma"], comparison["difference"], comparison["error"]
    ok = comparison["consistent"]
    ax.axhline(0.0, color=THEORY_COLOR, lw=1.2)
    ax.errorbar(G[ok], d[ok], yerr=e[ok], fmt="s", ms=3.5, color="C3", capsize=2,
                label="within its error bar")
    ax.errorbar(G[~ok], d[~ok], yerr=e[~ok], fmt="s", ms=3.5, mfc="white", color="C3",
                capsize=2, label="outside")
    ax.set_xlabel(r"$\Gamma/\gamma$")
    ax.set_ylabel("extrapolated − theory")


def fig1_panel(ax, data, theory, title: str, limit: dict | None = None) -> None:
    """One panel of Fig. 1: the theory curve, the finite-N curves of ``data`` (a
    :class:`picorr.figures.FigureData`) coloured by N, the Hopf point Gamma = gamma, and
    the extrapolation ``limit`` (see :func:`plot_limit`) when given."""
    plot_theory(ax, theory.x, theory.IM_per_N)
    cols = size_colors(data.sizes)
    for c in data.curves:
        plot_finite_n(ax, c.x, c.IM_per_N, c.N, color=cols[c.N])
    if limit is not None:
        plot_limit(ax, limit)
    ax.axvline(1.0, color="0.6", lw=0.8, ls="--")
    im_axes(ax)
    ax.set_xlim(0, 4.1)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(title)


def cost_panels(ax_time, ax_mem, bench: dict, *more: dict) -> None:
    """Wall time and peak memory against N, log-log, one line per h (from
    :func:`picorr.figures.load_benchmark`). Further benchmarks ``more`` (the same sizes at
    other Gamma) add their h != 0 lines, labelled with their Gamma."""
    styles = {0.0: ("C0", "o", "$h = 0$ (rate equations)")}
    series = [(h, c, None) for h, c in bench["by_h"].items()]
    for k, b in enumerate(more):
        series += [(h, c, k) for h, c in b["by_h"].items() if h != 0.0]
    for h, c, k in series:
        col, mk, lab = styles.get(h, ("C3", "s", rf"$h = {h:g}\gamma$"))
        if more and h != 0.0:  # several Gamma: say which
            G = float(np.asarray(c["Gamma"])[0]) if "Gamma" in c else float("nan")
            col, mk = ("C3", "s") if k is None else (f"C{4 + k}", "^")
            lab = rf"$h = {h:g}\gamma$, $\Gamma = {G:g}\gamma$"
        ax_time.loglog(c["N"], c["wall"], marker=mk, color=col, label=lab)
        ax_mem.loglog(c["N"], c["peak_gb"], marker=mk, color=col, label=lab)
    ax_time.set_xlabel("$N$")
    ax_time.set_ylabel("wall time per steady state (s)")
    ax_mem.set_xlabel("$N$")
    ax_mem.set_ylabel("peak memory (GB)")
    ax_time.legend(loc="lower right")
