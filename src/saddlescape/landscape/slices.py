"""1-D and 2-D slices of a loss: ``f(c + α d₁)`` and ``f(c + α d₁ + β d₂)`` on a grid, and
the linear interpolation between two points (Goodfellow, Vinyals, Saxe 2015, "Qualitatively
characterizing neural network optimization problems", ICLR).

Points are evaluated a chunk at a time: a zoo problem takes the chunk as one ``(B, d)``
batch (``torch.func.vmap`` for its networks); a model's loss reads its data once per chunk
and evaluates the chunk's points with ``vmap`` (or one by one where the model cannot be
vmapped) through the curvature package's batch protocol
(:meth:`~saddlescape.curvature._empirical_risk.EmpiricalRisk.loss`: exact weighting over
batches, eval or train mode). ``progress=True`` shows a bar of grid points; ``callback``
receives a :class:`~saddlescape.curvature.CurvatureProgress` after each chunk (its
``hvps`` field counts grid points done, ``budget`` the grid's size).

>>> import torch
>>> from saddlescape import problems
>>> from saddlescape.landscape import eigen_directions, slice_2d
>>> p = problems.get("quadratic-saddle", dim=4, n_negative=1, curvature=2.0)
>>> x = torch.zeros(4, dtype=torch.float64)
>>> s = slice_2d(p, eigen_directions(p, x), center=x, span=1.0, resolution=3)
>>> s.losses.round(decimals=12).tolist()      # ½(λ_max α² + λ_min β²), λ = 1, -2
[[-0.5, -1.0, -0.5], [0.5, 0.0, 0.5], [-0.5, -1.0, -0.5]]
>>> s.evaluations, s.directions.kind
(10, 'eigen')
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..curvature._progress import CurvatureProgress, Watch
from ..errors import ConfigError, check_int, check_positive
from .directions import Directions, user_directions
from .result import Landscape
from .target import LossTarget, as_target

__all__ = ["MAX_POINTS", "MAX_RESOLUTION", "interpolate", "slice_1d", "slice_2d"]

#: Largest resolution (points per axis) and grid size accepted.
MAX_RESOLUTION = 2001
MAX_POINTS = 250_000

Span = float | tuple[float, float] | Sequence[float]


def parse_span(span: Any, name: str = "span") -> tuple[float, float]:
    """``s`` → ``(-s, s)``; ``(lo, hi)`` → itself; finite with ``lo < hi``."""
    if isinstance(span, (int, float)) and not isinstance(span, bool):
        s = float(span)
        if not (math.isfinite(s) and s > 0):
            raise ConfigError(f"{name} must be a positive finite number or (lo, hi), got {span!r}")
        return -s, s
    try:
        lo, hi = (float(v) for v in span)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{name} must be a number s (for -s..s) or (lo, hi), got {span!r}"
        ) from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ConfigError(f"{name} must have finite lo < hi, got ({lo}, {hi})")
    return lo, hi


def check_resolution(resolution: Any, axes: int) -> int:
    """Points per axis: an integer in ``[2, MAX_RESOLUTION]`` with at most
    ``MAX_POINTS`` grid points in all."""
    if isinstance(resolution, bool) or not isinstance(resolution, int):
        raise ConfigError(f"resolution must be an integer, got {resolution!r}")
    if not 2 <= resolution <= MAX_RESOLUTION:
        raise ConfigError(f"resolution must be between 2 and {MAX_RESOLUTION}, got {resolution}")
    if resolution**axes > MAX_POINTS:
        raise ConfigError(
            f"resolution {resolution} gives {resolution**axes:,} grid points, over the "
            f"limit of {MAX_POINTS:,}; lower it"
        )
    return resolution


class _PointsWatch(Watch):
    """The curvature progress bar, counting grid points instead of HVPs."""

    def __enter__(self) -> _PointsWatch:
        super().__enter__()
        if self._bar is not None:
            for column in self._bar.columns:
                if getattr(column, "text_format", None) == "HVPs":
                    column.text_format = "points"
        return self


def _center(target: LossTarget, center: Any) -> torch.Tensor:
    if center is None:
        center = target.center
    if center is None:
        raise ConfigError("give the centre of the slice: center= (a point of the problem)")
    c = torch.as_tensor(center).detach().to("cpu", torch.float64).reshape(-1)
    if c.numel() != target.dim:
        raise ConfigError(f"the centre has {c.numel()} entries, the target dimension {target.dim}")
    if not bool(torch.isfinite(c).all()):
        raise ConfigError("the centre contains nan or inf")
    return c


def _directions(directions: Any, need: int, dim: int) -> Directions:
    if isinstance(directions, torch.Tensor):
        rows = directions if directions.ndim == 2 else directions.reshape(1, -1)
        directions = user_directions(*rows)
    if not isinstance(directions, Directions):
        raise ConfigError(f"directions must be Directions or a tensor, got {type(directions)}")
    if directions.k < need:
        raise ConfigError(f"a {need}-D slice needs {need} directions, got {directions.k}")
    if directions.dim != dim:
        raise ConfigError(
            f"the directions have length {directions.dim}, the target dimension {dim}"
        )
    return directions[:need]


def _auto_chunk(target: LossTarget, batch_points: int | None) -> int:
    if batch_points is not None:
        return check_int("batch_points", batch_points, minimum=1)
    # points themselves at most ~32 MB; models: also bounded activation memory under vmap
    cap = 64 if target.passes_per_call else 4096
    return max(1, min(cap, (1 << 22) // max(1, target.dim)))


def _evaluate(
    target: LossTarget,
    coords: torch.Tensor,
    center: torch.Tensor,
    vectors: torch.Tensor,
    chunk: int,
    watch: Watch,
) -> tuple[torch.Tensor, int]:
    """``f(center + coords @ vectors)`` for ``coords`` ``(N, k)``; returns losses and passes."""
    out = torch.empty(coords.shape[0], dtype=torch.float64)
    passes = 0
    for start in range(0, coords.shape[0], chunk):
        block = coords[start : start + chunk]
        points = center + block @ vectors
        out[start : start + block.shape[0]] = target.loss(points)
        passes += target.passes_per_call
        watch(start + block.shape[0], loss=float(out[start + block.shape[0] - 1]))
    return out, passes


def _curvature(
    target: LossTarget, points: torch.Tensor, tol: float, seed: int, max_hvps: int | None
) -> tuple[torch.Tensor, torch.Tensor, int]:
    from ..curvature import lanczos

    lmin = torch.empty(points.shape[0], dtype=torch.float64)
    lmax = torch.empty_like(lmin)
    hvps = 0
    for i, x in enumerate(points):
        res = lanczos(target.hessian(x), k=1, which="both", tol=tol, seed=seed, max_hvps=max_hvps)
        lmin[i], lmax[i] = float(res.eigenvalues[0]), float(res.eigenvalues[-1])
        hvps += int(res.hvps)
    return lmin, lmax, hvps


def _overlays(
    target: LossTarget,
    directions: Directions,
    center: torch.Tensor,
    trajectory: torch.Tensor | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if trajectory is not None:
        xs = torch.as_tensor(trajectory).detach().to("cpu", torch.float64)
        if xs.ndim != 2 or xs.shape[1] != target.dim:
            raise ConfigError(f"the trajectory must be (T, {target.dim}), got {tuple(xs.shape)}")
        out["path"] = directions.project(xs, center)
        out["path_offplane"] = directions.residual(xs, center)
    problem = target.problem
    if problem is not None and problem.critical_points:
        cps = problem.critical_points
        xs = torch.stack([c.x.detach().to("cpu", torch.float64) for c in cps])
        out["critical"] = directions.project(xs, center)
        out["critical_offplane"] = directions.residual(xs, center)
        out["critical_kinds"] = tuple(c.kind for c in cps)
    return out


def _run(
    target: Any,
    directions: Any,
    center: Any,
    spans: list[tuple[float, float]],
    resolution: int,
    *,
    batch_points: int | None,
    curvature: bool,
    curvature_tol: float,
    curvature_max_hvps: int | None,
    seed: int,
    trajectory: torch.Tensor | None,
    progress: bool,
    callback: Callable[[CurvatureProgress], Any] | None,
    task: str,
) -> Landscape:
    t0 = time.perf_counter()
    tgt = as_target(target)
    k = len(spans)
    resolution = check_resolution(resolution, k)
    c = _center(tgt, center)
    dirs = _directions(directions, k, tgt.dim)
    curvature_tol = check_positive("curvature_tol", curvature_tol)
    chunk = _auto_chunk(tgt, batch_points)
    steps = torch.arange(resolution, dtype=torch.float64) / (resolution - 1)
    axes = [lo + (hi - lo) * steps for lo, hi in spans]  # the midpoint of -s..s is exactly 0
    if k == 1:
        coords = axes[0][:, None]
    else:  # row j, column i ↔ (alphas[i], betas[j])
        bb, aa = torch.meshgrid(axes[1], axes[0], indexing="ij")
        coords = torch.stack([aa.reshape(-1), bb.reshape(-1)], dim=1)
    vectors = dirs.vectors
    with _PointsWatch(task, progress, callback, budget=coords.shape[0]) as watch:
        losses, passes = _evaluate(tgt, coords, c, vectors, chunk, watch)
    center_loss = float(tgt.loss(c))
    lmin = lmax = None
    hvps = dirs.hvps
    if curvature:
        lmin, lmax, extra = _curvature(
            tgt, c + coords @ vectors, curvature_tol, seed, curvature_max_hvps
        )
        hvps += extra
        shape = (resolution,) * k
        lmin, lmax = lmin.reshape(shape), lmax.reshape(shape)
    return Landscape(
        alphas=axes[0],
        betas=axes[1] if k == 2 else None,
        losses=losses.reshape((resolution,) * k),
        center=c,
        center_loss=center_loss,
        directions=dirs,
        target=tgt.description,
        evaluations=int(coords.shape[0]) + 1,
        data_passes=passes + tgt.passes_per_call,
        hvps=hvps,
        seconds=dirs.seconds + time.perf_counter() - t0,
        lambda_min=lmin,
        lambda_max=lmax,
        **_overlays(tgt, dirs, c, trajectory),
    )


def slice_2d(
    target: Any,
    directions: Directions | torch.Tensor,
    *,
    center: torch.Tensor | None = None,
    span: Span = 1.0,
    resolution: int = 41,
    batch_points: int | None = None,
    curvature: bool = False,
    curvature_tol: float = 1e-3,
    curvature_max_hvps: int | None = None,
    seed: int = 0,
    trajectory: torch.Tensor | None = None,
    progress: bool = False,
    callback: Callable[[CurvatureProgress], Any] | None = None,
) -> Landscape:
    """``f(center + α d₁ + β d₂)`` on a ``resolution × resolution`` grid.

    ``target``: a :class:`~saddlescape.problems.Problem` or a :class:`LossTarget`
    (:meth:`LossTarget.from_model` for a model and data). ``directions``: the first two of a
    :class:`Directions` (or a ``(2, n)`` tensor, used as given). ``center``: the point
    (default: a model's parameters; required for a problem). ``span``: ``s`` for
    ``[−s, s]`` on both axes or ``(lo, hi)``. ``batch_points``: points per chunk (default:
    automatic). ``curvature=True`` also runs Lanczos at every grid point for λ_min and
    λ_max (``tol`` ``curvature_tol``, seed ``seed``; Li et al. 2018 Fig. 7), costing HVPs.
    ``trajectory`` ``(T, n)`` is projected into the plane (``path``). Critical points of a
    zoo problem are projected too (``critical``).
    """
    lo_hi = parse_span(span)
    return _run(
        target,
        directions,
        center,
        [lo_hi, lo_hi],
        resolution,
        batch_points=batch_points,
        curvature=curvature,
        curvature_tol=curvature_tol,
        curvature_max_hvps=curvature_max_hvps,
        seed=seed,
        trajectory=trajectory,
        progress=progress,
        callback=callback,
        task="slice_2d",
    )


def slice_1d(
    target: Any,
    direction: Directions | torch.Tensor,
    *,
    center: torch.Tensor | None = None,
    span: Span = 1.0,
    resolution: int = 101,
    batch_points: int | None = None,
    curvature: bool = False,
    curvature_tol: float = 1e-3,
    curvature_max_hvps: int | None = None,
    seed: int = 0,
    trajectory: torch.Tensor | None = None,
    progress: bool = False,
    callback: Callable[[CurvatureProgress], Any] | None = None,
) -> Landscape:
    """``f(center + α d)`` at ``resolution`` values of α in ``span``, ``d`` the first of
    ``direction`` (arguments as for :func:`slice_2d`)."""
    return _run(
        target,
        direction,
        center,
        [parse_span(span)],
        resolution,
        batch_points=batch_points,
        curvature=curvature,
        curvature_tol=curvature_tol,
        curvature_max_hvps=curvature_max_hvps,
        seed=seed,
        trajectory=trajectory,
        progress=progress,
        callback=callback,
        task="slice_1d",
    )


def interpolate(
    target: Any,
    start: torch.Tensor,
    end: torch.Tensor,
    *,
    span: Span = (-0.5, 1.5),
    resolution: int = 101,
    batch_points: int | None = None,
    progress: bool = False,
    callback: Callable[[CurvatureProgress], Any] | None = None,
) -> Landscape:
    """The loss on the line ``θ(α) = (1 − α)·start + α·end`` (Goodfellow et al. 2015):
    ``α = 0`` is ``start``, ``α = 1`` is ``end``; ``span`` (default ``(−0.5, 1.5)``) also
    shows the line beyond both. The direction is ``end − start`` (kind
    ``"interpolation"``).

    >>> import torch
    >>> from saddlescape import problems
    >>> p = problems.get("lee-2d")
    >>> a, b = p.critical_points[1].x, p.critical_points[2].x     # the minima (0, ±1)
    >>> line = interpolate(p, a, b, span=(0.0, 1.0), resolution=3)
    >>> line.losses.tolist()                                       # the saddle half-way
    [-0.25, 0.0, -0.25]
    """
    tgt = as_target(target)
    a = _center(tgt, start)
    b = _center(tgt, end)
    diff = b - a
    if float(torch.linalg.vector_norm(diff)) == 0.0:
        raise ConfigError("start and end are the same point")
    d = Directions(diff[None], "interpolation", ("α: θ = (1 − α)·start + α·end",))
    return _run(
        tgt,
        d,
        a,
        [parse_span(span)],
        resolution,
        batch_points=batch_points,
        curvature=False,
        curvature_tol=1e-3,
        curvature_max_hvps=None,
        seed=0,
        trajectory=None,
        progress=progress,
        callback=callback,
        task="interpolate",
    )
