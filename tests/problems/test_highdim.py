"""quartic-saddle and cubic-regularized-quadratic: critical points (dense Hessians at small
d, gradients and Hessian-vector products against closed forms at d = 10⁵), ℓ, ρ."""

from __future__ import annotations

import math

import pytest
import torch
from _checks import box_points, check_critical_points, max_hessian_norm, max_hessian_secant

from saddlescape import problems
from saddlescape.errors import ConfigError
from saddlescape.problems import CriticalPoint
from saddlescape.problems.highdim import CubicRegularizedQuadratic, QuarticSaddle


def hvp(problem, x, v):
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(problem.f(x), x, create_graph=True)
    (hv,) = torch.autograd.grad(g @ v, x)
    return hv


@pytest.mark.parametrize("n", [1, 2, 5, 12])
def test_quartic_small(n):
    p = problems.get("quartic-saddle", n=n)
    assert p.dim == n + 1 and p.f_min == -n / 4
    check_critical_points(p)
    for c in p.critical_points:
        dense = torch.linalg.eigvalsh(p.hessian(c.x))
        assert torch.allclose(dense, p.hessian_spectrum(c), atol=1e-10)
    saddle = p.hessian_spectrum(p.critical_points[0])
    assert saddle[0] == pytest.approx((n - math.sqrt(n * n + 4 * n)) / 2)
    assert -1 < float(saddle[0]) < 0 and n < float(saddle[-1]) < n + 1


def test_quartic_saddle_eigenvalues_tend_to_minus_one_and_n_plus_one():
    p = problems.get("quartic-saddle", n=10_000)
    ev = p.hessian_spectrum(p.critical_points[0])
    assert float(ev[0]) == pytest.approx(-1, abs=1e-3)
    assert float(ev[-1]) == pytest.approx(10_001, abs=1e-3)


@pytest.mark.parametrize("n", [10_000, 100_000])
def test_quartic_large_via_gradients_and_hvps(n):
    p = problems.get("quartic-saddle", n=n)
    for c in p.critical_points:
        assert float(p.grad(c.x).norm()) < 1e-8
        assert float(p(c.x)) == pytest.approx(c.value)
        # extreme eigenpairs in span{(𝟙/√n, 0), (0, 1)}: H v = λ v
        curv = 0.0 if c.kind == "saddle" else 3.0
        for lam in p.hessian_spectrum(c)[[0, -1]].tolist():
            v = torch.full((n + 1,), 1 / math.sqrt(n), dtype=torch.float64)
            v[-1] = (curv - lam) / math.sqrt(n)
            assert torch.allclose(hvp(p, c.x, v), lam * v, rtol=1e-8, atol=0)
        # and the bulk: any x-direction orthogonal to 𝟙 has curvature `curv`
        w = torch.zeros(n + 1, dtype=torch.float64)
        w[0], w[1] = 1.0, -1.0
        assert torch.allclose(hvp(p, c.x, w), curv * w)


def test_quartic_smoothness_and_rho_on_the_box():
    p = problems.get("quartic-saddle", n=3)
    hi = torch.full((4,), 2.0, dtype=torch.float64)
    x = box_points(-hi, hi, 500)
    assert p.smoothness * 0.999 <= max_hessian_norm(p, x) <= p.smoothness * (1 + 1e-12)
    rho = max_hessian_secant(p, box_points(-hi * 0.999, hi * 0.999, 500, seed=1), step=1e-6)
    assert 0.5 * p.hessian_lipschitz <= rho <= p.hessian_lipschitz * (1 + 1e-3)


@pytest.mark.parametrize("d", [1, 2, 8])
def test_cubic_small(d):
    p = problems.get("cubic-regularized-quadratic", dim=d, seed=3)
    check_critical_points(p)
    a = p.diagonal
    assert a[0] == -1 and ((a[1:] >= 1) & (a[1:] <= 2)).all()
    for c in p.critical_points:
        dense = torch.linalg.eigvalsh(p.hessian(c.x))
        assert torch.allclose(dense, p.hessian_spectrum(c), atol=1e-12)
    assert p.f_min == pytest.approx(-2 / 3)


