"""Classic low-dimensional test functions with all their critical points.

Every problem here lists *all* of its critical points (to full float64 precision: the
non-trivial ones were computed by Newton's method in 40-digit arithmetic and are verified
by the tests), and states the box on which its smoothness ℓ (``-ℓI ⪯ ∇²f ⪯ ℓI``) and
Hessian-Lipschitz constant ρ hold. Formulas and reference values: ``THEORY.md``, section
"Test functions and their critical points".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import ConfigError, check_int, check_positive
from .base import CriticalPoint, Problem
from .registry import register

__all__ = [
    "Himmelblau",
    "Lee2D",
    "MonkeySaddle",
    "QuadraticSaddle",
    "Rosenbrock",
    "SixHumpCamel",
]


def _point(*coords: float) -> torch.Tensor:
    return torch.tensor(coords, dtype=torch.float64)


def _sym2_norm(a: float, b: float, c: float) -> float:
    """Spectral norm of the symmetric matrix [[a, b], [b, c]]."""
    return abs(a + c) / 2 + math.hypot((a - c) / 2, b)


def _uniform_box(
    lo: torch.Tensor, hi: torch.Tensor, generator: torch.Generator | None, batch: int | None
) -> torch.Tensor:
    shape = lo.shape if batch is None else (check_int("batch", batch, minimum=1), *lo.shape)
    u = torch.rand(shape, generator=generator, dtype=torch.float64)
    return lo + (hi - lo) * u


@register("quadratic-saddle")
@dataclass
class QuadraticSaddle(Problem):
    """``f(x) = ½ xᵀHx`` with ``H = diag(-curvature (n_negative times), positive_curvature, …)``.

    Lee, Simchowitz, Jordan, Recht 2016, "Gradient descent converges to minimizers"
    (arXiv 1602.04915), Section 2 example: gradient descent converges to the saddle 0 only
    from the span of the positive-curvature coordinates (the last ``dim - n_negative``), a
    set of measure zero. The only critical point is 0: a strict saddle when
    ``0 < n_negative < dim``, the minimum when ``n_negative = 0``, the maximum when
    ``n_negative = dim``. ℓ = max(curvature, positive_curvature) and ρ = 0 hold on all of
    ``R^dim``. Evaluation is O(dim), so any ``dim`` works.

    >>> p = QuadraticSaddle(dim=3, n_negative=1)
    >>> p(torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64)).item()
    0.5
    """

    dim: int = 2  # type: ignore[assignment]
    n_negative: int = 1
    curvature: float = 1.0
    positive_curvature: float = 1.0

    name = "quadratic-saddle"

    def __post_init__(self) -> None:
        self.dim = check_int("dim", self.dim, minimum=1)
        self.n_negative = check_int("n_negative", self.n_negative, minimum=0)
        if self.n_negative > self.dim:
            raise ConfigError(f"n_negative must be <= dim = {self.dim}, got {self.n_negative}")
        self.curvature = check_positive("curvature", self.curvature)
        self.positive_curvature = check_positive("positive_curvature", self.positive_curvature)
        h = torch.full((self.dim,), self.positive_curvature, dtype=torch.float64)
        h[: self.n_negative] = -self.curvature
        self._h = h

    @property
    def eigenvalues(self) -> torch.Tensor:
        """The diagonal of H (the Hessian everywhere), negative entries first."""
        return self._h.clone()

    def _f(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self._h.to(x.dtype) * x * x).sum(-1)

    @property
    def smoothness(self) -> float:
        if self.n_negative == 0:
            return self.positive_curvature
        if self.n_negative == self.dim:
            return self.curvature
        return max(self.curvature, self.positive_curvature)

    @property
    def hessian_lipschitz(self) -> float:
        return 0.0

    @property
    def f_min(self) -> float:
        return -math.inf if self.n_negative > 0 else 0.0

    @property
    def critical_points(self) -> list[CriticalPoint]:
        if self.n_negative == 0:
            kind = "minimum"
        elif self.n_negative == self.dim:
            kind = "maximum"
        else:
            kind = "saddle"
        return [CriticalPoint(torch.zeros(self.dim, dtype=torch.float64), kind, 0.0)]


@register("lee-2d")
@dataclass
class Lee2D(Problem):
    """``f(x, y) = ½x² + ¼y⁴ − ½y²``.

    Lee, Simchowitz, Jordan, Recht 2016 (arXiv 1602.04915), Section 2: strict saddle at
    (0, 0) whose stable set is the x-axis; minima (0, ±1) with f = −¼. The Hessian is
    diag(1, 3y² − 1), so on the box [−2, 2]² ℓ = 11 and ρ = 12 (= 6·2).
    """

    name = "lee-2d"
    box = 2.0

    def __post_init__(self) -> None:
        self.dim = 2

    def _f(self, x: torch.Tensor) -> torch.Tensor:
        u, v = x[..., 0], x[..., 1]
        v2 = v * v
        return 0.5 * u * u + 0.25 * v2 * v2 - 0.5 * v2

    @property
    def smoothness(self) -> float:
        return max(1.0, 3 * self.box**2 - 1)

    @property
    def hessian_lipschitz(self) -> float:
        return 6 * self.box

    @property
    def f_min(self) -> float:
        return -0.25

    @property
    def critical_points(self) -> list[CriticalPoint]:
        return [
            CriticalPoint(_point(0.0, 0.0), "saddle", 0.0),
            CriticalPoint(_point(0.0, 1.0), "minimum", -0.25),
            CriticalPoint(_point(0.0, -1.0), "minimum", -0.25),
        ]


@register("monkey-saddle")
@dataclass
class MonkeySaddle(Problem):
    """``f(x, y) = x³ − 3xy²``: a degenerate critical point at 0 (the Hessian vanishes).

    The classic example of a critical point that second-order information cannot classify
    (THEORY.md, Definitions). The surface ``z = x³ − 3xy²`` is the "monkey saddle" of
    differential geometry (three valleys, for the legs and the tail; Hilbert &
    Cohn-Vossen, "Geometry and the Imagination", 1932, English edition 1952), and
    Anandkumar & Ge 2016 ("Efficient approaches for escaping higher order saddle points in
    non-convex optimization", COLT) use it as the example of a degenerate saddle that
    second-order methods cannot certify: escaping needs third-order information.
    The Hessian [[6x, −6y], [−6y, −6x]] has eigenvalues ±6‖(x, y)‖ and is linear in
    (x, y): ρ = 6 on all of R², and ℓ = 12√2 on the box [−2, 2]². Unbounded below.
    """

    name = "monkey-saddle"
    box = 2.0

    def __post_init__(self) -> None:
        self.dim = 2

    def _f(self, x: torch.Tensor) -> torch.Tensor:
        u, v = x[..., 0], x[..., 1]
        return u * u * u - 3 * u * v * v

    @property
    def smoothness(self) -> float:
        return 6 * math.sqrt(2) * self.box

    @property
    def hessian_lipschitz(self) -> float:
        return 6.0

    @property
    def f_min(self) -> float:
        return -math.inf

    @property
    def critical_points(self) -> list[CriticalPoint]:
        return [CriticalPoint(_point(0.0, 0.0), "degenerate", 0.0)]


@register("rosenbrock")
@dataclass
class Rosenbrock(Problem):
    """``f(x, y) = (1 − x)² + 100(y − x²)²``, minimum (1, 1) with Hessian eigenvalues
    0.399 and 1001.6 (Rosenbrock 1960; THEORY.md). No other critical point.

    On the box [−2, 2]²: ℓ = 2901 + √(2701² + 800²) ≈ 5718.0 (λ_max grows with the
    diagonal entry 2 − 400y + 1200x² and with |−400x|, both largest at (±2, −2)), and
    ρ = 4849.41 (the maximum over |x| ≤ 2 and unit directions u of the norm of the third
    derivative D³f[u] = [[2400x·u₁ − 400u₂, −400u₁], [−400u₁, 0]], attained at |x| = 2,
    rounded up). ``sample_init``: uniform on the box.
    """

    name = "rosenbrock"
    box = 2.0

    def __post_init__(self) -> None:
        self.dim = 2

    def _f(self, x: torch.Tensor) -> torch.Tensor:
        u, v = x[..., 0], x[..., 1]
        w = v - u * u
        return (1 - u) ** 2 + 100 * w * w

    @property
    def smoothness(self) -> float:
        b = self.box
        return _sym2_norm(2 + 400 * b + 1200 * b * b, 400 * b, 200.0)

    @property
    def hessian_lipschitz(self) -> float:
        return 4849.41

    @property
    def f_min(self) -> float:
        return 0.0

    @property
    def critical_points(self) -> list[CriticalPoint]:
        return [CriticalPoint(_point(1.0, 1.0), "minimum", 0.0)]

    def sample_init(
        self, generator: torch.Generator | None = None, batch: int | None = None
    ) -> torch.Tensor:
        lo = torch.full((2,), -self.box, dtype=torch.float64)
        return _uniform_box(lo, -lo, generator, batch)


# (x, y, kind): Newton's method in 40-digit arithmetic from a 21×21 grid on [−5, 5]².
_HIMMELBLAU_POINTS = [
    (3.0, 2.0, "minimum"),
    (-2.805118086952745, 3.131312518250573, "minimum"),
    (-3.779310253377747, -3.2831859912861696, "minimum"),
    (3.5844283403304917, -1.8481265269644036, "minimum"),
    (0.08667750455539636, 2.884254701174776, "saddle"),
    (-3.0730257507643897, -0.08135304428796751, "saddle"),
    (3.385154183607021, 0.07385187983774928, "saddle"),
    (-0.12796134673068008, -1.9537149802445763, "saddle"),
    (-0.2708445906673476, -0.9230385564799815, "maximum"),
]


@register("himmelblau")
@dataclass
class Himmelblau(Problem):
    """``f(x, y) = (x² + y − 11)² + (x + y² − 7)²`` (Himmelblau 1972).

    Four minima (f = 0), four saddles and one maximum (f ≈ 181.617), listed in that order
    to full float64 precision (THEORY.md gives 6 digits). On the box [−5, 5]²:
    ℓ = 286 + √1664 ≈ 326.8 (every Hessian entry 12x² + 4y − 42, 4x + 4y,
    4x + 12y² − 26 is largest at (5, 5)) and ρ = 120.22 (maximum over the box and unit
    directions of the third-derivative norm, attained at a corner, rounded up).
    ``sample_init``: uniform on the box.
    """

    name = "himmelblau"
    box = 5.0

    def __post_init__(self) -> None:
        self.dim = 2

    def _f(self, x: torch.Tensor) -> torch.Tensor:
        u, v = x[..., 0], x[..., 1]
        return (u * u + v - 11) ** 2 + (u + v * v - 7) ** 2

    @property
    def smoothness(self) -> float:
        b = self.box
        return _sym2_norm(12 * b * b + 4 * b - 42, 8 * b, 4 * b + 12 * b * b - 26)

    @property
    def hessian_lipschitz(self) -> float:
        return 120.22

    @property
    def f_min(self) -> float:
        return 0.0

    @property
    def critical_points(self) -> list[CriticalPoint]:
        return [_critical(self, x, y, kind) for x, y, kind in _HIMMELBLAU_POINTS]

    def sample_init(
        self, generator: torch.Generator | None = None, batch: int | None = None
    ) -> torch.Tensor:
        lo = torch.full((2,), -self.box, dtype=torch.float64)
        return _uniform_box(lo, -lo, generator, batch)


# (x, y, kind) for one of each ± pair (the function is odd-symmetric: f(−p) = f(p)); the
# saddle at 0 is its own mirror. Newton's method in 40-digit arithmetic from a 25×17 grid
# on [−3, 3] × [−2, 2]; 6 minima, 2 maxima and 7 saddles in all.
_CAMEL_PAIRS = [
    (0.08984201310031806, -0.7126564030207396, "minimum"),  # global, f = −1.0316284534898774
    (1.703606714969981, -0.7960835686726251, "minimum"),  # f = −0.21546382438371764
    (1.6071047529201972, 0.5686514548841314, "minimum"),  # f = 2.1042503103112584
    (1.2302298765166526, 0.16233458445899496, "maximum"),  # f = 2.496295351023577
    (1.1092053368047865, -0.7682680925095399, "saddle"),  # f = 0.5437186009781851
    (1.2960702671671092, 0.6050843880386585, "saddle"),  # f = 2.22947081802986
    (1.6380679841897785, 0.22867406904439408, "saddle"),  # f = 2.2293571975307147
]


@register("six-hump-camel")
@dataclass
class SixHumpCamel(Problem):
    """``f(x, y) = (4 − 2.1x² + x⁴/3)x² + xy + (−4 + 4y²)y²`` (Dixon & Szegő 1978).

    Symmetric under (x, y) → (−x, −y). Fifteen critical points: 6 minima (global pair
    ±(0.0898, −0.7127) with f = −1.0316284534898774), 2 maxima and 7 saddles (one at 0 with
    Hessian eigenvalues ±√65 ≈ ±8.062), listed minima first, then maxima, then saddles, by
    increasing value within a kind. On the box [−3, 3] × [−2, 2]: ℓ = (591.2 + 184)/2 +
    √(203.6² + 1) ≈ 591.2 (the Hessian is [[8 − 25.2x² + 10x⁴, 1], [1, −8 + 48y²]]) and
    ρ = 928.8 (the third derivative is diag(40x³ − 50.4x, 96y) along each axis, largest
    at x = 3). ``sample_init``: uniform on the box.
    """

    name = "six-hump-camel"
    box = (3.0, 2.0)

    def __post_init__(self) -> None:
        self.dim = 2

    def _f(self, x: torch.Tensor) -> torch.Tensor:
        u, v = x[..., 0], x[..., 1]
        u2, v2 = u * u, v * v
        return (4 - 2.1 * u2 + u2 * u2 / 3) * u2 + u * v + (-4 + 4 * v2) * v2

    @property
    def smoothness(self) -> float:
        bx, by = self.box
        fxx = 8 - 25.2 * bx**2 + 10 * bx**4
        fyy = -8 + 48 * by**2
        return _sym2_norm(fxx, 1.0, fyy)

    @property
    def hessian_lipschitz(self) -> float:
        bx, by = self.box
        return max(40 * bx**3 - 50.4 * bx, 96 * by)

    @property
    def f_min(self) -> float:
        return self.critical_points[0].value

    @property
    def critical_points(self) -> list[CriticalPoint]:
        pts = []
        for x, y, kind in _CAMEL_PAIRS:
            pts += [_critical(self, x, y, kind), _critical(self, -x, -y, kind)]
        pts.append(_critical(self, 0.0, 0.0, "saddle"))
        order = {"minimum": 0, "maximum": 1, "saddle": 2}
        return sorted(pts, key=lambda c: (order[c.kind], c.value))

    def sample_init(
        self, generator: torch.Generator | None = None, batch: int | None = None
    ) -> torch.Tensor:
        hi = torch.tensor(self.box, dtype=torch.float64)
        return _uniform_box(-hi, hi, generator, batch)


def _critical(problem: Problem, x: float, y: float, kind: str) -> CriticalPoint:
    p = _point(x, y)
    return CriticalPoint(p, kind, float(problem.f(p)))  # type: ignore[arg-type]
