"""The typer application and the console every command prints to."""

from __future__ import annotations

import contextlib
import inspect
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

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


def _print_version(value: bool) -> None:
    if value:
        from .. import __version__

        console.print(f"saddlescape {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(
        False, "--debug", help="Show full tracebacks on errors (the exit status stays the same)."
    ),
    version: bool = typer.Option(
        False,
        "--version",
        help="Print the version and exit.",
        is_eager=True,
        callback=_print_version,
    ),
) -> None:
    _state["debug"] = debug


def debug_enabled() -> bool:
    return _state["debug"]


def reflow_help(typer_app: typer.Typer) -> None:
    """Give every command without an explicit ``help`` its docstring with each paragraph
    on one line, so the help wraps evenly at any width (typer keeps the docstring's own
    line breaks, which a narrow terminal turns into ragged lines)."""
    for info in typer_app.registered_commands:
        if info.help is None and info.callback is not None and info.callback.__doc__:
            text = inspect.cleandoc(info.callback.__doc__)
            info.help = "\n\n".join(" ".join(p.split()) for p in text.split("\n\n"))


#: A number as written on the command line: no digit separators, no empty entries.
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|infinity|nan)", re.I)


def parse_vector(text: str, option: str) -> list[float]:
    """Parse ``"1,2.5,-3"`` into floats, or raise a ConfigError naming ``option``: an
    empty entry (``1,,2``), a digit separator (``1_0``) or anything else that is not a
    plain number is refused, not skipped or reinterpreted.

    >>> parse_vector(" 1, 2.5 ,-3e0", "--at")
    [1.0, 2.5, -3.0]
    """
    from ..errors import ConfigError

    if not text.strip():
        raise ConfigError(f"{option} must not be empty")
    values = []
    for i, token in enumerate(text.split(","), start=1):
        token = token.strip()
        if not token:
            raise ConfigError(f"{option}: entry {i} of {text!r} is empty")
        if not _NUMBER.fullmatch(token):
            raise ConfigError(
                f"{option} must be comma-separated numbers like 1.0,-2; entry {i} of "
                f"{text!r} is {token!r}"
            )
        values.append(float(token))
    return values


@contextlib.contextmanager
def refuse_out_of_memory(what: str, hint: str) -> Iterator[None]:
    """Turn an allocation failure inside the block (``MemoryError``, torch's "can't
    allocate memory") into one ConfigError line naming ``what`` and ``hint``."""
    from ..errors import ConfigError

    try:
        yield
    except (MemoryError, RuntimeError) as exc:
        if not isinstance(exc, MemoryError) and "allocate" not in str(exc):
            raise
        raise ConfigError(f"{what} is too large: out of memory; {hint}") from None


def output_folder(text: str, option: str = "--out") -> Path:
    """``text`` as a folder path, refusing an empty one (``--out ''`` would otherwise mean
    the current folder)."""
    from ..errors import ConfigError

    if not text.strip():
        raise ConfigError(f"{option} must name a folder, got {text!r}")
    return Path(text)


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


@dataclass(frozen=True)
class Column:
    """A column of :func:`fitted_tables`: cells of a ``wrap`` column may wrap between
    words, all others stay on one line."""

    header: str
    justify: str = "left"
    style: str | None = None
    wrap: bool = False


def _plain(cell: str) -> str:
    return Text.from_markup(cell).plain


def _min_width(column: Column, cells: Sequence[str]) -> int:
    texts = [column.header, *(_plain(c) for c in cells)]
    if column.wrap:
        return max(cell_len(word) for t in texts for word in (t.split() or [""]))
    return max(cell_len(line) for t in texts for line in (t.splitlines() or [""]))


def fitted_tables(
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    *,
    keep: int = 1,
    width: int | None = None,
    **table_options: Any,
) -> list[Table]:
    """Rich tables that show every cell whole within ``width`` (default: the console's):
    no cell is cut or broken inside a word. When the columns do not fit side by side they
    are spread over several tables, each repeating the first ``keep`` columns (the way
    pandas prints a wide frame). Print them with :func:`print_tables`, which puts the
    title above them (a table's own title would wrap to the table's width)."""
    width = width or console.width
    mins = [_min_width(c, [r[i] for r in rows]) for i, c in enumerate(columns)]

    def build(indices: Sequence[int]) -> Table:
        # columns apart by two spaces (the box's blank divider and one of padding)
        options = {"box": box.SIMPLE_HEAD, "show_edge": False, "pad_edge": False}
        table = Table(**{**options, "padding": (0, 1, 0, 0), **table_options})
        for i in indices:
            c = columns[i]
            table.add_column(
                c.header, justify=c.justify, style=c.style, no_wrap=not c.wrap, min_width=mins[i]
            )
        for r in rows:
            table.add_row(*(r[i] for i in indices))
        return table

    def fits(indices: Sequence[int]) -> bool:
        options = console.options.update(max_width=10**6)
        return console.measure(build(indices), options=options).minimum <= width

    fixed = list(range(min(keep, len(columns))))
    chunks: list[list[int]] = []
    current = list(fixed)
    for i in range(len(fixed), len(columns)):
        if len(current) > len(fixed) and not fits([*current, i]):
            chunks.append(current)
            current = [*fixed]
        current.append(i)
    chunks.append(current)
    return [build(chunk) for chunk in chunks]


def print_tables(title: str, tables: Sequence[Table]) -> None:
    """``title`` (rich markup; wrapped at the terminal's width), then the tables."""
    console.print(title, highlight=False)
    for n, table in enumerate(tables):
        if n:
            console.print()
        console.print(table)
