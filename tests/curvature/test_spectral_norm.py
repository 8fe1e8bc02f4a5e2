"""Spectral normalization (GAN discriminators) in ``mode="train"``: torch's power iteration
updates the ``u``, ``v`` estimates in place at every forward pass in train mode, so inside
saddlescape it updated the snapshot's buffers at every evaluation. Measured before: two
batches, double backward — successive dense Hessians at the same point 0.035 apart (scale
0.49), 0.31 off at another point, and the older ``nn.utils.spectral_norm`` refused as "not
deterministic (random layers?)". The power iteration is now held, as BatchNorm's running
statistics are: ``σ = uᵀWv`` with the snapshot's estimates, the same by every method."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from saddlescape.curvature import HessianOperator

DT = torch.float64


def _net(kind: str) -> nn.Module:
    torch.manual_seed(0)
    first = nn.Linear(3, 4).to(DT)
    if kind == "parametrization":
        first = nn.utils.parametrizations.spectral_norm(first)
    else:
        first = nn.utils.spectral_norm(first)
    net = nn.Sequential(first, nn.Tanh(), nn.Linear(4, 2).to(DT))
    g = torch.Generator().manual_seed(3)
    net(torch.randn(5, 3, generator=g, dtype=DT))  # one power-iteration step: u unconverged
    return net


def _reference(net: nn.Module, X: torch.Tensor, y: torch.Tensor):
    """The loss with σ = uᵀWv at the buffers' u, v, written out, as a function of the flat
    parameters in named_parameters() order."""
    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for _, p in net.named_parameters()]
    buffers = {n.rsplit(".", 1)[-1].lstrip("_"): b.clone() for n, b in net.named_buffers()}
    u = buffers.get("u", buffers.get("weight_u"))
    v = buffers.get("v", buffers.get("weight_v"))

    def f(theta: torch.Tensor) -> torch.Tensor:
        parts = torch.split(theta, [s.numel() for s in shapes])
        p = {n: t.view(s) for n, t, s in zip(names, parts, shapes, strict=True)}
        w = next(t for n, t in p.items() if "orig" in n)
        h = torch.tanh(X @ (w / torch.dot(u, w @ v)).T + p["0.bias"])
        return nn.functional.cross_entropy(h @ p["2.weight"].T + p["2.bias"], y)

    return f


@pytest.mark.parametrize(
    "method", ["double_backward", "forward_over_reverse", "finite_difference", "auto"]
)
@pytest.mark.parametrize("kind", ["parametrization", "hook"])
def test_spectral_norm_in_train_mode_is_one_fixed_hessian(kind, method):
    net = _net(kind)
    g = torch.Generator().manual_seed(1)
    X, y = torch.randn(8, 3, generator=g, dtype=DT), torch.randint(0, 2, (8,), generator=g)
    before = {n: b.clone() for n, b in net.named_buffers()}
    f = _reference(net, X, y)
    data = [(X[:4], y[:4]), (X[4:], y[4:])]
    op = HessianOperator.from_model(net, nn.CrossEntropyLoss(), data, mode="train", method=method)
    eye = torch.eye(op.shape[0], dtype=DT)
    point = op.point + 0.5 * torch.randn(op.shape[0], generator=g, dtype=DT)
    tol = 1e-8 if method == "finite_difference" else 1e-12
    first = op.matmat(eye)
    for at, got in [(op.point, first), (point, op.at(point).matmat(eye)), (op.point, op @ eye)]:
        expected = torch.autograd.functional.hessian(f, at.clone())
        assert torch.allclose(got, expected, atol=tol, rtol=0)
    assert all(torch.equal(b, before[n]) for n, b in net.named_buffers())  # model untouched
    assert net.training
