"""Saddle-escaping optimizers, drop-in :class:`torch.optim.Optimizer` subclasses.

``GD`` (baseline), ``PerturbedGD`` (Jin et al. 2017/2021), ``NoisyGD`` (Ge et al. 2015;
annealed Gaussian noise), ``PerturbedAGD`` (Jin, Netrapalli, Jordan 2018) and
``CubicNewton`` (Nesterov & Polyak 2006). ``make(name, params, **hyperparams)`` builds one
by its short name; ``run(problem, name, steps)`` runs one trajectory on a problem.
"""

from .base import SaddleOptimizer
from .gd import GD
from .perturbed_gd import PerturbedGD, PerturbedGDTheory

__all__ = ["GD", "PerturbedGD", "PerturbedGDTheory", "SaddleOptimizer"]

try:  # written separately; optional until it lands
    from .cubic_newton import CubicNewton

    __all__ += ["CubicNewton"]
except ImportError:  # pragma: no cover
    pass
