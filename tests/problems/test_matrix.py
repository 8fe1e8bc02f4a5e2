"""matrix-factorization and phase-retrieval: critical points against dense Hessians, f_min
against Eckart–Young, the population objective against exact Gauss–Hermite quadrature, and
the stated ℓ, ρ on their balls."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from saddlescape import problems
from saddlescape.errors import ConfigError
from saddlescape.problems.matrix import MatrixFactorization, PhaseRetrieval

TOL = 1e-8


def dense_hessian(p, x: torch.Tensor) -> torch.Tensor:
    """Reference Hessian by double backward (independent of ``Problem.hessian``)."""
    return torch.autograd.functional.hessian(p.f, x)


def check_critical_point(p, c, *, symmetry_zeros: int | None = None) -> torch.Tensor:
    """Gradient ≈ 0, value matches, Hessian signs match the kind; returns eigenvalues."""
    x = c.x
    assert x.dtype == torch.float64 and x.shape == (p.dim,)
    assert p.grad(x).norm() < TOL, (c.kind, p.grad(x).norm())
    assert float(p.f(x)) == pytest.approx(c.value, abs=1e-12)
    ev = torch.linalg.eigvalsh(dense_hessian(p, x))
    neg, pos = int((ev < -TOL).sum()), int((ev > TOL).sum())
    if c.kind == "minimum":
        assert neg == 0, ev
    elif c.kind == "maximum":
        assert pos == 0 and neg > 0, ev
    elif c.kind == "saddle":
        assert neg > 0 and neg < p.dim, ev
    else:
        assert neg == 0 and (ev.abs() < TOL).any(), ev
    if symmetry_zeros is not None:
        assert int((ev.abs() <= TOL).sum()) == symmetry_zeros, ev
    return ev


def ball_points(p, radius: float, count: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(count, p.dim, generator=g, dtype=torch.float64)
    r = radius * torch.rand(count, 1, generator=g, dtype=torch.float64) ** (1 / p.dim)
    return x / x.norm(dim=1, keepdim=True) * r


def check_constants(p, radius: float, count: int = 12) -> None:
    """‖∇²f‖ ≤ ℓ and ‖∇²f(x) − ∇²f(y)‖ ≤ ρ‖x − y‖ at random points of the ball."""
    xs = ball_points(p, radius, count, seed=1)
    # include points on the boundary, where the bounds are tightest
    xs = torch.cat([xs, xs[:4] / xs[:4].norm(dim=1, keepdim=True) * radius])
    Hs = [dense_hessian(p, x) for x in xs]
    for H in Hs:
        assert torch.linalg.matrix_norm(H, ord=2) <= p.smoothness
    for i in range(len(xs) - 1):
        dH = torch.linalg.matrix_norm(Hs[i] - Hs[i + 1], ord=2)
        assert dH <= p.hessian_lipschitz * (xs[i] - xs[i + 1]).norm()


# --------------------------------------------------------------------------- factorization
MF_CASES = [
    dict(n=5, r=2, rank=3),  # saddles of every type, U = 0 a saddle
    dict(n=3, r=2, rank=3),  # full rank: U = 0 a local maximum
    dict(n=6, r=3, rank=2),  # rank < r: the minimum has zero columns
    dict(n=12, r=4, rank=10, seed=3),  # too many subsets: representatives
]


@pytest.mark.parametrize("kw", MF_CASES)
def test_factorization_critical_points(kw):
    p = MatrixFactorization(**kw)
    pts = p.critical_points
    kinds = [c.kind for c in pts]
    assert kinds.count("minimum") == 1 and "saddle" in kinds
    for c in pts:
        zeros = p.r * (p.r - 1) // 2 if c.kind == "minimum" and p.rank >= p.r else None
        check_critical_point(p, c, symmetry_zeros=zeros)
        if c.kind == "minimum":
            assert c.value == pytest.approx(p.f_min, abs=1e-12)
        else:
            assert c.value > p.f_min + 1e-3


def test_factorization_lists_all_subsets_and_zero_curvature():
    p = MatrixFactorization(n=5, r=2, rank=3)
    assert len(p.critical_points) == 1 + 3 + 3  # |S| ≤ 2 of 3 eigenvectors
    zero = p.critical_points[0]
    assert zero.kind == "saddle" and zero.x.abs().max() == 0
    # Hessian at 0 is −4 M ⊗ I_r: eigenvalues −4λ_i (r times each) and zeros
    lam = torch.linalg.eigvalsh(p.M)
    expected = torch.sort(torch.cat([-4 * lam] * p.r)).values
    assert torch.allclose(torch.linalg.eigvalsh(dense_hessian(p, zero.x)), expected, atol=1e-12)
    # curvature along v e₁ᵀ is −4 vᵀMv
    v = torch.randn(p.n, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    D = torch.zeros(p.n, p.r, dtype=torch.float64)
    D[:, 0] = v
    d = D.reshape(-1)
    assert float(d @ dense_hessian(p, zero.x) @ d) == pytest.approx(float(-4 * v @ p.M @ v))
    assert MatrixFactorization(n=3, r=2, rank=3).critical_points[0].kind == "maximum"


@pytest.mark.parametrize("kw", [dict(n=5, r=2, rank=3), dict(n=6, r=3, rank=2)])
def test_factorization_f_min_is_eckart_young(kw):
    p = MatrixFactorization(**kw)
    lam = torch.linalg.eigvalsh(p.M).flip(0)
    assert p.f_min == pytest.approx(float(lam[p.r :].square().sum()), abs=1e-12)
    x = p.sample_init(torch.Generator().manual_seed(0), batch=256) * 3
    assert (p.f(x) >= p.f_min - 1e-12).all()
    assert torch.allclose(p.M, p.M.T) and (lam > -1e-12).all()
    assert int((lam > 1e-12).sum()) == p.rank


def test_factorization_constants_on_ball():
    p = MatrixFactorization(n=4, r=2, rank=3)
    assert p.radius == pytest.approx(2 * math.sqrt(float(p.eigenvalues.sum())))
    check_constants(p, p.radius)
    q = MatrixFactorization(n=4, r=2, rank=3, radius=0.5)
    assert q.smoothness == pytest.approx(4.0)  # max(12·0.25, 4λ₁ = 4)
    check_constants(q, q.radius)


def test_factorization_batch_and_seed():
    p = MatrixFactorization()
    x = p.sample_init(torch.Generator().manual_seed(5), batch=6)
    assert torch.allclose(p.f(x), torch.stack([p.f(r) for r in x]), rtol=1e-14)
    assert p._f(x.reshape(2, 3, p.dim)).shape == (2, 3)
    assert torch.equal(MatrixFactorization(seed=4).M, MatrixFactorization(seed=4).M)
    assert not torch.allclose(MatrixFactorization(seed=4).M, MatrixFactorization(seed=5).M)
    assert torch.allclose(p.f(x.float()).double(), p.f(x), rtol=1e-5)


@pytest.mark.parametrize(
    "kw, bad",
    [
        (dict(n=0), "n"),
        (dict(r=0), "r"),
        (dict(n=3, rank=4), "rank"),
        (dict(n=3, r=4, rank=2), "r"),
        (dict(seed=-1), "seed"),
        (dict(radius=-1.0), "radius"),
    ],
)
def test_factorization_bad_parameters(kw, bad):
    with pytest.raises(ConfigError, match=rf"\b{bad}\b"):
        problems.get("matrix-factorization", **kw)


# --------------------------------------------------------------------------- phase retrieval
def test_population_objective_is_exact_expectation():
    """E over a ~ N(0, I₂) of ¼((aᵀz)² − (aᵀx)²)², by Gauss–Hermite (exact for degree 8)."""
    p = PhaseRetrieval(dim=2, seed=1)
    nodes, weights = np.polynomial.hermite_e.hermegauss(6)
    a = torch.tensor(np.stack(np.meshgrid(nodes, nodes), -1).reshape(-1, 2))
    w = torch.tensor(np.outer(weights, weights).reshape(-1)) / (2 * math.pi)
    x = p.signal
    for z in [torch.zeros(2), torch.tensor([0.3, -1.2]), x, torch.tensor([2.0, 0.5])]:
        z = z.double()
        expect = float((w * 0.25 * ((a @ z) ** 2 - (a @ x) ** 2) ** 2).sum())
        assert float(p.f(z)) == pytest.approx(expect, rel=1e-12, abs=1e-14)


@pytest.mark.parametrize("dim", [1, 2, 4])
def test_population_critical_points(dim):
    p = PhaseRetrieval(dim=dim)
    pts = p.critical_points
    assert [c.kind for c in pts][:3] == ["minimum", "minimum", "maximum"]
    assert pytest.approx(p.signal.norm().item()) == 1.0
    saddles = [c for c in pts if c.kind == "saddle"]
    assert len(saddles) == min(2, dim - 1) * 2
    for c in pts:
        ev = check_critical_point(p, c, symmetry_zeros=0 if c.kind != "saddle" else max(dim - 2, 0))
        if c.kind == "saddle":
            assert c.x @ p.signal == pytest.approx(0, abs=1e-14)
            assert c.x.norm() == pytest.approx(1 / math.sqrt(3))
            assert c.value == pytest.approx(2 / 3)
            assert ev[0] == pytest.approx(-2) and ev[-1] == pytest.approx(2)
    assert pts[2].value == pytest.approx(0.75)


def test_sampled_objective_and_critical_points():
    p = PhaseRetrieval(dim=4, n_measurements=400, seed=2)
    A, x = p.A, p.signal
    z = p.sample_init(torch.Generator().manual_seed(0))
    direct = sum(((A[i] @ z) ** 2 - (A[i] @ x) ** 2) ** 2 for i in range(400)) / (4 * 400)
    assert float(p.f(z)) == pytest.approx(float(direct), rel=1e-12)
    pts = p.critical_points
    assert [c.kind for c in pts][:3] == ["minimum", "minimum", "maximum"]
    assert any(c.kind == "saddle" for c in pts)
    for c in pts:
        check_critical_point(p, c, symmetry_zeros=0)
        if c.kind == "saddle":  # near the population saddle sphere
            assert abs(float(c.x @ x)) < 0.3 and abs(c.x.norm() - 3**-0.5) < 0.3


@pytest.mark.parametrize("n", [None, 60])
def test_phase_constants_on_ball(n):
    p = PhaseRetrieval(dim=3, n_measurements=n, radius=1.5)
    check_constants(p, p.radius)
    if n is None:
        assert p.smoothness == pytest.approx(9 * 1.5**2 - 1) and p.hessian_lipschitz == 27


def test_phase_batch_seed_and_params():
    for n in (None, 50):
        p = PhaseRetrieval(dim=3, n_measurements=n)
        z = p.sample_init(torch.Generator().manual_seed(1), batch=5)
        assert torch.allclose(p.f(z), torch.stack([p.f(r) for r in z]), rtol=1e-14)
        assert (p.f(z) >= 0).all()
    assert torch.equal(PhaseRetrieval(seed=3).signal, PhaseRetrieval(seed=3).signal)
    assert not torch.equal(PhaseRetrieval(seed=3).signal, PhaseRetrieval(seed=4).signal)
    q = problems.get("phase-retrieval", dim=3, n_measurements=20)
    assert q.params == {"dim": 3, "n_measurements": 20, "seed": 0, "radius": 2.0}
    assert "dim" in problems.parameters("phase-retrieval")


@pytest.mark.parametrize(
    "kw, bad",
    [
        (dict(dim=0), "dim"),
        (dict(dim=5, n_measurements=3), "n_measurements"),
        (dict(n_measurements=1.5), "n_measurements"),
        (dict(seed="a"), "seed"),
        (dict(radius=0), "radius"),
    ],
)
def test_phase_bad_parameters(kw, bad):
    with pytest.raises(ConfigError, match=rf"\b{bad}\b"):
        problems.get("phase-retrieval", **kw)


@pytest.mark.parametrize("kw", [dict(dim=3), dict(dim=3, n_measurements=12)])
def test_phase_critical_points_are_copies(kw):
    """Changing a returned point in place (an optimizer started there) leaves the listed
    points exact: the cached tensors were returned, so afterwards critical_points[0] had
    ‖∇f‖ = 0.41 and f = 0.040 while still listed as the minimum with value 0."""
    p = PhaseRetrieval(**kw)
    p.critical_points[0].x.add_(0.1)
    c = p.critical_points[0]
    assert float(p.grad(c.x).norm()) < 1e-12 and float(p.f(c.x)) == c.value == 0.0
