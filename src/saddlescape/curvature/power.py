"""Power iteration for the largest-magnitude eigenvalue (von Mises 1929), for comparison
with :func:`~saddlescape.curvature.lanczos` (it is what PyHessian and hessian-eigenthings'
``deflated_power_iteration`` run).

Each step multiplies ``w = H v`` (one product), takes the Rayleigh quotient ``θ = vᵀw`` and
the residual ``‖w − θ v‖`` (free: ``w`` is at hand), and stops when the residual is at most
``tol · |θ|`` — the same relative criterion as Lanczos, since ``|θ|`` estimates ``‖H‖``
(the residual bounds ``|λ − θ|`` for some eigenvalue ``λ``: Parlett 1998, Thm 4.5.1).
Convergence is linear with ratio ``|λ₂/λ₁|``, so it is slow when the top two magnitudes
are close; Lanczos converges with the square root of that gap.

>>> import torch
>>> from saddlescape.curvature import DenseOperator, power_iteration
>>> op = DenseOperator(torch.diag(torch.tensor([1.0, -0.5, 3.0], dtype=torch.float64)))
>>> r = power_iteration(op, tol=1e-8, seed=0)
>>> round(r.eigenvalue, 6), r.converged
(3.0, True)
"""

from __future__ import annotations

import time
from typing import Any

import torch

from ..errors import CurvatureError, check_int, check_positive
from .lanczos import EigenResult, _apply, _validate, start_generator

__all__ = ["power_iteration"]


def power_iteration(
    op: Any,
    tol: float = 1e-3,
    max_hvps: int = 1000,
    seed: int | None = None,
    v0: torch.Tensor | None = None,
) -> EigenResult:
    """The largest-magnitude eigenpair of the symmetric operator ``op``.

    Stops when ``‖H v − θ v‖ ≤ tol·|θ|`` (``tol ≥ 0``) or after ``max_hvps`` (≥ 1) products
    (``converged=False`` then). The returned eigenvector is the unit ``v`` whose residual is
    reported. ``seed`` fixes the random start; ``v0`` warm-starts (with a trace of a random
    vector, ``min(1e-3, max(tol, 1e-6))`` of it, so that a ``v0`` that is another
    eigenvector is left).
    """
    t0 = time.perf_counter()
    n = _validate(op)
    tol = check_positive("tol", tol, allow_zero=True)
    max_hvps = check_int("max_hvps", max_hvps, minimum=1)
    device = getattr(op, "device", torch.device("cpu"))
    gen = start_generator(seed)
    if v0 is None:
        v = torch.randn(n, generator=gen, dtype=torch.float64).to(device)
    else:
        v = torch.as_tensor(v0).to(dtype=torch.float64, device=device).reshape(-1)
        if v.numel() != n:
            raise CurvatureError(f"v0 must have shape ({n},), got {tuple(v.shape)}")
    nv = float(torch.linalg.vector_norm(v))
    if not nv > 0 or nv == float("inf"):
        raise CurvatureError("v0 must be a finite, non-zero vector")
    v = v / nv
    if v0 is not None:
        # v0 may be an eigenvector of a smaller eigenvalue (or orthogonal to the dominant
        # one): power iteration would stay there, "converged" (λ = −0.59 for 3 after one
        # product). A trace of a random vector, at the tolerance's level, lets the dominant
        # direction grow in; a v0 that is the answer still converges at once.
        r = torch.randn(n, generator=gen, dtype=torch.float64).to(device)
        v = v + min(1e-3, max(tol, 1e-6)) * r / torch.linalg.vector_norm(r)
        v = v / torch.linalg.vector_norm(v)
    theta, res, hvps, converged = 0.0, float("inf"), 0, False
    passes0 = getattr(op, "passes", 0)
    while hvps < max_hvps:
        w = _apply(op, v[:, None])[:, 0]
        hvps += 1
        theta = float(v @ w)
        res = float(torch.linalg.vector_norm(w - theta * v))
        if res <= tol * abs(theta):
            converged = True
            break
        nw = float(torch.linalg.vector_norm(w))
        if nw == 0.0:  # H v = 0: v is an eigenvector of eigenvalue 0
            converged = True
            break
        v = w / nw
    return EigenResult(
        eigenvalues=torch.tensor([theta], dtype=torch.float64),
        eigenvectors=v[:, None],
        residuals=torch.tensor([res], dtype=torch.float64),
        converged=converged,
        hvps=hvps,
        seconds=time.perf_counter() - t0,
        iterations=hvps,
        error_bounds=torch.tensor([res], dtype=torch.float64),
        passes=getattr(op, "passes", 0) - passes0,
    )
