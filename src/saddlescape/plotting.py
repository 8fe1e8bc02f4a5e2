"""The shared plot style of saddlescape's figures (matplotlib, Agg backend, no pyplot).

Experiments draw their figures inside :func:`style` on figures made by :func:`figure`, so
every plot of the report has the same fonts, colours and grid. Figures are plain
:class:`matplotlib.figure.Figure` objects attached to an Agg canvas: no GUI, no global
pyplot state, nothing to close.

>>> from saddlescape import plotting as plots
>>> with plots.style():
...     fig, ax = plots.figure()
...     _ = ax.plot([1, 2, 3], [1, 4, 9], color=plots.color(0))
>>> plots.png_bytes(fig)[:4]
b'\\x89PNG'
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

#: Colour cycle (Okabe-Ito, readable by colour-blind viewers), in the order series use it.
PALETTE: tuple[str, ...] = (
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # green
    "#CC79A7",  # purple
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
    "#000000",  # black
)
#: Colour of theory curves and bounds drawn beside measurements.
THEORY_COLOR = "#555555"
#: Colours of critical-point kinds (basin maps, trajectory end points).
KIND_COLORS: dict[str, str] = {
    "minimum": "#009E73",
    "saddle": "#D55E00",
    "maximum": "#CC79A7",
    "degenerate": "#E69F00",
    "unconverged": "#BBBBBB",
    "undecided": "#BBBBBB",
}

RC: dict[str, Any] = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "axes.prop_cycle": matplotlib.cycler(color=list(PALETTE)),
    "grid.color": "#E3E3E3",
    "grid.linewidth": 0.8,
    "legend.fontsize": 8.5,
    "legend.frameon": False,
    "lines.linewidth": 1.8,
    "lines.markersize": 5,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "savefig.bbox": "tight",
    "image.cmap": "viridis",
}


@contextlib.contextmanager
def style() -> Iterator[None]:
    """Context in which figures are created and drawn with saddlescape's style."""
    with matplotlib.rc_context(RC):
        yield


def figure(
    ncols: int = 1, nrows: int = 1, *, width: float | None = None, height: float = 3.4
) -> tuple[Figure, Any]:
    """A new Agg-backed figure with ``nrows × ncols`` axes (one axes, or an array).

    ``width`` defaults to 4.6 inches per column. Call inside :func:`style`.
    """
    width = 4.6 * ncols if width is None else width
    fig = Figure(figsize=(width, height * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=True)
    return fig, axes


def grid(
    n: int, *, ncols: int = 2, panel_width: float = 4.4, panel_height: float = 3.0
) -> tuple[Figure, list[Any]]:
    """A figure with ``n`` panels laid out ``ncols`` to a row (a grid, not a strip, so the
    page shows them at a readable size); returns the figure and a flat list of
    ``rows × ncols`` axes (hide the spare ones). Call inside :func:`style`."""
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig, axes = figure(ncols, nrows, width=panel_width * ncols, height=panel_height)
    import numpy as np

    return fig, list(np.atleast_1d(axes).ravel())


def integer_ticks(ax: Any, axis: str = "x") -> None:
    """Only integer tick positions on ``axis`` (for counts such as a dimension d)."""
    from matplotlib.ticker import MaxNLocator

    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(MaxNLocator(integer=True))


def color(i: int) -> str:
    """The ``i``-th colour of the palette (cycling)."""
    return PALETTE[i % len(PALETTE)]


def png_bytes(fig: Figure) -> bytes:
    """The figure rendered as PNG."""
    buf = io.BytesIO()
    with style():
        fig.savefig(buf, format="png")
    return buf.getvalue()


def save_png(fig: Figure, path: str | Path) -> Path:
    """Render ``fig`` to ``path`` (PNG, written atomically: a crash or a full disk leaves
    the previous file) and return the path."""
    from .fileio import write_bytes

    path = Path(path)
    write_bytes(path, png_bytes(fig))
    return path


def save_figure(fig: Figure, path: str | Path, **savefig_kwargs: Any) -> Path:
    """``fig.savefig(path, **savefig_kwargs)`` written atomically (format from the suffix:
    ``.png``, ``.pdf``, ``.svg``); OS errors become one-line
    :class:`~saddlescape.errors.OutputError`. Returns the path."""
    from .fileio import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, **savefig_kwargs)
    return path
