"""HessianOperator.from_model/from_function against dense torch.func.hessian references."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from saddlescape.curvature import DenseOperator, HessianOperator
from saddlescape.errors import CurvatureError, DivergenceError


def small_net(dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.Linear(3, 4), nn.Tanh()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(4, 2))
    return nn.Sequential(*layers).double()


def data(n: int = 11):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, generator=g, dtype=torch.float64), torch.randint(
        0, 2, (n,), generator=g
    )


def flat_loss(model: nn.Module, X, y, names=None):
    names = names or [n for n, _ in model.named_parameters()]
    params = dict(model.named_parameters())
    shapes = [params[n].shape for n in names]
    sizes = [params[n].numel() for n in names]

    def f(theta):
        parts = dict(
            zip(
                names,
                (p.view(s) for p, s in zip(theta.split(sizes), shapes, strict=False)),
                strict=False,
            )
        )
        model.eval()
        return F.cross_entropy(torch.func.functional_call(model, parts, (X,)), y)

    theta = torch.cat([params[n].detach().reshape(-1) for n in names])
    return f, theta


def dense_hessian(model, X, y, names=None):
    f, theta = flat_loss(model, X, y, names)
    return torch.func.hessian(f)(theta), f, theta


def test_from_model_matches_dense_hessian_and_counts():
    model, (X, y) = small_net(), data()
    H, f, theta = dense_hessian(model, X, y)
    op = HessianOperator.from_model(model, F.cross_entropy, (X, y))
    assert op.shape == H.shape and op.dtype == torch.float64
    V = torch.randn(H.shape[0], 4, dtype=torch.float64)
    assert torch.allclose(op.matvec(V[:, 0]), H @ V[:, 0], atol=1e-12)
    assert torch.allclose(op.matmat(V), H @ V, atol=1e-12)
    assert op.hvps == 5
    op.reset_counter()
    A = op.to_scipy()
    assert torch.allclose(torch.from_numpy(A @ V[:, 1].numpy()), H @ V[:, 1], atol=1e-12)
    assert op.hvps == 1
    theta_r = theta.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(f(theta_r), theta_r)
    assert torch.allclose(op.gradient(), g, atol=1e-14)
    assert op.loss() == pytest.approx(float(f(theta)), abs=1e-14) and op.value == op.loss()
    parts = op.unflatten(op.gradient())
    assert list(parts) == op.param_names and parts["0.weight"].shape == (4, 3)


def test_from_function_equals_from_model():
    model, (X, y) = small_net(), data()
    f, theta = flat_loss(model, X, y)
    a = HessianOperator.from_function(f, theta)
    b = HessianOperator.from_model(model, F.cross_entropy, (X, y))
    v = torch.randn(theta.numel(), dtype=torch.float64)
    assert torch.allclose(a.matvec(v), b.matvec(v), atol=1e-13)


def test_uneven_batches_weighted_exactly():
    model, (X, y) = small_net(), data(11)
    full = HessianOperator.from_model(model, F.cross_entropy, (X, y))
    batches = [(X[:4], y[:4]), (X[4:8], y[4:8]), (X[8:], y[8:])]  # 4, 4, 3 examples
    for method in ("double_backward", "forward_over_reverse"):
        split = HessianOperator.from_model(model, F.cross_entropy, iter(batches), method=method)
        v = torch.randn(full.shape[0], dtype=torch.float64)
        assert torch.allclose(split.matvec(v), full.matvec(v), atol=1e-13)
        assert torch.allclose(split.gradient(), full.gradient(), atol=1e-14)
        assert split.loss() == pytest.approx(full.loss(), abs=1e-14)


def test_eval_mode_used_and_modes_restored():
    model, (X, y) = small_net(dropout=0.5), data()
    model.train()
    model[0].eval()  # mixed modes must come back exactly
    op = HessianOperator.from_model(model, F.cross_entropy, (X, y))
    v = torch.randn(op.shape[0], dtype=torch.float64)
    a, b = op.matvec(v), op.matvec(v)
    assert torch.equal(a, b)  # dropout off: deterministic
    H, _, _ = dense_hessian(model, X, y)  # flat_loss evaluates in eval mode
    assert torch.allclose(a, H @ v, atol=1e-12)
    model.train()
    model[0].eval()
    op.matvec(v)
    assert model.training and not model[0].training and model[2].training


def test_parameter_subset_is_the_dense_sub_block():
    model, (X, y) = small_net(), data()
    names = ["2.weight", "0.bias"]
    H, _, _ = dense_hessian(model, X, y, names)
    by_name = HessianOperator.from_model(model, F.cross_entropy, (X, y), params=names)
    by_tensor = HessianOperator.from_model(
        model, F.cross_entropy, (X, y), params=[model[2].weight, model[0].bias]
    )
    assert by_name.shape == (12, 12) and by_name.param_names == names
    v = torch.randn(12, dtype=torch.float64)
    assert torch.allclose(by_name.matvec(v), H @ v, atol=1e-12)
    assert torch.allclose(by_tensor.matvec(v), H @ v, atol=1e-12)
    # the sub-block of the full Hessian, in the requested order
    full, _, _ = dense_hessian(model, X, y)
    offs = {"0.weight": (0, 12), "0.bias": (12, 16), "2.weight": (16, 24), "2.bias": (24, 26)}
    sel = torch.cat([torch.arange(*offs[n]) for n in names])
    assert torch.allclose(H, full[sel][:, sel], atol=1e-12)


def test_float32_model():
    model, (X, y) = small_net().float(), data()
    op = HessianOperator.from_model(model, F.cross_entropy, (X.float(), y))
    H, _, _ = dense_hessian(small_net(), X, y)
    v = torch.randn(op.shape[0])
    assert op.dtype == torch.float32
    assert torch.allclose(op.matvec(v).double(), H @ v.double(), atol=1e-5)


def test_errors_name_the_problem():
    model, (X, y) = small_net(), data()
    with pytest.raises(CurvatureError, match="scalar"):
        HessianOperator.from_model(
            model, lambda o, t: F.cross_entropy(o, t, reduction="none"), (X, y)
        )
    model[0].bias.requires_grad_(False)
    with pytest.raises(CurvatureError, match="does not require grad"):
        HessianOperator.from_model(model, F.cross_entropy, (X, y), params=["0.bias"])
    model[0].bias.requires_grad_(True)
    with pytest.raises(CurvatureError, match="no parameter named"):
        HessianOperator.from_model(model, F.cross_entropy, (X, y), params=["nope"])
    with pytest.raises(CurvatureError, match="empty"):
        HessianOperator.from_model(model, F.cross_entropy, [])
    with pytest.raises(CurvatureError, match="empty"):
        HessianOperator.from_model(model, F.cross_entropy, (X[:0], y[:0]))
    op = HessianOperator.from_model(model, F.cross_entropy, (X, y))
    with pytest.raises(CurvatureError, match="shape"):
        op.matvec(torch.ones(5))
    with pytest.raises(DivergenceError, match="not finite"):
        HessianOperator.from_model(model, F.cross_entropy, (X * float("nan"), y))
    # finite gradient, infinite curvature: |x|^1.5 at 0
    op = HessianOperator.from_function(lambda x: x.abs().pow(1.5).sum(), torch.zeros(2))
    with pytest.raises(DivergenceError, match="Hessian-vector product"):
        op.matvec(torch.ones(2))
    with pytest.raises(CurvatureError, match="scalar"):
        HessianOperator.from_function(lambda x: x * 2, torch.ones(3))
    with pytest.raises(CurvatureError, match="symmetric"):
        DenseOperator(torch.tensor([[1.0, 2.0], [0.0, 1.0]]))
