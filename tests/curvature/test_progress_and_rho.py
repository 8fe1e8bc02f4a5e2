"""Progress reports (bar and callback) of every long curvature call, and ρ estimated from
Hessian-vector product differences for models (certify's τ = √(ρ̂ε))."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from cases import DT, labels, mlp, randn
from torch import nn

from saddlescape.curvature import (
    CurvatureProgress,
    HessianOperator,
    SharpnessTracker,
    certify,
    certify_model,
    hessian_lipschitz,
    lanczos,
    smoothness,
    spectral_density,
    trace,
)
from saddlescape.errors import ConfigError


def same(a, b) -> bool:
    """Two results equal in every field but the wall time."""
    for f in dataclasses.fields(a):
        if f.name == "seconds":
            continue
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, torch.Tensor):
            if not torch.equal(x, y):
                return False
        elif x != y:
            return False
    return True


def _op() -> HessianOperator:
    X, y = randn(12, 6, seed=400), labels((12,), 3, 401)
    return HessianOperator.from_model(mlp(6, 3), nn.CrossEntropyLoss(), (X, y))


@pytest.mark.parametrize(
    ("name", "run"),
    [
        ("lanczos", lambda op, **kw: lanczos(op, which="both", tol=1e-10, seed=0, **kw)),
        ("trace", lambda op, **kw: trace(op, num_matvecs=30, seed=0, **kw)),
        ("density", lambda op, **kw: spectral_density(op, 3, 10, seed=0, **kw)),
        ("certify", lambda op, **kw: certify(op, eps=10.0, tau=1e-3, **kw)),
        ("smoothness", lambda op, **kw: smoothness(op, **kw)),
        ("rho", lambda op, **kw: hessian_lipschitz(op, num_samples=2, iters=2, **kw)),
    ],
)
def test_callback_sees_every_step_and_progress_changes_nothing(name, run):
    seen: list[CurvatureProgress] = []
    plain = run(_op())
    watched = run(_op(), callback=seen.append)
    barred = run(_op(), progress=True)
    assert seen, name
    counts = [p.hvps for p in seen]
    assert counts == sorted(counts) and counts[-1] == watched.hvps == plain.hvps == barred.hvps
    assert all(isinstance(p, CurvatureProgress) and p.seconds >= 0 for p in seen)
    assert same(watched, plain) and same(barred, plain)  # watching changes no number
    if name in ("lanczos", "certify", "smoothness"):
        assert any("lambda_max" in p.estimate for p in seen)


def test_callback_can_abort_and_must_be_callable():
    class Stop(Exception):
        pass

    def stop_at_5(p: CurvatureProgress) -> None:
        if p.hvps >= 5:
            raise Stop

    with pytest.raises(Stop):
        lanczos(_op(), tol=1e-14, callback=stop_at_5)
    with pytest.raises(ConfigError, match="callback must be callable"):
        lanczos(_op(), callback=3)


def test_tracker_reports_progress():
    seen: list[CurvatureProgress] = []
    X, y = randn(12, 6, seed=402), labels((12,), 3, 403)
    tr = SharpnessTracker(mlp(6, 3), nn.CrossEntropyLoss(), (X, y), callback=seen.append)
    rec = tr.update()
    assert seen and seen[-1].hvps == rec.hvps


# ---------------------------------------------------------------------- ρ for models
def test_rho_of_an_operator_equals_rho_of_its_function():
    """The operator path (Hessians at shifted points from the same data and snapshot) gives
    the very numbers of the function path with the same random directions."""
    model = mlp(6, 3)
    X, y = randn(10, 6, seed=404), labels((10,), 3, 405)
    op = HessianOperator.from_model(model, nn.CrossEntropyLoss(), (X, y))
    names = [n for n, _ in model.named_parameters()]
    sizes = [p.numel() for p in model.parameters()]

    def f(theta):
        p = {
            n: t.view_as(q)
            for n, t, q in zip(names, theta.split(sizes), model.parameters(), strict=True)
        }
        return nn.CrossEntropyLoss()(torch.func.functional_call(model, p, (X,)), y)

    kw = {"radius": 0.5, "num_samples": 3, "iters": 3, "seed": 7, "directions": "random"}
    a = hessian_lipschitz(op, **kw)
    b = hessian_lipschitz(f, op.point, **kw)
    assert a.rho == pytest.approx(b.rho, rel=1e-10) and a.rho > 0
    assert a.hvps == b.hvps == 18


def test_lanczos_directions_find_the_steep_third_derivative():
    """f = Σ x⁴/4 at x = e₁ in R^200: ∇²f = diag(3x²) changes fastest along e₁ (ρ ≈ 6 on a
    small ball), the extreme eigenvector there; random directions see ~6/√200 of it."""
    n = 200
    x = torch.zeros(n, dtype=DT)
    x[0] = 1.0
    op = HessianOperator.from_function(lambda z: (z**4).sum() / 4, x)
    ritz = hessian_lipschitz(op, radius=0.0, num_samples=1, iters=2, seed=0)
    rand = hessian_lipschitz(op, radius=0.0, num_samples=1, iters=2, seed=0, directions="random")
    assert ritz.rho == pytest.approx(6.0, rel=1e-6)
    assert rand.rho < 0.5 * ritz.rho


def test_certify_estimates_rho_and_says_so():
    f = lambda z: (z**4).sum() / 4 - (z**2).sum() / 2  # noqa: E731  minima at ±1, saddles
    x = torch.tensor([1.0, 0.0, -1.0], dtype=DT)  # a strict saddle: curvature −1 along e₂
    c = certify(f, x, eps=1e-6)
    assert c.rho_estimated and c.kind == "saddle"
    # ∇²f = diag(3x² − 1): ρ on B(x, 0.1·‖x‖) is 6·(1 + 0.1·√2); the estimate is below it
    assert 0 < c.rho <= 6 * (1 + 0.1 * math.sqrt(2)) + 1e-6
    assert c.tau == pytest.approx(math.sqrt(c.rho * 1e-6))
    assert "ρ estimated" in c.summary()
    given = certify(f, x, eps=1e-6, rho=6.0)
    assert not given.rho_estimated and given.hvps < c.hvps


def test_certify_model_derives_tau_in_train_mode_too():
    model = nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 3)).to(DT)
    X, y = randn(16, 6, seed=406), labels((16,), 3, 407)
    batches = [(X[:8], y[:8]), (X[8:], y[8:])]
    for mode in ("eval", "train"):
        c = certify_model(model, nn.CrossEntropyLoss(), batches, eps=10.0, mode=mode)
        assert c.rho_estimated and c.rho > 0 and c.tau == pytest.approx(math.sqrt(10 * c.rho))
