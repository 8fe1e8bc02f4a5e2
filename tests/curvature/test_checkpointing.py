"""Gradient checkpointing (``torch.utils.checkpoint``) inside a model: the curvature is that of
the same model without checkpointing, by every method and at every point.

Measured before saddlescape ran checkpointed blocks plainly inside its evaluations: the
reentrant engine (torch 2.13's default) either refused ``autograd.grad`` or, when the block's
input needs no gradient, gave the parameters inside no gradient at all (a Hessian 0.34 off,
gradient 0.10 off); the non-reentrant engine recomputes activations with the module's own
parameters after the evaluation at a point has returned, so finite differences (which
evaluate at θ ± εv) were 0.12 off and any operator at another point silently wrong."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint, checkpoint_sequential

from saddlescape.curvature import HessianOperator
from saddlescape.optim import CubicNewton

DT = torch.float64
ENGINES = ("CheckpointFunction", "_checkpoint_without_reentrant_generator")


class Net(nn.Module):
    """An input layer, a checkpointed tanh block, and a head. ``mode``: None (no
    checkpointing: the reference), "reentrant", "reentrant-first" (the block is the first
    layer, so its input needs no gradient), "non-reentrant", "default" (use_reentrant not
    given: torch warns and uses the reentrant engine), "sequential" (checkpoint_sequential)."""

    def __init__(self, mode: str | None) -> None:
        super().__init__()
        self.mode = mode
        self.stem = nn.Linear(4, 4)
        self.block = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 5), nn.Tanh())
        self.head = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode not in ("reentrant-first", "plain-first"):
            x = self.stem(x)
        if self.mode in (None, "plain-first"):
            h = self.block(x)
        elif self.mode == "sequential":
            h = checkpoint_sequential(self.block, 2, x, use_reentrant=True)
        elif self.mode == "default":
            h = checkpoint(self.block, x)
        else:
            h = checkpoint(self.block, x, use_reentrant=self.mode != "non-reentrant")
        return self.head(h)


MODES = ["reentrant", "reentrant-first", "non-reentrant", "default", "sequential"]


def _pair(mode: str) -> tuple[Net, Net, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    ref = Net("plain-first" if mode == "reentrant-first" else None).to(DT)
    net = Net(mode).to(DT)
    net.load_state_dict(ref.state_dict())
    g = torch.Generator().manual_seed(1)
    X, y = torch.randn(12, 4, generator=g, dtype=DT), torch.randint(0, 3, (12,), generator=g)
    return net, ref, X, y


def _dense(op: HessianOperator) -> torch.Tensor:
    return op.matmat(torch.eye(op.shape[0], dtype=DT))


@pytest.mark.parametrize(
    "method", ["double_backward", "forward_over_reverse", "finite_difference", "auto"]
)
@pytest.mark.parametrize("mode", MODES)
def test_checkpointed_model_has_the_curvature_of_the_plain_one(mode, method):
    net, ref, X, y = _pair(mode)
    loss = nn.CrossEntropyLoss()
    expected = HessianOperator.from_model(ref, loss, (X, y), method="double_backward")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch's use_reentrant reminder
        op = HessianOperator.from_model(net, loss, (X, y), method=method)
        H = _dense(op)
        # at another point, where recomputed activations would read the module's parameters
        point = expected.point + 0.3 * torch.randn(
            op.shape[0], generator=torch.Generator().manual_seed(2), dtype=DT
        )
        H_at = _dense(op.at(point))
    tol = 1e-6 if method == "finite_difference" else 1e-11
    assert torch.allclose(op.gradient(), expected.gradient(), atol=1e-12)
    assert float((H - _dense(expected)).abs().max()) <= tol
    assert float((H_at - _dense(expected.at(point))).abs().max()) <= tol
    assert (
        tuple(getattr(torch.utils.checkpoint, name).__module__ for name in ENGINES)
        == ("torch.utils.checkpoint",) * 2
    )  # torch's engines restored


def test_plain_reference_model_modes_agree():
    """The two references (stem or not) are the plain model: a sanity check of the twins."""
    net, ref, X, _ = _pair("reentrant-first")
    assert ref.mode == "plain-first" and torch.allclose(net(X), ref(X))


@pytest.mark.parametrize("mode", ["reentrant-first", "non-reentrant"])
def test_cubic_newton_differentiates_a_checkpointed_closure_exactly(mode):
    net, ref, X, y = _pair(mode)
    loss = nn.CrossEntropyLoss()
    used = [n for n, _ in net.named_parameters() if mode != "reentrant-first" or "stem" not in n]
    expected = _dense(HessianOperator.from_model(ref, loss, (X, y), params=used))
    opt = CubicNewton([dict(net.named_parameters())[n] for n in used], M=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        point = opt._first_and_second_order(lambda: loss(net(X), y), 0)
        H = torch.stack([point.hvp(e) for e in torch.eye(expected.shape[0], dtype=DT)], dim=1)
    assert float((H - expected).abs().max()) <= 1e-11


class _Offloaded(nn.Module):
    """The plain model with its activations saved to host memory
    (``torch.autograd.graph.save_on_cpu``, a saved-tensor hook torch.func refuses)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = Net(None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autograd.graph.save_on_cpu():
            return self.net(x)


def test_saved_tensor_hooks_refused_by_name_under_forward_over_reverse_and_exact_otherwise():
    from saddlescape.errors import CurvatureError

    _, ref, X, y = _pair("reentrant")
    model = _Offloaded().to(DT)
    model.net.load_state_dict(ref.state_dict())
    loss = nn.CrossEntropyLoss()
    with pytest.raises(CurvatureError, match=r"forward_over_reverse.*saved tensor hooks"):
        HessianOperator.from_model(model, loss, (X, y), method="forward_over_reverse").matvec(
            torch.ones(sum(p.numel() for p in model.parameters()), dtype=DT)
        )
    expected = _dense(HessianOperator.from_model(ref, loss, (X, y)))
    for method in ("auto", "double_backward"):
        H = _dense(HessianOperator.from_model(model, loss, (X, y), method=method))
        assert float((H - expected).abs().max()) <= 1e-11
