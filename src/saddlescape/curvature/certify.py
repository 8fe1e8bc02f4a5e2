"""Second-order stationarity certificates (Jin, Ge, Netrapalli, Kakade, Jordan 2017,
arXiv 1703.00887, Definition 4: an ε-second-order stationary point has
``‖∇f(x)‖ ≤ ε`` and ``λ_min(∇²f(x)) ≥ −√(ρε)``).

:func:`certify` classifies a point with thresholds ``ε`` (gradient) and ``τ`` (curvature;
``τ = √(ρε)`` when ``ρ`` is given, as in the ε-SOSP definition):

==================  ============================================================
``kind``            condition (checked in this order)
==================  ============================================================
"not stationary"    ``‖∇f‖ > ε``
"saddle"            ``λ_min < −τ`` and ``λ_max ≥ −τ``: a strict saddle (Jin et al. 2017:
                    a negative eigenvalue), whatever the sign of ``λ_max``
                    (:attr:`Certificate.positive_curvature` says whether ``λ_max > τ``)
"undecided"         ``‖∇f‖ ≤ ε``, but the Lanczos budget (``max_hvps``) ran out before
                    second-order information decided among the kinds below;
                    ``lambda_min``/``lambda_max`` are then only Ritz bounds
                    (``λ_min ≤ lambda_min``, ``λ_max ≥ lambda_max``)
"minimum"           ``λ_min > τ`` (a strict local minimum: the Hessian is positive
                    definite beyond the threshold)
"maximum"           ``λ_max < −τ`` (a strict local maximum)
"degenerate"        anything else: some eigenvalue is within ``τ`` of 0, so second-order
                    information cannot classify the point (e.g. the monkey saddle
                    ``x³ − 3xy²`` at 0, or ``x² + y⁴`` at 0: a minimum it cannot prove)
==================  ============================================================

The comparisons with ``±τ`` hold up to rounding (``1e-13·‖H‖``, or the eps of the
operator's dtype times ``‖H‖`` if coarser: 1.2e-7 for float32): an extreme eigenvalue
equal to ``−τ`` or ``τ`` within it — ``τ = 0`` at a point with an exactly flat
direction — is "degenerate", never a strict saddle or minimum decided by the sign of a
rounding error.

"not stationary" and "saddle" are always decided: the gradient is computed exactly, and a
strict saddle is proven by interlacing (below) even when the budget runs out. "degenerate"
is reserved for points where no eigenvalue decides: none below ``−τ``, and not all above
``τ``. Every other kind needs converged extreme eigenvalues; without them the certificate
says "undecided" (and :attr:`Certificate.converged` is False).

An ε-SOSP in Jin et al.'s sense is a point that is not "not stationary" and has
``λ_min ≥ −τ``: kind "minimum", or "degenerate" without a negative-curvature direction
(see :attr:`Certificate.is_sosp`; never when "undecided").

**Early decisions.** Lanczos Ritz values interlace the spectrum (Cauchy): ``θ_min ≥ λ_min``
and ``θ_max ≤ λ_max`` at every step. So ``θ_min < −τ`` *proves* ``λ_min < −τ`` and the
one-sided question stops at once (:func:`has_negative_curvature`); likewise a saddle is
proven as soon as ``θ_min < −τ`` and ``θ_max ≥ −τ`` (``λ_max ≥ θ_max`` rules out a maximum).
Deciding ``λ_min ≥ −τ`` needs convergence:
Lanczos then runs until each extreme Ritz value has residual ``≤ tol·‖H‖`` *and* at most half
its distance to the thresholds ``±τ`` (the eigenvalue estimates are within their residuals,
``|λ − θ| ≤ ‖r‖``, so a loose tolerance cannot flip the decision).
For an early decision the reported ``lambda_min``/``lambda_max`` are the
Ritz values at that moment (upper/lower bounds of the true ones).

>>> import torch
>>> from saddlescape.curvature import certify
>>> f = lambda x: x[0] ** 2 - x[1] ** 2
>>> c = certify(f, torch.zeros(2, dtype=torch.float64), eps=1e-6, tau=1e-3, seed=0)
>>> c.kind, round(c.lambda_min, 6), round(c.lambda_max, 6)
('saddle', -2.0, 2.0)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ConfigError, CurvatureError, check_int, check_positive
from ._progress import CurvatureProgress
from .lanczos import check_tolerance, lanczos
from .operators import HessianOperator

__all__ = [
    "Certificate",
    "NegativeCurvature",
    "certify",
    "certify_model",
    "has_negative_curvature",
]

KINDS: tuple[str, ...] = (
    "not stationary",
    "saddle",
    "undecided",
    "minimum",
    "maximum",
    "degenerate",
)


def _check_budget(tol: float, max_hvps: int | None) -> tuple[float, int | None]:
    """``tol`` (> 0, finite) and ``max_hvps`` (an integer ≥ 1 or None), validated."""
    tol = check_positive("tol", tol)
    if max_hvps is not None:
        max_hvps = check_int("max_hvps", max_hvps, minimum=1)
    return tol, max_hvps


@dataclass(frozen=True)
class NegativeCurvature:
    """Answer to "is ``λ_min(H) < −τ``?".

    ``negative`` is True when proven (a Ritz value below ``−τ``, which bounds ``λ_min`` from
    above), False when Lanczos converged with every Ritz value ``≥ −τ`` (up to its tolerance),
    and None when the budget ran out undecided. ``lambda_min`` is the smallest Ritz value,
    ``residual`` its residual, ``direction`` its unit Ritz vector (float64) when negative;
    ``hvps``, ``passes`` (over the data) and ``seconds`` the cost.
    """

    negative: bool | None
    tau: float
    lambda_min: float
    residual: float
    direction: torch.Tensor | None
    hvps: int
    seconds: float
    passes: int = 0


def has_negative_curvature(
    op: Any,
    tau: float,
    tol: float = 1e-3,
    max_hvps: int | None = None,
    seed: int | None = None,
    v0: torch.Tensor | None = None,
    *,
    progress: bool = False,
    callback: Callable[[CurvatureProgress], Any] | None = None,
) -> NegativeCurvature:
    """Decide whether ``λ_min(op) < −tau``, stopping as soon as it is decided.

    Runs :func:`~saddlescape.curvature.lanczos` for the smallest eigenvalue and stops at the
    first step whose smallest Ritz value is below ``−tau`` (a proof, by interlacing);
    otherwise it runs until that value is settled relative to ``−tau`` with residual
    ``≤ tol·‖H‖`` (``‖H‖`` estimated), or until ``max_hvps`` products (default as in
    :func:`~saddlescape.curvature.lanczos`) are spent (``negative=None`` then).
    """
    t0 = time.perf_counter()
    tau = check_positive("tau", tau, allow_zero=True)
    tol, max_hvps = _check_budget(tol, max_hvps)
    check_tolerance(tol, op)
    dtype = getattr(op, "dtype", torch.float64)
    seen = [0.0]  # the largest scale estimate seen by ``stop``

    def stop(theta: torch.Tensor, res: torch.Tensor, scale: float) -> bool:
        seen[0] = max(seen[0], scale)
        i = int(torch.argmin(theta))
        if float(theta[i]) < -tau - _rounding(scale, dtype):
            return True
        return _settled(float(theta[i]), float(res[i]), (-tau,), tol, scale)

    r = lanczos(
        op,
        k=1,
        which="smallest",
        tol=0.0,
        max_hvps=max_hvps,
        seed=seed,
        v0=v0,
        stop=stop,
        progress=progress,
        callback=callback,
    )
    lam, res = float(r.eigenvalues[0]), float(r.residuals[0])
    # ``stop`` is not consulted at the step that spends the budget: judge the final Ritz pair
    # here (with a scale ≤ the true estimate, so at most stricter than ``stop``)
    if lam < -tau - _rounding(max(seen[0], abs(lam)), dtype):
        negative: bool | None = True
    elif r.converged or _settled(lam, res, (-tau,), tol, max(seen[0], abs(lam))):
        negative = False
    else:
        negative = None
    return NegativeCurvature(
        negative=negative,
        tau=tau,
        lambda_min=lam,
        residual=res,
        direction=r.eigenvectors[:, 0].clone() if negative else None,
        hvps=r.hvps,
        seconds=time.perf_counter() - t0,
        passes=r.passes,
    )


@dataclass(frozen=True)
class Certificate:
    """What is known about a point at second order (see the module docstring for ``kind``).

    ``grad_norm = ‖∇f‖``; ``lambda_min``/``lambda_max`` Ritz estimates of the extreme Hessian
    eigenvalues (with ``residual_min``/``residual_max``; Ritz bounds ``λ_min ≤ lambda_min`` and
    ``λ_max ≥ lambda_max`` when the decision came early or not at all);
    ``negative_curvature_direction`` a unit vector ``d`` with ``dᵀ∇²f d = lambda_min < −τ`` when
    one was found (float64), else None; ``eps``, ``tau`` (and ``rho`` when given or
    estimated) the thresholds; ``rho_estimated`` True when ρ was not given but estimated
    here (:func:`~saddlescape.curvature.hessian_lipschitz`, and ``τ = √(ρ̂ε)``);
    ``converged`` False when the HVP budget ran out before the curvature question was decided
    (the kind is then "undecided" or "not stationary"); ``hvps``, ``passes`` (over the data)
    and ``seconds`` the cost (the gradient not included; the ρ estimate's products included,
    its passes at other points not); ``value`` ``f`` at the point.
    """

    kind: str
    grad_norm: float
    lambda_min: float
    lambda_max: float
    eps: float
    tau: float
    rho: float | None
    negative_curvature_direction: torch.Tensor | None
    residual_min: float
    residual_max: float
    converged: bool
    hvps: int
    seconds: float
    value: float | None = None
    rho_estimated: bool = False
    passes: int = 0

    @property
    def positive_curvature(self) -> bool:
        """True when some eigenvalue is proven above ``τ`` (``λ_max ≥ lambda_max > τ``): a
        saddle with both signs of curvature, or a point with an ascent direction."""
        return self.lambda_max > self.tau

    @property
    def is_sosp(self) -> bool:
        """True for a proven ε-second-order stationary point (Jin et al. 2017): kind
        "minimum", or "degenerate" with ``λ_min ≥ −τ``; False when "undecided"."""
        return (
            self.kind in ("minimum", "degenerate")
            and self.grad_norm <= self.eps
            and self.lambda_min >= -self.tau
        )

    def summary(self) -> str:
        """One line: kind, gradient norm and curvature."""
        how = f", ρ estimated {self.rho:.3g}" if self.rho_estimated else ""
        return (
            f"{self.kind}: ‖∇f‖ = {self.grad_norm:.3g} (ε = {self.eps:.3g}), "
            f"λ_min = {self.lambda_min:.6g}, λ_max = {self.lambda_max:.6g} "
            f"(τ = {self.tau:.3g}{how}); {self.hvps} HVPs, {self.seconds:.3g} s"
        )


def _rounding(scale: float, dtype: torch.dtype = torch.float64) -> float:
    """The rounding level of Ritz values from products in ``dtype`` on a spectrum of scale
    ``scale``: Ritz values within it of a threshold are on it (interlacing holds up to
    rounding only, so a Ritz value ``1e-16`` below ``−τ`` proves nothing about ``λ_min``,
    nor one ``3e-8`` below it from float32 products)."""
    return max(1e-13, torch.finfo(dtype).eps) * max(scale, 1e-300)


def _settled(
    theta: float, res: float, thresholds: tuple[float, ...], tol: float, scale: float
) -> bool:
    """Is the Ritz value ``theta`` (residual ``res``) accurate enough to place its eigenvalue
    relative to each threshold? Needs ``res ≤ tol·scale`` and ``res ≤ ½·|theta − t|`` for
    every threshold ``t`` (the residual bounds the eigenvalue error), so a tolerance that is
    loose compared with ``τ`` cannot flip a decision. A value within rounding of a threshold
    settles (no more products can move it) and is classified as on it."""
    floor = _rounding(scale)
    return res <= tol * scale and all(res <= max(0.5 * abs(theta - t), floor) for t in thresholds)


def _tau(eps: float, rho: float | None, tau: float | None) -> tuple[float, float | None]:
    if rho is not None and tau is not None:
        raise ConfigError("give one of rho (then τ = √(ρ·ε)) or tau, not both")
    if rho is not None:
        rho = check_positive("rho", rho, allow_zero=True)
        return math.sqrt(rho * eps), rho
    return check_positive("tau", tau, allow_zero=True), None  # type: ignore[arg-type]


def classify(
    grad_norm: float,
    lambda_min: float,
    lambda_max: float,
    eps: float,
    tau: float,
    margin: float = 0.0,
) -> str:
    """The certificate kind for these numbers, taken as exact up to ``margin`` (the table in
    the module docstring; never "undecided", which :func:`certify` reports when the numbers
    are only bounds). An eigenvalue within ``margin`` of ``±τ`` counts as on the threshold,
    so it proves neither a strict saddle (``λ_min < −τ``) nor a minimum (``λ_min > τ``)."""
    if not grad_norm <= eps:
        return "not stationary"
    if lambda_min < -tau - margin:
        return "maximum" if lambda_max < -tau - margin else "saddle"
    if lambda_min > tau + margin:
        return "minimum"
    return "degenerate"


def certify(
    f: Callable[[torch.Tensor], torch.Tensor] | HessianOperator,
    x: torch.Tensor | None = None,
    *,
    eps: float,
    rho: float | None = None,
    tau: float | None = None,
    tol: float = 1e-3,
    max_hvps: int | None = None,
    seed: int | None = 0,
    method: str = "auto",
    progress: bool = False,
    callback: Callable[[CurvatureProgress], Any] | None = None,
) -> Certificate:
    """Certify the point ``x`` of the function ``f`` (or the point of a
    :class:`HessianOperator`, with ``x`` omitted) as one of :data:`KINDS`.

    ``eps``: gradient threshold ε; ``rho`` (τ = √(ρε), Jin et al. 2017) or ``tau`` — with
    neither, ρ is estimated on the ball of radius ``0.1·max(1, ‖x‖)`` around the point
    (:func:`~saddlescape.curvature.hessian_lipschitz` at the point and 3 random points of
    the ball, along the extreme eigen-directions; a lower bound, so τ errs small) and the
    certificate says so (``rho_estimated``); for control, estimate ρ yourself and pass
    it. ``tol`` (> 0): Lanczos tolerance relative to ``‖H‖`` (eigenvalues within about
    ``tol·‖H‖``); ``max_hvps`` (≥ 1): product budget (default as in
    :func:`~saddlescape.curvature.lanczos`; when it runs out undecided the kind is
    "undecided"); ``seed``: Lanczos start. ``progress``/``callback``: as for
    :func:`~saddlescape.curvature.lanczos`.

    >>> import torch
    >>> ev = torch.cat([torch.tensor([-3e-3]), torch.linspace(0.01, 2.0, 299)]).double()
    >>> op = HessianOperator.from_function(
    ...     lambda x: 0.5 * (ev * x * x).sum(), torch.zeros(300, dtype=torch.float64))
    >>> c = certify(op, eps=1e-6, tau=1e-3, max_hvps=10)
    >>> c.kind, c.converged, c.is_sosp
    ('undecided', False, False)
    """
    t0 = time.perf_counter()
    eps = check_positive("eps", eps, allow_zero=True)
    estimate = rho is None and tau is None
    tau_, rho_ = _tau(eps, rho, tau) if not estimate else (0.0, None)
    tol, max_hvps = _check_budget(tol, max_hvps)
    if isinstance(f, HessianOperator):
        if x is not None:
            raise ConfigError("x must be omitted when certifying a HessianOperator")
        op = f
    elif callable(f):
        if x is None:
            raise ConfigError("certify(f, x, ...) needs the point x")
        op = HessianOperator.from_function(f, x, method=method)
    else:
        raise CurvatureError(
            f"certify needs a function or a HessianOperator, got {type(f).__name__}"
        )
    check_tolerance(tol, op)
    grad_norm = float(torch.linalg.vector_norm(op.gradient().double()))
    hvps0, passes0 = op.hvps, op.passes
    extra = 0
    if estimate:
        from .smoothness import hessian_lipschitz

        radius = 0.1 * max(1.0, float(op.point.norm()))
        est = hessian_lipschitz(op, radius=radius, num_samples=4, iters=4, seed=seed)
        rho_, extra = est.rho, est.hvps
        tau_ = math.sqrt(rho_ * eps)

    def decided(lo: float, r_lo: float, hi: float, r_hi: float, scale: float) -> bool:
        if lo < -tau_ - _rounding(scale, op.dtype) and -tau_ <= hi:
            return True  # a strict saddle, proven by interlacing
        return all(_settled(t, r, (-tau_, tau_), tol, scale) for t, r in ((lo, r_lo), (hi, r_hi)))

    def stop(th: torch.Tensor, res: torch.Tensor, scale: float) -> bool:
        lo, hi = int(torch.argmin(th)), int(torch.argmax(th))
        return decided(float(th[lo]), float(res[lo]), float(th[hi]), float(res[hi]), scale)

    r = lanczos(
        op,
        k=1,
        which="both",
        tol=0.0,
        max_hvps=max_hvps,
        seed=seed,
        block_size=1,
        stop=stop,
        progress=progress,
        callback=callback,
    )
    lmin, lmax = float(r.eigenvalues[0]), float(r.eigenvalues[-1])
    rmin, rmax = float(r.residuals[0]), float(r.residuals[-1])
    # ``stop`` is not consulted at the step that spends the budget, so judge the final Ritz
    # pairs here; the extreme Ritz values are the largest in magnitude, so the scale
    # estimate is exactly max(|lmin|, |lmax|)
    scale = max(abs(lmin), abs(lmax))
    done = r.converged or decided(lmin, rmin, lmax, rmax, scale)
    margin = _rounding(scale, op.dtype)
    kind = classify(grad_norm, lmin, lmax, eps, tau_, margin)
    if not done and kind != "not stationary":
        kind = "undecided"  # a saddle is always decided; the other kinds need convergence
    return Certificate(
        kind=kind,
        grad_norm=grad_norm,
        lambda_min=lmin,
        lambda_max=lmax,
        eps=eps,
        tau=tau_,
        rho=rho_,
        negative_curvature_direction=(
            r.eigenvectors[:, 0].clone() if lmin < -tau_ - margin else None
        ),
        residual_min=rmin,
        residual_max=rmax,
        converged=done,
        hvps=op.hvps - hvps0 + extra,
        seconds=time.perf_counter() - t0,
        value=op.loss(),
        rho_estimated=estimate,
        passes=op.passes - passes0,
    )


def certify_model(
    model: torch.nn.Module | Callable[..., Any],
    loss_fn: Callable[..., torch.Tensor] | None,
    data: Any,
    *,
    eps: float,
    rho: float | None = None,
    tau: float | None = None,
    params: Any = None,
    tol: float = 1e-3,
    max_hvps: int | None = None,
    seed: int | None = 0,
    method: str = "auto",
    mode: str = "eval",
    reduction: str | None = None,
    batch_size_fn: Callable[[Any], float] | None = None,
    batch_loss: Callable[[torch.nn.Module, Any], torch.Tensor] | None = None,
    cache: bool | None = None,
    distributed: Any = False,
    progress: bool = False,
    callback: Callable[[CurvatureProgress], Any] | None = None,
) -> Certificate:
    """:func:`certify` for a model's dataset loss at its current parameters.

    The loss is :meth:`HessianOperator.from_model`'s (``params``, ``method``, ``mode``,
    ``reduction``, ``batch_size_fn``, ``batch_loss``, ``cache``, ``distributed`` as
    there). With neither ``rho`` nor ``tau``, ρ is estimated from Hessian-vector product
    differences along the extreme eigen-directions and ``τ = √(ρ̂ε)`` (``rho_estimated`` is
    then True).

    A tanh network with zero weights sits at a strict saddle of its loss:

    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Sequential(
    ...     torch.nn.Linear(2, 3, bias=False), torch.nn.Tanh(), torch.nn.Linear(3, 1, bias=False)
    ... ).double()
    >>> for p in model.parameters():
    ...     _ = torch.nn.init.zeros_(p)
    >>> X = torch.randn(20, 2, dtype=torch.float64)
    >>> y = X @ torch.tensor([[1.0], [-2.0]], dtype=torch.float64)
    >>> c = certify_model(model, torch.nn.MSELoss(), (X, y), eps=1e-6)
    >>> c.kind, c.rho_estimated, c.rho > 0, c.tau == (c.rho * c.eps) ** 0.5
    ('saddle', True, True, True)
    """
    op = HessianOperator.from_model(
        model,
        loss_fn,
        data,
        params=params,
        method=method,
        mode=mode,
        reduction=reduction,
        batch_size_fn=batch_size_fn,
        batch_loss=batch_loss,
        cache=cache,
        distributed=distributed,
    )
    return certify(
        op,
        eps=eps,
        rho=rho,
        tau=tau,
        tol=tol,
        max_hvps=max_hvps,
        seed=seed,
        progress=progress,
        callback=callback,
    )
