"""Several products per pass over the data, and every result counting its passes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from saddlescape.curvature import DenseOperator, HessianOperator, lanczos, spectral_density, trace


def _operator(method: str, batches: int = 3) -> HessianOperator:
    g = torch.Generator().manual_seed(0)
    X = torch.randn(12, 3, generator=g, dtype=torch.float64)
    y = torch.randn(12, 1, generator=g, dtype=torch.float64)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    size = 12 // batches
    data = [(X[i : i + size], y[i : i + size]) for i in range(0, 12, size)]
    return HessianOperator.from_model(model, nn.MSELoss(reduction="sum"), data, method=method)


@pytest.mark.parametrize(
    ("method", "per_product", "per_block"),
    [("double_backward", 1, 1), ("forward_over_reverse", 1, 1), ("finite_difference", 4, 16)],
)
def test_passes_per_product_and_per_block(method, per_product, per_block):
    op = _operator(method)
    start = op.passes
    assert start == 1  # the value and gradient at construction
    V = torch.randn(op.shape[0], 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    cols = torch.stack([op.matvec(V[:, j]) for j in range(4)], dim=1)
    assert op.passes - start == 4 * per_product
    mid = op.passes
    block = op.matmat(V)  # all four columns from one pass (four per column by differences)
    assert op.passes - mid == per_block and op.hvps == 8
    assert torch.allclose(block, cols, rtol=1e-6 if method == "finite_difference" else 1e-12)


def test_a_single_batch_reuses_its_graph():
    op = _operator("double_backward", batches=1)
    assert op.passes == 1
    op.matmat(torch.eye(op.shape[0], dtype=torch.float64)[:, :3])
    op.matvec(torch.ones(op.shape[0], dtype=torch.float64))
    assert op.passes == 1 and op.hvps == 4


def test_results_count_their_passes():
    op = _operator("double_backward")
    r = lanczos(op, k=2, which="largest", block_size=2, tol=1e-10, seed=0)
    assert r.passes == r.iterations and r.hvps <= 2 * r.iterations
    single = lanczos(op, k=1, tol=1e-10, seed=0)
    assert single.passes == single.hvps  # one product per step, one pass each
    t = trace(op, "hutchinson", num_matvecs=40, seed=0)
    assert t.hvps == 40 and t.passes == 2  # probes in blocks of 32: 32 + 8
    d = spectral_density(op, num_probes=3, lanczos_steps=5, seed=0)
    assert d.passes == 5 and d.hvps == 15  # the three probes advance as one block
    dense = lanczos(DenseOperator(torch.eye(3, dtype=torch.float64)), k=1, seed=0)
    assert dense.passes == 0  # an operator that holds no data


@pytest.mark.parametrize("method", ["double_backward", "forward_over_reverse"])
def test_a_product_costs_the_arithmetic_of_three_gradients_and_a_block_shares_its_first_pass(
    method,
):
    """Counted, not timed (``FlopCounterMode``: the dense products of forward, backward and
    double backward): a product on streamed batches does ≈ 3× a gradient's arithmetic, the
    floor for a linear layer (benchmarks/floors.py), and ``matmat`` of 4 columns ≈ 3× one,
    i.e. the first backward is done once per batch for the block, not once per column."""
    from torch.utils.flop_counter import FlopCounterMode

    def flops(fn) -> int:
        counter = FlopCounterMode(display=False)
        with counter:
            fn()
        return counter.get_total_flops()

    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(32, 6, generator=g), torch.randint(0, 3, (32,), generator=g)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3)
    )
    loss = nn.CrossEntropyLoss()
    params = list(model.parameters())
    gradient = flops(lambda: torch.autograd.grad(loss(model(X), y), params))
    op = HessianOperator.from_model(
        model, loss, [(X[:16], y[:16]), (X[16:], y[16:])], method=method
    )
    V = torch.randn(op.shape[0], 4, generator=g)
    one, four = flops(lambda: op.matvec(V[:, 0])), flops(lambda: op.matmat(V))
    assert 2.5 <= one / gradient <= 3.1
    assert 2.5 <= four / one <= 3.1


def test_power_smoothness_and_certificates_count_their_passes():
    """Before, power_iteration reported passes=0 after 19 passes, and the smoothness and
    certificate results had no count of passes at all."""
    from saddlescape.curvature import certify, has_negative_curvature, power_iteration, smoothness

    runs = {
        "power": lambda op: power_iteration(op, tol=1e-6, seed=0),
        "smoothness": lambda op: smoothness(op, tol=1e-6),
        "certify": lambda op: certify(op, eps=1e10, tau=1e-3),
        "negative": lambda op: has_negative_curvature(op, tau=1e-3, seed=0),
    }
    for name, run in runs.items():
        op = _operator("double_backward")
        passes0, hvps0 = op.passes, op.hvps
        result = run(op)
        assert result.passes == op.passes - passes0 > 0, name
        assert result.hvps == op.hvps - hvps0, name


def test_hessian_lipschitz_counts_the_passes_at_every_point():
    """Each difference of products takes two operators at other points: their passes are
    the result's (it reported none)."""
    from saddlescape.curvature import hessian_lipschitz

    op = _operator("double_backward")
    fresh = op.at(op.point + 0.1)
    fresh.matvec(torch.ones(op.shape[0], dtype=torch.float64))
    per_point = fresh.passes  # one product (and the gradient, were it taken)
    result = hessian_lipschitz(op, radius=0.0, num_samples=1, iters=3, directions="random", seed=0)
    assert per_point >= 1 and result.passes == 2 * 3 * per_point