def test_cubic_seed_determines_a():
    a = problems.get("cubic-regularized-quadratic", dim=50, seed=1).diagonal
    assert torch.equal(a, problems.get("cubic-regularized-quadratic", dim=50, seed=1).diagonal)
    assert not torch.equal(a, problems.get("cubic-regularized-quadratic", dim=50, seed=2).diagonal)


def test_cubic_large_via_gradients_and_hvps():
    d = 100_000
    p = problems.get("cubic-regularized-quadratic", dim=d)
    a = p.diagonal
    v = torch.randn(d, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    saddle, minimum, _ = p.critical_points
    assert float(p.grad(saddle.x).norm()) == 0.0
    assert torch.allclose(hvp(p, saddle.x, v), a * v)
    assert float(p.grad(minimum.x).norm()) < 1e-12
    expected = (a + 1) * v
    expected[0] += v[0]  # H = A + I + e₁e₁ᵀ at 2e₁
    assert torch.allclose(hvp(p, minimum.x, v), expected)
    assert float(p(minimum.x)) == pytest.approx(-2 / 3)
    spectrum = p.hessian_spectrum(minimum)
    assert float(spectrum[0]) == 1.0 and float(spectrum[-1]) <= 3.0


def test_cubic_global_minimum_and_constants():
    p = problems.get("cubic-regularized-quadratic", dim=6, seed=0)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(20_000, 6, generator=gen, dtype=torch.float64)
    assert float(p(x).min()) >= p.f_min
    ball = x / x.norm(dim=-1, keepdim=True) * 2 * torch.rand(20_000, 1, generator=gen).double()
    assert max_hessian_norm(p, ball[:2000]) <= p.smoothness <= 4
    rho = max_hessian_secant(p, 3 * torch.randn(2000, 6, generator=gen, dtype=torch.float64))
    assert 0.5 <= rho <= p.hessian_lipschitz * (1 + 1e-3)
    # finite derivatives at the saddle 0: Hessian A, no NaN
    assert torch.allclose(p.hessian(torch.zeros(6, dtype=torch.float64)), torch.diag(p.diagonal))


@pytest.mark.parametrize("name", ["quartic-saddle", "cubic-regularized-quadratic"])
def test_batched_equals_row_by_row(name):
    p = problems.get(name)
    x = torch.randn(16, p.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.allclose(p(x), torch.stack([p(r) for r in x]), rtol=1e-13)


@pytest.mark.parametrize(
    ("name", "params", "word"),
    [
        ("quartic-saddle", dict(n=0), "n"),
        ("cubic-regularized-quadratic", dict(dim=0), "dim"),
        ("cubic-regularized-quadratic", dict(seed=-1), "seed"),
    ],
)
def test_bad_parameters(name, params, word):
    with pytest.raises(ConfigError, match=rf"\b{word}\b"):
        problems.get(name, **params)


def test_hessian_spectrum_refuses_points_it_does_not_list():
    """The spectrum is read off the kind: a point that is not listed (or one listed by
    another instance) got the listed point's spectrum, e.g. quartic-saddle(n=3) reported
    [−0.79, 0, 0, 3.79] at (½, ½, ½, 0.1), whose eigenvalues are [−0.19, 0.75, 0.75, 3.94]."""
    p = QuarticSaddle(n=3)
    x = torch.tensor([0.5, 0.5, 0.5, 0.1], dtype=torch.float64)
    with pytest.raises(ConfigError, match="quartic-saddle: hessian_spectrum needs"):
        p.hessian_spectrum(CriticalPoint(x, "saddle", 0.0))
    with pytest.raises(ConfigError, match="not listed"):
        QuarticSaddle(n=5).hessian_spectrum(p.critical_points[1])
    c = CubicRegularizedQuadratic(dim=4)
    with pytest.raises(ConfigError, match="cubic-regularized-quadratic"):
        c.hessian_spectrum(CriticalPoint(torch.ones(4, dtype=torch.float64), "minimum", 0.0))
    for q in (p, c):
        for point in q.critical_points:
            ev = torch.linalg.eigvalsh(q.hessian(point.x))
            assert torch.allclose(q.hessian_spectrum(point), ev, atol=1e-12)
