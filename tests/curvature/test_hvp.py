"""Every HVP method against the dense Hessian, for functions and for models."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from saddlescape.curvature import HVP_METHODS, HessianOperator
from saddlescape.errors import ConfigError, CurvatureError


def rosenbrock(x):
    return (1 - x[:-1]).square().sum() + 100 * (x[1:] - x[:-1].square()).square().sum()


@pytest.mark.parametrize("method", HVP_METHODS)
def test_function_methods_match_dense(method):
    x = torch.linspace(-1.2, 1.1, 6, dtype=torch.float64)
    H = torch.func.hessian(rosenbrock)(x)
    op = HessianOperator.from_function(rosenbrock, x, method=method)
    assert op.method == method
    V = torch.randn(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    # central differences: O(h²) truncation, h ~ ε^{1/3} → about 1e-10 relative in float64
    atol = 1e-12 if method != "finite_difference" else 1e-6 * float(H.abs().max())
    assert torch.allclose(op.matmat(V), H @ V, atol=atol)
    assert op.hvps == 3


@pytest.mark.parametrize("method", HVP_METHODS)
@pytest.mark.parametrize("batches", [1, 3])
def test_model_methods_match_dense(method, batches):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    X = torch.randn(10, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (10,))
    names = [n for n, _ in model.named_parameters()]
    sizes = [p.numel() for p in model.parameters()]
    shapes = [p.shape for p in model.parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def f(t):
        parts = {n: p.view(s) for n, p, s in zip(names, t.split(sizes), shapes, strict=False)}
        return F.cross_entropy(torch.func.functional_call(model, parts, (X,)), y)

    H = torch.func.hessian(f)(theta)
    data = (X, y) if batches == 1 else list(zip(X.split(4), y.split(4), strict=False))  # 4, 4, 2
    op = HessianOperator.from_model(model, F.cross_entropy, data, method=method)
    v = torch.randn(theta.numel(), dtype=torch.float64)
    atol = 1e-12 if method != "finite_difference" else 1e-7
    assert torch.allclose(op.matvec(v), H @ v, atol=atol)


def test_auto_and_unknown_method():
    x = torch.ones(3, dtype=torch.float64)
    assert HessianOperator.from_function(rosenbrock, x).method == "double_backward"
    with pytest.raises(ConfigError, match="HVP method"):
        HessianOperator.from_function(rosenbrock, x, method="magic")


@pytest.mark.parametrize("method", HVP_METHODS)
def test_linear_function_has_zero_hessian(method):
    op = HessianOperator.from_function(lambda x: 3 * x.sum(), torch.ones(4), method=method)
    assert torch.equal(op.matvec(torch.ones(4)), torch.zeros(4))
    assert torch.allclose(op.gradient(), torch.full((4,), 3.0))


def test_finite_differences_measure_their_error_and_refuse_a_fast_changing_hessian():
    # x ↦ Σ x_i⁴/4 + x_i²: smooth at the step's scale, whatever ‖x‖ (large here: 20·√n)
    x = torch.full((400,), 20.0, dtype=torch.float64)
    f = lambda t: (t**4 / 4 + t**2).sum()  # noqa: E731
    op = HessianOperator.from_function(f, x, method="finite_difference")
    v = torch.randn(400, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    exact = (3 * x**2 + 2) * v
    error = float(torch.linalg.vector_norm(op @ v - exact) / torch.linalg.vector_norm(exact))
    assert error < 1e-8  # the step would be 6.9e-2 if scaled by ‖x‖ = 400, not by rms(x)
    assert error / 10 < op.error_estimate < 1e-8  # an honest estimate of what it reached
    # float32 and a Hessian that changes on the scale of the step: refused by name
    y = torch.full((50,), 0.3, dtype=torch.float32)
    wiggly = HessianOperator.from_function(
        lambda t: torch.sin(400 * t).sum(), y, method="finite_difference"
    )
    with pytest.raises(CurvatureError, match=r"reaches only .* relative accuracy"):
        wiggly @ torch.ones(50)
    exact_op = HessianOperator.from_function(lambda t: (t**2).sum(), y.double())
    assert exact_op.error_estimate == 0.0


def test_finite_difference_error_is_relative_to_the_operator_not_to_a_zero_product():
    """A direction of zero curvature (an unused embedding row, a linear parameter) gives a
    product that is zero within rounding: the estimate stays relative to the largest product
    measured, not 100 % of nothing."""
    x = torch.linspace(0.5, 1.5, 6, dtype=torch.float64)
    f = lambda t: (t[:3] ** 4).sum() + 2 * t[3:].sum()  # noqa: E731
    op = HessianOperator.from_function(f, x, method="finite_difference")
    e = torch.eye(6, dtype=torch.float64)
    op @ e[:, 3]  # zero Hessian column first: nothing to be relative to yet
    assert op.error_estimate == 1.0
    assert torch.allclose(op @ e[:, 0], 12 * x[0] ** 2 * e[:, 0], rtol=1e-9, atol=0)
    op @ e[:, 4]
    assert op.error_estimate < 1e-9


def test_a_compiled_model_is_exact_by_auto_and_refused_by_name_by_double_backward():
    """torch.compile's aot_autograd has no double backward (torch 2.13): the explicit method
    says so by name, "auto" moves to forward-over-reverse and is exact."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))
    model = model.double()
    g = torch.Generator().manual_seed(1)
    X = torch.randn(10, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (10,), generator=g)
    loss = torch.nn.CrossEntropyLoss()
    eye = torch.eye(sum(p.numel() for p in model.parameters()), dtype=torch.float64)
    expected = HessianOperator.from_model(model, loss, (X, y)).matmat(eye)
    compiled = torch.compile(model, backend="aot_eager")
    with pytest.raises(CurvatureError, match="double backward"):
        HessianOperator.from_model(compiled, loss, (X, y), method="double_backward").matmat(eye)
    for method in ("auto", "forward_over_reverse"):
        H = HessianOperator.from_model(compiled, loss, (X, y), method=method).matmat(eye)
        assert float((H - expected).abs().max()) <= 1e-12


@pytest.mark.parametrize("method", ["double_backward", "finite_difference", "auto"])
def test_a_loss_flat_around_the_point_has_a_zero_hessian(method):
    """Every ReLU dead: the head's gradient is exactly zero at and around the point, so the
    four gradients of a finite difference are all zero (a ZeroDivisionError before).
    Forward-over-reverse refuses this loss by name (torch's ZeroTensor in mse_loss's
    backward)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1, bias=False)).double()
    with torch.no_grad():
        net[0].bias.fill_(-100.0)
    X, y = torch.randn(8, 3).double(), torch.randn(8, 1).double()
    op = HessianOperator.from_model(net, nn.MSELoss(), (X, y), params=["2.weight"], method=method)
    assert torch.equal(op.matmat(torch.eye(4).double()), torch.zeros(4, 4).double())
    assert op.error_estimate == 0.0
