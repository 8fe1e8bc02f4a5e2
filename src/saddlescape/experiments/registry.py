"""Experiment registry: ``get(name)`` and ``names()``."""

from __future__ import annotations

from ..errors import UnknownNameError
from .base import Experiment

_REGISTRY: dict[str, type[Experiment]] = {}


def register(cls: type[Experiment]) -> type[Experiment]:
    """Class decorator adding an experiment under its ``name``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"experiment {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def names() -> list[str]:
    """Registered experiment names in the order they were registered (the report order)."""
    return list(_REGISTRY)


def get(name: str) -> Experiment:
    """An instance of the experiment registered as ``name``."""
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise UnknownNameError("experiment", name, _REGISTRY) from None
