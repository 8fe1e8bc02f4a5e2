"""The typer application and the console every command prints to."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(
    name="saddlescape",
    help="Executable theory of non-convex optimization: problems, saddle-escaping "
    "optimizers, curvature certificates and reproducible experiments.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

_state = {"debug": False}


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    _state["debug"] = debug


def debug_enabled() -> bool:
    return _state["debug"]


def parse_vector(text: str, option: str) -> list[float]:
    """Parse ``"1,2.5,-3"`` into floats, or raise a ConfigError naming ``option``."""
    from ..errors import ConfigError

    try:
        values = [float(t) for t in text.replace(" ", "").split(",") if t != ""]
    except ValueError:
        raise ConfigError(
            f"{option} must be comma-separated numbers like 1.0,-2, got {text!r}"
        ) from None
    if not values:
        raise ConfigError(f"{option} must not be empty")
    return values


def format_vector(x: Any, head: int = 4, tail: int = 2, digits: int = 4) -> str:
    """``(a, b, c, …, y, z)  [d=n]`` for vectors longer than ``head + tail + 1`` entries,
    each shown with ``digits`` significant digits; escaped for rich markup."""
    flat = x.reshape(-1)
    n = flat.numel()
    if n <= head + tail + 1:
        return "(" + ", ".join(f"{float(v):.{digits}g}" for v in flat) + ")"
    parts = [f"{float(v):.{digits}g}" for v in flat[:head]] + ["…"]
    parts += [f"{float(v):.{digits}g}" for v in flat[n - tail :]]
    return escape("(" + ", ".join(parts) + f")  [d={n}]")
