"""The "octopus" (tube) function of Du, Jin, Lee, Jordan, Póczos, Singh 2017.

"Gradient descent can take exponential time to escape saddle points" (NeurIPS 2017),
Section 4: a C² function on ``R^d`` with d strict saddles in a chain, on which gradient
descent from a random start visits them one after another and needs time exponential in
d, while perturbed gradient descent needs time polynomial in d. Formulas: THEORY.md.
"""

from __future__ import annotations

import functools
import math
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, check_int, check_positive
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
    ``2^(i−1)`` copies of ``z_i``); :meth:`align` maps x to ``|x|`` for distances to them.

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
    (``torch.where`` over the three cases, no per-sample branching). When a first-order
    graph is built (``f(X).sum().backward()``), an autograd.Function computes the same
    values and back-propagates the analytic gradient (reverse mode by hand over the pieces
    above; small float64 batches in numpy), 3–6× faster than autograd through the ~100 small
    ops; double backward and torch.func transforms differentiate the plain-autograd graph.

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
        if t * t < sys.float_info.min:
            raise ConfigError(f"tau must be >= 1e-154 (τ² underflows in float64), got {t!r}")
        self.nu = (37 * L + 13 * g) * t * t / 6
        self._c3 = (-14 * L + 10 * g) / (3 * t)
        self._c4 = (5 * L - 3 * g) / (2 * t * t)
        if not all(math.isfinite(v) for v in (self.nu, self._c3, self._c4)):
            # ν or a coefficient of g₁ overflows: f_min would be −inf, gradients nan
            raise ConfigError(
                f"L = {L!r}, gamma = {g!r}, tau = {t!r} overflow float64 "
                f"(ν = (37L + 13γ)τ²/6 = {self.nu!r}); use smaller parameters"
            )

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
        # With a first-order graph to build (gradient descent's ``f(X).sum().backward()``),
        # an autograd.Function with the analytic gradient replaces the bookkeeping of ~100
        # tiny ops. Under torch.func transforms (hessian, vmap, jvp), which such a Function
        # would need extra rules for, the pure-autograd path runs instead; both compute f
        # with the same operations in the same order, so the values are the same doubles.
        if (
            x.requires_grad
            and torch.is_grad_enabled()
            and not torch._C._are_functorch_transforms_active()
        ):
            return _OctopusValue.apply(x, self)
        return self._f_autograd(x)

    def _f_autograd(self, x: torch.Tensor) -> torch.Tensor:
        """f through plain autograd (reference for the analytic gradient; any order)."""
        # Coordinates first, so that each coordinate's batch is contiguous.
        return self._evaluate(x.movedim(-1, 0).contiguous(), _TORCH)[0]

    def _evaluate(self, xt: Any, xp: type, keep: bool = False) -> tuple[Any, dict | None]:
        """f at ``xt`` (coordinates first; torch tensor or, with ``xp = _NUMPY``, numpy
        array), and with ``keep`` the pieces that :meth:`_gradient` needs."""
        # Every piece is computed for all coordinates at once; only the recursion
        # f_k = case(a_k; q_k, middle_k + S_k·gap_{k+1}, outer_k + f_{k+1}) loops over k.
        L, gam, tau = self.L, self.gamma, self.tau
        a = abs(xt)
        x2 = xt * xt
        t = a - tau
        s = t / tau
        u = s - 1
        tt = t * t
        gx2 = gam * x2
        g1 = tt * t * (self._c3 + self._c4 * t) - gx2
        g2 = -gam - (L + gam) * u * u * u * (10 + u * (15 + 6 * u))
        smooth = s * s * s * (10 + s * (-15 + 6 * s))
        a4 = a - 4 * tau
        outer = L * a4**2 - self.nu
        # Exclusive suffix sums Σ_{j>k} x_j², summed from the back (no cancellation: the
        # coordinates still to escape can be 1e-300 next to O(1) ones).
        zero_row = xp.zeros_row(x2)
        tail = xp.cat([xp.flip(xp.cumsum(xp.flip(x2[1:]))), zero_row])
        x2_next = xp.cat([x2[1:], zero_row])
        tail2 = xp.cat([tail[1:], zero_row])
        q = L * tail - gx2
        middle = g1 + g2 * x2_next + L * tail2
        quad_t, mid_t = a <= tau, a <= 2 * tau
        d = self.dim
        if xp is _NUMPY:
            # Small float64 batches (numpy): the same recursion, element by element on Python
            # floats (IEEE doubles, one rounding per operation as in torch and numpy),
            # costs a few µs instead of seven array calls per coordinate.
            rows = (v.reshape(d, -1).tolist() for v in (quad_t, mid_t, q, middle, smooth, outer))
            f_rows, gap_rows = _recursion_on_floats(*rows)
            f = xp.array(f_rows, xt).reshape(xt.shape[1:])
            gap = xp.array(gap_rows, xt).reshape(xt.shape)
        else:
            quad, mid, qs, middles = list(quad_t), list(mid_t), list(q), list(middle)
            smooths, outers = list(smooth), list(outer)
            f = xp.where(quad[-1], qs[-1], xp.where(mid[-1], middles[-1], outers[-1]))
            zero = xp.zeros_like(f)
            gaps = [zero] * d  # gap_{k+1} = f_{k+1} − q_{k+1} (0 where a_{k+1} ≤ τ), row k
            for k in range(d - 2, -1, -1):
                gap = xp.where(quad[k + 1], zero, f - qs[k + 1])
                gaps[k] = gap
                f = xp.where(
                    quad[k],
                    qs[k],
                    xp.where(mid[k], middles[k] + smooths[k] * gap, outers[k] + f),
                )
            if not keep:
                return f, None
            gap = xp.stack(gaps)
        pieces = dict(
            xt=xt, a4=a4, t=t, tt=tt, s=s, u=u, g2=g2, smooth=smooth, x2_next=x2_next,
            quad=quad_t, mid=mid_t, gap=gap,
        )  # fmt: skip
        return f, pieces

    def _gradient(self, p: dict, xp: type) -> Any:
        """∇f (coordinates first) from :meth:`_evaluate`'s pieces, by reverse mode by hand.

        With ``w_k = ∂f/∂f_k`` (``w_1 = 1``, ``w_{k+1} = w_k·c_k``, ``c_k`` = 0, ``S_k``
        (0 if ``a_{k+1} ≤ τ``) or 1 in the three cases) each piece's weight is ``w_k`` in
        its own case; ``q_{k+1}`` also enters ``gap_{k+1}`` with weight ``−w_k S_k``.
        Then ``∂f/∂x_j = 2x_j·∂f/∂(x_j²) + sign(x_j)·∂f/∂a_j``.
        """
        L, gam, tau = self.L, self.gamma, self.tau
        xt, quad, mid, smooth = p["xt"], p["quad"], p["mid"], p["smooth"]
        mid_only = mid & ~quad
        zero_row = xp.zeros_row(xt)
        false_row = xp.zeros_row(quad)
        not_quad_next = xp.cat([~quad[1:], false_row])
        c = xp.where(quad, 0.0, xp.where(mid_only, xp.where(not_quad_next, smooth, 0.0), 1.0))
        w = xp.cat([zero_row + 1.0, xp.cumprod(c[:-1])])
        prev_mid = xp.cat([false_row, mid_only[:-1]])
        wq = xp.where(quad, w, xp.where(prev_mid, -w, 0.0))  # weight of q_k
        wm = xp.where(mid_only, w, 0.0)  # weight of middle_k
        # ∂f/∂(x_j²) = L Σ_{k<j} wq_k + L Σ_{k<j−1} wm_k − γ(wq_j + wm_j) + wm_{j−1} g2_{j−1}
        wm_prev = xp.cat([zero_row, wm[:-1]])
        before = xp.cat([zero_row, xp.cumsum((wq + wm_prev)[:-1])])
        wg2_prev = xp.cat([zero_row, (wm * p["g2"])[:-1]])
        d_x2 = L * before - gam * (wq + wm) + wg2_prev
        # ∂f/∂a_j in the middle piece (g₁, g₂, smoothstep; with s(1 − s) = −su) and outer
        t, su = p["t"], p["s"] * p["u"]
        d_mid = p["tt"] * (3 * self._c3 + 4 * self._c4 * t) + su * su * (
            (-30 * (L + gam) / tau) * p["x2_next"] + (30 / tau) * p["gap"]
        )
        d_a = w * xp.where(mid_only, d_mid, xp.where(mid, 0.0, (2 * L) * p["a4"]))
        return 2 * xt * d_x2 + xp.sign(xt) * d_a

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
        if d * (d + 1) > _MAX_LISTED_ENTRIES:
            raise ConfigError(
                f"octopus lists its d + 1 critical points as dense vectors: dim = {d} would "
                f"need {8 * d * (d + 1) / 1e9:.3g} GB; use dim <= {_MAX_LISTED_DIM}"
            )
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

    def align(self, x: torch.Tensor, point: torch.Tensor) -> torch.Tensor:
        """``|x|``: f is even in every coordinate (it depends on ``x_j`` only through
        ``|x_j|`` and ``x_j²``), and the listed critical points are the all-positive
        representatives, so ``‖|x| − c‖`` is the distance from x to c's sign-flip orbit."""
        return x.abs()

    def sample_init(
        self, generator: torch.Generator | None = None, batch: int | None = None
    ) -> torch.Tensor:
        """Uniform on ``[−1, 1]^dim`` (the paper's experiment)."""
        shape = (self.dim,) if batch is None else (check_int("batch", batch, minimum=1), self.dim)
        return 2 * torch.rand(shape, generator=generator, dtype=torch.float64) - 1


