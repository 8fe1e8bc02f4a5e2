"""Curvature of a loss landscape through Hessian-vector products: operators, extreme
eigenvalues (Lanczos, power iteration), second-order certificates, and (from sibling
modules) traces, spectral densities, smoothness estimates and sharpness tracking."""

from .certify import (
    Certificate,
    NegativeCurvature,
    certify,
    certify_model,
    has_negative_curvature,
)
from .hvp import METHODS as HVP_METHODS
from .lanczos import EigenResult, lanczos
from .operators import DenseOperator, HessianOperator, SymmetricOperator
from .power import power_iteration

__all__ = [
    "HVP_METHODS",
    "Certificate",
    "DenseOperator",
    "EigenResult",
    "HessianOperator",
    "NegativeCurvature",
    "SymmetricOperator",
    "certify",
    "certify_model",
    "has_negative_curvature",
    "lanczos",
    "power_iteration",
]

# Modules written alongside this package; each is exported once it exists.
try:
    from .trace import *  # noqa: F403
    from .trace import __all__ as _trace_all

    __all__ += list(_trace_all)
except ImportError:  # pragma: no cover - module not written yet
    pass
try:
    from .density import *  # noqa: F403
    from .density import __all__ as _density_all

    __all__ += list(_density_all)
except ImportError:  # pragma: no cover
    pass
try:
    from .smoothness import *  # noqa: F403
    from .smoothness import __all__ as _smoothness_all

    __all__ += list(_smoothness_all)
except ImportError:  # pragma: no cover
    pass
try:
    from .tracker import *  # noqa: F403
    from .tracker import __all__ as _tracker_all

    __all__ += list(_tracker_all)
except ImportError:  # pragma: no cover
    pass
