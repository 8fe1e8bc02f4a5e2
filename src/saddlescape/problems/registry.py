"""Problem registry: ``get(name, **params)`` and ``names()``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TypeVar

from ..errors import ConfigError, UnknownNameError
from .base import Problem

_REGISTRY: dict[str, type[Problem] | Callable[..., Problem]] = {}

T = TypeVar("T")


def register(name: str) -> Callable[[T], T]:
    """Class (or factory) decorator adding a problem to the registry under ``name``."""

    def deco(obj: T) -> T:
        if name in _REGISTRY:
            raise ValueError(f"problem {name!r} registered twice")
        _REGISTRY[name] = obj  # type: ignore[assignment]
        return obj

    return deco


def names() -> list[str]:
    """Registered problem names, sorted."""
    return sorted(_REGISTRY)


def parameters(name: str) -> dict[str, object]:
    """The parameters ``get(name, ...)`` accepts, with their defaults."""
    factory = _lookup(name)
    sig = inspect.signature(factory)
    return {
        p.name: (None if p.default is inspect.Parameter.empty else p.default)
        for p in sig.parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def dimension_parameter(name: str) -> str | None:
    """The parameter of ``name`` that sets its dimension, or ``None`` if it is fixed.

    A problem class names it in ``dim_parameter``; otherwise a parameter called ``dim``
    is used. (``quartic-saddle``'s is ``n``: its dimension is ``n + 1``.)

    >>> dimension_parameter("octopus"), dimension_parameter("lee-2d")
    ('dim', None)
    """
    declared = getattr(_lookup(name), "dim_parameter", None)
    if declared is not None:
        return declared
    return "dim" if "dim" in parameters(name) else None


def get(name: str, **params: object) -> Problem:
    """Build the problem registered as ``name`` with the given parameters.

    >>> from saddlescape import problems
    >>> p = problems.get("lee-2d")
    >>> p.dim, [c.kind for c in p.critical_points]
    (2, ['saddle', 'minimum', 'minimum'])
    """
    factory = _lookup(name)
    accepted = parameters(name)
    for key in params:
        if key not in accepted:
            raise ConfigError(
                f"problem {name!r} has no parameter {key!r} "
                f"(parameters: {', '.join(accepted) or 'none'})"
            )
    try:
        return factory(**params)
    except ConfigError as exc:
        if repr(name) in str(exc):
            raise
        raise ConfigError(f"problem {name!r}: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"problem {name!r}: {exc}") from exc


def _lookup(name: str) -> type[Problem] | Callable[..., Problem]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNameError("problem", name, _REGISTRY) from None
