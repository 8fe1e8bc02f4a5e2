"""``saddlescape landscape``: a 1-D or 2-D slice of a loss, drawn and optionally saved.

``landscape PROBLEM [--at x1,x2,… | --at-critical N] [--directions eigen|random|pca]
[--span S | --span LO,HI] [--resolution N] [--dims 2|1] --out fig.png [--save slice.npz]``
slices a zoo problem at a point along Hessian eigenvectors (λ_max, λ_min), filter-normalized
random directions or the principal components of a trajectory (``--trajectory FILE``: the
``.npz`` that ``saddlescape optimize --out`` writes, or a ``(T, n)`` ``.npy``), with the
problem's critical points and the trajectory drawn on it. ``--model FILE.py[:FUNCTION]``
slices a user's model instead (the contract of ``certify --model``); the centre is then the
model's parameters and ``--mode`` chooses eval or train evaluation.

Without ``--at``/``--at-critical`` the centre is the problem's first listed critical point,
the trajectory's last point for ``--directions pca``, or the problem's seeded initial point
when it lists none (e.g. ``mlp-digits``).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
import typer
from rich.table import Table

from ..errors import ConfigError
from ..plotting import save_figure
from ._app import app, console, format_vector, parse_vector
from .curvature_cmd import (
    _AT,
    _AT_CRITICAL,
    _DIM,
    _MODE,
    _MODEL,
    _MODEL_ARG,
    _PROBLEM,
    _PROGRESS,
    _SET,
    _show_progress,
    _source,
    resolve_point,
)

DIRECTION_KINDS = ("eigen", "random", "pca")


def _parse_span(text: str) -> float | tuple[float, float]:
    values = parse_vector(text, "--span")
    if len(values) == 1:
        return values[0]
    if len(values) == 2:
        return values[0], values[1]
    raise ConfigError(f"--span must be S (for -S..S) or LO,HI, got {text!r}")


def _check_out(path: Path, option: str, suffixes: tuple[str, ...]) -> Path:
    if path.suffix.lower() not in suffixes:
        raise ConfigError(f"{option} must end in {', '.join(suffixes)}, got {str(path)!r}")
    if path.parent != Path() and not path.parent.is_dir():
        raise ConfigError(f"{option}: directory {str(path.parent)!r} does not exist")
    if path.is_dir():  # refused before the slice is computed, not after
        raise ConfigError(f"{option}: {str(path)!r} is a folder, not a file")
    return path


def load_trajectory(path: Path) -> torch.Tensor:
    """Iterates ``(T, n)`` from a ``saddlescape optimize --out`` ``.npz`` (its ``x``) or a
    ``.npy`` array."""
    if not path.is_file():
        raise ConfigError(f"--trajectory: no file {str(path)!r}")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if "x" not in z.files:
                    raise ConfigError(
                        f"--trajectory: {str(path)!r} has no array 'x' (the iterates that "
                        "`saddlescape optimize --out FILE.npz` writes)"
                    )
                xs = z["x"]
        elif path.suffix == ".npy":
            xs = np.load(path, allow_pickle=False)
        else:
            raise ConfigError(f"--trajectory must be a .npz or .npy file, got {str(path)!r}")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--trajectory: cannot read {str(path)!r} ({exc})") from None
    if xs.ndim != 2 or not np.issubdtype(xs.dtype, np.floating):
        raise ConfigError(f"--trajectory: expected a (T, n) float array, got {xs.shape}")
    return torch.from_numpy(np.asarray(xs, dtype=np.float64))


@app.command("landscape")
def landscape_command(
    problem_name: str | None = _PROBLEM,
    at: str | None = _AT,
    at_critical: int | None = _AT_CRITICAL,
    dim: int | None = _DIM,
    set_: list[str] | None = _SET,
    model: str | None = _MODEL,
    model_arg: list[str] | None = _MODEL_ARG,
    mode: str | None = _MODE,
    directions: str = typer.Option(
        "eigen",
        "--directions",
        help="eigen: Hessian eigenvectors of λ_max and λ_min (Lanczos); random: Gaussian, "
        "filter-normalized for networks (Li et al. 2018); pca: principal components of "
        "--trajectory.",
    ),
    span: str = typer.Option(
        "1", "--span", help="Grid extent in units of the directions: S for -S..S, or LO,HI."
    ),
    resolution: int = typer.Option(41, "--resolution", help="Grid points per axis (2..2001)."),
    dims: int = typer.Option(
        2, "--dims", help="2 for a plane, 1 for a line (the first direction)."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="The picture (.png, .pdf, .svg). Default: landscape-PROBLEM.png "
        "(landscape-FILE.png for --model).",
    ),
    plot: str = typer.Option(
        "both", "--plot", help="For 2-D: contour, surface, or both side by side."
    ),
    log: bool = typer.Option(False, "--log", help="Colour by log10 of the loss above its minimum."),
    save: Path | None = typer.Option(
        None, "--save", help="Also save the slice (grid, losses, directions, cost) as .npz."
    ),
    trajectory: Path | None = typer.Option(
        None,
        "--trajectory",
        help="Iterates to draw (and, for --directions pca, to take the directions from): "
        "the .npz of `saddlescape optimize --out`, or a (T, n) .npy.",
    ),
    normalization: str | None = typer.Option(
        None,
        "--normalization",
        help="Random directions: filter (default for networks), layer, unit (default for "
        "other problems) or none.",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of random directions and of Lanczos."),
    progress: bool | None = _PROGRESS,
) -> None:
    """A loss-landscape slice through a point, drawn with critical points and trajectories."""
    from ..landscape import (
        PLOT_KINDS,
        LossTarget,
        eigen_directions,
        pca_directions,
        plot_landscape,
        random_directions,
        slice_1d,
        slice_2d,
    )
    from ..landscape.slices import check_resolution, parse_span

    # ---- every option checked before any work
    if directions not in DIRECTION_KINDS:
        raise ConfigError(
            f"unknown direction kind {directions!r}: --directions must be one of "
            + ", ".join(DIRECTION_KINDS)
        )
    if dims not in (1, 2):
        raise ConfigError(f"--dims must be 1 or 2, got {dims}")
    if plot not in PLOT_KINDS:
        raise ConfigError(f"--plot must be one of {', '.join(PLOT_KINDS)}, got {plot!r}")
    lo_hi = parse_span(_parse_span(span), "--span")
    check_resolution(resolution, dims)
    if save is not None:
        _check_out(save, "--save", (".npz",))
    if directions == "pca" and trajectory is None:
        raise ConfigError("--directions pca needs --trajectory FILE (the iterates)")
    if normalization is not None and directions != "random":
        raise ConfigError("--normalization applies to --directions random only")
    flags = {"--dim": dim, "--set": set_, "--at": at, "--at-critical": at_critical}
    problem, user = _source(problem_name, model, model_arg, mode, flags)
    name = problem.name if problem is not None else user.stem
    out = _check_out(
        Path(out) if out is not None else Path(f"landscape-{name}.png"),
        "--out",
        (".png", ".pdf", ".svg"),
    )
    xs = load_trajectory(trajectory) if trajectory is not None else None

    # ---- the target and its centre
    if problem is not None:
        target = LossTarget.from_problem(problem)
        if at is not None or at_critical is not None or (problem.critical_points and xs is None):
            center, where = resolve_point(problem, at, at_critical)
        elif xs is not None and directions == "pca":
            center, where = xs[-1], "the trajectory's last point"
        elif problem.critical_points:
            center, where = resolve_point(problem, None, None)
        else:
            center, where = problem.sample_init(), "the problem's initial point"
        title = f"{problem.name} at {where}"
        heading = problem.describe()
    else:
        options = {k: v for k, v in user.options.items() if k != "mode"}
        chosen = mode or user.options.get("mode", "eval")
        with user.running():
            target = LossTarget.from_model(
                user.model, user.loss_fn, user.data, mode=chosen, **options
            )
        center, where = target.center, "the model's parameters"
        title = f"{user.stem} ({chosen} mode)"
        heading = f"{user.spec} — {target.description}"
    if xs is not None and xs.shape[1] != target.dim:
        raise ConfigError(
            f"--trajectory has points of dimension {xs.shape[1]}, the target {target.dim}"
        )

    # ---- directions, slice, picture
    show = _show_progress(progress)
    with contextlib.nullcontext() if user is None else user.running():
        if directions == "eigen":
            dirs = eigen_directions(target, center, seed=seed, progress=show)
        elif directions == "random":
            norm = normalization or ("filter" if target.shapes is not None else "unit")
            dirs = random_directions(
                center, dims, seed=seed, normalization=norm, shapes=target.shapes
            )
        else:
            dirs = pca_directions(xs, dims, center=center)  # type: ignore[arg-type]
        run = slice_2d if dims == 2 else slice_1d
        result = run(
            target,
            dirs,
            center=center,
            span=lo_hi,
            resolution=resolution,
            seed=seed,
            trajectory=xs,
            progress=show,
        )
    fig = plot_landscape(result, plot, title=title, log=log)
    save_figure(fig, out, dpi=130, bbox_inches="tight")
    if save is not None:
        result.save(save)
    console.print(_table(heading, where, center, result, out, save))


def _table(
    heading: str, where: str, center: torch.Tensor, s: Any, out: Path, save: Path | None
) -> Table:
    t = Table(title=f"landscape: {heading}", show_header=False, title_justify="left")
    t.add_column("quantity", style="bold")
    t.add_column("value", overflow="fold")
    t.add_row("centre", f"{format_vector(center)}  — {where}")
    t.add_row("f at centre", f"{s.center_loss:.10g}")
    for i, label in enumerate(s.directions.labels):
        t.add_row(f"direction {i + 1}", f"{s.directions.kind}: {label}")
    axes = [s.alphas] if s.betas is None else [s.alphas, s.betas]
    grid = " × ".join(f"[{float(a[0]):g}, {float(a[-1]):g}] ({a.numel()})" for a in axes)
    t.add_row("grid", grid)
    finite = s.losses[torch.isfinite(s.losses)]
    if finite.numel():
        t.add_row("loss range", f"{float(finite.min()):.6g} … {float(finite.max()):.6g}")
    bad = s.losses.numel() - finite.numel()
    if bad:  # the range and the minimum leave these out: say so, not a flat-looking range
        t.add_row(
            "not finite",
            f"[red]{bad} of {s.losses.numel()} grid points[/] (nan or inf; left out of the "
            "loss range and the minimum)",
        )
    t.add_row("lowest at", ", ".join(f"{v:.4g}" for v in s.minimum))
    if s.path_offplane is not None:
        t.add_row("trajectory off the plane", f"at most {float(s.path_offplane.max()):.3g}")
    t.add_row("evaluations", str(s.evaluations))
    if s.data_passes:
        t.add_row("passes over the data", str(s.data_passes))
    t.add_row("HVPs", str(s.hvps))
    t.add_row("seconds", f"{s.seconds:.3g}")
    t.add_row("plot", str(out))
    if save is not None:
        t.add_row("saved", str(save))
    return t
