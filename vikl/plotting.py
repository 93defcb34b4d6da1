"""Plotting helpers shared by the experiments and notebooks.

One style for every figure: labelled axes with units, a legend, mid-contrast
colours and text on a transparent background, so the same PNG reads on a
white paper page and on a dark README background.

Densities are drawn from ``log_prob`` (anything with a ``log_prob`` method --
vikl or NumPyro distributions -- or a plain log-density callable) evaluated on
a grid; nothing here samples or fits.

Example::

    import vikl, vikl.plotting as vp
    with vp.style():
        fig, ax = vp.subplots()
        vp.density_1d(ax, vikl.Normal(0.0, 1.0), (-4, 4), label="N(0, 1)")
        vp.save(fig, "out/normal")          # out/normal.png + out/normal.pdf

Matplotlib's backend is left alone (scripts select ``Agg`` themselves; notebooks
keep their inline backend).
"""

from __future__ import annotations

import contextlib
import os
from typing import Callable, Iterable, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

__all__ = [
    "COLORS",
    "TEXT_COLOR",
    "style",
    "subplots",
    "log_density_fn",
    "density_1d",
    "contour_2d",
    "hpd_levels",
    "loss_curve",
    "label_axes",
    "save",
]

#: Named colours of the vikl style. Saturated mid-luminance hues that keep
#: contrast above about 3:1 on white and on GitHub's dark background.
COLORS = {
    "target": "#8a8a8a",  # grey: the distribution being approximated
    "forward": "#3b82d6",  # blue: forward KL(p‖q), mass-covering
    "reverse": "#e8672a",  # orange: reverse KL(q‖p), mode-seeking
    "analytic": "#2aa876",  # green: analytic / reference values
    "flow": "#9b59d0",  # purple: normalizing-flow family
    "extra": "#d4a017",  # ochre: anything else
}

#: Colour of text, ticks and spines: mid grey, readable on white and on dark.
TEXT_COLOR = "#808080"

_CYCLE = [COLORS[k] for k in ("forward", "reverse", "analytic", "flow", "extra", "target")]


def _rc(transparent: bool) -> dict:
    face = "none" if transparent else "white"
    return {
        "figure.facecolor": face,
        "axes.facecolor": face,
        "savefig.facecolor": face,
        "savefig.transparent": transparent,
        "savefig.bbox": "tight",
        "savefig.dpi": 110,
        "figure.dpi": 110,
        "font.size": 10,
        "axes.titlesize": 11,
        "axes.labelsize": 10,
        "legend.fontsize": 9,
        "text.color": TEXT_COLOR,
        "axes.labelcolor": TEXT_COLOR,
        "axes.edgecolor": TEXT_COLOR,
        "axes.titlecolor": TEXT_COLOR,
        "xtick.color": TEXT_COLOR,
        "ytick.color": TEXT_COLOR,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.color": TEXT_COLOR,
        "grid.alpha": 0.25,
        "grid.linewidth": 0.6,
        "axes.prop_cycle": mpl.cycler(color=_CYCLE),
        "lines.linewidth": 2.0,
        "legend.frameon": False,
        "legend.labelcolor": TEXT_COLOR,
        "pdf.fonttype": 42,  # embed TrueType: editable text in papers
        "svg.fonttype": "none",
    }


@contextlib.contextmanager
def style(transparent: bool = True):
    """Context manager applying the vikl figure style (rcParams) inside its block.

    Args:
      transparent: transparent figure and axes backgrounds (default), so the
        saved PNG sits on whatever page shows it; ``False`` gives white.
    """
    with mpl.rc_context(_rc(transparent)):
        yield


def subplots(nrows: int = 1, ncols: int = 1, *, width: float | None = None,
             height: float | None = None, **kwargs):
    """``plt.subplots`` with the vikl style and a paper-friendly size.

    Args:
      nrows, ncols: grid of axes.
      width, height: figure size in inches; default 3.6 in per column and
        2.8 in per row (one column of a two-column paper is about 3.4 in).
      **kwargs: passed to :func:`matplotlib.pyplot.subplots`.

    Returns:
      ``(fig, axes)`` as from :func:`matplotlib.pyplot.subplots`, drawn with
      ``constrained_layout``. Call it inside :func:`style` so rcParams apply.
    """
    width = 3.6 * ncols if width is None else width
    height = 2.8 * nrows if height is None else height
    kwargs.setdefault("layout", "constrained")
    return plt.subplots(nrows, ncols, figsize=(width, height), **kwargs)


