"""Streamed data: a re-iterable loader is read again at every pass (never held), checked
to yield the same batches, and refused when it shuffles; ``cache=True`` holds the first
pass instead."""

from __future__ import annotations

import collections

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from saddlescape.curvature import HessianOperator, lanczos
from saddlescape.curvature._empirical_risk import _to_device
from saddlescape.errors import ConfigError, CurvatureError

G = torch.Generator().manual_seed(0)
X = torch.randn(20, 3, generator=G, dtype=torch.float64)
Y = torch.randint(0, 3, (20,), generator=G)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 3)).double()


class CountingLoader:
    """A re-iterable that counts how often it is read."""

    def __init__(self, batches):
        self.batches, self.reads = batches, 0

    def __iter__(self):
        self.reads += 1
        return iter(self.batches)


def test_a_reiterable_is_read_again_at_every_pass():
    batches = [(X[i : i + 6], Y[i : i + 6]) for i in range(0, 20, 6)]  # 6, 6, 6, 2
    loader = CountingLoader(batches)
    model = _model()
    streamed = HessianOperator.from_model(model, nn.CrossEntropyLoss(), loader)
    held = HessianOperator.from_model(model, nn.CrossEntropyLoss(), batches)
    assert streamed.passes == 1 and loader.reads == 2  # the weighting pass and the gradient
    V = torch.randn(streamed.shape[0], 3, dtype=torch.float64, generator=G)
    assert torch.allclose(streamed @ V, held @ V, rtol=1e-13, atol=0)
    assert loader.reads == 3  # the three products shared one pass
    r = lanczos(streamed, k=1, tol=1e-10, seed=0)
    assert loader.reads == 3 + r.passes and r.passes == r.hvps
    assert streamed.loss() == pytest.approx(held.loss(), rel=1e-14)


def test_a_dataloader_is_streamed_and_a_shuffling_one_refused():
    data = TensorDataset(X, Y)
    model = _model()
    fixed = DataLoader(data, batch_size=8)
    op = HessianOperator.from_model(model, nn.CrossEntropyLoss(), fixed)
    whole = HessianOperator.from_model(model, nn.CrossEntropyLoss(), (X, Y))
    v = torch.randn(op.shape[0], dtype=torch.float64, generator=G)
    assert torch.allclose(op @ v, whole @ v, rtol=1e-12, atol=1e-15)
    shuffled = DataLoader(data, batch_size=8, shuffle=True, generator=torch.Generator())
    with pytest.raises(CurvatureError, match=r"the data changed between passes .*shuffle=False"):
        HessianOperator.from_model(model, nn.CrossEntropyLoss(), shuffled)
    # cache=True: the batches of the first pass, held; the mean over all examples does
    # not depend on how they were batched
    held = HessianOperator.from_model(model, nn.CrossEntropyLoss(), shuffled, cache=True)
    assert torch.allclose(held @ v, whole @ v, rtol=1e-12, atol=1e-15)


def test_a_loader_that_changes_length_is_refused():
    class Growing:
        def __init__(self):
            self.reads = 0

        def __iter__(self):
            self.reads += 1
            return iter([(X[:5], Y[:5])] * (1 + self.reads))

    with pytest.raises(CurvatureError, match="more than 2 batches"):
        HessianOperator.from_model(_model(), nn.CrossEntropyLoss(), Growing())


def test_cache_options_are_checked():
    gen = ((X[i : i + 5], Y[i : i + 5]) for i in range(0, 20, 5))
    with pytest.raises(ConfigError, match="cache=False needs data that can be iterated again"):
        HessianOperator.from_model(_model(), nn.CrossEntropyLoss(), gen, cache=False)
    with pytest.raises(ConfigError, match="cache must be True, False or None"):
        HessianOperator.from_model(_model(), nn.CrossEntropyLoss(), (X, Y), cache="yes")
    # a one-shot generator is read once and held, as before
    gen = ((X[i : i + 5], Y[i : i + 5]) for i in range(0, 20, 5))
    op = HessianOperator.from_model(_model(), nn.CrossEntropyLoss(), gen)
    assert op.num_batches == 4 and op.passes == 1


def test_batches_keep_their_structure_when_moved():
    Pair = collections.namedtuple("Pair", "inputs targets")
    batch = {"a": (X[:2], [Y[:2]]), "b": Pair(X[:1], Y[:1]), "n": 3}
    moved = _to_device(batch, torch.device("cpu"))
    assert moved["a"][0] is X[:2] or torch.equal(moved["a"][0], X[:2])
    assert isinstance(moved["b"], Pair) and isinstance(moved["a"][1], list)
    assert moved["n"] == 3
