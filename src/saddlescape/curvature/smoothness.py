"""Estimates of the constants the theory is stated in: the smoothness β (gradient
Lipschitz constant, the notes' β and Jin et al.'s ℓ), a step size from it, and the
Hessian-Lipschitz constant ρ.

- β at a point is ``‖∇²f(x)‖ = max(|λ_min|, |λ_max|)`` (for C² functions the gradient's
  Lipschitz constant on a region is the supremum of this over the region). Both ends of
  the spectrum come from one :func:`~saddlescape.curvature.lanczos` run (``which="both"``);
  Ritz values lie inside the spectrum, so the estimate approaches β from below.
- The step size: η = 1/β is the descent-lemma choice of the notes (Nesterov 2004, §1.2.3:
  f(x − ∇f/β) ≤ f(x) − ‖∇f‖²/(2β)); gradient descent is stable only for η < 2/β, the
  threshold the edge-of-stability experiments watch (Cohen et al. 2021).
- ρ: ``‖∇²f(a) − ∇²f(b)‖ ≤ ρ‖a − b‖``. :func:`hessian_lipschitz` evaluates
  ``‖(∇²f(y + δu) − ∇²f(y − δu)) v‖ / (2δ)`` for unit ``u``, ``v`` at points ``y`` of a ball
  and returns the largest value: each one is a true lower bound of ρ on the ball (up to
  rounding), and the maximum is a lower-bound *estimate* of ρ, tight when the sampled
  directions align with the third-derivative tensor's top direction (the directions are
  improved by a shifted higher-order power iteration, ``(u, v) ← (v, D_u v / ‖D_u v‖)``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from ..errors import ConfigError, CurvatureError, DivergenceError, check_int, check_positive
from ._probing import make_generator
from ._progress import CurvatureProgress, Watch
from .lanczos import lanczos
from .operators import HessianOperator

__all__ = [
    "HessianLipschitzResult",
    "SmoothnessResult",
    "hessian_lipschitz",
    "smoothness",
    "suggest_lr",
]


@dataclass(frozen=True)
class SmoothnessResult:
    """β = max over the points of ``‖∇²f‖`` with the extreme eigenvalues behind it.

    ``lambda_min``/``lambda_max``: smallest and largest Ritz values over all points;
    ``beta = max(|lambda_min|, |lambda_max|)``; ``per_point``: β at each point;
    ``argmax``: index of the point attaining β; ``converged``: every Lanczos run met its
    tolerance; ``hvps``, ``passes`` (over the data), ``seconds``: cost.
    """

    beta: float
    lambda_min: float
    lambda_max: float
    per_point: tuple[float, ...]
    argmax: int
    converged: bool
    hvps: int
    seconds: float
    passes: int = 0

    @property
    def lr(self) -> float:
        """η = 1/β (see :func:`suggest_lr`)."""
        return suggest_lr(self)


@dataclass(frozen=True)
class HessianLipschitzResult:
    """Lower-bound estimate of ρ on the ball ``B(x, radius)`` (see module docstring).

    ``rho``: the largest ratio seen; ``num_samples`` base points, ``iters`` direction
    updates each; ``delta``: the finite-difference half-step; ``hvps`` products and
    ``grad_evals`` gradient evaluations (one per point a Hessian was taken at); ``passes``
    over the data, at every point together (each operator's own count).
    """

    rho: float
    radius: float
    delta: float
    num_samples: int
    iters: int
    hvps: int
    grad_evals: int
    seconds: float
    passes: int = 0


def smoothness(
    target: Any,
    x: torch.Tensor | None = None,
    *,
    points: Sequence[torch.Tensor] | torch.Tensor | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    data: Any = None,
    params: Sequence[Any] | None = None,
    tol: float = 1e-3,
    max_hvps: int | None = None,
    seed: int | None = 0,
    mode: str = "eval",
    reduction: str | None = None,
    batch_size_fn: Callable[[Any], float] | None = None,
    batch_loss: Callable[[torch.nn.Module, Any], torch.Tensor] | None = None,
    cache: bool | None = None,
    distributed: Any = False,
    progress: bool = False,
    callback: Callable[[CurvatureProgress], Any] | None = None,
) -> SmoothnessResult:
    """β = ``max(|λ_min|, |λ_max|)`` of the Hessian, maximized over ``points``.

    ``target`` is one of

    - a function of one flat tensor (a :class:`~saddlescape.problems.Problem` works), with
      the point ``x`` or a set of ``points`` (a sequence of vectors or a ``(B, d)`` tensor);
    - a ``torch.nn.Module`` with ``loss_fn`` and ``data`` (its dataset loss at the current
      parameters, see :meth:`HessianOperator.from_model`; ``params``, ``mode``,
      ``reduction``, ``batch_size_fn``, ``batch_loss``, ``cache`` and ``distributed`` as
      there);
    - an operator (``matvec``, ``shape``, ``dtype``), e.g. a :class:`HessianOperator`.

    ``tol`` (> 0) is the Lanczos tolerance relative to ``‖H‖``; ``max_hvps`` (≥ 1, or None
    for :func:`~saddlescape.curvature.lanczos`'s default) its budget per point; ``seed`` its
    random start. ``progress``/``callback``: as for :func:`~saddlescape.curvature.lanczos`
    (products counted over all points).

    β is the curvature of the piece of the loss the point lies on. A network with ReLU
    (or any kink: max pooling, hinge, L1) is only piecewise C², and autograd differentiates
    one side of a kink: at a point where a pre-activation is exactly 0 its gradient jumps
    (a 2→3→1 ReLU MLP: β = 3.44 here, ``‖∇f(x + δd) − ∇f(x)‖/δ = 6.5e4`` for ``δ = 1e-6``
    across the kink, 0 on the other side), so no gradient Lipschitz constant exists there
    and η = 1/β guarantees nothing across it. Between kinks β is exact.

    >>> f = lambda x: x[0] ** 2 - 3 * x[1] ** 2          # Hessian diag(2, -6)
    >>> r = smoothness(f, torch.zeros(2, dtype=torch.float64), tol=1e-10)
    >>> round(r.beta, 8), round(r.lambda_min, 8), round(r.lambda_max, 8)
    (6.0, -6.0, 2.0)
    """
    t0 = time.perf_counter()
    tol = check_positive("tol", tol)
    if max_hvps is not None:
        max_hvps = check_int("max_hvps", max_hvps, minimum=1)
    options = {
        "params": params,
        "mode": mode,
        "reduction": reduction,
        "batch_size_fn": batch_size_fn,
        "batch_loss": batch_loss,
        "cache": cache,
        "distributed": distributed,
    }
    ops = _operators(target, x, points, loss_fn, data, options)
    lmins, lmaxs, betas = [], [], []
    hvps, passes, converged = 0, 0, True
    with Watch("smoothness", progress, callback) as watch:
        for make in ops:
            op = make()
            r = lanczos(
                op,
                k=1,
                which="both",
                tol=tol,
                max_hvps=max_hvps,
                seed=seed,
                callback=watch.inner(hvps),
            )
            lo, hi = float(r.eigenvalues[0]), float(r.eigenvalues[-1])
            if not (math.isfinite(lo) and math.isfinite(hi)):
                raise DivergenceError("smoothness: non-finite Hessian eigenvalue estimate")
            lmins.append(lo)
            lmaxs.append(hi)
            betas.append(max(abs(lo), abs(hi)))
            hvps += r.hvps
            passes += r.passes
            converged &= bool(r.converged)
    i = max(range(len(betas)), key=betas.__getitem__)
    return SmoothnessResult(
        beta=betas[i],
        lambda_min=min(lmins),
        lambda_max=max(lmaxs),
        per_point=tuple(betas),
        argmax=i,
        converged=converged,
        hvps=hvps,
        seconds=time.perf_counter() - t0,
        passes=passes,
    )


def _operators(
    target: Any,
    x: torch.Tensor | None,
    points: Sequence[torch.Tensor] | torch.Tensor | None,
    loss_fn: Any,
    data: Any,
    options: dict[str, Any],
) -> list[Callable[[], Any]]:
    """Factories of the operators to examine (built lazily, one at a time)."""
    if isinstance(target, torch.nn.Module):
        if data is None:
            raise ConfigError("smoothness of a model needs data= (and loss_fn= or batch_loss=)")
        if x is not None or points is not None:
            raise ConfigError("smoothness of a model uses its current parameters: omit x/points")
        return [lambda: HessianOperator.from_model(target, loss_fn, data, **options)]
    if hasattr(target, "matvec") and hasattr(target, "shape"):
        if x is not None or points is not None:
            raise ConfigError("smoothness of an operator takes no x/points")
        return [lambda: target]
    if not callable(target):
        raise CurvatureError(
            "smoothness needs a function, a torch.nn.Module or an operator, "
            f"got {type(target).__name__}"
        )
    if (x is None) == (points is None):
        raise ConfigError("smoothness of a function needs exactly one of x= or points=")
    if x is not None:
        pts: list[torch.Tensor] = [torch.as_tensor(x)]
    elif isinstance(points, torch.Tensor):
        if points.ndim != 2:
            raise ConfigError(f"points must have shape (B, d), got {tuple(points.shape)}")
        pts = list(points)
    else:
        pts = [torch.as_tensor(p) for p in points]  # type: ignore[union-attr]
    if not pts:
        raise ConfigError("points is empty")
    return [lambda p=p: HessianOperator.from_function(target, p) for p in pts]


def suggest_lr(
    target: Any, x: torch.Tensor | None = None, *, factor: float = 1.0, **kwargs: Any
) -> float:
    """A gradient-descent step size ``η = factor/β``.

    ``factor = 1`` (default) is the notes' η = 1/β, which guarantees
    ``f(x_{t+1}) ≤ f(x_t) − ‖∇f(x_t)‖²/(2β)``; any ``factor < 2`` is stable on a quadratic
    of curvature β (η < 2/β), larger ones diverge, so they are refused. ``target`` is a
    :class:`SmoothnessResult`, a number β, or anything :func:`smoothness` accepts (then
    ``x`` and ``kwargs`` are passed on).

    >>> suggest_lr(4.0), suggest_lr(4.0, factor=1.9)
    (0.25, 0.475)
    """
    factor = check_positive("factor", factor)
    if factor >= 2:
        raise ConfigError(
            f"factor must be < 2 (gradient descent diverges for η ≥ 2/β), got {factor!r}"
        )
    if isinstance(target, SmoothnessResult):
        beta = target.beta
    elif isinstance(target, (int, float)) and not isinstance(target, bool):
        beta = check_positive("beta", target)
    else:
        beta = smoothness(target, x, **kwargs).beta
    if not beta > 0:
        raise CurvatureError("the Hessian is zero here (β = 0): any step size is stable")
    return factor / beta


def hessian_lipschitz(
    f: Callable[[torch.Tensor], torch.Tensor] | HessianOperator,
    x: torch.Tensor | None = None,
    *,
    radius: float = 1.0,
    num_samples: int = 8,
    iters: int = 6,
    delta: float | None = None,
    seed: int | torch.Generator | None = 0,
    directions: Literal["random", "lanczos"] | None = None,
    progress: bool = False,
    callback: Callable[[CurvatureProgress], Any] | None = None,
) -> HessianLipschitzResult:
    """Lower-bound estimate of the Hessian-Lipschitz constant ρ of ``f`` on ``B(x, radius)``.

    ``f`` is a function of one flat tensor with the point ``x``, or a
    :class:`HessianOperator` (``x`` omitted: its point; a model's loss works this way, the
    Hessians at the shifted points come from :meth:`HessianOperator.at` on the same data
    and snapshot). Base points: ``x`` itself, then ``num_samples − 1`` points uniform in the
    ball. At each, ``iters`` ratios ``‖(∇²f(y + δu) − ∇²f(y − δu)) v‖ / (2δ)`` with
    directions improved as in the module docstring (2 HVPs and 2 gradients per ratio).
    ``directions``: the first ``(u, v)`` at each base point — ``"random"`` unit vectors, or
    ``"lanczos"``: the eigenvectors of the extreme eigenvalues there (the curvature that
    can change most; a few more products, far fewer wasted ratios in high dimension). The
    default is ``"lanczos"`` for operators and ``"random"`` for functions. ``delta``
    defaults to ``ε_mach^{1/3}·max(1, ‖y‖)`` (balances the O(δ²) truncation and O(ε/δ)
    rounding; every ratio is a secant, hence a valid lower bound, whatever δ).

    >>> f = lambda x: (x**4).sum() / 4                # ∇²f = diag(3x²): ρ on B(0, 1) is 6
    >>> r = hessian_lipschitz(f, torch.zeros(3, dtype=torch.float64), num_samples=20)
    >>> 4.5 < r.rho <= 6.0 + 1e-6
    True
    """
    t0 = time.perf_counter()
    if isinstance(f, HessianOperator):
        if x is not None:
            raise ConfigError("x must be omitted for a HessianOperator (its point is used)")
        base_op: HessianOperator | None = f
        x = f.point

        def make(y: torch.Tensor) -> HessianOperator:
            return f.at(y)  # type: ignore[union-attr]
    elif callable(f):
        if x is None:
            raise ConfigError("hessian_lipschitz(f, x, ...) needs the point x")
        base_op = None

        def make(y: torch.Tensor) -> HessianOperator:
            return HessianOperator.from_function(f, y)
    else:
        raise CurvatureError(
            f"hessian_lipschitz needs a function or a HessianOperator, got {type(f).__name__}"
        )
    made: list[HessianOperator] = []  # every operator built here, for the count of passes
    base_passes = base_op.passes if base_op is not None else 0

    def hessian_at(y: torch.Tensor) -> HessianOperator:
        made.append(make(y))
        return made[-1]

    x = torch.as_tensor(x)
    if not x.is_floating_point():
        x = x.to(torch.float64)
    if x.ndim != 1 or x.numel() == 0:
        raise ConfigError(f"x must be a non-empty flat vector, got shape {tuple(x.shape)}")
    radius = check_positive("radius", radius, allow_zero=True)
    num_samples = check_int("num_samples", num_samples, minimum=1)
    iters = check_int("iters", iters, minimum=1)
    if delta is not None:
        delta = check_positive("delta", delta)
    if directions is None:
        directions = "lanczos" if base_op is not None else "random"
    if directions not in ("random", "lanczos"):
        raise ConfigError(f"directions must be 'random' or 'lanczos', got {directions!r}")
    gen = make_generator(seed)
    x = x.detach()
    n = x.numel()

    def unit() -> torch.Tensor:
        u = torch.randn(n, generator=gen, dtype=torch.float64).to(x.dtype).to(x.device)
        return u / u.norm()

    best, hvps, grads, used_delta = 0.0, 0, 0, 0.0
    eps = torch.finfo(x.dtype).eps
    budget = num_samples * 2 * iters
    with Watch("hessian lipschitz", progress, callback, budget) as watch:
        for s in range(num_samples):
            if s == 0 or radius == 0:
                y = x
            else:  # uniform in the ball: direction uniform, radius ∝ U^{1/n}
                r = radius * float(torch.rand(1, generator=gen, dtype=torch.float64)) ** (1 / n)
                y = x + r * unit()
            d = delta if delta is not None else eps ** (1 / 3) * max(1.0, float(y.norm()))
            used_delta = max(used_delta, d)
            if directions == "lanczos":
                op_y = base_op if s == 0 and base_op is not None else hessian_at(y)
                grads += 0 if op_y is base_op else 1
                ends = lanczos(op_y, k=1, which="both", tol=1e-2, seed=s, max_hvps=min(60, 10 * n))
                hvps += ends.hvps
                pick = int(torch.argmax(ends.eigenvalues.abs()))
                u = ends.eigenvectors[:, pick].to(x.dtype)
                u, v = u / u.norm(), u / u.norm()
            else:
                u, v = unit(), unit()
            for _ in range(iters):
                hp, hm = hessian_at(y + d * u), hessian_at(y - d * u)
                w = (hp.matvec(v) - hm.matvec(v)) / (2 * d)
                hvps += 2
                grads += 2
                nw = float(w.norm())
                if not math.isfinite(nw):
                    raise DivergenceError("hessian_lipschitz: non-finite Hessian-vector product")
                best = max(best, nw)
                watch(hvps, rho=best)
                if nw == 0:
                    u, v = unit(), unit()
                else:
                    u, v = v, w / nw
    return HessianLipschitzResult(
        rho=best,
        radius=radius,
        delta=used_delta,
        num_samples=num_samples,
        iters=iters,
        hvps=hvps,
        grad_evals=grads,
        seconds=time.perf_counter() - t0,
        passes=sum(op.passes for op in made)
        + (base_op.passes - base_passes if base_op is not None else 0),
    )