#: Most float64 entries :attr:`Octopus.critical_points` may allocate (d·(d + 1); 800 MB).
_MAX_LISTED_ENTRIES = 10**8
_MAX_LISTED_DIM = 9999  # the largest d with d·(d + 1) <= _MAX_LISTED_ENTRIES

#: Largest float64 input (elements) computed in numpy, the recursion on Python floats.
_NUMPY_MAX = 1024


def _recursion_on_floats(
    quad: list, mid: list, q: list, middle: list, smooth: list, outer: list
) -> tuple[list[float], list[list[float]]]:
    """:meth:`Octopus._evaluate`'s recursion on rows of Python floats: ``(f, gap rows)``.

    Each row holds one coordinate's values over the batch; the operations and their order
    are those of the torch loop, so the results are the same doubles.
    """
    d = len(q)
    f = [
        qv if qd else (mv if md else ov)
        for qd, md, qv, mv, ov in zip(quad[-1], mid[-1], q[-1], middle[-1], outer[-1], strict=True)
    ]
    gaps = [[0.0] * len(f) for _ in range(d)]
    for k in range(d - 2, -1, -1):
        gap = [0.0 if qd else fv - qv for qd, fv, qv in zip(quad[k + 1], f, q[k + 1], strict=True)]
        gaps[k] = gap
        f = [
            qv if qd else (mv + sv * gv if md else ov + fv)
            for qd, md, qv, mv, sv, gv, ov, fv in zip(
                quad[k], mid[k], q[k], middle[k], smooth[k], gap, outer[k], f, strict=True
            )
        ]
    return f, gaps


