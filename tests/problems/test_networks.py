"""networks: digits helpers against scikit-learn and torch references, mlp-digits against
the nn.Module loss (float32 and float64), deep-linear critical points against dense
Hessians and f_min against least squares / reduced-rank regression."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from saddlescape import problems
from saddlescape.errors import ConfigError
from saddlescape.problems.networks import (
    DIGITS_SIZE,
    DeepLinear,
    MLPDigits,
    fit_full_batch,
    load_digits_tensors,
    make_loss,
    make_mlp,
)

TOL = 1e-8


def dense_hessian(p, x: torch.Tensor) -> torch.Tensor:
    return torch.autograd.functional.hessian(p.f, x)


# --------------------------------------------------------------------------- helpers
def test_load_digits_tensors():
    from sklearn.datasets import load_digits

    X, y = load_digits_tensors()
    ref = load_digits()
    assert X.shape == (DIGITS_SIZE, 64) and X.dtype == torch.float32 and y.dtype == torch.long
    assert torch.equal(X, torch.tensor(ref.data / 16.0, dtype=torch.float32))
    assert torch.equal(y, torch.tensor(ref.target))
    assert X.min() == 0 and X.max() == 1
    X2, y2 = load_digits_tensors(100, dtype=torch.float64)
    assert (
        X2.dtype == torch.float64 and torch.equal(X2.float(), X[:100]) and torch.equal(y2, y[:100])
    )
    for bad in (0, DIGITS_SIZE + 1, 2.5):
        with pytest.raises(ConfigError, match="n_samples"):
            load_digits_tensors(bad)


def test_make_mlp_matches_manual_seed_and_leaves_rng_alone():
    torch.manual_seed(0)
    ref = nn.Sequential(nn.Linear(64, 128), nn.Tanh(), nn.Linear(128, 128), nn.Tanh())
    ref.append(nn.Linear(128, 10))
    state = torch.get_rng_state()
    net = make_mlp((64, 128, 128, 10), seed=0)
    assert torch.equal(torch.get_rng_state(), state)
    assert [type(m) for m in net] == [type(m) for m in ref]
    for a, b in zip(net.parameters(), ref.parameters(), strict=True):
        assert a.dtype == torch.float32 and torch.equal(a, b)
    net64 = make_mlp((64, 128, 128, 10), seed=0, dtype=torch.float64)
    for a, b in zip(net64.parameters(), net.parameters(), strict=True):
        assert a.dtype == torch.float64 and torch.equal(a, b.double())
    eos = make_mlp((64, 200, 200, 10), seed=0)
    assert sum(p.numel() for p in eos.parameters()) == 64 * 200 + 200 + 200 * 200 + 200 + 2010
    relu = make_mlp((4, 3, 2), activation="relu", seed=1)
    assert isinstance(relu[1], nn.ReLU) and len(relu) == 3
    assert not torch.equal(make_mlp((4, 3), seed=1)[0].weight, make_mlp((4, 3), seed=2)[0].weight)


@pytest.mark.parametrize(
    "kw, bad",
    [
        (dict(widths=(64,)), "widths"),
        (dict(widths=(64, 0, 10)), "widths"),
        (dict(activation="sigmoid"), "activation"),
        (dict(seed=-1), "seed"),
        (dict(dtype=torch.int64), "dtype"),
    ],
)
def test_make_mlp_bad_parameters(kw, bad):
    with pytest.raises(ConfigError, match=bad):
        make_mlp(**kw)


def test_loss_conventions():
    g = torch.Generator().manual_seed(0)
    out = torch.randn(7, 10, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (7,), generator=g)
    onehot = F.one_hot(y, 10).double()
    mse = make_loss("mse")(out, y)
    assert mse == pytest.approx(float(0.5 * nn.MSELoss(reduction="sum")(out, onehot) / 7))
    assert mse == pytest.approx(5 * float(nn.MSELoss()(out, onehot)))
    ce = make_loss("cross-entropy")(out, y)
    logp = out - out.logsumexp(1, keepdim=True)
    assert ce == pytest.approx(float(-logp[range(7), y].mean()))
    with pytest.raises(ConfigError, match="loss"):
        make_loss("hinge")


def test_fit_full_batch_is_plain_gradient_descent():
    X, y = load_digits_tensors(50, dtype=torch.float64)
    net = make_mlp((64, 5, 10), seed=3, dtype=torch.float64)
    ref = make_mlp((64, 5, 10), seed=3, dtype=torch.float64)
    history = fit_full_batch(net, X, y, loss="mse", lr=0.3, steps=3)
    loss_fn = make_loss("mse")
    for step in range(3):
        value = loss_fn(ref(X), y)
        assert history[step] == pytest.approx(value.item(), rel=1e-12)
        grads = torch.autograd.grad(value, list(ref.parameters()))
        with torch.no_grad():
            for p, g in zip(ref.parameters(), grads, strict=True):
                p -= 0.3 * g
    for a, b in zip(net.parameters(), ref.parameters(), strict=True):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-14)
    assert history[2] < history[0]
    with pytest.raises(ConfigError, match="lr"):
        fit_full_batch(net, X, y, lr=0)


# --------------------------------------------------------------------------- mlp-digits
@pytest.mark.parametrize("loss", ["cross-entropy", "mse"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mlp_f_equals_module_loss(loss, dtype):
    p = MLPDigits(hidden="6,4", loss=loss, n_samples=200, seed=1)
    assert p.widths == (64, 6, 4, 10) and p.hidden == (6, 4)
    theta = p.sample_init(torch.Generator().manual_seed(2)).to(dtype)
    net = p.module(dtype)
    torch.nn.utils.vector_to_parameters(theta, net.parameters())
    X, y = p.data_as(dtype)
    ref = make_loss(loss)(net(X), y)
    value = p.f(theta)
    assert value.dtype == dtype
    rtol = 1e-5 if dtype == torch.float32 else 1e-12
    assert value.item() == pytest.approx(ref.item(), rel=rtol)
    # gradient against the module's backward
    ref.backward()
    g_ref = torch.cat([q.grad.reshape(-1) for q in net.parameters()])
    assert torch.allclose(p.grad(theta), g_ref, rtol=10 * rtol, atol=10 * rtol)


def test_mlp_batch_init_and_layout():
    p = MLPDigits(hidden=(5,), n_samples=60, loss="mse")
    assert p.dim == 64 * 5 + 5 + 5 * 10 + 10
    x0 = p.sample_init()
    assert x0.dtype == torch.float64
    assert torch.equal(x0, p.flatten(make_mlp((64, 5, 10), seed=0, dtype=torch.float64)))
    assert torch.equal(x0, p.flatten(p.model))
    assert torch.equal(x0.float(), p.flatten(p.module()))
    parts = p.unflatten(x0)
    assert {k: v.shape for k, v in parts.items()} == dict(p.param_shapes)
    assert torch.equal(parts["0.weight"], p.model[0].weight)
    xb = p.sample_init(batch=3)
    assert torch.equal(xb[0], x0) and not torch.equal(xb[1], x0)
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    assert torch.equal(p.sample_init(g1, batch=2), p.sample_init(g2, batch=2))
    values = p.f(xb)
    assert values.shape == (3,)
    assert torch.allclose(values, torch.stack([p.f(r) for r in xb]), rtol=1e-12)
    assert (values > 0).all() and p.critical_points == [] and p.f_min is None
    X, y = p.data
    assert X.shape == (60, 64) and X.dtype == torch.float64 and y.shape == (60,)


def test_mlp_registry_defaults():
    p = problems.get("mlp-digits", n_samples=30)
    assert p.hidden == (32,) and p.loss == "cross-entropy" and p.activation == "tanh"
    assert p.dim == 64 * 32 + 32 + 32 * 10 + 10
    assert problems.get("mlp-digits", hidden=7, n_samples=30).hidden == (7,)
    assert np.isfinite(float(p.f(p.sample_init())))


@pytest.mark.parametrize(
    "kw, bad",
    [
        (dict(loss="hinge"), "loss"),
        (dict(hidden="a,b"), "hidden"),
        (dict(hidden=(4, 0)), "hidden"),
        (dict(hidden=()), "hidden"),
        (dict(n_samples=0), "n_samples"),
        (dict(n_samples=DIGITS_SIZE + 1), "n_samples"),
        (dict(activation="sin"), "activation"),
        (dict(seed=-3), "seed"),
    ],
)
def test_mlp_bad_parameters(kw, bad):
    with pytest.raises(ConfigError, match=bad):
        problems.get("mlp-digits", **kw)


def test_mlp_n_samples_is_stored_as_an_int():
    """n_samples = 30.0 or "30" selects 30 digits and is kept as 30 (it was kept as given:
    params and describe() reported '30', unlike every other integer parameter)."""
    for n in (30.0, "30"):
        p = problems.get("mlp-digits", hidden=(4,), n_samples=n)
        assert p.n_samples == 30 and type(p.n_samples) is int
        assert p.data[0].shape == (30, 64) and p.params["n_samples"] == 30


# --------------------------------------------------------------------------- deep-linear
DL_CASES = [
    dict(),  # depth 3, width 2 < d_out: reduced-rank regression
    dict(depth=2),
    dict(depth=4, width=3, d_in=3, d_out=5, seed=1),
    dict(width=6, n_samples=12, seed=2),  # width ≥ min(d_in, d_out): least squares
]


@pytest.mark.parametrize("kw", DL_CASES)
def test_deep_linear_critical_points(kw):
    p = DeepLinear(**kw)
    pts = p.critical_points
    kinds = [c.kind for c in pts]
    assert kinds == ["degenerate" if p.depth >= 3 else "saddle", "minimum", "saddle"]
    for c in pts:
        assert p.grad(c.x).norm() < TOL
        assert float(p.f(c.x)) == pytest.approx(c.value, abs=1e-12)
        H = dense_hessian(p, c.x)
        ev = torch.linalg.eigvalsh(H)
        if c.kind == "degenerate":  # W = 0, depth ≥ 3: the Hessian vanishes
            assert c.x.abs().max() == 0 and H.abs().max() == 0
        elif c.kind == "minimum":
            assert (ev > -TOL).all() and (ev.abs() < TOL).any()  # GL(width) orbit
            assert c.value == pytest.approx(p.f_min, abs=1e-12)
        else:
            assert ev[0] < -1e-3 and ev[-1] > 1e-3
            assert c.value > p.f_min + 1e-6


def test_deep_linear_f_min_is_reduced_rank_regression():
    for kw in DL_CASES:
        p = DeepLinear(**kw)
        Xn, Yn = p.X.T.numpy(), p.Y.T.numpy()  # samples as rows
        B, *_ = np.linalg.lstsq(Xn, Yn, rcond=None)
        fitted = Xn @ B
        k = min(p.width, p.d_in, p.d_out)
        sv = np.linalg.svd(fitted, compute_uv=False)
        ref = (np.sum((Yn - fitted) ** 2) + np.sum(sv[k:] ** 2)) / (2 * p.n_samples)
        assert p.f_min == pytest.approx(ref, rel=1e-10)
        x = p.sample_init(torch.Generator().manual_seed(0), batch=64)
        assert (p.f(x) >= p.f_min).all()


def test_zero_is_a_higher_order_saddle():
    """At W = 0 (depth 3) f − f(0) is cubic along a line: invisible to the Hessian, yet
    f decreases along one sign of the direction."""
    p = DeepLinear()
    v = p.sample_init(torch.Generator().manual_seed(1))
    f0 = float(p.f(torch.zeros(p.dim, dtype=torch.float64)))
    d1 = float(p.f(1e-3 * v)) - f0
    d2 = float(p.f(2e-3 * v)) - f0
    assert d2 / d1 == pytest.approx(8, rel=1e-2)
    assert min(d1, float(p.f(-1e-3 * v)) - f0) < 0


def test_deep_linear_layout_batch_seed():
    p = DeepLinear(depth=4, width=3, d_in=2, d_out=2)
    assert p.dim == 3 * 2 + 2 * 9 + 2 * 3
    x = p.sample_init(torch.Generator().manual_seed(3), batch=5)
    Ws = p.unflatten(x[0])
    assert [tuple(W.shape) for W in Ws] == [(3, 2), (3, 3), (3, 3), (2, 3)]
    P = Ws[3] @ Ws[2] @ Ws[1] @ Ws[0]
    assert torch.allclose(p.product(x[0]), P)
    ref = 0.5 * ((P @ p.X - p.Y) ** 2).sum() / p.n_samples
    assert float(p.f(x[0])) == pytest.approx(float(ref), rel=1e-12)
    assert torch.allclose(p.f(x), torch.stack([p.f(r) for r in x]), rtol=1e-13)
    assert torch.equal(DeepLinear(seed=5).Y, DeepLinear(seed=5).Y)
    assert not torch.equal(DeepLinear(seed=5).Y, DeepLinear(seed=6).Y)


@pytest.mark.parametrize(
    "kw, bad",
    [
        (dict(depth=1), "depth"),
        (dict(width=0), "width"),
        (dict(d_in=0), "d_in"),
        (dict(d_out=-1), "d_out"),
        (dict(n_samples=3, d_in=5), "n_samples"),
        (dict(noise=-0.1), "noise"),
        (dict(seed=1.5), "seed"),
    ],
)
def test_deep_linear_bad_parameters(kw, bad):
    with pytest.raises(ConfigError, match=rf"\b{bad}\b"):
        problems.get("deep-linear", **kw)
