"""Checks shared by the problem tests: critical points against dense Hessians, ℓ and ρ
against sampled Hessians."""

from __future__ import annotations

import torch

from saddlescape.problems import Problem


def hessians(problem: Problem, x: torch.Tensor) -> torch.Tensor:
    """Dense Hessians of a batch ``(B, d)`` -> ``(B, d, d)`` (``torch.func``)."""
    return torch.func.vmap(torch.func.hessian(problem._f))(x)


def check_kind(kind: str, ev: torch.Tensor, *, strict: bool = True, what: str = "") -> None:
    """Eigenvalue signs match the kind. ``strict``: minima/maxima nondegenerate."""
    tol = 1e-7 * max(1.0, float(ev.abs().max()))
    lo, hi = float(ev.min()), float(ev.max())
    if kind == "minimum":
        assert lo > (tol if strict else -tol), (what, ev)
    elif kind == "maximum":
        assert hi < (-tol if strict else tol), (what, ev)
    elif kind == "saddle":  # λ_min < 0 (strict saddle) and not a maximum
        assert lo < -tol and hi > -tol, (what, ev)
    elif kind == "degenerate":
        assert lo > -tol and float(ev.abs().min()) <= tol, (what, ev)
    else:  # pragma: no cover
        raise AssertionError(kind)


def check_critical_points(problem: Problem, *, strict: bool = True, gtol: float = 1e-8) -> None:
    """Every listed critical point: ‖∇f‖ < gtol, value = f(x), Hessian signs match kind."""
    points = problem.critical_points
    for i, c in enumerate(points):
        what = f"{problem.describe()} point {i} ({c.kind})"
        assert c.x.dtype == torch.float64 and c.x.shape == (problem.dim,), what
        g = problem.grad(c.x)
        assert float(g.norm()) < gtol, (what, float(g.norm()))
        value = float(problem.f(c.x))
        assert abs(value - c.value) <= 1e-9 * max(1.0, abs(value)), (what, value, c.value)
        ev = torch.linalg.eigvalsh(problem.hessian(c.x))
        check_kind(c.kind, ev, strict=strict, what=what)
    minima = [c.value for c in points if c.kind == "minimum"]
    if minima and problem.f_min is not None and problem.f_min > -float("inf"):
        assert problem.f_min <= min(minima) + 1e-9 * max(1.0, abs(min(minima)))


def max_hessian_norm(problem: Problem, x: torch.Tensor) -> float:
    """max over the batch of ‖∇²f(x)‖₂ (dense eigenvalues)."""
    return float(torch.linalg.eigvalsh(hessians(problem, x)).abs().max())


def max_hessian_secant(problem: Problem, x: torch.Tensor, step: float = 1e-4) -> float:
    """max over the batch of ‖∇²f(x + δ) − ∇²f(x)‖₂ / ‖δ‖ for random ‖δ‖ = step."""
    gen = torch.Generator().manual_seed(1)
    delta = torch.randn(x.shape, generator=gen, dtype=x.dtype)
    delta = step * delta / delta.norm(dim=-1, keepdim=True)
    diff = hessians(problem, x + delta) - hessians(problem, x)
    return float((torch.linalg.matrix_norm(diff, ord=2) / step).max())


def box_points(lo: torch.Tensor, hi: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` uniform points in the box plus its corners (where bounds are often attained)."""
    d = lo.numel()
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand((n, d), generator=gen, dtype=torch.float64)
    corners = torch.cartesian_prod(*[torch.tensor([0.0, 1.0], dtype=torch.float64)] * d)
    u = torch.cat([u, corners.reshape(-1, d)])
    return lo + (hi - lo) * u
