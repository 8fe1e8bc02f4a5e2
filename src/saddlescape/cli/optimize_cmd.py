"""``saddlescape optimize``: run one optimizer on one problem and summarize the result."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

import torch
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ..errors import ConfigError, check_memory
from ..fileio import atomic_path, check_writable
from ..optim import names as optimizer_names
from ..optim import run
from ..optim.registry import get_class
from ..runner.config import parse_sets
from ._app import app, console, parse_vector, refuse_out_of_memory
from .problems_cmd import build_problem

#: float64 vectors of length d held besides the trajectory (iterate, gradient, optimizer
#: state, the problem's own data): a generous count for the memory estimate.
_WORK_VECTORS = 16


@app.command("optimize")
def optimize_command(
    problem: str = typer.Argument(..., help="A problem name (see `saddlescape problems`)."),
    optimizer: str = typer.Option(
        "pgd", "--optimizer", "-o", help=f"One of: {', '.join(optimizer_names())}."
    ),
    dim: int | None = typer.Option(None, "--dim", help="The problem's dimension parameter."),
    steps: int = typer.Option(1000, "--steps", help="Iterations to run (PGD may stop early)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the initial point and the noise."),
    lr: float | None = typer.Option(
        None, "--lr", help="Step size (default 1/ℓ from the problem's smoothness)."
    ),
    init: str | None = typer.Option(
        None, "--init", help="Start point x1,x2,... (default: the problem's sample_init(seed))."
    ),
    param: list[str] | None = typer.Option(
        None, "--param", "-p", help="Optimizer hyperparameter key=value, e.g. radius=0.01."
    ),
    set_: list[str] | None = typer.Option(
        None, "--set", help="Problem parameter key=value (repeatable)."
    ),
    out: Path | None = typer.Option(None, "--out", help="Write the trajectory (.csv or .npz)."),
) -> None:
    """Run one optimizer trajectory on PROBLEM and print a summary."""
    if optimizer not in optimizer_names():  # unknown names fail before any work
        raise ConfigError(
            f"unknown optimizer {optimizer!r}: --optimizer must be one of "
            f"{', '.join(optimizer_names())} (saddlescape's own optimizers; torch.optim "
            "ones such as Adam are not offered)"
        )
    get_class(optimizer)
    if steps < 0:
        raise ConfigError(f"--steps must be >= 0, got {steps}")
    if not 0 <= seed < 2**63:
        raise ConfigError(f"--seed must be in [0, 2**63), got {seed}")
    if out is not None:
        _check_out(out)
    if dim is not None and dim > 0:  # before building: the trajectory alone needs this
        _check_trajectory_memory(dim, steps)
    with refuse_out_of_memory(f"problem {problem!r} with these parameters", "reduce --dim"):
        prob = build_problem(problem, dim=dim, sets=set_ or ())
    _check_trajectory_memory(prob.dim, steps)
    x0 = None
    if init is not None:
        x0 = torch.tensor(parse_vector(init, "--init"), dtype=torch.float64)
        if x0.numel() != prob.dim:
            raise ConfigError(f"--init needs {prob.dim} numbers for {problem!r}, got {x0.numel()}")
    hyper = {k: _value(v) for k, v in parse_sets(param or (), "--param").items()}
    for key in ("lr", "seed"):
        if key in hyper:
            raise ConfigError(f"-p {key}=...: use --{key} instead")
    with Progress(
        TextColumn(f"[bold]{optimizer}[/] on {problem}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        # off the terminal the bar draws nothing but would leave an empty line behind
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task("steps", total=steps)
        traj = run(
            prob,
            optimizer,
            steps,
            x0=x0,
            seed=seed,
            lr=lr,
            callback=lambda k: progress.update(task, completed=k),
            **hyper,
        )
    console.print(summary_table(prob, traj))
    if out is not None:
        with atomic_path(out) as tmp:  # a crash or full disk leaves the previous file
            traj.save(tmp)
        console.print(f"trajectory written to {out}", highlight=False, soft_wrap=True)


def _check_out(out: Path) -> None:
    """Refuse a bad --out before the run, not after it."""
    if out.suffix not in (".csv", ".npz"):
        raise ConfigError(f"--out must end in .csv or .npz, got {str(out)!r}")
    try:
        parent_is_dir, is_dir = out.parent.is_dir(), out.is_dir()
    except OSError:  # a name too long: check_writable names it
        parent_is_dir, is_dir = True, False
    if not parent_is_dir:
        raise ConfigError(f"--out: directory {str(out.parent)!r} does not exist")
    if is_dir:
        raise ConfigError(f"--out {str(out)!r} is a folder; name a .csv or .npz file")
    check_writable(out, doing="write the trajectory to", hint="choose another --out")


def _check_trajectory_memory(dim: int, steps: int) -> None:
    check_memory(
        f"a trajectory of {steps:,} steps in dimension {dim:,}",
        8.0 * dim * (steps + 1 + _WORK_VECTORS),
        "reduce --dim or --steps",
    )


def nearest_in_orbit(problem: Any, x: torch.Tensor, point: torch.Tensor) -> torch.Tensor:
    """The copy of the listed critical ``point`` under f's symmetries nearest ``x``.

    Problems list one representative per symmetry orbit and ``problem.align(x, c)`` maps
    ``x`` to its image nearest ``c``; to show the minimum that ``x`` actually reached (e.g.
    with the signs of ``x`` on the octopus), the same symmetry is undone on ``c``. The
    candidates: ``align(c, x)`` (a symmetry that moves ``c`` towards ``x``), the pull-back
    of ``c`` through ``align``'s local linear map at ``x`` (sign flips, permutations), and
    ``c`` itself; the nearest one with ``f = f(c)`` wins."""
    x = x.detach().to(torch.float64)
    c = point.detach().to(torch.float64)
    candidates = [c]
    with contextlib.suppress(Exception):
        candidates.append(problem.align(c, x).detach().to(torch.float64))
    with contextlib.suppress(Exception):
        probe = x.clone().requires_grad_(True)
        image = problem.align(probe, c)
        if image.requires_grad:
            (pulled,) = torch.autograd.grad(image, probe, grad_outputs=c.to(image.dtype))
            candidates.append(pulled.detach().to(torch.float64))
    with torch.no_grad():
        f_c = float(problem.f(c))
        same = [
            y
            for y in candidates
            if y.shape == c.shape and abs(float(problem.f(y)) - f_c) <= 1e-9 * max(1.0, abs(f_c))
        ]
    return min(same or [c], key=lambda y: float(torch.linalg.vector_norm(y - x)))


def summary_table(problem: Any, traj: Any) -> Table:
    """Iterations, final f, ‖∇f‖, nearest known critical point, perturbations, cost."""
    table = Table(title=f"{traj.optimizer} on {traj.problem}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    table.add_row(
        "iterations", str(traj.iterations) + ("  (stop test: x̃)" if traj.converged else "")
    )
    table.add_row("gradient evaluations", str(traj.grad_evals))
    table.add_row("perturbations", str(traj.perturbations))
    table.add_row("final f", f"{traj.f:.10g}")
    if problem.f_min is not None and math.isfinite(problem.f_min):
        gap = traj.f - problem.f_min
        note = ""
        if abs(gap) <= 1e-6 * max(1.0, abs(problem.f_min)):
            note = "  (at the global minimum value)"
        table.add_row("f − f_min", f"{gap:.3g}{note}")
    table.add_row("‖∇f‖", f"{traj.grad_norm:.3g}")
    try:
        nearest, unlisted = traj.nearest(problem), "(none listed)"
    except ConfigError as exc:  # e.g. too large to list (octopus at dim > 9999)
        nearest, unlisted = None, f"(not listed: {exc})"
    if nearest is None:
        table.add_row("nearest critical point", unlisted)
    else:
        cp, dist = nearest
        shown = nearest_in_orbit(problem, traj.x, cp.x)
        xs = ", ".join(f"{v:.4g}" for v in shown.tolist()[:6]) + (
            ", …" if shown.numel() > 6 else ""
        )
        table.add_row("nearest critical point", f"{cp.kind} at ({xs}), f = {cp.value:.6g}")
        table.add_row(
            "distance to it", f"{dist:.3g}  (of the {len(problem.critical_points)} listed)"
        )
    x = traj.x.tolist()
    shown = ", ".join(f"{v:.6g}" for v in x[:6]) + (", …" if len(x) > 6 else "")
    table.add_row("final x", f"({shown})")
    table.add_row(
        "hyperparameters",
        ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in traj.hyperparams.items()
        ),
    )
    table.add_row("seconds", f"{traj.seconds:.3f}")
    return table


def _value(text: str) -> Any:
    low = text.lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text
