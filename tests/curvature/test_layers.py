"""Per-layer spectra: each diagonal block of the Hessian against the dense float64 block."""

from __future__ import annotations

import matplotlib
import pytest
import torch
from torch import nn

from saddlescape.curvature import HessianOperator, layer_spectra, plot_layer_spectra
from saddlescape.errors import ConfigError, CurvatureError

matplotlib.use("Agg")


def _setup(mode: str = "train"):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(12, 1, 5, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (12,), generator=g)
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Tanh(), nn.Flatten(), nn.Linear(18, 3)
    ).double()
    data = [(X[:7], y[:7]), (X[7:], y[7:])]
    op = HessianOperator.from_model(net, nn.CrossEntropyLoss(), data, mode=mode)

    def loss(t):
        state = {**op.unflatten(t), **{n: b.clone() for n, b in net.named_buffers()}}
        net.train(mode == "train")
        total = 0.0
        for inputs, targets in data:
            out = torch.func.functional_call(net, state, (inputs,))
            total = total + nn.functional.cross_entropy(out, targets, reduction="sum")
        return total / 12

    H = torch.autograd.functional.hessian(loss, op.point)
    return op, H


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_every_block_matches_the_dense_block(mode):
    op, H = _setup(mode)
    spectra = layer_spectra(op, tol=1e-12, trace_matvecs=200)
    assert [x.name for x in spectra.layers] == ["0", "1", "4"]
    start = 0
    scale = float(torch.linalg.matrix_norm(H, ord=2))
    for layer in spectra.layers:
        block = H[start : start + layer.size, start : start + layer.size]
        ev = torch.linalg.eigvalsh(block)
        assert layer.lambda_min == pytest.approx(float(ev[0]), abs=1e-10 * scale)
        assert layer.lambda_max == pytest.approx(float(ev[-1]), abs=1e-10 * scale)
        assert layer.trace == pytest.approx(float(torch.trace(block)), abs=1e-10 * scale)
        assert layer.converged and layer.trace_error == 0.0  # the sketch spans the block
        start += layer.size
    assert start == H.shape[0]
    assert sum(x.trace for x in spectra.layers) == pytest.approx(float(torch.trace(H)), rel=1e-10)
    assert spectra.hvps == sum(x.hvps for x in spectra.layers) > 0
    assert spectra.passes == sum(x.passes for x in spectra.layers) > 0


def test_blocks_by_parameter_and_by_name():
    op, H = _setup()
    per_param = layer_spectra(op, "parameter", tol=1e-12, trace_matvecs=200)
    assert [x.name for x in per_param.layers] == op.param_names
    custom = layer_spectra(op, {"conv": ["0.weight", "0.bias"], "head": "4.weight"}, tol=1e-12)
    assert custom.by == "groups" and custom["conv"].size == 20 and custom["head"].size == 54
    ev = torch.linalg.eigvalsh(H[:20, :20])
    assert custom["conv"].lambda_max == pytest.approx(float(ev[-1]), rel=1e-9)
    with pytest.raises(KeyError, match="no block named 'nope'"):
        custom["nope"]
    text = custom.table()
    assert "conv" in text and "head" in text and "λ_max" in text


@pytest.mark.parametrize(
    ("by", "message"),
    [
        ({"a": ["0.weight"], "b": ["0.weight"]}, "is in two blocks"),
        ({"a": ["nosuch"]}, "has no parameter 'nosuch'"),
        ({"a": []}, "block 'a' has no parameters"),
        ("layer", "by must be 'module', 'parameter' or a dict"),
    ],
)
def test_bad_blocks_are_refused_by_name(by, message):
    op, _ = _setup()
    with pytest.raises(ConfigError, match=message):
        layer_spectra(op, by)


def test_needs_a_model_operator_and_plots():
    f = HessianOperator.from_function(lambda t: (t**2).sum(), torch.ones(3, dtype=torch.float64))
    with pytest.raises(CurvatureError, match="operator of a model"):
        layer_spectra(f)
    with pytest.raises(CurvatureError, match="needs a HessianOperator"):
        layer_spectra(torch.eye(3))
    op, _ = _setup()
    fig = plot_layer_spectra(layer_spectra(op, tol=1e-8))
    ax = fig.axes[0]
    assert ax.get_ylabel() and ax.get_xlabel() == "block (module)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "4"]
