"""High-dimensional saddle families, cheap at ``d = 10⁴–10⁵`` (O(d) per evaluation).

Both are benchmarks for how saddle escape depends on the dimension (THEORY.md, "Test
functions" and "Measured here: dimension dependence"). Neither needs a dense Hessian:
their Hessians at the critical points have closed-form spectra, given by
:meth:`hessian_spectrum`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import ConfigError, check_int, check_int64
from .base import CriticalPoint, Problem
from .registry import register

__all__ = ["CubicRegularizedQuadratic", "QuarticSaddle"]


@register("quartic-saddle")
@dataclass
class QuarticSaddle(Problem):
    """``f(x, y) = ¼ Σᵢ xᵢ⁴ − y Σᵢ xᵢ + (n/2) y²`` on ``(x, y) ∈ R^n × R`` (dim = n + 1).

    A high-dimensional saddle benchmark (THEORY.md, "Test functions"); the last
    coordinate is ``y``. We know of no published source: this family is this project's
    construction, chosen so that every critical point is known in closed form in any
    dimension, the saddle 0 has exactly one negative Hessian eigenvalue (≈ −1 for all n)
    next to n − 1 flat directions along which f grows only quartically, and the two minima
    are explicit. ``∇f = 0`` forces ``xᵢ = y^{1/3}`` for all i and then ``y ∈ {0, ±1}``,
    so the critical points are exactly:

    - the strict saddle 0, Hessian ``[[0, −𝟙], [−𝟙ᵀ, n]]`` with eigenvalues
      ``(n ± √(n² + 4n))/2`` (≈ −1 and ≈ n + 1) and 0 (multiplicity n − 1);
    - the minima ``±(1, …, 1; 1)``, value ``f_min = −n/4``, Hessian eigenvalues
      ``((n + 3) ± √((n − 3)² + 4n))/2`` and 3 (multiplicity n − 1).

    On the box ``‖x‖_∞ ≤ 2`` (any y: the Hessian does not depend on y):
    ``ℓ = ((12 + n) + √((n − 12)² + 4n))/2`` (Weyl: the x-block ``diag(3xᵢ²)`` is at most
    ``12 I``) and ``ρ = 12`` (``|3xᵢ² − 3x'ᵢ²| ≤ 12|xᵢ − x'ᵢ|``). ℓ grows like n, so
    ``η = 1/ℓ`` shrinks with the dimension: this family does not isolate the dimension
    effect (see :class:`CubicRegularizedQuadratic`).

    >>> p = QuarticSaddle(n=3)
    >>> p.dim, p.f_min
    (4, -0.75)
    """

    n: int = 10
    dim_parameter = "n"  # the problem has dimension n + 1
    box = 2.0

    name = "quartic-saddle"

    def __post_init__(self) -> None:
        self.n = check_int("n", self.n, minimum=1)
        self.dim = self.n + 1

    def _f(self, x: torch.Tensor) -> torch.Tensor:
        u, y = x[..., :-1], x[..., -1]
        u2 = u * u
        return 0.25 * (u2 * u2).sum(-1) - y * u.sum(-1) + 0.5 * self.n * y * y

    @property
    def smoothness(self) -> float:
        n, c = self.n, 3 * self.box**2
        return ((c + n) + math.sqrt((n - c) ** 2 + 4 * n)) / 2

    @property
    def hessian_lipschitz(self) -> float:
        return 6 * self.box

    @property
    def f_min(self) -> float:
        return -self.n / 4

    @property
    def critical_points(self) -> list[CriticalPoint]:
        one = torch.ones(self.dim, dtype=torch.float64)
        return [
            CriticalPoint(torch.zeros(self.dim, dtype=torch.float64), "saddle", 0.0),
            CriticalPoint(one, "minimum", self.f_min),
            CriticalPoint(-one, "minimum", self.f_min),
        ]

    def hessian_spectrum(self, point: CriticalPoint) -> torch.Tensor:
        """The Hessian's eigenvalues at one of :attr:`critical_points`, ascending (closed form)."""
        _check_listed(self, point)
        n = self.n
        c = 0.0 if point.kind == "saddle" else 3.0
        mid = (n + c) / 2
        rad = math.sqrt(((n - c) / 2) ** 2 + n)
        ev = torch.full((self.dim,), c, dtype=torch.float64)
        hi = mid + rad
        ev[0], ev[-1] = n * (c - 1) / hi, hi  # λ_min = det/λ_max: no cancellation
        return ev.sort().values


