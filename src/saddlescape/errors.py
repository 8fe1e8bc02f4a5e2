"""The exceptions saddlescape raises.

Every error a user can provoke with bad input is a :class:`SaddlescapeError`, so the CLI
can print it as one clear line. The subclasses also derive from the built-in exception a
Python user would expect (``ValueError`` for bad values, ``KeyError`` for unknown names),
so ``except ValueError`` keeps working.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SaddlescapeError(Exception):
    """Base class of every error raised on purpose by saddlescape."""


class ConfigError(SaddlescapeError, ValueError):
    """A bad parameter, configuration key or value. The message names it."""


class UnknownNameError(SaddlescapeError, KeyError):
    """A name (problem, optimizer, experiment, executor) that is not registered."""

    def __init__(self, what: str, name: str, choices: Iterable[str]):
        self.what, self.name, self.choices = what, name, sorted(choices)
        close = difflib.get_close_matches(name, self.choices, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        known = ", ".join(self.choices)
        super().__init__(f"unknown {what} {name!r}{hint} (known: {known})")

    def __str__(self) -> str:  # KeyError would quote the whole message
        return self.args[0]


class DivergenceError(SaddlescapeError, FloatingPointError):
    """A loss, gradient or Hessian-vector product became non-finite."""


class CurvatureError(SaddlescapeError, ValueError):
    """A curvature computation was asked something it cannot answer (non-scalar loss,
    parameters without grad, empty data)."""


class StoreError(SaddlescapeError):
    """The results store cannot be opened or written."""


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float or raise :class:`ConfigError` naming ``name``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if v != v or v in (float("inf"), float("-inf")):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    if v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be {bound}, got {value!r}")
    return v


def check_int(name: str, value: int, *, minimum: int = 0) -> int:
    """Return ``value`` as an int ``>= minimum`` or raise :class:`ConfigError` naming it."""
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if not isinstance(value, int):
        try:
            if float(value) != int(value):
                raise ValueError
            value = int(value)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"{name} must be an integer, got {value!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)
