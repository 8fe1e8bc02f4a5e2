"""The "octopus" (tube) function of Du, Jin, Lee, Jordan, Póczos, Singh 2017.

"Gradient descent can take exponential time to escape saddle points" (NeurIPS 2017),
Section 4: a C² function on ``R^d`` with d strict saddles in a chain, on which gradient
descent from a random start visits them one after another and needs time exponential in
d, while perturbed gradient descent needs time polynomial in d. Formulas: THEORY.md.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from ..errors import check_int, check_positive
from .base import CriticalPoint, Problem
from .registry import register

__all__ = ["Octopus"]


@register("octopus")
@dataclass
class Octopus(Problem):
    r"""Du et al. 2017's octopus on ``R^dim`` with parameters ``L``, ``gamma``, ``tau``.

    With ``a_j = |x_j|`` and ``i`` the first index with ``a_i ≤ 2τ``, inside the *tube*
    (``a_j ≤ τ`` for every ``j > i``) the function is exactly the paper's (THEORY.md):

    - no such ``i`` (all ``a_j > 2τ``): ``L Σ_j (a_j − 4τ)² − dν``;
    - ``a_i ≤ τ``: ``Σ_{j<i} L(a_j − 4τ)² − γx_i² + Σ_{j>i} L x_j² − (i − 1)ν``;
    - ``τ < a_i ≤ 2τ``: ``Σ_{j<i} L(a_j − 4τ)² + g₁(a_i) + g₂(a_i) x_{i+1}²
      + Σ_{j>i+1} L x_j² − (i − 1)ν``

    with ``g₁(a) = −γa² + (−14L + 10γ)(a − τ)³/(3τ) + (5L − 3γ)(a − τ)⁴/(2τ²)``,
    ``g₂(a) = −γ − (L + γ)(10u³ + 15u⁴ + 6u⁵)``, ``u = (a − 2τ)/τ``, and
    ``ν = (37L + 13γ)τ²/6``. The pieces join C² at ``a_i = τ`` and ``a_i = 2τ``.

    **Outside the tube** the paper only asserts that a smooth extension exists. This
    implementation uses the following one, which is C² on all of ``R^d``, agrees
    bit-for-bit with the formulas above inside the tube, and is mirror symmetric in every
    coordinate. Write ``f = f_1`` with the tail functions ``f_k(x_k, …, x_d)``
    (``f_{d+1} = 0``), ``q_k = −γx_k² + L Σ_{j>k} x_j²`` and the C² smoothstep
    ``S(s) = 10s³ − 15s⁴ + 6s⁵``, ``s = (a_k − τ)/τ``:

    - ``a_k ≤ τ``: ``f_k = q_k``;
    - ``τ < a_k ≤ 2τ``: ``f_k = g₁(a_k) + g₂(a_k) x_{k+1}² + L Σ_{j>k+1} x_j²
      + S(s)·(f_{k+1} − q_{k+1})``;
    - ``a_k > 2τ``: ``f_k = L(a_k − 4τ)² − ν + f_{k+1}``.

    The correction ``S(s)(f_{k+1} − q_{k+1})`` vanishes when ``a_{k+1} ≤ τ`` (there
    ``f_{k+1} = q_{k+1}``), so it only acts outside the tube; since ``g₂(a) =
    (1 − S(s))L + S(s)(−γ)``, the middle case blends ``L Σ_{j>k} x_j²`` into ``f_{k+1}``
    with weights ``1 − S`` and ``S``, and ``S(0) = S'(0) = S''(0) = 0``, ``S(1) = 1``,
    ``S'(1) = S''(1) = 0`` make the joins C². As ``g₁ + ν > 0`` on ``[τ, 2τ]``, the
    global minimum stays ``−dν``. The extension may have critical points of its own
    outside the tube; :attr:`critical_points` lists the paper's.

    **Critical points.** The strict saddles ``z_i = (4τ, …, 4τ, 0, …, 0)`` with ``i − 1``
    leading entries ``4τ`` (``i = 1 … d``; value ``−(i − 1)ν``, Hessian
    ``diag(2L, …, 2L, −2γ, 2L, …, 2L)``; for ``d = 1`` the only one, 0, is a local
    maximum) and the global minimum ``4τ·𝟙`` (value ``−dν``,
    Hessian ``2L·I``). Only the all-positive representatives are listed: flipping the sign
    of any coordinate gives another critical point of the same kind and value (2^d minima,
    ``2^(i−1)`` copies of ``z_i``).

    **Smoothness — checked.** THEORY.md (after the paper) takes
    ``ℓ = max(2L, 2γ, 4Lτ, 2γτ)`` as the step-size constant; :attr:`smoothness` returns it
    (``4e² ≈ 29.56`` at the defaults) so that ``η = 1/ℓ`` reproduces the paper's
    experiment. It does **not** bound ``‖∇²f‖`` on the whole tube: in the piece
    ``τ < a_i ≤ 2τ`` the Hessian block of ``g₁(a_i) + g₂(a_i)x_{i+1}²`` reaches ≈ 34.66 at
    the defaults (``a_i ≈ 1.25τ``, ``|x_{i+1}| = τ``; dense-Hessian maximum over random tube
    points: 34.6). At the defaults ``ℓ = 4Lτ`` holds on the tube as long as
    ``|x_{i+1}| ≤ 0.87τ`` in that piece, which covers gradient descent from
    ``[−1, 1]^d``: there ``x_{i+1}`` has shrunk to ~0 by the time ``a_i`` passes τ, and
    ``‖∇²f‖ ≤ 14.39`` (``max |g₁''|``). :attr:`tube_smoothness` gives the supremum over the
    whole tube. :attr:`hessian_lipschitz` is ``ρ = sup ‖D³f‖`` over the tube (≈ 103.7 at
    the defaults), from the closed-form third derivatives of ``g₁(a) + g₂(a)y²`` (the only
    non-quadratic piece) on a fine grid of ``[τ, 2τ] × [−τ, τ]``, rounded up by 1%.

    Evaluation is vectorized over any batch shape with a loop over the d coordinates only
    (``torch.where`` over the three cases, no per-sample branching).

    >>> p = Octopus(dim=2)
    >>> [c.kind for c in p.critical_points]
    ['saddle', 'saddle', 'minimum']
    >>> round(p.f_min, 4) == round(-2 * p.nu, 4)
    True
    """

    dim: int = 2  # type: ignore[assignment]
    L: float = math.e
    gamma: float = 1.0
    tau: float = math.e

    name = "octopus"

    def __post_init__(self) -> None:
        self.dim = check_int("dim", self.dim, minimum=1)
        self.L = check_positive("L", self.L)
        self.gamma = check_positive("gamma", self.gamma)
        self.tau = check_positive("tau", self.tau)
        L, g, t = self.L, self.gamma, self.tau
        self.nu = (37 * L + 13 * g) * t * t / 6
        self._c3 = (-14 * L + 10 * g) / (3 * t)
        self._c4 = (5 * L - 3 * g) / (2 * t * t)

    # ------------------------------------------------------------------ pieces
    def g1(self, a: torch.Tensor) -> torch.Tensor:
        """``g₁(a) = −γa² + (−14L + 10γ)(a − τ)³/(3τ) + (5L − 3γ)(a − τ)⁴/(2τ²)``."""
        t = a - self.tau
        return -self.gamma * a * a + t * t * t * (self._c3 + self._c4 * t)

    def g2(self, a: torch.Tensor) -> torch.Tensor:
        """``g₂(a) = −γ − (L + γ)(10u³ + 15u⁴ + 6u⁵)``, ``u = (a − 2τ)/τ``."""
        u = (a - 2 * self.tau) / self.tau
        return -self.gamma - (self.L + self.gamma) * u * u * u * (10 + u * (15 + 6 * u))

    def _f(self, x: torch.Tensor) -> torch.Tensor:
        # Every piece is computed for all coordinates at once; only the recursion
        # f_k = case(a_k; q_k, middle_k + S_k·gap_{k+1}, outer_k + f_{k+1}) loops over k.
        L, gam, tau = self.L, self.gamma, self.tau
        # Coordinates first, so that each coordinate's batch is contiguous.
        xt = x.movedim(-1, 0).contiguous()
        a = xt.abs()
        x2 = xt * xt
        t = a - tau
        s = t / tau
        u = s - 1
        g1 = t * t * t * (self._c3 + self._c4 * t) - gam * x2
        g2 = -gam - (L + gam) * u * u * u * (10 + u * (15 + 6 * u))
        smooth = s * s * s * (10 + s * (-15 + 6 * s))
        outer = L * (a - 4 * tau) ** 2 - self.nu
        # Exclusive suffix sums Σ_{j>k} x_j², summed from the back (no cancellation: the
        # coordinates still to escape can be 1e-300 next to O(1) ones).
        zero_row = torch.zeros_like(x2[:1])
        tail = torch.cat([x2[1:].flip(0).cumsum(0).flip(0), zero_row])
        x2_next = torch.cat([x2[1:], zero_row])
        tail2 = torch.cat([tail[1:], zero_row])
        q = L * tail - gam * x2
        middle = g1 + g2 * x2_next + L * tail2
        quad, mid = (a <= tau).unbind(0), (a <= 2 * tau).unbind(0)
        q, middle, smooth, outer = q.unbind(0), middle.unbind(0), smooth.unbind(0), outer.unbind(0)
        d = self.dim
        f = torch.where(quad[-1], q[-1], torch.where(mid[-1], middle[-1], outer[-1]))
        zero = torch.zeros_like(f)
        for k in range(d - 2, -1, -1):
            gap = torch.where(quad[k + 1], zero, f - q[k + 1])
            f = torch.where(
                quad[k], q[k], torch.where(mid[k], middle[k] + smooth[k] * gap, outer[k] + f)
            )
        return f

    # ------------------------------------------------------------------ knowledge
    @property
    def smoothness(self) -> float:
        L, g, t = self.L, self.gamma, self.tau
        return max(2 * L, 2 * g, 4 * L * t, 2 * g * t)

    @property
    def tube_smoothness(self) -> float:
        """``sup ‖∇²f‖`` over the whole tube with ``|x_j| ≤ 6τ`` (≈ 35.0 at the defaults)."""
        return _tube_constants(self.L, self.gamma, self.tau)[0]

    @property
    def hessian_lipschitz(self) -> float:
        return _tube_constants(self.L, self.gamma, self.tau)[1]

    @property
    def f_min(self) -> float:
        return -self.dim * self.nu

    @property
    def critical_points(self) -> list[CriticalPoint]:
        d, t = self.dim, self.tau
        pts = []
        for i in range(d):
            z = torch.zeros(d, dtype=torch.float64)
            z[:i] = 4 * t
            # in one dimension z_1 = 0 has Hessian (−2γ): a local maximum
            pts.append(CriticalPoint(z, "saddle" if d > 1 else "maximum", -i * self.nu))
        pts.append(
            CriticalPoint(torch.full((d,), 4 * t, dtype=torch.float64), "minimum", -d * self.nu)
        )
        return pts

    def sample_init(
        self, generator: torch.Generator | None = None, batch: int | None = None
    ) -> torch.Tensor:
        """Uniform on ``[−1, 1]^dim`` (the paper's experiment)."""
        shape = (self.dim,) if batch is None else (batch, self.dim)
        return 2 * torch.rand(shape, generator=generator, dtype=torch.float64) - 1


@functools.lru_cache(maxsize=64)
def _tube_constants(L: float, gamma: float, tau: float, n: int = 101) -> tuple[float, float]:
    """``(sup ‖∇²f‖, sup ‖D³f‖)`` over the tube, rounded up by 1%.

    Outside the piece ``τ < a_i ≤ 2τ`` the Hessian is constant with eigenvalues in
    ``{2L, −2γ}``; in it, only ``h(a, y) = g₁(a) + g₂(a)y²`` (``a = a_i``,
    ``y = x_{i+1}``, ``|y| ≤ τ``) is not quadratic. Both suprema are taken over an
    ``n × n`` grid of ``[τ, 2τ] × [−τ, τ]`` from the closed-form derivatives of ``h``; for
    the third derivative, a symmetric 3-tensor ``T`` has ``sup_{‖v‖=1} ‖T[v]‖ =
    sup_{‖v‖=1} |T[v, v, v]|`` (Banach 1938), evaluated over 180 directions.
    """
    a = torch.linspace(tau, 2 * tau, n, dtype=torch.float64)[:, None, None]
    y = torch.linspace(-tau, tau, n, dtype=torch.float64)[None, :, None]
    th = torch.linspace(0, math.pi, 181, dtype=torch.float64)[None, None, :]
    c3 = (-14 * L + 10 * gamma) / (3 * tau)
    c4 = (5 * L - 3 * gamma) / (2 * tau * tau)
    t = a - tau
    u = (a - 2 * tau) / tau
    k = -(L + gamma)
    g1_2 = -2 * gamma + 6 * c3 * t + 12 * c4 * t * t
    g1_3 = 6 * c3 + 24 * c4 * t
    g2_0 = -gamma + k * u**3 * (10 + 15 * u + 6 * u**2)
    g2_1 = k * (30 * u**2 + 60 * u**3 + 30 * u**4) / tau
    g2_2 = k * (60 * u + 180 * u**2 + 120 * u**3) / tau**2
    g2_3 = k * (60 + 360 * u + 360 * u**2) / tau**3
    # Hessian of h: [[g1'' + g2'' y², 2 g2' y], [2 g2' y, 2 g2]]
    m11, m12, m22 = g1_2 + g2_2 * y * y, 2 * g2_1 * y, 2 * g2_0
    hess = (m11 + m22).abs() / 2 + torch.sqrt(((m11 - m22) / 2) ** 2 + m12**2)
    ell = max(float(hess.max()), 2 * L, 2 * gamma)
    haaa, haay, hayy = g1_3 + g2_3 * y * y, 2 * g2_2 * y, 2 * g2_1
    c, s = torch.cos(th), torch.sin(th)
    cubic = c * c * c * haaa + 3 * c * c * s * haay + 3 * c * s * s * hayy
    return ell * 1.01, float(cubic.abs().max()) * 1.01