@register("cubic-regularized-quadratic")
@dataclass
class CubicRegularizedQuadratic(Problem):
    """``f(x) = ½ xᵀAx + ‖x‖³/6`` with ``A = diag(−1, a₂, …, a_d)``, ``aᵢ ~ U[1, 2]``.

    The dimension-study family of THEORY.md ("Measured here: dimension dependence"), a
    cubic-regularized model in the sense of Nesterov & Polyak 2006: its ℓ, ρ and
    λ_min(∇²f(0)) = −1 do not grow with d. The ``aᵢ`` are drawn from
    ``torch.Generator().manual_seed(seed)`` (:attr:`diagonal` holds A's diagonal).
    ``∇f = (A + ‖x‖/2 · I) x`` vanishes only at 0 (strict saddle, Hessian A; a maximum
    when dim = 1) and at
    ``±2e₁`` (minima, ``f_min = −2/3``, Hessian ``diag(1, a₂ + 1, …, a_d + 1)``).
    The Hessian ``A + ½(‖x‖ I + xxᵀ/‖x‖)`` has eigenvalues in ``[−1, a_max + ‖x‖]``, so on
    the ball ``‖x‖ ≤ 2`` ``ℓ = max(1, a_max + 2) ≤ 4``; the Hessian of ``‖x‖³/6`` is
    1-Lipschitz on all of ``R^d`` (Nesterov & Polyak 2006, Lemma 1), so ``ρ = 1``.

    >>> p = CubicRegularizedQuadratic(dim=5, seed=0)
    >>> round(p.f_min, 6), [c.kind for c in p.critical_points]
    (-0.666667, ['saddle', 'minimum', 'minimum'])
    """

    dim: int = 10  # type: ignore[assignment]
    seed: int = 0
    radius = 2.0

    name = "cubic-regularized-quadratic"

    def __post_init__(self) -> None:
        self.dim = check_int("dim", self.dim, minimum=1)
        self.seed = check_int64("seed", check_int("seed", self.seed))
        gen = torch.Generator().manual_seed(self.seed)
        a = torch.empty(self.dim, dtype=torch.float64)
        a[0] = -1.0
        a[1:] = 1 + torch.rand(self.dim - 1, generator=gen, dtype=torch.float64)
        self._a = a

    @property
    def diagonal(self) -> torch.Tensor:
        """The diagonal of A: ``(−1, a₂, …, a_d)``."""
        return self._a.clone()

    def _f(self, x: torch.Tensor) -> torch.Tensor:
        r2 = (x * x).sum(-1)
        # ‖x‖³ with finite derivatives of every order at x = 0 (where the Hessian of the
        # cubic term is 0): the masked branch never sees r2 = 0.
        nonzero = r2 > 0
        safe = torch.where(nonzero, r2, torch.ones_like(r2))
        cube = torch.where(nonzero, safe * safe.sqrt(), torch.zeros_like(r2))
        return 0.5 * (self._a.to(x.dtype) * x * x).sum(-1) + cube / 6

    @property
    def smoothness(self) -> float:
        return max(1.0, float(self._a.max()) + self.radius)

    @property
    def hessian_lipschitz(self) -> float:
        return 1.0

    @property
    def f_min(self) -> float:
        return -2.0 / 3.0

    @property
    def critical_points(self) -> list[CriticalPoint]:
        e1 = torch.zeros(self.dim, dtype=torch.float64)
        e1[0] = 2.0
        origin = "saddle" if self.dim > 1 else "maximum"
        return [
            # for dim = 1, 0 has Hessian (−1): a local maximum
            CriticalPoint(torch.zeros(self.dim, dtype=torch.float64), origin, 0.0),
            CriticalPoint(e1, "minimum", self.f_min),
            CriticalPoint(-e1, "minimum", self.f_min),
        ]

    def hessian_spectrum(self, point: CriticalPoint) -> torch.Tensor:
        """The Hessian's eigenvalues at one of :attr:`critical_points`, ascending (closed form)."""
        _check_listed(self, point)
        at_origin = point.kind != "minimum"
        ev = self._a + (0.0 if at_origin else 1.0)
        if not at_origin:
            ev[0] = 1.0  # −1 + ‖x‖/2 + ‖x‖/2 along e₁
        return ev.sort().values


def _check_listed(problem: Problem, point: CriticalPoint) -> None:
    """Refuse a point that is not one of ``problem``'s listed critical points (the closed
    forms are read off the kind alone: any other point got a listed point's spectrum)."""
    x = point.x
    for c in problem.critical_points:
        if c.kind == point.kind and x.shape == c.x.shape and torch.equal(x.to(c.x.dtype), c.x):
            return
    raise ConfigError(
        f"{problem.name}: hessian_spectrum needs one of this problem's critical_points "
        f"(a {point.kind} at a point of shape {tuple(x.shape)} is not listed)"
    )