def log_density_fn(dist_or_fn) -> Callable:
    """Returns a callable ``x -> log density`` from a distribution or a callable.

    Accepts anything with a ``log_prob`` method (vikl, NumPyro) or a function
    mapping points to log densities.
    """
    if hasattr(dist_or_fn, "log_prob"):
        return dist_or_fn.log_prob
    if callable(dist_or_fn):
        return dist_or_fn
    raise TypeError(
        f"expected a distribution with log_prob or a log-density callable; got {type(dist_or_fn).__name__}"
    )


def _float_dtype(dist_or_fn):
    """Dtype for evaluation grids: the distribution's, else JAX's default float."""
    dtype = getattr(dist_or_fn, "dtype", None)
    if dtype is not None and np.issubdtype(np.dtype(dtype), np.floating):
        return np.dtype(dtype)
    import jax.numpy as jnp  # deferred: plotting alone does not need JAX

    return np.dtype(jnp.zeros(()).dtype)


def _as_grid(x, num: int, dtype) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1 and x.size == 2:
        x = np.linspace(x[0], x[1], num)
    return x.astype(dtype)


def density_1d(ax, dist_or_fn, x, *, label=None, color=None, fill: bool = False,
               num: int = 600, normalize: bool = False, **kwargs):
    """Plots the density ``exp(log_prob(x))`` of a 1-D distribution.

    Args:
      ax: matplotlib axes.
      dist_or_fn: a distribution with ``log_prob`` or a log-density callable.
      x: grid of points, or ``(lo, hi)`` for ``num`` evenly spaced points.
      label, color: legend entry and line colour.
      fill: shade the area under the curve (used for targets).
      normalize: divide by the trapezoid integral over the grid, for an
        unnormalized log density.
      **kwargs: passed to ``ax.plot``.

    Returns:
      ``(x, density)`` as NumPy arrays.
    """
    xs = _as_grid(x, num, _float_dtype(dist_or_fn))
    dens = np.exp(np.asarray(log_density_fn(dist_or_fn)(xs), dtype=np.float64))
    if normalize:
        dens = dens / np.trapezoid(dens, xs)
    (line,) = ax.plot(xs, dens, label=label, color=color, **kwargs)
    line.sticky_edges.y.append(0.0)  # the y axis starts at 0 and still autoscales upwards
    if fill:
        ax.fill_between(xs, dens, color=line.get_color(), alpha=0.25, linewidth=0)
    return xs, dens


def hpd_levels(density: np.ndarray, masses: Sequence[float]) -> np.ndarray:
    """Density thresholds whose super-level sets hold the given probability masses.

    For a density tabulated on a regular grid, the threshold ``t_m`` is the
    largest value such that the cells with ``density >= t_m`` hold mass ``m``
    (a highest-density region). Returns the thresholds in increasing order,
    as ``contour`` wants them.
    """
    d = np.sort(np.asarray(density, dtype=np.float64).ravel())[::-1]
    cum = np.cumsum(d)
    cum = cum / cum[-1]
    levels = [d[min(np.searchsorted(cum, m), d.size - 1)] for m in masses]
    return np.unique(np.asarray(levels))


