"""β, step size and ρ estimates against dense Hessians and closed forms."""

import pytest
import torch

from saddlescape.curvature.smoothness import (
    HessianLipschitzResult,
    SmoothnessResult,
    hessian_lipschitz,
    smoothness,
    suggest_lr,
)
from saddlescape.errors import ConfigError, CurvatureError


def cubic_fn(A, c):
    """f(x) = ½xᵀAx + (c/6)Σx_i³: Hessian A + c·diag(x)."""
    return lambda x: 0.5 * x @ A @ x + c * (x**3).sum() / 6


def dense_beta(f, x):
    return float(torch.linalg.eigvalsh(torch.func.hessian(f)(x)).abs().max())


def test_beta_equals_dense_max_abs_eigenvalue():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(30, 30, generator=g, dtype=torch.float64)
    A = (X + X.T) / 2
    f = cubic_fn(A, 2.0)
    pts = torch.randn(4, 30, generator=g, dtype=torch.float64)
    r = smoothness(f, pts[0], tol=1e-10)
    assert isinstance(r, SmoothnessResult)
    assert r.beta == pytest.approx(dense_beta(f, pts[0]), rel=1e-8)
    H0 = torch.func.hessian(f)(pts[0])
    ev = torch.linalg.eigvalsh(H0)
    assert r.lambda_min == pytest.approx(float(ev[0]), rel=1e-8)
    assert r.lambda_max == pytest.approx(float(ev[-1]), rel=1e-8)
    assert r.hvps > 0 and r.converged
    many = smoothness(f, points=pts, tol=1e-10)
    dense = [dense_beta(f, p) for p in pts]
    assert many.per_point == pytest.approx(dense, rel=1e-8)
    assert many.beta == pytest.approx(max(dense), rel=1e-8)
    assert many.argmax == max(range(4), key=dense.__getitem__)
    assert smoothness(f, points=list(pts), tol=1e-10).beta == many.beta


def test_model_smoothness_matches_dense_hessian():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    model = model.double()
    X, Y = torch.randn(20, 3, dtype=torch.float64), torch.randn(20, 2, dtype=torch.float64)
    loss_fn = torch.nn.functional.mse_loss
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss(th):
        parts = torch.split(th, [s.numel() for s in shapes])
        ps = {n: p.view(s) for n, p, s in zip(names, parts, shapes, strict=True)}
        return loss_fn(torch.func.functional_call(model, ps, (X,)), Y)

    r = smoothness(model, loss_fn=loss_fn, data=(X, Y), tol=1e-10)
    assert r.beta == pytest.approx(dense_beta(loss, theta), rel=1e-7)
    with pytest.raises(ConfigError, match="loss_fn"):
        smoothness(model)


def test_suggest_lr():
    def f(x):
        return 2.0 * x[0] ** 2 - 5.0 * x[1] ** 2  # Hessian diag(4, -10): β = 10

    x0 = torch.zeros(2, dtype=torch.float64)
    assert suggest_lr(f, x0, tol=1e-10) == pytest.approx(0.1)
    assert suggest_lr(f, x0, factor=1.5, tol=1e-10) == pytest.approx(0.15)
    r = smoothness(f, x0, tol=1e-10)
    assert suggest_lr(r) == pytest.approx(0.1) == pytest.approx(r.lr)
    assert suggest_lr(8.0) == 0.125
    with pytest.raises(ConfigError, match="factor"):
        suggest_lr(8.0, factor=2.0)
    with pytest.raises(ConfigError, match="beta"):
        suggest_lr(-1.0)
    with pytest.raises(CurvatureError, match="β = 0"):
        suggest_lr(lambda x: x.sum(), x0)


def test_rho_of_cubic_norm_is_one():
    # f = ‖x‖³/6: ∇²f = (‖x‖I + xxᵀ/‖x‖)/2, whose Lipschitz constant is exactly 1
    def f(x):
        return x.norm() ** 3 / 6

    r = hessian_lipschitz(f, torch.zeros(6, dtype=torch.float64), seed=1)
    assert isinstance(r, HessianLipschitzResult)
    assert 0.95 < r.rho <= 1.0 + 1e-6
    assert r.hvps == 2 * r.num_samples * r.iters


def test_rho_of_quartic_at_a_point():
    # f = Σx⁴/4: ∇²f = diag(3x²); at x (radius 0) the local ρ is max_i 6|x_i|
    def f(x):
        return (x**4).sum() / 4

    x = torch.tensor([1.0, -0.5, 0.2, 0.1], dtype=torch.float64)
    r = hessian_lipschitz(f, x, radius=0.0, seed=0)
    assert r.rho == pytest.approx(6.0, rel=1e-6)
    # on a ball the estimate stays a lower bound of the true sup 6·(‖x‖_∞ + radius)
    rb = hessian_lipschitz(f, x, radius=0.5, seed=0)
    assert 6.0 - 1e-6 <= rb.rho <= 9.0 + 1e-6


def test_rho_float32_and_errors():
    def f(x):
        return (x**4).sum() / 4

    x = torch.tensor([1.0, 0.0], dtype=torch.float32)
    assert hessian_lipschitz(f, x, radius=0.0).rho == pytest.approx(6.0, rel=1e-2)
    with pytest.raises(ConfigError, match="radius"):
        hessian_lipschitz(f, x, radius=-1)
    with pytest.raises(ConfigError, match="num_samples"):
        hessian_lipschitz(f, x, num_samples=0)
    with pytest.raises(ConfigError, match="exactly one of x"):
        smoothness(f)


BAD_BUDGETS = [
    ({"tol": -1.0}, "tol"),
    ({"tol": float("nan")}, "tol"),
    ({"tol": float("inf")}, "tol"),
    ({"max_hvps": 0}, "max_hvps"),
    ({"max_hvps": 2.5}, "max_hvps"),
]


@pytest.mark.parametrize(
    ("fn", "kwargs", "name"),
    [(fn, *bad) for fn in ("smoothness", "suggest_lr", "power_iteration") for bad in BAD_BUDGETS]
    # power_iteration reads tol=0 as "run to the budget"; smoothness needs a tolerance
    + [("smoothness", {"tol": 0.0}, "tol"), ("suggest_lr", {"tol": 0.0}, "tol")],
)
def test_bad_tolerance_and_budget_are_refused_before_any_product(fn, kwargs, name):
    from saddlescape import curvature

    op = curvature.DenseOperator(torch.eye(3, dtype=torch.float64))
    with pytest.raises(ConfigError, match=name):
        getattr(curvature, fn)(op, **kwargs)
    assert op.hvps == 0
