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
from typing import Any

import torch

from ..errors import ConfigError, CurvatureError, DivergenceError, check_int, check_positive
from ._probing import make_generator
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
    tolerance; ``hvps``, ``seconds``: cost.
    """

    beta: float
    lambda_min: float
    lambda_max: float
    per_point: tuple[float, ...]
    argmax: int
    converged: bool
    hvps: int
    seconds: float

    @property
    def lr(self) -> float:
        """η = 1/β (see :func:`suggest_lr`)."""
        return suggest_lr(self)


@dataclass(frozen=True)
class HessianLipschitzResult:
    """Lower-bound estimate of ρ on the ball ``B(x, radius)`` (see module docstring).

    ``rho``: the largest ratio seen; ``num_samples`` base points, ``iters`` direction
    updates each; ``delta``: the finite-difference half-step; ``hvps`` products and
    ``grad_evals`` gradient evaluations (one per point a Hessian was taken at).
    """

    rho: float
    radius: float
    delta: float
    num_samples: int
    iters: int
    hvps: int
    grad_evals: int
    seconds: float


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
) -> SmoothnessResult:
    """β = ``max(|λ_min|, |λ_max|)`` of the Hessian, maximized over ``points``.

    ``target`` is one of

    - a function of one flat tensor (a :class:`~saddlescape.problems.Problem` works), with
      the point ``x`` or a set of ``points`` (a sequence of vectors or a ``(B, d)`` tensor);
    - a ``torch.nn.Module`` with ``loss_fn`` and ``data`` (its dataset loss at the current
      parameters, see :meth:`HessianOperator.from_model`; ``params`` selects parameters);
    - an operator (``matvec``, ``shape``, ``dtype``), e.g. a :class:`HessianOperator`.

    ``tol`` (> 0) is the Lanczos tolerance relative to ``‖H‖``; ``max_hvps`` (≥ 1, or None
    for :func:`~saddlescape.curvature.lanczos`'s default) its budget per point; ``seed`` its
    random start.

    >>> f = lambda x: x[0] ** 2 - 3 * x[1] ** 2          # Hessian diag(2, -6)
    >>> r = smoothness(f, torch.zeros(2, dtype=torch.float64), tol=1e-10)
    >>> round(r.beta, 8), round(r.lambda_min, 8), round(r.lambda_max, 8)
    (6.0, -6.0, 2.0)
    """
    t0 = time.perf_counter()
    tol = check_positive("tol", tol)
    if max_hvps is not None:
        max_hvps = check_int("max_hvps", max_hvps, minimum=1)
    ops = _operators(target, x, points, loss_fn, data, params)
    lmins, lmaxs, betas = [], [], []
    hvps, converged = 0, True
    for make in ops:
        op = make()
        r = lanczos(op, k=1, which="both", tol=tol, max_hvps=max_hvps, seed=seed)
        lo, hi = float(r.eigenvalues[0]), float(r.eigenvalues[-1])
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise DivergenceError("smoothness: non-finite Hessian eigenvalue estimate")
        lmins.append(lo)
        lmaxs.append(hi)
        betas.append(max(abs(lo), abs(hi)))
        hvps += r.hvps
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
    )


def _operators(
    target: Any,
    x: torch.Tensor | None,
    points: Sequence[torch.Tensor] | torch.Tensor | None,
    loss_fn: Any,
    data: Any,
    params: Any,
) -> list[Callable[[], Any]]:
    """Factories of the operators to examine (built lazily, one at a time)."""
    if isinstance(target, torch.nn.Module):
        if loss_fn is None or data is None:
            raise ConfigError("smoothness of a model needs loss_fn= and data=")
        if x is not None or points is not None:
            raise ConfigError("smoothness of a model uses its current parameters: omit x/points")
        return [lambda: HessianOperator.from_model(target, loss_fn, data, params=params)]
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
    f: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    radius: float = 1.0,
    num_samples: int = 8,
    iters: int = 6,
    delta: float | None = None,
    seed: int | torch.Generator | None = 0,
) -> HessianLipschitzResult:
    """Lower-bound estimate of the Hessian-Lipschitz constant ρ of ``f`` on ``B(x, radius)``.

    Base points: ``x`` itself, then ``num_samples − 1`` points uniform in the ball. At each,
    ``iters`` ratios ``‖(∇²f(y + δu) − ∇²f(y − δu)) v‖ / (2δ)`` with directions improved as
    in the module docstring (2 HVPs and 2 gradients per ratio). ``delta`` defaults to
    ``ε_mach^{1/3}·max(1, ‖y‖)`` (balances the O(δ²) truncation and O(ε/δ) rounding).

    >>> f = lambda x: (x**4).sum() / 4                # ∇²f = diag(3x²): ρ on B(0, 1) is 6
    >>> r = hessian_lipschitz(f, torch.zeros(3, dtype=torch.float64), num_samples=20)
    >>> 4.5 < r.rho <= 6.0 + 1e-6
    True
    """
    t0 = time.perf_counter()
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
    gen = make_generator(seed)
    x = x.detach()
    n = x.numel()

    def unit() -> torch.Tensor:
        u = torch.randn(n, generator=gen, dtype=torch.float64).to(x.dtype).to(x.device)
        return u / u.norm()

    best, hvps, grads, used_delta = 0.0, 0, 0, 0.0
    eps = torch.finfo(x.dtype).eps
    for s in range(num_samples):
        if s == 0 or radius == 0:
            y = x
        else:  # uniform in the ball: direction uniform, radius ∝ U^{1/n}
            r = radius * float(torch.rand(1, generator=gen, dtype=torch.float64)) ** (1.0 / n)
            y = x + r * unit()
        d = delta if delta is not None else eps ** (1 / 3) * max(1.0, float(y.norm()))
        used_delta = max(used_delta, d)
        u, v = unit(), unit()
        for _ in range(iters):
            hp = HessianOperator.from_function(f, y + d * u)
            hm = HessianOperator.from_function(f, y - d * u)
            w = (hp.matvec(v) - hm.matvec(v)) / (2 * d)
            hvps += 2
            grads += 2
            nw = float(w.norm())
            if not math.isfinite(nw):
                raise DivergenceError("hessian_lipschitz: non-finite Hessian-vector product")
            best = max(best, nw)
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
    )
