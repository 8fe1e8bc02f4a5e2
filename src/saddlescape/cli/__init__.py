"""Command-line interface: a thin typer app over the library.

Each module of this package registers its commands on :data:`app`. Errors a user can
cause (bad input, a file that cannot be written, a store that cannot be read) print one
line and exit with status 2; ``--debug`` also shows the traceback, with the same status.
"""

from __future__ import annotations

import sys
import traceback

from rich.markup import escape

from ..errors import OutputError, SaddlescapeError
from ._app import app, debug_enabled, err_console, reflow_help

# Command modules register themselves on import.
from . import (  # noqa: F401  isort: skip
    curvature_cmd,
    experiments_cmd,
    landscape_cmd,
    optimize_cmd,
    problems_cmd,
    runs_cmd,
)


def _error(message: str) -> None:
    """One line on stderr; the message is escaped so that text like ``[ray]`` or a TOML
    table name ``[grid]`` is printed as written, not read as rich markup."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


reflow_help(app)


def _fail(message: str, status: int = 2) -> int:
    if debug_enabled():
        traceback.print_exc()
    _error(message)
    return status


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``saddlescape`` console script."""
    try:
        result = app(args=argv, standalone_mode=False)
    except SaddlescapeError as exc:
        return _fail(str(exc))
    except OSError as exc:  # a file-system error no command turned into its own message
        return _fail(str(OutputError.from_os_error(exc, doing="use")))
    except MemoryError:
        return _fail("out of memory: reduce the sizes asked for (--dim, --steps, --seeds)")
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/]")
        return 130
    except SystemExit as exc:  # typer/click exit codes
        return int(exc.code or 0)
    except Exception as exc:
        # Usage errors from click (typer may vendor its own copy of click, so match by
        # class name rather than by importing click's exception classes).
        kinds = {cls.__name__ for cls in type(exc).__mro__}
        if "ClickException" in kinds:
            message = exc.format_message()  # type: ignore[attr-defined]
            context = getattr(exc, "ctx", None)
            if context is not None:  # a usage error: say where the help is, on the same line
                message += f" (see '{context.command_path} --help')"
            _error(message)
            return int(exc.exit_code)  # type: ignore[attr-defined]
        if "Abort" in kinds:
            return 1
        raise
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
