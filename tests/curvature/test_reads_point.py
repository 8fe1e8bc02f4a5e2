"""Models that read their parameters other than as module attributes inside ``forward``.

saddlescape evaluates a model at its own copy of the parameters by replacing the module's
attributes (``torch.func.functional_call``). Measured before the check: a forward hook that
held a Parameter itself (``functools.partial(hook, w=layer.weight)``) read the model's own
values, so that path got no derivative — gradient 0.11 and Hessian 0.30 off by every method;
a weight transpose cached in a module attribute held the values of the first evaluation — a
Hessian 0.074 off by forward-over-reverse, 0.069 off at another point by double backward, and
a ZeroDivisionError from finite differences. Both are now refused by name at construction;
hooks that read ``module.weight`` stay exact."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from saddlescape.curvature import HessianOperator
from saddlescape.errors import CurvatureError

DT = torch.float64
METHODS = ["double_backward", "forward_over_reverse", "finite_difference", "auto"]


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(8, 3, generator=g, dtype=DT), torch.randint(0, 2, (8,), generator=g)


class HookedNet(nn.Module):
    """Two layers; the hook on ``l2`` reads ``l1``'s weight by ``reference`` (the Parameter
    object bound into the hook) or as ``l1.weight`` at call time."""

    def __init__(self, reference: bool) -> None:
        super().__init__()
        self.l1, self.l2 = nn.Linear(3, 4), nn.Linear(4, 2)
        if reference:
            hook = functools.partial(self._scale, weight=self.l1.weight)
        else:
            hook = lambda m, a, out: self._scale(m, a, out, self.l1.weight)  # noqa: E731
        self.l2.register_forward_hook(hook)

    @staticmethod
    def _scale(module, args, out, weight):
        return out * torch.tanh(weight).sum()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l2(torch.tanh(self.l1(x)))


class CachedTranspose(nn.Module):
    """A layer that keeps ``weight.t()`` in an attribute after its first call."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(3, 2))
        self._transposed: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._transposed is None:
            self._transposed = self.weight.t()
        return x @ self._transposed.t()


@pytest.mark.parametrize("method", METHODS)
def test_a_hook_holding_a_parameter_is_refused_by_name(method):
    torch.manual_seed(0)
    with pytest.raises(CurvatureError, match=r"reads parameter 'l1\.weight' through a reference"):
        HessianOperator.from_model(
            HookedNet(True).to(DT), nn.CrossEntropyLoss(), _data(), method=method
        )


@pytest.mark.parametrize("method", METHODS)
def test_a_weight_cached_on_the_module_is_refused_by_name(method):
    torch.manual_seed(0)
    with pytest.raises(CurvatureError, match="computed from the parameters in an earlier"):
        HessianOperator.from_model(
            CachedTranspose().to(DT), nn.CrossEntropyLoss(), _data(), method=method
        )


@pytest.mark.parametrize("method", ["double_backward", "forward_over_reverse"])
def test_a_hook_reading_the_module_attribute_is_exact_everywhere(method):
    torch.manual_seed(0)
    net = HookedNet(False).to(DT)
    X, y = _data()
    op = HessianOperator.from_model(net, nn.CrossEntropyLoss(), (X, y), method=method)
    shapes = [p.shape for p in net.parameters()]

    def f(theta):
        w1, b1, w2, b2 = (
            t.view(s)
            for t, s in zip(torch.split(theta, [s.numel() for s in shapes]), shapes, strict=True)
        )
        out = (torch.tanh(X @ w1.T + b1) @ w2.T + b2) * torch.tanh(w1).sum()
        return nn.functional.cross_entropy(out, y)

    point = op.point + 0.3 * torch.randn(
        op.shape[0], dtype=DT, generator=torch.Generator().manual_seed(1)
    )
    eye = torch.eye(op.shape[0], dtype=DT)
    for at in (op.point, point):
        expected = torch.autograd.functional.hessian(f, at.clone())
        assert torch.allclose(op.at(at).matmat(eye), expected, atol=1e-12, rtol=0)


class Symmetric(nn.Module):
    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + weight.T


