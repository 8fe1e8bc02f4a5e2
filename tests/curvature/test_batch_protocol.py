"""The batch protocol's guarantees beyond the case matrix: the failures users measured
(issue 10) as regression tests, the snapshot, the modes, and every refusal's message."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from cases import DT, W, cnn, labels, mlp, randn
from torch import nn

from saddlescape.curvature import HessianOperator, lanczos
from saddlescape.errors import ConfigError, CurvatureError, DivergenceError


def _close(a: HessianOperator, b: HessianOperator, rel: float = 1e-12) -> bool:
    v = torch.randn(a.shape[0], generator=torch.Generator().manual_seed(1), dtype=DT)
    ha, hb = a @ v, b @ v
    return bool((ha - hb).norm() <= rel * hb.norm())


# ---------------------------------------------------------------- what users measured
@pytest.mark.parametrize(
    "loss",
    [
        nn.MSELoss(reduction="sum"),
        nn.BCEWithLogitsLoss(reduction="sum"),
        nn.CrossEntropyLoss(reduction="sum"),
    ],
    ids=["mse", "bce", "ce"],
)
def test_sum_reduction_over_batches_equals_one_batch(loss):
    model = mlp(6, 3)
    X = randn(5, 6, seed=0)
    y = labels((5,), 3, 1) if isinstance(loss, nn.CrossEntropyLoss) else torch.rand(5, 3, dtype=DT)
    one = HessianOperator.from_model(model, loss, (X, y))
    two = HessianOperator.from_model(model, loss, [(X[:2], y[:2]), (X[2:], y[2:])])
    assert _close(one, two) and two.reduction == "sum"
    assert two.loss() == pytest.approx(one.loss(), rel=1e-13)


@pytest.mark.parametrize(
    "loss",
    [nn.CrossEntropyLoss(weight=W), nn.CrossEntropyLoss(ignore_index=1)],
    ids=["class-weights", "ignore-index"],
)
def test_weighted_means_over_batches_equal_one_batch(loss):
    model = mlp(6, 3)
    X, y = randn(8, 6, seed=2), labels((8,), 3, 3)
    one = HessianOperator.from_model(model, loss, (X, y))
    two = HessianOperator.from_model(model, loss, [(X[:3], y[:3]), (X[3:], y[3:])])
    assert _close(one, two)
    assert two.loss() == pytest.approx(one.loss(), rel=1e-13)


def test_a_batch_with_every_target_ignored_contributes_nothing():
    model = mlp(6, 3)
    X, y = randn(6, 6, seed=4), labels((6,), 3, 5)
    y[:2] = -100  # the first batch is all ignored: its own mean is 0/0
    one = HessianOperator.from_model(model, nn.CrossEntropyLoss(), (X, y))
    split = HessianOperator.from_model(
        model, nn.CrossEntropyLoss(), [(X[:2], y[:2]), (X[2:], y[2:])]
    )
    assert split.loss() == pytest.approx(one.loss(), rel=1e-13) and _close(one, split)
    assert split.num_batches == 2
    with pytest.raises(CurvatureError, match=r"every target is ignored \(ignore_index=-100\)"):
        HessianOperator.from_model(model, nn.CrossEntropyLoss(), [(X[:2], y[:2])] * 2)
    with pytest.raises(CurvatureError, match="every target is ignored"):
        HessianOperator.from_model(model, nn.CrossEntropyLoss(), (X[:2], y[:2]))


def test_the_operator_is_a_snapshot():
    """Parameters, BatchNorm statistics and train/eval flags changed after construction
    change nothing: products, loss and gradient all describe the state at construction."""
    model = cnn(batchnorm=True)
    X, y = randn(6, 1, 6, 6, seed=6), labels((6,), 3, 7)
    op = HessianOperator.from_model(model, nn.CrossEntropyLoss(), (X, y))
    v = torch.randn(op.shape[0], generator=torch.Generator().manual_seed(0), dtype=DT)
    before, loss, grad = op @ v, op.loss(), op.gradient().clone()
    lam = float(lanczos(op, which="largest", tol=1e-12, seed=0).eigenvalues[-1])
    model.train()
    model(randn(6, 1, 6, 6, seed=8))  # updates the running statistics
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5)
    model[1].eval()
    assert torch.equal(op @ v, before)
    assert op.loss() == loss and torch.equal(op.gradient(), grad)
    assert float(lanczos(op, which="largest", tol=1e-12, seed=0).eigenvalues[-1]) == lam
    # a new operator sees the new state
    fresh = HessianOperator.from_model(model, nn.CrossEntropyLoss(), (X, y))
    assert not torch.equal(fresh @ v, before)


def test_modes_never_touch_the_model():
    model = cnn(batchnorm=True)
    model.train()
    model[0].eval()
    state = {k: t.clone() for k, t in model.state_dict().items()}
    X, y = randn(5, 1, 6, 6, seed=9), labels((5,), 3, 10)
    for mode in ("train", "eval"):
        op = HessianOperator.from_model(model, nn.CrossEntropyLoss(), (X, y), mode=mode)
        op @ torch.ones(op.shape[0], dtype=DT)
        assert op.mode == mode
    assert model.training and not model[0].training and model[1].training
    assert model[1].track_running_stats
    for k, t in model.state_dict().items():
        assert torch.equal(t, state[k]), k  # running statistics and counter untouched


def test_train_and_eval_mode_differ_on_batchnorm():
    model = cnn(batchnorm=True)
    X, y = randn(6, 1, 6, 6, seed=11), labels((6,), 3, 12)
    ev = HessianOperator.from_model(model, nn.CrossEntropyLoss(), (X, y), mode="eval")
    tr = HessianOperator.from_model(model, nn.CrossEntropyLoss(), (X, y), mode="train")
    assert abs(ev.loss() - tr.loss()) > 1e-3
    # train mode on one batch: normalization by that batch's statistics, by hand
    bn = model[1]
    with torch.no_grad():
        h = model[0](X)
        mean = h.mean((0, 2, 3), keepdim=True)
        var = h.var((0, 2, 3), unbiased=False, keepdim=True)
        scale, shift = bn.weight.view(1, -1, 1, 1), bn.bias.view(1, -1, 1, 1)
        z = (h - mean) / torch.sqrt(var + bn.eps) * scale + shift
        by_hand = F.cross_entropy(model[2:](z), y)
    assert tr.loss() == pytest.approx(by_hand.item(), rel=1e-12)


def test_attention_works_with_every_exact_method():
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.1, batch_first=True)
    model = nn.Sequential(
        nn.TransformerEncoder(layer, 1, enable_nested_tensor=False), nn.Flatten(), nn.Linear(24, 2)
    ).to(DT)
    X, y = randn(4, 3, 8, seed=13), labels((4,), 2, 14)
    ops = [
        HessianOperator.from_model(model, nn.CrossEntropyLoss(), (X, y), method=m)
        for m in ("double_backward", "forward_over_reverse")
    ]
    r = [lanczos(op, which="both", tol=1e-10, seed=0).eigenvalues for op in ops]
    assert torch.allclose(r[0], r[1], rtol=1e-9)


# ---------------------------------------------------------------- refusals, one line each
def _refusal(match: str, exc=CurvatureError, **kwargs):
    model = kwargs.pop("model", None) or mlp(6, 3)
    X, y = randn(6, 6, seed=15), labels((6,), 3, 16)
    data = kwargs.pop("data", [(X[:2], y[:2]), (X[2:], y[2:])])
    loss = kwargs.pop("loss", nn.CrossEntropyLoss())
    with pytest.raises(exc, match=match) as info:
        HessianOperator.from_model(model, loss, data, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_refusals_name_the_problem_and_the_fix():
    msg = _refusal("reduction='none'", loss=nn.CrossEntropyLoss(reduction="none"))
    assert "use reduction='mean' or 'sum'" in msg
    msg = _refusal("cannot weight", loss=lambda out, y: F.cross_entropy(out, y))
    assert "reduction='mean'" in msg and "reduction='sum'" in msg
    msg = _refusal(
        "cannot weight the mean of MultiMarginLoss over 2 batches", loss=nn.MultiMarginLoss()
    )
    assert "batch_size_fn" in msg
    _refusal("contradicts", ConfigError, loss=nn.MSELoss(reduction="sum"), reduction="mean")
    _refusal("mode must be 'eval' or 'train'", ConfigError, mode="training")
    _refusal("reduction must be 'mean' or 'sum'", ConfigError, reduction="none")
    X = randn(4, 6, seed=17)
    _refusal(
        "broadcast",
        loss=nn.MSELoss(),
        data=[(X[:2], torch.ones(2, 1, dtype=DT)), (X[2:], torch.ones(2, 1, dtype=DT))],
    )
    _refusal("not finite", DivergenceError, data=(X * float("inf"), labels((4,), 3, 0)))
    _refusal("give loss_fn or batch_loss", ConfigError, batch_loss=lambda m, b: m(b).sum())
    _refusal("batch 1 is not an \\(inputs, targets\\) pair", data=[(X, labels((4,), 3, 0)), (X,)])
    _refusal("data is empty", data=[])
    mixed = mlp(6, 3)
    mixed[2].float()
    _refusal("different dtypes", model=mixed)


def test_random_layers_are_refused_in_train_mode():
    model = nn.Sequential(nn.Linear(6, 4), nn.Dropout(0.2), nn.Linear(4, 3)).to(DT)
    msg = _refusal(
        "mode='train' would sample random masks in 1 \\(Dropout", model=model, mode="train"
    )
    assert "use mode='eval'" in msg
    HessianOperator.from_model(
        model, nn.CrossEntropyLoss(), (randn(3, 6, seed=0), labels((3,), 3, 0))
    )

    class Noisy(nn.Module):  # randomness no module check can see
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(6, 3).to(DT)

        def forward(self, x):
            return self.lin(x + 0.1 * torch.randn_like(x))

    _refusal("the loss is not deterministic", model=Noisy())


def test_functional_losses_and_partials_are_read():
    model = mlp(6, 3)
    X, y = randn(7, 6, seed=18), labels((7,), 3, 19)
    y[0] = 2
    batches = [(X[:3], y[:3]), (X[3:], y[3:])]
    weighted = functools.partial(F.cross_entropy, weight=W)
    a = HessianOperator.from_model(model, weighted, batches)
    b = HessianOperator.from_model(model, nn.CrossEntropyLoss(weight=W), (X, y))
    assert _close(a, b) and "mean over" in a.description
    # a partial with positional arguments cannot be read: the reduction must be stated
    with pytest.raises(CurvatureError, match="cannot weight"):
        HessianOperator.from_model(model, functools.partial(F.cross_entropy, y[:3]), batches)
