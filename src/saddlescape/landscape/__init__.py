"""Loss landscapes: 1-D and 2-D slices of a loss along chosen directions, and their pictures.

Li, Xu, Taylor, Studer, Goldstein 2018, "Visualizing the Loss Landscape of Neural Nets";
Goodfellow, Vinyals, Saxe 2015 (linear interpolation). A slice needs a target (a zoo
problem, a function, or :meth:`LossTarget.from_model` for a model and data through the
curvature package's batch protocol), directions (:func:`random_directions` with filter
normalization, :func:`eigen_directions` from Lanczos, :func:`pca_directions` of a
trajectory, :func:`user_directions`) and a centre. :func:`slice_2d`, :func:`slice_1d` and
:func:`interpolate` return a frozen :class:`Landscape` (saved to and loaded from ``.npz``)
that :func:`plot_landscape` draws.

>>> from saddlescape import problems
>>> from saddlescape.landscape import eigen_directions, slice_2d
>>> p = problems.get("lee-2d")
>>> saddle = p.critical_points[0].x
>>> s = slice_2d(p, eigen_directions(p, saddle), center=saddle, span=1.0, resolution=3)
>>> s.losses.tolist()      # up along v_max (x), down then up along v_min (y)
[[0.25, -0.25, 0.25], [0.5, 0.0, 0.5], [0.25, -0.25, 0.25]]
"""

from .directions import KINDS, Directions, user_directions
from .eigen import eigen_directions
from .pca import pca_directions
from .plot import PLOT_KINDS, plot_contour, plot_curve, plot_landscape, plot_surface
from .random import NORMALIZATIONS, random_directions
from .result import Landscape
from .slices import MAX_POINTS, MAX_RESOLUTION, interpolate, slice_1d, slice_2d
from .target import LossTarget

__all__ = [
    "KINDS",
    "MAX_POINTS",
    "MAX_RESOLUTION",
    "NORMALIZATIONS",
    "PLOT_KINDS",
    "Directions",
    "Landscape",
    "LossTarget",
    "eigen_directions",
    "interpolate",
    "pca_directions",
    "plot_contour",
    "plot_curve",
    "plot_landscape",
    "plot_surface",
    "random_directions",
    "slice_1d",
    "slice_2d",
    "user_directions",
]
