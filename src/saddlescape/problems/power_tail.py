"""A convex function without a minimizer on which gradient descent needs almost ε⁻²
iterations: the O(β/ε²) bound is tight up to the exponent."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError, check_int, check_positive
from .base import Problem
from .registry import register

__all__ = ["PowerTail"]


@register("power-tail")
@dataclass
class PowerTail(Problem):
    """``f(x) = Σᵢ h(xᵢ)`` with ``h(u) = u^{1−p}/(p − 1)`` for ``u ≥ 1`` and, for ``u < 1``,
    its second-order Taylor polynomial at 1: ``1/(p − 1) − (u − 1) + (p/2)(u − 1)²``.

    The descent-lemma bound ``2β(f(x0) − f*)/ε²`` (THEORY.md, "Gradient descent on an
    ℓ-smooth function") cannot be improved in its exponent: Cartis, Gould and Toint 2010
    ("On the complexity of steepest descent, Newton's and regularized Newton's methods for
    nonconvex unconstrained optimization", SIAM J. Optim. 20(6), Section 2) build a 1-D
    function, bounded below, on which steepest descent needs ε^{−2+δ} iterations for any
    δ > 0; its iterates run off to infinity along a slowly flattening tail. This is the
    same mechanism in closed form. ``h`` is C², convex (``h'' = p·u^{−p−1} ∈ (0, p]``),
    decreasing, and ``h > 0`` with ``inf h = 0`` not attained: ``f_min = 0`` is the
    infimum, and there is no critical point.

    On ``u ≥ 1`` gradient descent with step η moves ``u ← u + η·u^{−p}``, so
    ``u^{p+1}`` grows by about ``(p + 1)η`` per step and ``|h'(u)| = u^{−p}`` falls below
    ε after ``t(ε) ≈ (ε^{−(p+1)/p} − u₀^{p+1}) / ((p + 1)η)`` iterations
    (:meth:`gd_iterations`): linear in β = 1/η and ∝ ε^{−(1+1/p)}, which tends to ε⁻²
    as p → 1 (p = 1.1 gives ε^{−1.91}), while ``f(x0) − f* ≈ 1/(p − 1)`` grows without
    bound — the price of the exponent.

    Constants on all of ``R^dim``: ℓ = p (the Hessian is diagonal with entries
    ``h''(xᵢ) ∈ (0, p]``), ρ = p(p + 1) (``|h'''| ≤ p(p + 1)``; ``h''`` is continuous at
    1). ``sample_init``: uniform on ``[0, 1]^dim``, as Cartis et al. start at 0.

    >>> from saddlescape import problems
    >>> p = problems.get("power-tail")
    >>> p.dim, p.smoothness, p.f_min, p.critical_points
    (1, 1.1, 0.0, [])
    >>> round(p.gd_iterations(eps=1e-2, lr=1 / 1.1))  # GD from x0 = 1 takes 3444
    3446
    """

    name = "power-tail"
    dim: int = 1  # type: ignore[assignment]
    p: float = 1.1

    def __post_init__(self) -> None:
        self.dim = check_int("dim", self.dim, minimum=1)
        self.p = check_positive("p", self.p)
        if self.p <= 1:
            raise ConfigError(f"p must be > 1 (f is unbounded below for p <= 1), got {self.p}")

    def _f(self, x: torch.Tensor) -> torch.Tensor:
        p = self.p
        tail = x.clamp_min(1.0).pow(1.0 - p) / (p - 1.0)
        s = x - 1.0
        head = 1.0 / (p - 1.0) - s + 0.5 * p * s * s
        return torch.where(x >= 1.0, tail, head).sum(-1)

    @property
    def smoothness(self) -> float:
        return self.p

    @property
    def hessian_lipschitz(self) -> float:
        return self.p * (self.p + 1.0)

    @property
    def f_min(self) -> float:
        return 0.0

    def sample_init(
        self, generator: torch.Generator | None = None, batch: int | None = None
    ) -> torch.Tensor:
        shape = (self.dim,) if batch is None else (check_int("batch", batch, minimum=1), self.dim)
        return torch.rand(shape, generator=generator, dtype=torch.float64)

    def gd_iterations(self, eps: float, lr: float, start: float = 1.0) -> float:
        """The continuous-time estimate of the iterations gradient descent with step ``lr``
        needs from ``u₀ = start ≥ 1`` (one coordinate) until ``|h'(u)| ≤ eps``."""
        check_positive("eps", eps)
        check_positive("lr", lr)
        if start < 1:
            raise ConfigError(f"start must be >= 1 (the tail), got {start}")
        p = self.p
        return max(0.0, (eps ** (-(p + 1) / p) - start ** (p + 1)) / ((p + 1) * lr))