def contour_2d(ax, dist_or_fn, xlim, ylim, *, masses=(0.5, 0.9, 0.99), num: int = 160,
               color=None, label=None, filled: bool = False, linestyles="solid",
               linewidths=None, **kwargs):
    """Contours of a 2-D density at highest-density regions of given mass.

    The log density is evaluated on a ``num x num`` grid and normalized
    numerically, so unnormalized targets work; contour ``m`` encloses
    probability ``m`` (the mass is only as accurate as the grid covers it).

    Args:
      ax: matplotlib axes.
      dist_or_fn: a distribution with ``log_prob`` on points of shape ``(..., 2)``
        or such a log-density callable.
      xlim, ylim: plotting window ``(lo, hi)``.
      masses: probability masses of the drawn regions.
      color, label: contour colour and legend entry (a proxy line is added).
      filled: shaded regions instead of lines.
      linestyles, linewidths: line style and width(s); by default lines get
        thicker towards the mode.
      **kwargs: passed to ``contour``/``contourf`` (e.g. ``alpha``).

    Returns:
      The ``QuadContourSet``.
    """
    dtype = _float_dtype(dist_or_fn)
    xs = np.linspace(xlim[0], xlim[1], num).astype(dtype)
    ys = np.linspace(ylim[0], ylim[1], num).astype(dtype)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1)
    logp = np.asarray(log_density_fn(dist_or_fn)(grid), dtype=np.float64)
    logp = np.where(np.isfinite(logp), logp, -np.inf)
    dens = np.exp(logp - np.max(logp))
    levels = hpd_levels(dens, sorted(masses, reverse=True))
    color = color or COLORS["target"]
    if filled:
        cmap = mpl.colors.LinearSegmentedColormap.from_list(
            "vikl", [(0, mpl.colors.to_rgba(color, 0.12)), (1, mpl.colors.to_rgba(color, 0.55))])
        cs = ax.contourf(xs, ys, dens, levels=np.append(levels, dens.max() * 1.001),
                         cmap=cmap, **kwargs)
    else:
        widths = np.linspace(0.8, 1.8, len(levels)) if linewidths is None else linewidths
        cs = ax.contour(xs, ys, dens, levels=levels, colors=[color],
                        linewidths=widths, linestyles=linestyles, **kwargs)
    if label is not None:
        ax.plot([], [], color=color, label=label, alpha=kwargs.get("alpha"),
                linewidth=np.max(linewidths) if linewidths is not None else None,
                linestyle=linestyles if isinstance(linestyles, str) else "solid")
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)
    ax.set_aspect("equal", adjustable="box")
    return cs


def loss_curve(ax, losses, *, label=None, color=None, smooth: int = 0, log_x: bool = False,
               ylabel: str = "loss (nats)", **kwargs):
    """Plots a training curve, optionally with a moving average.

    Args:
      ax: matplotlib axes.
      losses: 1-D array, one value per step.
      smooth: window of a moving average drawn on top of the raw (faint) curve;
        0 draws only the raw curve.
      log_x: logarithmic step axis.
      ylabel: axis label, with units.
    """
    y = np.asarray(losses, dtype=np.float64).ravel()
    steps = np.arange(1, y.size + 1)
    if smooth and smooth > 1 and y.size > smooth:
        (raw,) = ax.plot(steps, y, color=color, alpha=0.25, linewidth=0.8)
        kernel = np.ones(smooth) / smooth
        ys = np.convolve(y, kernel, mode="valid")
        ax.plot(steps[smooth - 1:], ys, color=raw.get_color(), label=label, **kwargs)
    else:
        ax.plot(steps, y, color=color, label=label, **kwargs)
    if log_x:
        ax.set_xscale("log")
    label_axes(ax, "optimization step", ylabel)


def label_axes(ax, xlabel: str | None = None, ylabel: str | None = None,
               title: str | None = None, legend: bool | str = "auto"):
    """Sets axis labels (write units in them, e.g. ``"x (nats)"``), title and legend.

    ``legend="auto"`` adds a legend when the axes have labelled artists.
    """
    if xlabel is not None:
        ax.set_xlabel(xlabel)
    if ylabel is not None:
        ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title)
    if legend is True or (legend == "auto" and ax.get_legend_handles_labels()[0]):
        ax.legend()


def save(fig, path_stem, formats: Iterable[str] = ("png", "pdf"), *, dpi: int = 110,
         close: bool = True) -> list[str]:
    """Saves ``fig`` as ``path_stem.<fmt>`` for each format; returns the paths.

    PNG at ``dpi`` for READMEs and slides, PDF/SVG (vector) for papers. Parent
    directories are created. The figure is closed afterwards unless
    ``close=False`` (keep it to show it inline in a notebook).
    """
    path_stem = os.fspath(path_stem)
    os.makedirs(os.path.dirname(path_stem) or ".", exist_ok=True)
    paths = []
    for fmt in formats:
        path = f"{path_stem}.{fmt}"
        metadata = {"Software": None} if fmt == "png" else None
        if fmt in ("pdf", "svg"):
            metadata = {"Creator": None, "Producer": None, "CreationDate": None} if fmt == "pdf" else {"Date": None}
        fig.savefig(path, dpi=dpi, format=fmt, metadata=metadata)
        paths.append(path)
    if close:
        plt.close(fig)
    return paths
