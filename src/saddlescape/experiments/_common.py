"""Small helpers shared by the experiments on networks."""

from __future__ import annotations

from ..errors import ConfigError

__all__ = ["mlp_widths"]


def mlp_widths(hidden: str, example: str) -> tuple[int, ...]:
    """Layer widths ``(64, *hidden, 10)`` of an MLP on the 8×8 digits from ``hidden`` =
    ``"w1,w2,..."``; a ConfigError citing ``example`` (e.g. ``"'32' or '64,64'"``) if bad.

    >>> mlp_widths("32, 16", "'32'")
    (64, 32, 16, 10)
    """
    try:
        widths = tuple(int(p) for p in hidden.replace(" ", "").split(",") if p)
    except ValueError:
        raise ConfigError(f"hidden must be widths like {example}, got {hidden!r}") from None
    if not widths or min(widths) < 1:
        raise ConfigError(f"hidden must be positive widths like {example}, got {hidden!r}")
    return (64, *widths, 10)
