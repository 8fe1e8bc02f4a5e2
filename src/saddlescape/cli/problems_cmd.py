"""``saddlescape problems``: the problem zoo, and one problem's critical points."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import ConfigError
from ..problems import KINDS, Problem, get, names, parameters
from ..problems.registry import dimension_parameter
from ..runner.config import parse_sets
from ._app import (
    Column,
    app,
    console,
    fitted_tables,
    format_vector,
    print_tables,
    refuse_out_of_memory,
)

#: Dense Hessians (for the eigenvalue range of each critical point) up to this dimension.
DENSE_HESSIAN_MAX_DIM = 200


@app.command("problems")
def problems_command(
    name: str | None = typer.Argument(None, help="A problem: show its critical points."),
    dim: int | None = typer.Option(
        None, "--dim", help="Set the problem's dimension parameter (see the zoo table)."
    ),
    set_: list[str] | None = typer.Option(
        None, "--set", help="Set a problem parameter: key=value (repeatable)."
    ),
) -> None:
    """List the problem zoo, or show NAME's critical points and Hessian spectra."""
    if name is None:
        if dim is not None or set_:
            raise ConfigError("--dim and --set need a problem name: saddlescape problems NAME")
        print_tables("[bold]saddlescape problems[/]", zoo_table())
        console.print(_ZOO_NOTE)
        return
    with refuse_out_of_memory(
        f"problem {name!r} with these parameters", "reduce --dim or --set sizes"
    ):
        problem = build_problem(name, dim=dim, sets=set_ or ())
        summary = _summary(problem)  # lists the critical points
    console.print(summary)
    if problem.critical_points:
        tables, note = critical_point_table(problem)
        print_tables(f"critical points of {escape(problem.describe())}", tables)
        console.print(f"[dim]{note}[/]")
    else:
        console.print(f"{problem.name} lists no critical points (its docstring says why).")


def build_problem(name: str, *, dim: int | None = None, sets: Any = ()) -> Problem:
    """``get(name, **params)`` from ``--dim`` and ``--set key=value`` strings."""
    accepted = parameters(name)  # raises UnknownNameError for a bad name
    params: dict[str, Any] = {
        key: _convert(name, key, text, accepted) for key, text in parse_sets(sets).items()
    }
    if dim is not None:
        key = dimension_parameter(name)
        if key is None:
            raise ConfigError(f"problem {name!r} has a fixed dimension; --dim does not apply")
        if key in params:
            raise ConfigError(f"give {name!r}'s dimension once: --dim or --set {key}=..., not both")
        params[key] = dim
    return get(name, **params)


def _convert(name: str, key: str, text: str, accepted: dict[str, object]) -> Any:
    if key not in accepted:
        raise ConfigError(
            f"problem {name!r} has no parameter {key!r} (parameters: {', '.join(accepted)})"
        )
    default = accepted[key]
    try:
        if isinstance(default, bool):
            low = text.lower()
            if low not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return low in ("true", "1", "yes")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
    except ValueError:
        kind = type(default).__name__
        raise ConfigError(f"--set {key}: expected {kind}, got {text!r}") from None
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return text


def zoo_table() -> list[Table]:
    """One row per registered problem, built with its default parameters: tables that show
    every value whole at the terminal's width (names are never broken; parameters wrap
    between entries)."""
    columns = [
        Column("name and parameters", wrap=True),
        Column("dim"),
        Column("ℓ", justify="right"),
        Column("ρ", justify="right"),
        Column("f_min", justify="right"),
        Column("min/sad/\nmax/deg", justify="center"),
    ]
    rows = []
    for problem_name in names():
        dim_key = dimension_parameter(problem_name)
        try:
            p = get(problem_name)
        except Exception as exc:  # a broken problem should not hide the others
            rows.append([f"[bold]{problem_name}[/]\n[red]{escape(str(exc))}[/]", "?", *[""] * 4])
            continue
        params = ", ".join(f"{k}={_fmt_param(v)}" for k, v in p.params.items())
        counts = Counter(c.kind for c in p.critical_points)
        rows.append(
            [
                f"[bold]{problem_name}[/]" + (f"\n[dim]{escape(params)}[/]" if params else ""),
                f"{p.dim} ← {dim_key}" if dim_key else str(p.dim),
                _fmt(p.smoothness),
                _fmt(p.hessian_lipschitz),
                _fmt(p.f_min),
                "/".join(str(counts[k]) for k in KINDS) if counts else "—",
            ]
        )
    return fitted_tables(columns, rows, show_lines=False)


_ZOO_NOTE = (
    "[dim]dim: default dimension (← the parameter --dim sets); min/sad/max/deg: known "
    "critical points by kind[/]"
)


def critical_point_table(problem: Problem) -> tuple[list[Table], str]:
    """Index, kind, value, coordinates and Hessian eigenvalue range of each critical point:
    tables that fit the terminal (coordinates wrap between entries), and a note on where
    the eigenvalues come from."""
    columns = [
        Column("#", justify="right"),
        Column("kind"),
        Column("f", justify="right"),
        Column("x", wrap=True),
        Column("λ_min", justify="right"),
        Column("λ_max", justify="right"),
    ]
    dense = problem.dim <= DENSE_HESSIAN_MAX_DIM
    closed_form = getattr(problem, "hessian_spectrum", None)
    rows = []
    for i, point in enumerate(problem.critical_points):
        if dense:
            ev = _eigvalsh(problem.hessian(point.x))
            lo, hi = _fmt(float(ev[0])), _fmt(float(ev[-1]))
        elif closed_form is not None:
            ev = closed_form(point)
            lo, hi = _fmt(float(ev[0])), _fmt(float(ev[-1]))
        else:
            lo = hi = "skipped"
        x = format_vector(point.x, head=3, digits=6)
        rows.append([str(i), point.kind, _fmt(point.value), x, lo, hi])
    if dense:
        note = "λ: eigenvalues of the dense Hessian"
    elif closed_form is not None:
        note = "λ: closed-form Hessian eigenvalues"
    else:
        note = f"λ: skipped (dim > {DENSE_HESSIAN_MAX_DIM}: no dense Hessian)"
    return fitted_tables(columns, rows), note


def _summary(p: Problem) -> str:
    return (
        f"[bold]{p.name}[/]  dim={p.dim}  ℓ={_fmt(p.smoothness)}  "
        f"ρ={_fmt(p.hessian_lipschitz)}  f_min={_fmt(p.f_min)}  ({_count_kinds(p)})"
    )


def _eigvalsh(h: Any) -> Any:
    import torch

    return torch.linalg.eigvalsh(h.to(torch.float64))


def _count_kinds(p: Problem) -> str:
    counts = Counter(c.kind for c in p.critical_points)
    return ", ".join(f"{counts[k]} {k}" for k in KINDS if counts[k]) or "—"


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if math.isinf(value):
        return "-∞" if value < 0 else "∞"
    return f"{value:.6g}"


def _fmt_param(value: object) -> str:
    return _fmt(value) if isinstance(value, float) else str(value)
