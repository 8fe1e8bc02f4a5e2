"""Command-line interface: a thin typer app over the library.

Each module of this package registers its commands on :data:`app`. Errors a user can
cause print one line and exit with status 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import sys

from ..errors import SaddlescapeError
from ._app import app, debug_enabled, err_console

# Command modules register themselves on import.
from . import (  # noqa: F401  isort: skip
    curvature_cmd,
    experiments_cmd,
    optimize_cmd,
    problems_cmd,
    runs_cmd,
)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``saddlescape`` console script."""
    try:
        result = app(args=argv, standalone_mode=False)
    except SaddlescapeError as exc:
        if debug_enabled():
            raise
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/]")
        return 130
    except SystemExit as exc:  # typer/click exit codes
        return int(exc.code or 0)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            return exc.exit_code
        if isinstance(exc, click.exceptions.Abort):
            return 1
        raise
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
