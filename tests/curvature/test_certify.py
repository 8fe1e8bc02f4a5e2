"""Certificates over the problem zoo, the one-sided early stop, and bad input."""

import pytest
import torch

from saddlescape import problems
from saddlescape.curvature import (
    DenseOperator,
    HessianOperator,
    certify,
    certify_model,
    has_negative_curvature,
    lanczos,
)
from saddlescape.curvature.certify import classify
from saddlescape.errors import ConfigError

# Problems whose default construction is expensive get small parameters.
SMALL = {"mlp-digits": {"hidden": (4,), "n_samples": 32}}
TAU = 1e-6


def zoo():
    for name in problems.names():
        params = {k: v for k, v in SMALL.get(name, {}).items() if k in problems.parameters(name)}
        p = problems.get(name, **params)
        for i, cp in enumerate(p.critical_points):
            yield pytest.param(p, cp, id=f"{name}[{i}]")


@pytest.mark.parametrize(("problem", "cp"), list(zoo()))
def test_every_critical_point_of_the_zoo(problem, cp):
    x = cp.x.to(torch.float64)
    c = certify(problem.f, x, eps=1e-6, tau=TAU, tol=1e-9, seed=0)
    ev = torch.linalg.eigvalsh(problem.hessian(x))
    expected = cp.kind
    # Points whose extreme eigenvalue on one side is 0 (symmetries: rotations of a
    # factorization, the sphere of a tensor decomposition, a rank-deficient M) cannot be
    # classified at second order: the certificate honestly says "degenerate" there.
    lo, hi = float(ev[0]), float(ev[-1])
    if (abs(lo) <= TAU and hi > -TAU) or (abs(hi) <= TAU and lo < TAU):
        expected = "degenerate"
    assert c.kind == expected, c.summary()
    assert c.kind == classify(c.grad_norm, lo, hi, 1e-6, TAU)
    if c.kind != "saddle":  # a saddle may be decided early from Ritz bounds
        assert c.lambda_min == pytest.approx(lo, abs=1e-6 * max(1, abs(hi)))
        assert c.lambda_max == pytest.approx(hi, abs=1e-6 * max(1, abs(hi)))
    else:
        slack = 1e-12 * max(1.0, abs(lo), abs(hi))  # interlacing, up to rounding
        assert lo - slack <= c.lambda_min < -TAU and hi + slack >= c.lambda_max > TAU
    d = c.negative_curvature_direction
    assert (d is not None) == (lo < -TAU)
    if d is not None:
        H = problem.hessian(x)
        assert float(d.norm()) == pytest.approx(1.0) and float(d @ H @ d) < -TAU


def test_non_critical_point_is_not_stationary_and_sosp():
    p = problems.get("lee-2d")
    c = certify(p.f, torch.tensor([0.3, 0.2], dtype=torch.float64), eps=1e-3, rho=1.0)
    assert c.kind == "not stationary" and not c.is_sosp
    assert c.tau == pytest.approx((1e-3) ** 0.5) and c.rho == 1.0
    m = next(cp for cp in p.critical_points if cp.kind == "minimum")
    assert certify(p.f, m.x, eps=1e-3, rho=1.0).is_sosp


def test_one_sided_test_stops_early():
    g = torch.Generator().manual_seed(0)
    ev = torch.cat([torch.tensor([-1.0]), torch.linspace(0.01, 2.0, 199)]).double()
    Q, _ = torch.linalg.qr(torch.randn(200, 200, generator=g, dtype=torch.float64))
    op = DenseOperator((Q * ev) @ Q.T)
    nc = has_negative_curvature(op, tau=1e-2, tol=1e-8, seed=0)
    full = lanczos(op, which="smallest", tol=1e-8, seed=0)
    assert nc.negative is True and nc.lambda_min < -1e-2
    assert nc.hvps < full.hvps
    d = nc.direction
    assert float(d @ op.matrix @ d) < -1e-2
    psd = DenseOperator(torch.diag(torch.linspace(0.0, 1.0, 30, dtype=torch.float64)))
    assert has_negative_curvature(psd, tau=1e-3, tol=1e-8, seed=0).negative is False


def test_certify_model_and_operator():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1))
    X, y = torch.randn(20, 2), torch.randn(20, 1)
    c = certify_model(model, torch.nn.functional.mse_loss, (X, y), eps=1e-8, tau=1e-4)
    op = HessianOperator.from_model(model, torch.nn.functional.mse_loss, (X, y))
    assert c.kind == "not stationary"
    assert c.grad_norm == pytest.approx(float(op.gradient().norm()), rel=1e-6)
    c2 = certify(op, eps=1e-8, tau=1e-4)
    assert c2.lambda_max == pytest.approx(c.lambda_max, rel=1e-3)


def test_bad_thresholds():
    f = lambda x: x.square().sum()  # noqa: E731
    x = torch.zeros(2, dtype=torch.float64)
    with pytest.raises(ConfigError, match="rho"):
        certify(f, x, eps=1e-3)
    with pytest.raises(ConfigError, match="rho"):
        certify(f, x, eps=1e-3, rho=1.0, tau=1.0)
    with pytest.raises(ConfigError, match="eps"):
        certify(f, x, eps=-1.0, tau=1.0)
    with pytest.raises(ConfigError, match="needs the point"):
        certify(f, eps=1e-3, tau=1.0)


def test_loose_tolerance_cannot_flip_the_one_sided_decision():
    # network-like spectrum: ‖H‖ = 3.3, λ_min = −7.9e-3 ≈ 2.4·τ with τ = 1e-3·‖H‖; the
    # residual criterion tol·‖H‖ alone would accept λ_min ≈ 0 long before the negative
    # cluster is found (regression: it answered "no" after 9 products)
    g = torch.Generator().manual_seed(0)
    ev = torch.cat(
        [
            torch.tensor([-7.9e-3]),
            -7e-3 * torch.rand(40, generator=g),
            0.05 * torch.rand(250, generator=g),
            torch.linspace(0.2, 3.3, 9),
        ]
    ).double()
    Q, _ = torch.linalg.qr(torch.randn(300, 300, generator=g, dtype=torch.float64))
    op = DenseOperator((Q * ev) @ Q.T)
    for seed in range(3):
        nc = has_negative_curvature(op, tau=3.3e-3, tol=1e-3, seed=seed)
        assert nc.negative is True, nc
    c = certify(
        HessianOperator.from_function(
            lambda x: 0.5 * x @ op.matrix @ x, torch.zeros(300, dtype=torch.float64)
        ),
        eps=1e-6,
        tau=3.3e-3,
    )
    assert c.kind == "saddle"
