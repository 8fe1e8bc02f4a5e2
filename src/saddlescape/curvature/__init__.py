"""Curvature of a loss landscape through Hessian-vector products: operators, extreme
eigenvalues (Lanczos, power iteration), second-order certificates, and (from sibling
modules) traces, spectral densities, smoothness estimates and sharpness tracking."""

from ._progress import CurvatureProgress
from .certify import (
    Certificate,
    NegativeCurvature,
    certify,
    certify_model,
    has_negative_curvature,
)
from .density import SpectralDensity, plot_spectral_density, spectral_density
from .hvp import METHODS as HVP_METHODS
from .lanczos import EigenResult, lanczos
from .layers import LayerCurvature, LayerSpectra, layer_spectra, plot_layer_spectra
from .operators import DenseOperator, HessianOperator, SymmetricOperator
from .power import power_iteration
from .smoothness import (
    HessianLipschitzResult,
    SmoothnessResult,
    hessian_lipschitz,
    smoothness,
    suggest_lr,
)
from .trace import TraceResult, trace
from .tracker import SharpnessRecord, SharpnessTracker

__all__ = [
    "HVP_METHODS",
    "Certificate",
    "CurvatureProgress",
    "DenseOperator",
    "EigenResult",
    "HessianLipschitzResult",
    "HessianOperator",
    "LayerCurvature",
    "LayerSpectra",
    "NegativeCurvature",
    "SharpnessRecord",
    "SharpnessTracker",
    "SmoothnessResult",
    "SpectralDensity",
    "SymmetricOperator",
    "TraceResult",
    "certify",
    "certify_model",
    "has_negative_curvature",
    "hessian_lipschitz",
    "lanczos",
    "layer_spectra",
    "plot_layer_spectra",
    "plot_spectral_density",
    "power_iteration",
    "smoothness",
    "spectral_density",
    "suggest_lr",
    "trace",
]
