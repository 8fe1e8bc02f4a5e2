"""Experiments: each tests one claim of the theory (see :mod:`.base`)."""

from .base import Analysis, Experiment, RunOutput, RunRecord, Verdict, make_config
from .registry import get, names, register

__all__ = [
    "Analysis",
    "Experiment",
    "RunOutput",
    "RunRecord",
    "Verdict",
    "get",
    "make_config",
    "names",
    "register",
]

# Each module registers its experiment on import (registration order = report order).
from . import gd_rate  # noqa: F401  isort: skip
from . import step_size  # noqa: F401  isort: skip
from . import stable_manifold  # noqa: F401  isort: skip
from . import dimension  # noqa: F401  isort: skip
from . import saddle_escape  # noqa: F401  isort: skip
from . import edge_of_stability  # noqa: F401  isort: skip
from . import certify_network  # noqa: F401  isort: skip
from . import acceleration  # noqa: F401  isort: skip
from . import sfn_plateau  # noqa: F401  isort: skip
from . import hessian_outliers  # noqa: F401  isort: skip
from . import critical_points  # noqa: F401  isort: skip