@pytest.mark.parametrize("method", METHODS)
def test_parametrize_cached_around_the_call_is_exact(method):
    """Inside ``parametrize.cached()`` every evaluation got the weight of the first one: a
    Hessian 0.23 off by forward-over-reverse and finite differences, 1.2 off at another point
    by double backward (then refused by the check above); the cache is now off inside
    saddlescape's evaluations."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 2)).to(DT)
    parametrize.register_parametrization(net[0], "weight", Symmetric())
    X, y = _data()
    loss = nn.CrossEntropyLoss()
    plain = HessianOperator.from_model(net, loss, (X, y), method="double_backward")
    point = plain.point + 0.3 * torch.randn(
        plain.shape[0], dtype=DT, generator=torch.Generator().manual_seed(1)
    )
    eye = torch.eye(plain.shape[0], dtype=DT)
    expected = [plain.matmat(eye), plain.at(point).matmat(eye)]
    with parametrize.cached():
        op = HessianOperator.from_model(net, loss, (X, y), method=method)
        got = [op.matmat(eye), op.at(point).matmat(eye)]
    tol = 1e-8 if method == "finite_difference" else 1e-12
    for g, e in zip(got, expected, strict=True):
        assert torch.allclose(g, e, atol=tol, rtol=0)


@pytest.mark.parametrize(
    "wrap, message",
    [
        (nn.DataParallel, "wrapped in nn.DataParallel.*pass model.module"),
        (torch.jit.script, "TorchScript module.*pass the eager module"),
    ],
)
def test_wrappers_functional_call_cannot_enter_are_refused_by_name(wrap, message):
    """torch raised a bare RuntimeError ("The stateless API can't be used with ...")."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).to(DT)
    with pytest.raises(CurvatureError, match=message):
        HessianOperator.from_model(wrap(net), nn.CrossEntropyLoss(), _data())


def test_a_complex_parameter_is_refused_by_name():
    """The message said only "the parameters must be floating-point tensors"."""

    class Spectral(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.filter = nn.Parameter(torch.randn(3, 3, dtype=torch.complex128))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x.to(torch.complex128) @ self.filter).abs()

    X = torch.randn(4, 3, dtype=DT)
    with pytest.raises(CurvatureError, match=r"'filter' \(torch\.complex128\) is not"):
        HessianOperator.from_model(Spectral(), nn.MSELoss(), (X, X))


class RunningNorm(nn.Module):
    """An observation normalizer (reinforcement learning's) whose running mean and variance
    move in place at every train-mode forward pass."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim, dtype=DT))
        self.register_buffer("var", torch.ones(dim, dtype=DT))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            with torch.no_grad():
                self.mean.mul_(0.9).add_(0.1 * x.mean(0))
                self.var.mul_(0.9).add_(0.1 * x.var(0))
        return (x - self.mean) / self.var.sqrt()


def test_a_layer_updating_its_buffers_in_place_is_refused_by_name():
    """Before: refused as "not deterministic ... (random layers, data augmentation?)"."""
    torch.manual_seed(0)
    net = nn.Sequential(RunningNorm(3), nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).to(DT)
    X, y = _data()
    data = [(X[:4], y[:4]), (X[4:], y[4:])]
    with pytest.raises(CurvatureError, match=r"updates '0\.mean', '0\.var' in place"):
        HessianOperator.from_model(net, nn.CrossEntropyLoss(), data, mode="train")
    op = HessianOperator.from_model(net, nn.CrossEntropyLoss(), data, mode="eval")
    assert torch.equal(net[0].mean, torch.zeros(3, dtype=DT)) and op.shape[0] == 26


@pytest.mark.parametrize("method", METHODS)
def test_a_loss_fn_reading_the_model_sees_the_point(method):
    """A loss_fn adding weight decay over ``model.parameters()`` ran after the model had left
    the point, so it read the model's own Parameters: the penalty's curvature 2·wd·I was
    missing (a Hessian 0.2 off, silently, before the check above refused it); loss_fn now
    runs with the point in the model."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).to(DT)
    X, y = _data()
    decay = 0.1

    def regularized(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        penalty = sum((p**2).sum() for p in net.parameters())
        return nn.functional.cross_entropy(out, target) + decay * penalty

    data = [(X[:4], y[:4]), (X[4:], y[4:])]
    plain = HessianOperator.from_model(net, nn.CrossEntropyLoss(), (X, y))
    op = HessianOperator.from_model(net, regularized, data, method=method, reduction="mean")
    eye = torch.eye(op.shape[0], dtype=DT)
    tol = 1e-8 if method == "finite_difference" else 1e-12
    assert torch.allclose(op.matmat(eye), plain.matmat(eye) + 2 * decay * eye, atol=tol, rtol=0)
    assert torch.allclose(op.gradient(), plain.gradient() + 2 * decay * op.point, atol=1e-12)


def test_a_model_scaling_its_input_in_place_is_refused_by_name():
    """``x /= 255`` inside forward divides the held batch again at every evaluation: it was
    refused as "not deterministic ... (random layers, data augmentation?)"."""

    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x /= 255
            return self.linear(x)

    torch.manual_seed(0)
    X, y = _data()
    with pytest.raises(CurvatureError, match="modifies its input batch in place"):
        HessianOperator.from_model(Scaled().to(DT), nn.CrossEntropyLoss(), (X * 255, y))
