"""Saddle-escaping optimizers, drop-in :class:`torch.optim.Optimizer` subclasses.

``GD`` (baseline), ``PerturbedGD`` (Jin et al. 2017/2021), ``NoisyGD`` (Ge et al. 2015;
annealed Gaussian noise), ``PerturbedAGD`` (Jin, Netrapalli, Jordan 2018),
``CubicNewton`` (Nesterov & Polyak 2006) and ``SaddleFreeNewton`` (Dauphin et al. 2014);
``Perturbed(torch_optimizer, ...)`` adds Jin et al.'s perturbations to any torch optimizer.
``make(name, params, **hyperparams)`` builds one by its short name (``names()``);
``run(problem, name, steps)`` runs one trajectory.
"""

from .base import SaddleOptimizer
from .cubic_newton import CubicNewton
from .gd import GD
from .noisy_gd import NoisyGD
from .perturbations import gaussian, uniform_ball, uniform_sphere
from .perturbed_agd import PerturbedAGD, PerturbedAGDTheory
from .perturbed_gd import PerturbedGD, PerturbedGDTheory
from .registry import get_class, make, names
from .saddle_free_newton import SaddleFreeNewton
from .trajectory import Trajectory, nearest_critical_point, run
from .wrapper import Perturbed

__all__ = [
    "GD",
    "CubicNewton",
    "NoisyGD",
    "Perturbed",
    "PerturbedAGD",
    "PerturbedAGDTheory",
    "PerturbedGD",
    "PerturbedGDTheory",
    "SaddleFreeNewton",
    "SaddleOptimizer",
    "Trajectory",
    "gaussian",
    "get_class",
    "make",
    "names",
    "nearest_critical_point",
    "run",
    "uniform_ball",
    "uniform_sphere",
]
