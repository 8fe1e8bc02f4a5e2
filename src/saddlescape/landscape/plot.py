"""Pictures of a :class:`Landscape`: filled contours with labelled levels, a 3-D surface,
1-D curves; known critical points and trajectories drawn on them.

Colours: the loss in viridis (perceptually uniform, readable by colour-blind viewers and
in greyscale), curves and trajectories in the Okabe–Ito palette of
:mod:`saddlescape.plotting`, critical points by kind with distinct marker shapes as well
as colours (minimum ●, saddle ✕, maximum ▲, degenerate ◆). Points and trajectories off
the plane are projected onto it (least squares) and drawn hollow / dashed. Every axis is
named: the slice coordinates are in units of the direction vectors, the loss in the units
of ``f``.

>>> import torch
>>> from saddlescape import problems
>>> from saddlescape.landscape import eigen_directions, plot_landscape, slice_2d
>>> p = problems.get("lee-2d")
>>> x = p.critical_points[0].x
>>> s = slice_2d(p, eigen_directions(p, x), center=x, span=1.5, resolution=21)
>>> fig = plot_landscape(s, kind="both")
>>> [ax.get_xlabel() for ax in fig.axes[:1]]
['α along v_max (λ = 1)']
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from .result import Landscape

__all__ = ["PLOT_KINDS", "plot_contour", "plot_curve", "plot_landscape", "plot_surface"]

PLOT_KINDS: tuple[str, ...] = ("contour", "surface", "both")
CMAP = "viridis"
MARKERS = {"minimum": "o", "saddle": "X", "maximum": "^", "degenerate": "D"}
#: Relative distance from the plane under which a point counts as on it.
ON_PLANE = 1e-6


def _axis_label(s: Landscape, i: int) -> str:
    symbol = "αβ"[i]
    return f"{symbol} along {s.directions.labels[i]}"


def _levels(z: np.ndarray, levels: int) -> np.ndarray:
    finite = z[np.isfinite(z)]
    if finite.size == 0:
        raise ConfigError("every loss on the grid is nan or inf: nothing to draw")
    lo, hi = float(finite.min()), float(finite.max())
    if hi == lo:
        hi = lo + 1.0
    return np.linspace(lo, hi, levels)


def _on_plane(offplane: torch.Tensor, s: Landscape) -> np.ndarray:
    scale = max(1.0, float(torch.linalg.vector_norm(s.center)))
    return (offplane <= ON_PLANE * scale).numpy()


def _overlay(ax: Any, s: Landscape, k: int) -> None:
    """Critical points and the trajectory on 2-D (``k = 2``) or 1-D axes."""
    from .. import plotting  # matplotlib loads on first drawing, not on import

    if s.path is not None:
        p = s.path.numpy()
        on = bool(_on_plane(s.path_offplane, s).all())  # type: ignore[arg-type]
        label = "trajectory" + ("" if on else " (projected)")
        c = plotting.PALETTE[1]
        if k == 2:
            ax.plot(p[:, 0], p[:, 1], "-" if on else "--", color=c, lw=1.5, label=label)
            ax.plot(p[0, 0], p[0, 1], "s", color=c, mec="white", ms=6, label="start")
            ax.plot(p[-1, 0], p[-1, 1], "*", color=c, mec="white", ms=10, label="end")
    if s.critical is not None:
        on = _on_plane(s.critical_offplane, s)  # type: ignore[arg-type]
        lo_a, hi_a = float(s.alphas[0]), float(s.alphas[-1])
        shown: set[str] = set()
        for coords, kind, here in zip(s.critical.numpy(), s.critical_kinds, on, strict=True):
            a = float(coords[0])
            if not lo_a <= a <= hi_a:
                continue
            if k == 2:
                b = float(coords[1])
                if not float(s.betas[0]) <= b <= float(s.betas[-1]):  # type: ignore[index]
                    continue
            color = plotting.KIND_COLORS.get(kind, "#000000")
            tag = kind if here else f"{kind} (projected)"
            style = {
                "marker": MARKERS.get(kind, "o"),
                "ms": 9,
                "mec": "white" if here else color,
                "mfc": color if here else "none",
                "mew": 1.2 if here else 1.8,
                "ls": "none",
                "label": None if tag in shown else tag,
                "zorder": 5,
            }
            shown.add(tag)
            if k == 2:
                ax.plot(a, b, **style)
            else:
                y = float(np.interp(a, s.alphas.numpy(), s.losses.numpy()))
                ax.plot(a, y, **style)


def plot_contour(
    s: Landscape, ax: Any = None, *, levels: int = 15, log: bool = False, overlay: bool = True
) -> Any:
    """Filled contours of a 2-D slice with labelled contour lines, a colour bar and the
    overlays; returns the figure. ``log=True`` draws ``log10(f − min f + 1e-12)``."""
    from .. import plotting  # matplotlib loads on first drawing, not on import

    if s.ndim != 2:
        raise ConfigError("contours need a 2-D slice (slice_2d)")
    with plotting.style():
        fig = None
        if ax is None:
            fig, ax = plotting.figure(width=5.4, height=4.6)
        fig = fig or ax.figure
        z, zlabel = _values(s, log)
        a, b = s.alphas.numpy(), s.betas.numpy()  # type: ignore[union-attr]
        lv = _levels(z, levels)
        filled = ax.contourf(a, b, z, levels=lv, cmap=CMAP, extend="neither")
        lines = ax.contour(a, b, z, levels=lv[::2], colors="white", linewidths=0.6, alpha=0.8)
        ax.clabel(lines, lines.levels, inline=True, fontsize=7, fmt="%.3g", colors="white")
        bar = fig.colorbar(filled, ax=ax, shrink=0.9, format="%.4g")
        bar.set_label(zlabel)
        ax.plot(0.0, 0.0, "+", color="black", ms=9, mew=1.5, label="centre", zorder=6)
        if overlay:
            _overlay(ax, s, 2)
        ax.set_xlabel(_axis_label(s, 0))
        ax.set_ylabel(_axis_label(s, 1))
        ax.set_aspect("auto")
        ax.grid(False)
        ax.legend(loc="upper right", fontsize=7.5, frameon=True, framealpha=0.85)
    return fig


def _values(s: Landscape, log: bool) -> tuple[np.ndarray, str]:
    z = s.losses.numpy()
    if not log:
        return z, "loss f"
    return np.log10(z - np.nanmin(z) + 1e-12), "log10(f − min f + 1e-12)"


def plot_surface(s: Landscape, ax: Any = None, *, log: bool = False) -> Any:
    """The 2-D slice as a 3-D surface (viridis by height); returns the figure."""
    from .. import plotting  # matplotlib loads on first drawing, not on import

    if s.ndim != 2:
        raise ConfigError("a surface needs a 2-D slice (slice_2d)")
    with plotting.style():
        if ax is None:
            fig, _ = plotting.figure(width=5.4, height=4.6)
            fig.clear()
            ax = fig.add_subplot(projection="3d")
        fig = ax.figure
        z, zlabel = _values(s, log)
        A, B = np.meshgrid(s.alphas.numpy(), s.betas.numpy())  # type: ignore[union-attr]
        ax.plot_surface(A, B, z, cmap=CMAP, linewidth=0, antialiased=True, rstride=1, cstride=1)
        ax.set_xlabel(_axis_label(s, 0), fontsize=8)
        ax.set_ylabel(_axis_label(s, 1), fontsize=8)
        ax.set_zlabel(zlabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_box_aspect(None, zoom=0.85)  # room for the z label
    return fig


def plot_curve(
    slices: Landscape | list[Landscape],
    ax: Any = None,
    *,
    labels: list[str] | None = None,
    log: bool = False,
) -> Any:
    """1-D slices as curves on one axes (several: a legend), critical points marked."""
    from .. import plotting  # matplotlib loads on first drawing, not on import

    items = [slices] if isinstance(slices, Landscape) else list(slices)
    if not items or any(s.ndim != 1 for s in items):
        raise ConfigError("curves need 1-D slices (slice_1d or interpolate)")
    with plotting.style():
        if ax is None:
            fig, ax = plotting.figure(width=5.4, height=3.6)
        fig = ax.figure
        for i, s in enumerate(items):
            label = labels[i] if labels else (s.target if len(items) > 1 else None)
            ax.plot(s.alphas.numpy(), s.losses.numpy(), color=plotting.color(i), label=label)
            if len(items) == 1:
                _overlay(ax, s, 1)
        first = items[0]
        ax.set_xlabel(_axis_label(first, 0))
        ax.set_ylabel("loss f")
        if log:
            ax.set_yscale("log")
        if any(line.get_label()[:1] != "_" for line in ax.get_lines()):
            ax.legend(loc="best")
    return fig


def plot_landscape(
    s: Landscape, kind: str = "both", *, title: str | None = None, log: bool = False
) -> Any:
    """The standard picture: a 1-D slice as a curve; a 2-D slice as contours
    (``kind="contour"``), a surface (``"surface"``) or both side by side (``"both"``).
    ``log=True``: colours and heights by ``log10(f − min f + 1e-12)`` (2-D), or a log loss
    axis (1-D, positive losses)."""
    from .. import plotting  # matplotlib loads on first drawing, not on import

    if kind not in PLOT_KINDS:
        raise ConfigError(f"plot kind must be one of {', '.join(PLOT_KINDS)}, got {kind!r}")
    if s.ndim == 1:
        fig = plot_curve(s, log=log)
    elif kind == "contour":
        fig = plot_contour(s, log=log)
    elif kind == "surface":
        fig = plot_surface(s, log=log)
    else:
        with plotting.style():
            fig, _ = plotting.figure(width=11.0, height=4.6)
            fig.clear()
            left = fig.add_subplot(1, 2, 1)
            right = fig.add_subplot(1, 2, 2, projection="3d")
            plot_contour(s, left, log=log)
            plot_surface(s, right, log=log)
    if title:
        with plotting.style():
            fig.suptitle(title, fontsize=10)
    return fig
