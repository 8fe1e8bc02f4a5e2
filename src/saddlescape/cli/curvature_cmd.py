"""``saddlescape certify`` and ``saddlescape spectrum``: curvature at a point of a problem.

- ``certify PROBLEM [--at x1,x2,… | --at-critical N]``: a second-order certificate
  (:func:`saddlescape.curvature.certify`): ‖∇f‖, λ_min, λ_max, the kind ("undecided" when
  the ``--max-hvps`` budget ran out first), the cost and a negative-curvature direction.
- ``spectrum PROBLEM [--at … | --at-critical N] [--out plot.png]``: the Hessian's spectral
  density by stochastic Lanczos quadrature, drawn with λ_min and λ_max marked.

Without ``--at``/``--at-critical`` both use the problem's first listed critical point.

Both also take a user's own model instead of a problem: ``--model FILE.py[:FUNCTION]``, where
the function (default ``make``) returns ``(model, loss_fn, data)`` or a dict (see
:mod:`saddlescape.cli._user_model`); the point is the model's current parameters and
``--mode eval|train`` chooses how BatchNorm and dropout are evaluated.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

import torch
import typer
from rich.table import Table

from ..errors import ConfigError, check_count, check_memory
from ..plotting import save_figure
from ..problems import Problem
from ._app import app, console, format_vector, parse_vector, refuse_out_of_memory
from .problems_cmd import build_problem

_AT = typer.Option(None, "--at", help="The point, comma-separated: x1,x2,...")
_AT_CRITICAL = typer.Option(
    None,
    "--at-critical",
    help="Index of one of the problem's listed critical points (see `saddlescape problems "
    "NAME`). Default: 0 when --at is not given.",
)
_DIM = typer.Option(None, "--dim", help="Set the problem's dimension parameter.")
_SET = typer.Option(None, "--set", help="Set a problem parameter: key=value (repeatable).")
_PROBLEM = typer.Argument(
    None, metavar="[PROBLEM]", help="A problem name (or give --model instead)."
)
_MODEL = typer.Option(
    None,
    "--model",
    help="Your own model instead of a problem: FILE.py[:FUNCTION] (default FUNCTION: make), "
    "returning (model, loss_fn, data) or a dict with model, data and optionally loss_fn, params, "
    "reduction, batch_size_fn, batch_loss, method, mode. The point is the model's parameters.",
)
_MODEL_ARG = typer.Option(
    None, "--model-arg", help="key=value passed to FUNCTION as a string keyword (repeatable)."
)
_MODE = typer.Option(
    None,
    "--mode",
    help="With --model: 'eval' (BatchNorm on running statistics, dropout off; the default) or "
    "'train' (BatchNorm on each batch's statistics; random layers refused).",
)
_PROGRESS = typer.Option(
    None,
    "--progress/--no-progress",
    help="A progress bar on stderr (default: when stderr is a terminal).",
)


def _show_progress(progress: bool | None) -> bool:
    import sys

    return sys.stderr.isatty() if progress is None else progress


def _source(
    problem_name: str | None,
    model: str | None,
    model_args: list[str] | None,
    mode: str | None,
    problem_options: dict[str, Any],
) -> tuple[Problem | None, Any]:
    """The problem or the user's model, whichever was named (exactly one must be).
    ``problem_options``: the problem-only options by flag (``--dim``, ``--set``, ``--at``,
    ``--at-critical``) with their values."""
    from ._user_model import load_user_model

    if (problem_name is None) == (model is None):
        raise ConfigError("give a PROBLEM or --model FILE.py[:FUNCTION], exactly one of them")
    if model is None:
        given = [k for k, v in (("--mode", mode), ("--model-arg", model_args)) if v]
        if given:
            raise ConfigError(f"{', '.join(given)} only apply with --model")
        dim, sets = problem_options["--dim"], problem_options["--set"]
        with refuse_out_of_memory(f"problem {problem_name!r}", "reduce --dim or --set sizes"):
            problem = build_problem(problem_name, dim=dim, sets=sets or ())
        # the Lanczos bases are the big allocations (up to ~130 float64 vectors for the
        # extremes; SLQ's blocks are capped at 512 MiB): refuse before making them
        check_memory(
            f"curvature of {problem_name!r} in dimension {problem.dim:,}",
            8.0 * problem.dim * 140 + 2**29,
            "reduce --dim",
        )
        return problem, None
    given = [flag for flag, value in problem_options.items() if value not in (None, [], ())]
    if given:
        raise ConfigError(
            f"{', '.join(given)} only apply to a PROBLEM, not to --model "
            "(the point is the model's parameters)"
        )
    if mode is not None and mode not in ("eval", "train"):
        raise ConfigError(f"--mode must be 'eval' or 'train', got {mode!r}")
    return None, load_user_model(model, model_args)


def _model_point(op: Any) -> str:
    tensors = len(op.param_names or ())
    plural = "s" if tensors != 1 else ""
    return f"the model's parameters: {op.shape[0]} entries in {tensors} tensor{plural}"


def resolve_point(
    problem: Problem, at: str | None, at_critical: int | None
) -> tuple[torch.Tensor, str]:
    """The float64 point chosen by ``--at`` or ``--at-critical`` and a short description."""
    if at is not None and at_critical is not None:
        raise ConfigError("give either --at or --at-critical, not both")
    if at is not None:
        values = parse_vector(at, "--at")
        if not all(math.isfinite(v) for v in values):
            raise ConfigError(f"--at must hold finite numbers, got {at!r}")
        if len(values) != problem.dim:
            raise ConfigError(
                f"--at has {len(values)} entries but {problem.name!r} has dimension {problem.dim}"
            )
        return torch.tensor(values, dtype=torch.float64), "--at"
    cps = problem.critical_points
    index = 0 if at_critical is None else at_critical
    if not cps:
        raise ConfigError(f"{problem.name!r} lists no critical points: give the point with --at")
    if not 0 <= index < len(cps):
        raise ConfigError(
            f"--at-critical {index} is out of range: {problem.name!r} lists {len(cps)} "
            f"critical points (0..{len(cps) - 1})"
        )
    cp = cps[index]
    return cp.x.detach().to(torch.float64), f"critical point {index} (listed as {cp.kind})"


@app.command("certify")
def certify_command(
    problem_name: str | None = _PROBLEM,
    at: str | None = _AT,
    at_critical: int | None = _AT_CRITICAL,
    dim: int | None = _DIM,
    set_: list[str] | None = _SET,
    model: str | None = _MODEL,
    model_arg: list[str] | None = _MODEL_ARG,
    mode: str | None = _MODE,
    eps: float = typer.Option(1e-6, "--eps", help="Gradient threshold ε."),
    rho: float | None = typer.Option(
        None,
        "--rho",
        help="Hessian-Lipschitz constant ρ; τ = √(ρε). Default: the problem's known ρ; for "
        "--model an estimate from Hessian-vector product differences (a lower bound).",
    ),
    tau: float | None = typer.Option(
        None,
        "--tau",
        help="Curvature threshold τ directly. Default for a problem whose ρ is unknown: "
        "τ = √ε (as ρ = 1).",
    ),
    tol: float | None = typer.Option(
        None,
        "--tol",
        help="Lanczos tolerance, relative to ‖H‖ (default: 1e-6 for a problem, 1e-3 for --model).",
    ),
    max_hvps: int | None = typer.Option(
        None,
        "--max-hvps",
        help="Hessian-vector product budget (default: 200, at most 10·d); "
        "when it runs out before a decision the kind is 'undecided'.",
    ),
    seed: int = typer.Option(0, "--seed", help="Lanczos start vector seed."),
    progress: bool | None = _PROGRESS,
) -> None:
    """Certify a point: ε-first/second-order stationarity and the critical-point kind."""
    from ..curvature import certify

    flags = {"--dim": dim, "--set": set_, "--at": at, "--at-critical": at_critical}
    problem, user = _source(problem_name, model, model_arg, mode, flags)
    if rho is not None and tau is not None:
        raise ConfigError("give either --rho or --tau, not both")
    show = _show_progress(progress)
    if user is not None:
        with user.running():
            op = user.operator(mode)
            cert = certify(
                op,
                eps=eps,
                rho=rho,
                tau=tau,
                tol=1e-3 if tol is None else tol,
                max_hvps=max_hvps,
                seed=seed,
                progress=show,
            )
        note = " (ρ estimated: a lower bound, so τ errs small)" if cert.rho_estimated else ""
        title = f"certificate: {user.spec} — {op.description}, {op.mode} mode"
        console.print(certificate_table(title, _model_point(op), cert, note))
        return
    assert problem is not None
    x, where = resolve_point(problem, at, at_critical)
    note = ""
    if rho is None and tau is None:
        if problem.hessian_lipschitz is not None:
            rho, note = problem.hessian_lipschitz, " (the problem's)"
        else:
            tau, note = math.sqrt(eps), " (√ε: ρ unknown, taken as 1)"
    cert = certify(
        problem.f,
        x,
        eps=eps,
        rho=rho,
        tau=tau,
        tol=1e-6 if tol is None else tol,
        max_hvps=max_hvps,
        seed=seed,
        progress=show,
    )
    point = f"{format_vector(x)}  — {where}"
    console.print(certificate_table(f"certificate: {problem.describe()}", point, cert, note))


def _eigenvalue(theta: float, residual: float, side: str) -> str:
    """An extreme Ritz value; one whose residual is over 1 % of it is shown as the bound it
    is (Ritz values lie inside [λ_min, λ_max]), as when a strict saddle was proven early."""
    if residual > 0.01 * abs(theta):
        return f"{side} {theta:.8g}  (Ritz bound, residual {residual:.1e})"
    return f"{theta:.8g}  (residual {residual:.1e})"


def certificate_table(title: str, point: str, cert: Any, note: str) -> Table:
    """The certificate as a two-column rich table."""
    t = Table(title=title, show_header=False, title_justify="left")
    t.add_column("quantity", style="bold")
    t.add_column("value", overflow="fold")
    t.add_row("point", point)
    if cert.value is not None:
        t.add_row("f", f"{cert.value:.10g}")
    t.add_row("‖∇f‖", f"{cert.grad_norm:.3e}  (ε = {cert.eps:.3g})")
    t.add_row("λ_min", _eigenvalue(cert.lambda_min, cert.residual_min, "≤"))
    t.add_row("λ_max", _eigenvalue(cert.lambda_max, cert.residual_max, "≥"))
    rho = f", ρ = {cert.rho:.4g}" if cert.rho is not None else ""
    t.add_row("τ", f"{cert.tau:.3e}{rho}{note}")
    colour = {"minimum": "green", "saddle": "yellow", "maximum": "red"}.get(cert.kind, "magenta")
    kind = f"[{colour}]{cert.kind}[/]"
    if cert.kind == "undecided":
        kind += "  (HVP budget ran out: λ_min, λ_max are only Ritz bounds)"
    elif not cert.converged:  # "not stationary" with the curvature left open
        kind += "  (curvature undecided: the HVP budget ran out)"
    t.add_row("kind", kind)
    t.add_row("ε-SOSP", "yes" if cert.is_sosp else "no")
    d = cert.negative_curvature_direction
    t.add_row("negative curvature", "none" if d is None else format_vector(d))
    t.add_row("HVPs", str(cert.hvps))
    t.add_row("seconds", f"{cert.seconds:.3g}")
    return t


@app.command("spectrum")
def spectrum_command(
    problem_name: str | None = _PROBLEM,
    at: str | None = _AT,
    at_critical: int | None = _AT_CRITICAL,
    dim: int | None = _DIM,
    set_: list[str] | None = _SET,
    model: str | None = _MODEL,
    model_arg: list[str] | None = _MODEL_ARG,
    mode: str | None = _MODE,
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Where to save the plot (.png, .pdf, .svg). Default: spectrum-PROBLEM.png "
        "(spectrum-FILE.png for --model).",
    ),
    probes: int = typer.Option(8, "--probes", help="SLQ random probes."),
    steps: int = typer.Option(80, "--steps", help="Lanczos steps per probe (capped at d)."),
    sigma: float | None = typer.Option(
        None, "--sigma", help="Gaussian kernel width (default: 1% of the spectrum's range)."
    ),
    log: bool = typer.Option(False, "--log", help="Log-scale density axis."),
    seed: int = typer.Option(0, "--seed", help="Probe seed."),
    progress: bool | None = _PROGRESS,
    layers: bool = typer.Option(
        False,
        "--layers",
        help="With --model: also λ_min, λ_max and the trace of each module's diagonal block "
        "of the Hessian, tabled and plotted to OUT-layers.png.",
    ),
) -> None:
    """Hessian spectral density at a point (stochastic Lanczos quadrature), plotted."""
    from ..curvature import HessianOperator, lanczos
    from ..curvature.density import plot_spectral_density, spectral_density
    from ..curvature.lanczos import precision_floor

    flags = {"--dim": dim, "--set": set_, "--at": at, "--at-critical": at_critical}
    problem, user = _source(problem_name, model, model_arg, mode, flags)
    if layers and user is None:
        raise ConfigError("--layers needs --model: the blocks are the modules of a model")
    probes = check_count("--probes", probes, minimum=1, maximum=10_000)
    steps = check_count("--steps", steps, minimum=1, maximum=100_000)
    name = problem.name if problem is not None else user.stem
    out = Path(out) if out is not None else Path(f"spectrum-{name}.png")
    if out.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise ConfigError(f"--out must end in .png, .pdf or .svg, got {str(out)!r}")
    if out.parent != Path() and not out.parent.is_dir():
        raise ConfigError(f"--out: directory {str(out.parent)!r} does not exist")
    if out.is_dir():  # refused before the spectrum is computed, not after
        raise ConfigError(f"--out: {str(out)!r} is a folder, not a file")
    if problem is not None:
        x, where = resolve_point(problem, at, at_critical)
        op = HessianOperator.from_function(problem.f, x)
        title, point = f"Hessian spectrum: {problem.describe()}", f"{format_vector(x)}  — {where}"
        plot_title = f"{problem.name} at {where}"
    else:
        with user.running():
            op = user.operator(mode)
        title = f"Hessian spectrum: {user.spec} — {op.description}, {op.mode} mode"
        point, plot_title = _model_point(op), f"{user.stem} ({op.mode} mode)"
    show = _show_progress(progress)
    with contextlib.nullcontext() if user is None else user.running():
        density = spectral_density(
            op, num_probes=probes, lanczos_steps=steps, seed=seed, progress=show
        )
        tol = max(1e-8, precision_floor(op.dtype))  # what float16/bfloat16 products resolve
        ext = lanczos(op, k=1, which="both", tol=tol, seed=seed, progress=show)
    lmin, lmax = float(ext.eigenvalues[0]), float(ext.eigenvalues[-1])
    fig = plot_spectral_density(density, mark=(lmin, lmax), sigma=sigma, log=log)
    fig.axes[0].set_title(plot_title, fontsize="small")
    save_figure(fig, out, dpi=120)
    t = Table(title=title, show_header=False, title_justify="left")
    t.add_column("quantity", style="bold")
    t.add_column("value", overflow="fold")
    t.add_row("point", point)
    # with the residual that bounds each one's error (a λ_min of 1.8e-7 whose residual is
    # 5e-4 does not show that the Hessian is positive definite)
    t.add_row("λ_min", _eigenvalue(lmin, float(ext.residuals[0]), "≤"))
    t.add_row("λ_max", _eigenvalue(lmax, float(ext.residuals[-1]), "≥"))
    t.add_row("trace / d (SLQ)", f"{density.moment(1):.6g}")
    t.add_row("probes × steps", f"{density.num_probes} × {density.nodes.shape[1]}")
    t.add_row("HVPs", str(density.hvps + ext.hvps))
    t.add_row("seconds", f"{density.seconds + ext.seconds:.3g}")
    t.add_row("plot", str(out))
    console.print(t)
    if layers:
        with user.running():
            _print_layers(op, out, seed, show)


def _print_layers(op: Any, out: Path, seed: int, show: bool) -> None:
    from ..curvature import layer_spectra, plot_layer_spectra
    from ..curvature.lanczos import precision_floor

    tol = max(1e-6, precision_floor(op.dtype))  # what float16/bfloat16 products resolve
    spectra = layer_spectra(op, "module", tol=tol, seed=seed, progress=show)
    where = out.with_name(f"{out.stem}-layers{out.suffix}")
    save_figure(plot_layer_spectra(spectra), where, dpi=120)
    t = Table(title="diagonal blocks of the Hessian, one per module", title_justify="left")
    for column in ("block", "size", "λ_min", "λ_max", "trace", "HVPs"):
        t.add_column(column, overflow="fold")
    for x in spectra.layers:
        trace_text = f"{x.trace:.4g}" + (f" ± {x.trace_error:.1g}" if x.trace_error else "")
        t.add_row(
            x.name, str(x.size), f"{x.lambda_min:.4g}", f"{x.lambda_max:.4g}", trace_text,
            str(x.hvps),
        )  # fmt: skip
    console.print(t)
    console.print(f"plot: {where}  ({spectra.hvps} HVPs, {spectra.seconds:.3g} s)")
