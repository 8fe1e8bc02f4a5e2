"""Small helpers shared by the experiments on networks."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError

__all__ = ["MAX_WIDTH", "check_problem", "mlp_widths"]

#: Widest hidden layer an experiment config accepts (a 10⁴ × 10⁴ layer is 800 MB in float64).
MAX_WIDTH = 10_000


@functools.lru_cache(maxsize=64)
def _default_problem(name: str) -> Any:
    from .. import problems

    return problems.get(name)


def check_problem(
    name: str, experiment: str, needs: Callable[[Any], str | None] | None = None
) -> None:
    """Config validation of a ``problem`` field: a registered name (UnknownNameError lists
    them) and, with ``needs``, one the experiment can use: ``needs(problem)`` (the problem
    with default parameters) returns what is missing, or None.

    >>> check_problem("lee-2d", "demo")
    >>> check_problem("nosuch", "demo")
    Traceback (most recent call last):
    ...
    saddlescape.errors.UnknownNameError: unknown problem 'nosuch' ...
    """
    from .. import problems

    if name not in problems.names():
        problems.get(name)  # raises UnknownNameError with the known names
    if needs is not None:
        missing = needs(_default_problem(name))
        if missing:
            raise ConfigError(f"problem {name!r} cannot be used by {experiment}: {missing}")


def mlp_widths(hidden: str, example: str) -> tuple[int, ...]:
    """Layer widths ``(64, *hidden, 10)`` of an MLP on the 8×8 digits from ``hidden`` =
    ``"w1,w2,..."``; a ConfigError citing ``example`` (e.g. ``"'32' or '64,64'"``) if bad.

    >>> mlp_widths("32, 16", "'32'")
    (64, 32, 16, 10)
    """
    parts = [p.strip() for p in hidden.split(",")]
    if not all(p.isdigit() for p in parts):  # no empty entries, signs or separators
        raise ConfigError(f"hidden must be widths like {example}, got {hidden!r}")
    widths = tuple(int(p) for p in parts)
    if min(widths) < 1 or max(widths) > MAX_WIDTH:
        raise ConfigError(
            f"hidden must be widths in [1, {MAX_WIDTH:,}] like {example}, got {hidden!r}"
        )
    return (64, *widths, 10)
