"""Problems whose critical points are known: ``get(name, **params)``, ``names()``."""

from .base import KINDS, CriticalPoint, Problem
from .registry import get, names, parameters, register

__all__ = ["KINDS", "CriticalPoint", "Problem", "get", "names", "parameters", "register"]

# Each module registers its problems on import.
from . import classic, highdim, matrix, networks, octopus, power_tail, tensor  # noqa: F401  isort: skip
