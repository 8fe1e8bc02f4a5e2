"""The typer application and the console every command prints to."""

from __future__ import annotations

import typer
from rich.console import Console

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