class _TORCH:
    """Array operations of :meth:`Octopus._evaluate` on torch tensors (coordinates first)."""

    where = staticmethod(torch.where)
    zeros_like = staticmethod(torch.zeros_like)
    stack = staticmethod(torch.stack)
    sign = staticmethod(torch.sign)
    cat = staticmethod(torch.cat)

    @staticmethod
    def zeros_row(v: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(v[:1])

    @staticmethod
    def flip(v: torch.Tensor) -> torch.Tensor:
        return v.flip(0)

    @staticmethod
    def cumsum(v: torch.Tensor) -> torch.Tensor:
        return v.cumsum(0)

    @staticmethod
    def cumprod(v: torch.Tensor) -> torch.Tensor:
        return v.cumprod(0)


class _NUMPY:
    """The same operations on numpy float64 arrays: about a third of torch's per-call cost
    on the tiny batches of gradient descent, with the same IEEE double arithmetic."""

    where = staticmethod(np.where)
    zeros_like = staticmethod(np.zeros_like)
    stack = staticmethod(np.stack)
    sign = staticmethod(np.sign)
    cat = staticmethod(np.concatenate)

    @staticmethod
    def zeros_row(v: np.ndarray) -> np.ndarray:
        return np.zeros_like(v[:1])

    @staticmethod
    def flip(v: np.ndarray) -> np.ndarray:
        return v[::-1]

    @staticmethod
    def cumsum(v: np.ndarray) -> np.ndarray:
        return np.cumsum(v, axis=0)

    @staticmethod
    def cumprod(v: np.ndarray) -> np.ndarray:
        return np.cumprod(v, axis=0)

    @staticmethod
    def array(rows: list, like: np.ndarray) -> np.ndarray:
        return np.array(rows, dtype=like.dtype)


class _OctopusValue(torch.autograd.Function):
    """f with the analytic gradient of :meth:`Octopus._gradient` as its backward.

    Small float64 CPU batches are computed in numpy (same doubles, cheaper calls). The
    backward is differentiable: with ``create_graph`` it recomputes the gradient by
    autograd through :meth:`Octopus._f_autograd`, so double backward (HVPs, Hessians)
    sees the same graph as before.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, problem: Octopus) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.problem = problem
        if x.dtype == torch.float64 and x.is_cpu and _NUMPY_MAX >= x.numel():
            ctx.xp = _NUMPY
            with np.errstate(all="ignore"):  # overflow gives inf silently, as in torch
                f, ctx.pieces = problem._evaluate(x.detach().numpy().T, _NUMPY, keep=True)
            return torch.from_numpy(np.array(f, dtype=np.float64))
        ctx.xp = _TORCH
        f, ctx.pieces = problem._evaluate(x.movedim(-1, 0).contiguous(), _TORCH, keep=True)
        return f

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors  # (raises if x was modified in place since forward)
        if torch.is_grad_enabled():  # create_graph=True: keep the result differentiable
            (g,) = torch.autograd.grad(ctx.problem._f_autograd(x).sum(), x, create_graph=True)
        elif ctx.xp is _NUMPY:
            with np.errstate(all="ignore"):
                g = torch.from_numpy(
                    np.ascontiguousarray(ctx.problem._gradient(ctx.pieces, _NUMPY).T)
                )
        else:
            g = ctx.problem._gradient(ctx.pieces, _TORCH).movedim(0, -1)
        return grad_out.unsqueeze(-1) * g, None


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
