"""Pictures: labelled contours, colour bar, 3-D surface, curves; critical points (hollow when
only projected) and trajectories drawn; every axis named."""

import pytest
import torch

from saddlescape import plotting, problems
from saddlescape.errors import ConfigError
from saddlescape.landscape import (
    eigen_directions,
    interpolate,
    plot_contour,
    plot_curve,
    plot_landscape,
    plot_surface,
    slice_1d,
    slice_2d,
    user_directions,
)


@pytest.fixture(scope="module")
def saddle_slice():
    p = problems.get("lee-2d")
    x = p.critical_points[0].x
    path = torch.tensor([[1.0, 0.01], [0.3, 0.2], [0.0, 0.95]], dtype=torch.float64)
    return slice_2d(p, eigen_directions(p, x), center=x, span=1.5, resolution=15, trajectory=path)


def test_contour_has_labelled_levels_colour_bar_and_overlays(saddle_slice):
    fig = plot_contour(saddle_slice)
    ax, bar = fig.axes
    assert (
        ax.get_xlabel() == "α along v_max (λ = 1)" and ax.get_ylabel() == "β along v_min (λ = -1)"
    )
    assert bar.get_ylabel() == "loss f"
    assert len(ax.texts) >= 3  # contour labels
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"centre", "saddle", "minimum", "trajectory", "start", "end"} <= set(legend)
    saddle = next(ln for ln in ax.get_lines() if ln.get_label() == "saddle")
    assert saddle.get_markerfacecolor() == plotting.KIND_COLORS["saddle"]  # on the plane: filled
    assert ax.collections[0].get_cmap().name == "viridis"


def test_points_off_the_line_are_drawn_hollow_as_projected():
    p = problems.get("lee-2d")  # the line y = 0.5 misses every critical point
    d = user_directions(torch.tensor([1.0, 0.0]))
    line = slice_1d(p, d, center=torch.tensor([0.0, 0.5]), span=2.0, resolution=9)
    assert line.critical_offplane.tolist() == [0.5, 0.5, 1.5]
    ax = plot_curve(line).axes[0]
    hollow = [ln for ln in ax.get_lines() if "(projected)" in ln.get_label()]
    assert {ln.get_label() for ln in hollow} == {"saddle (projected)", "minimum (projected)"}
    assert all(ln.get_markerfacecolor() == "none" for ln in hollow)


def test_surface_and_both(saddle_slice):
    fig = plot_surface(saddle_slice)
    ax = fig.axes[0]
    assert ax.name == "3d" and ax.get_zlabel() == "loss f"
    both = plot_landscape(saddle_slice, "both", title="lee-2d saddle", log=True)
    assert [a.name for a in both.axes if a.name == "3d"] == ["3d"]
    assert both._suptitle.get_text() == "lee-2d saddle"
    assert any(a.get_ylabel().startswith("log10(f") for a in both.axes)  # the log colour bar
    assert plotting.png_bytes(both)[:4] == b"\x89PNG"


def test_curves_and_refusals(saddle_slice):
    p = problems.get("lee-2d")
    a, b = p.critical_points[1].x, p.critical_points[2].x
    line = interpolate(p, a, b, resolution=21)
    fig = plot_curve(line)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "loss f" and ax.get_xlabel().startswith("α along α: θ = (1 − α)")
    assert {"saddle", "minimum"} <= {ln.get_label() for ln in ax.get_lines()}
    two = plot_curve([line, line], labels=["first", "second"])
    assert [t.get_text() for t in two.axes[0].get_legend().get_texts()] == ["first", "second"]
    with pytest.raises(ConfigError, match="2-D slice"):
        plot_contour(line)
    with pytest.raises(ConfigError, match="1-D slices"):
        plot_curve(saddle_slice)
    with pytest.raises(ConfigError, match="plot kind must be one of"):
        plot_landscape(saddle_slice, "pie")
