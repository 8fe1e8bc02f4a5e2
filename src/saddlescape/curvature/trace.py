"""Randomized trace estimation from matrix-vector products.

- Hutchinson (1989): ``tr(A) ≈ (1/m) Σ_i z_iᵀ A z_i`` with Rademacher probes ``z_i``.
  The standard error is the sample standard deviation of the ``z_iᵀ A z_i`` over ``√m``.
- Hutch++ (Meyer, Musco, Musco, Woodruff, "Hutch++: Optimal stochastic trace estimation",
  SOSA 2021, Algorithm 1): a third of the budget sketches the top of the spectrum,
  ``Q = qr(A S)``; ``tr(QᵀAQ)`` is computed exactly and Hutchinson estimates only the
  deflated remainder ``tr((I − QQᵀ) A (I − QQᵀ))``. The error falls as ``1/m`` instead of
  ``1/√m`` when the spectrum decays. The standard error reported is the Hutchinson one
  of the deflated remainder (conditional on ``Q``; the exact part contributes none).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch

from ..errors import ConfigError, DivergenceError, check_int
from ._probing import _CountingOperator, make_generator, rademacher
from ._progress import CurvatureProgress, Watch

__all__ = ["TraceResult", "trace"]

_BLOCK = 32  # probes multiplied at once by Hutchinson (bounds memory at n x 32)


@dataclass(frozen=True)
class TraceResult:
    """A trace estimate with its standard error and cost.

    ``estimate ± 2·std_error`` is a ≈95% confidence interval (the estimate is a mean of
    independent probe values; for Hutch++ conditional on the sketch) — a normal
    approximation that covers less with few, skewed probe values: over 100–200 seeds,
    Hutchinson with 10 probes on a rank-one matrix covered the trace 81 % of the time, and
    Hutch++ with 12 products (4 probes) on a spectrum of 5 outliers (1000, 10, 1, 1, 1) over
    1e-6 covered it 72 % (93 % with 30 products). Where the sketch captures everything but
    rounding, ``std_error`` (~1e-13) leaves out the rounding of the exact part (~1e-12).
    """

    estimate: float
    std_error: float
    method: str
    hvps: int
    seconds: float
    passes: int = 0

    def interval(self, z: float = 1.96) -> tuple[float, float]:
        """``(estimate − z·std_error, estimate + z·std_error)``."""
        return (self.estimate - z * self.std_error, self.estimate + z * self.std_error)


def trace(
    op: Any,
    method: Literal["hutch++", "hutchinson"] = "hutch++",
    num_matvecs: int = 60,
    seed: int | torch.Generator | None = None,
    *,
    progress: bool = False,
    callback: Callable[[CurvatureProgress], Any] | None = None,
) -> TraceResult:
    """Estimate ``tr(A)`` of a symmetric operator from ``num_matvecs`` products.

    ``op`` is a square tensor or any object with ``matvec``, ``shape`` and ``dtype``
    (a :class:`HessianOperator`, for instance). Hutchinson needs ``num_matvecs >= 2``;
    Hutch++ needs ``>= 4`` and spends ``⌊m/3⌋`` products on the sketch, as many on
    ``AQ`` and the rest on probes. When the sketch already spans the whole space the
    trace is exact (``std_error == 0``) and fewer products are used. ``progress=True``
    shows a bar of the products; ``callback(p)`` gets a
    :class:`~saddlescape.curvature.CurvatureProgress` after each block of products.

    >>> A = torch.diag(torch.arange(1.0, 11.0, dtype=torch.float64))
    >>> r = trace(A, "hutchinson", num_matvecs=50, seed=0)
    >>> r.estimate  # Rademacher probes are exact on diagonal matrices
    55.0
    >>> round(trace(A, num_matvecs=30, seed=0).estimate, 10)  # the sketch spans R^10
    55.0
    """
    gen = make_generator(seed)
    if method not in ("hutch++", "hutchinson"):
        raise ConfigError(f"method must be 'hutch++' or 'hutchinson', got {method!r}")
    m = check_int("num_matvecs", num_matvecs, minimum=2 if method == "hutchinson" else 4)
    t0 = time.perf_counter()
    with Watch(f"trace ({method})", progress, callback, m) as watch:
        A = _CountingOperator(op, watch)
        if method == "hutchinson":
            exact, values = 0.0, _hutchinson_values(A, m, gen, basis=None)
        else:
            exact, values = _hutch_plus_plus(A, m, gen)
    if values.numel() == 0:
        estimate, se = exact, 0.0
    else:
        estimate = exact + float(values.mean())
        se = float(values.std(unbiased=True)) / math.sqrt(values.numel())
    if not math.isfinite(estimate):
        raise DivergenceError(f"trace: non-finite estimate ({estimate}) from the operator")
    return TraceResult(
        estimate=estimate,
        std_error=se,
        method=method,
        hvps=A.products,
        seconds=time.perf_counter() - t0,
        passes=A.passes,
    )


def _hutchinson_values(
    A: _CountingOperator,
    m: int,
    gen: torch.Generator,
    basis: torch.Tensor | None,
    basis_image: torch.Tensor | None = None,
) -> torch.Tensor:
    """The ``m`` probe values ``z̃ᵀ A z̃`` with ``z̃ = (I − QQᵀ) z`` (``Q = basis``, float64,
    and ``basis_image = A Q``).

    Only the Rademacher ``z`` are multiplied (exact in every dtype), and the projection is
    expanded in float64: ``z̃ᵀAz̃ = zᵀAz − 2 (Qᵀz)ᵀ Qᵀ(Az) + (Qᵀz)ᵀ (QᵀAQ) (Qᵀz)``. Rounding
    ``z̃`` to bfloat16 before the product biased Hutch++ by 3–6e-4 of the trace (6 to 10
    standard errors), and summing in float16 overflowed past 65504 (n = 1e5)."""
    out = []
    QAQ = None if basis is None else basis.T @ basis_image
    for start in range(0, m, _BLOCK):
        Z = rademacher((A.n, min(_BLOCK, m - start)), gen, A)
        AZ = A.matmat(Z).to(torch.float64)
        Z = Z.to(torch.float64)
        values = (Z * AZ).sum(dim=0)
        if basis is not None:
            C = basis.T @ Z
            values = values - 2 * (C * (basis.T @ AZ)).sum(dim=0) + (C * (QAQ @ C)).sum(dim=0)
        out.append(values)
    return torch.cat(out)


def _hutch_plus_plus(
    A: _CountingOperator, m: int, gen: torch.Generator
) -> tuple[float, torch.Tensor]:
    k = min(m // 3, A.n)
    S = rademacher((A.n, k), gen, A)
    # the sketch's basis in float64: torch has no QR in float16/bfloat16 (a raw
    # NotImplementedError from the default method before)
    Q, _ = torch.linalg.qr(A.matmat(S).to(torch.float64))
    AQ = A.matmat(Q.to(A.dtype)).to(torch.float64)
    exact = float(torch.trace(Q.T @ AQ))
    if k >= A.n:  # Q spans everything: the trace is exact
        return exact, torch.empty(0, dtype=torch.float64)
    return exact, _hutchinson_values(A, m - 2 * k, gen, basis=Q, basis_image=AQ)
