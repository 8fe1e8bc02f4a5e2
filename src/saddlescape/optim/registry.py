"""Optimizers by short name: ``make(name, params, **hyperparams)``, ``names()``."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable
from typing import Any

import torch

from ..errors import ConfigError, UnknownNameError

__all__ = ["get_class", "make", "names"]

# short name -> (module, class)
_OPTIMIZERS: dict[str, tuple[str, str]] = {
    "gd": ("gd", "GD"),
    "pgd": ("perturbed_gd", "PerturbedGD"),
    "noisy": ("noisy_gd", "NoisyGD"),
    "pagd": ("perturbed_agd", "PerturbedAGD"),
    "cubic": ("cubic_newton", "CubicNewton"),
    "sfn": ("saddle_free_newton", "SaddleFreeNewton"),
}


def names() -> list[str]:
    """The short names :func:`make` accepts."""
    return sorted(_OPTIMIZERS)


def get_class(name: str) -> type[torch.optim.Optimizer]:
    """The optimizer class registered as ``name`` (``"gd"``, ``"pgd"``, ...)."""
    if name not in _OPTIMIZERS:
        raise UnknownNameError("optimizer", name, _OPTIMIZERS)
    module, cls = _OPTIMIZERS[name]
    try:
        return getattr(importlib.import_module(f"{__package__}.{module}"), cls)
    except (ImportError, AttributeError):
        raise ConfigError(
            f"optimizer {name!r} ({cls}) is not available in this installation"
        ) from None


def make(name: str, params: Iterable[Any], **hyperparams: Any) -> torch.optim.Optimizer:
    """Build the optimizer registered as ``name`` on ``params``.

    >>> x = torch.zeros(2, requires_grad=True)
    >>> type(make("pgd", [x], lr=0.1, radius=0.01, seed=0)).__name__
    'PerturbedGD'
    """
    cls = get_class(name)
    accepted = inspect.signature(cls).parameters
    for key in hyperparams:
        if key not in accepted or key == "params":
            known = ", ".join(k for k in accepted if k != "params")
            raise ConfigError(f"optimizer {name!r} has no parameter {key!r} (parameters: {known})")
    return cls(params, **hyperparams)
