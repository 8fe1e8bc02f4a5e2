"""saddlescape: the theory of non-convex optimization, executable.

Four packages, one direction of flow::

    problems  ->  optim  ->  curvature  ->  experiments  ->  runner / report / cli

>>> import saddlescape
>>> p = saddlescape.problems.get("lee-2d")
>>> sorted({c.kind for c in p.critical_points})
['minimum', 'saddle']
"""

from importlib.metadata import PackageNotFoundError, version

from . import curvature, experiments, landscape, optim, problems
from .errors import (
    ConfigError,
    CurvatureError,
    DivergenceError,
    SaddlescapeError,
    StoreError,
    UnknownNameError,
)

try:
    __version__ = version("saddlescape")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "ConfigError",
    "CurvatureError",
    "DivergenceError",
    "SaddlescapeError",
    "StoreError",
    "UnknownNameError",
    "__version__",
    "curvature",
    "experiments",
    "landscape",
    "optim",
    "problems",
]
