"""power-tail: a convex C² function without a minimizer on which GD needs ε^{−(1+1/p)}
iterations (the O(β/ε²) bound's exponent is nearly attained)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _checks import box_points, max_hessian_norm, max_hessian_secant

from saddlescape import problems
from saddlescape.errors import ConfigError


def gd_hits(problem, lr, eps_list, x0, max_iter=400_000):
    """First iteration with ‖∇f‖ ≤ ε for each ε (plain loop, independent of saddlescape.optim)."""
    x, hits = x0.clone(), {}
    for t in range(max_iter):
        g = problem.grad(x)
        gn = float(g.norm())
        for e in eps_list:
            if e not in hits and gn <= e:
                hits[e] = t
        if len(hits) == len(eps_list):
            return hits
        x = x - lr * g
    raise AssertionError(f"not reached in {max_iter} iterations: {hits}")


def test_values_and_continuity_at_the_join():
    p = problems.get("power-tail", p=1.5)
    u = torch.tensor([[0.0], [0.5], [1.0], [3.0]], dtype=torch.float64)
    expect = [2 + 1 + 0.75, 2 + 0.5 + 0.75 * 0.25, 2.0, 3**-0.5 / 0.5]
    assert p(u).tolist() == pytest.approx(expect, rel=1e-14)
    # value, slope and curvature agree on both sides of u = 1 (C²)
    for side in (1 - 1e-7, 1 + 1e-7):
        x = torch.tensor([side], dtype=torch.float64)
        assert float(p(x)) == pytest.approx(2.0, abs=1e-6)
        assert float(p.grad(x)[0]) == pytest.approx(-1.0, abs=1e-6)
        assert float(p.hessian(x)[0, 0]) == pytest.approx(1.5, abs=1e-5)


@pytest.mark.parametrize("pw", [1.1, 2.0])
def test_constants_convexity_and_no_minimizer(pw):
    p = problems.get("power-tail", dim=3, p=pw)
    assert p.critical_points == [] and p.f_min == 0.0
    x = box_points(torch.full((3,), -3.0), torch.full((3,), 30.0), 300).to(torch.float64)
    x = torch.cat([x, torch.tensor([[1.0, 1.0, 1.0], [1e6, 1.0, 0.0]], dtype=torch.float64)])
    assert float(p(x).min()) > 0  # above the infimum everywhere...
    far = torch.full((3,), 1e12, dtype=torch.float64)
    assert float(p(far)) == pytest.approx(3 * 1e12 ** (1 - pw) / (pw - 1), rel=1e-12)
    hess = torch.func.vmap(torch.func.hessian(p._f))(x)
    ev = torch.linalg.eigvalsh(hess)
    assert float(ev.min()) > 0  # ...strictly convex...
    assert max_hessian_norm(p, x) <= p.smoothness * (1 + 1e-12)
    assert max_hessian_norm(p, x) == pytest.approx(p.smoothness)  # attained for u <= 1
    assert float(p.grad(x).norm(dim=1).min()) > 0  # ...and never stationary
    p1 = problems.get("power-tail", p=pw)  # in 1-D the secant direction is the axis
    secant = max_hessian_secant(p1, torch.ones(4, 1, dtype=torch.float64) + 1e-3)
    assert secant <= p1.hessian_lipschitz * (1 + 1e-3)
    assert secant == pytest.approx(p1.hessian_lipschitz, rel=0.05)


@pytest.mark.parametrize(("pw", "beta_factor"), [(1.1, 1.0), (1.1, 4.0), (1.5, 2.0)])
def test_gd_iterations_match_the_closed_form(pw, beta_factor):
    p = problems.get("power-tail", p=pw)
    lr = 1.0 / (beta_factor * p.smoothness)
    eps_list = [1e-1, 3e-2, 1e-2]
    hits = gd_hits(p, lr, eps_list, torch.ones(1, dtype=torch.float64))
    for e in eps_list:
        assert hits[e] == pytest.approx(p.gd_iterations(e, lr), rel=0.02, abs=3)
    # iterations ∝ ε^{-(1+1/p)}: the bound's ε⁻² up to 1/p
    slope = np.polyfit(np.log(eps_list), np.log([hits[e] for e in eps_list]), 1)[0]
    assert slope == pytest.approx(-(1 + 1 / pw), abs=0.03)
    # every count is within the descent-lemma bound 2β(f(x0) − f*)/ε²
    gap = float(p(torch.ones(1, dtype=torch.float64))) - p.f_min
    assert all(hits[e] <= 2 * gap / (lr * e * e) for e in eps_list)


def test_sample_init_is_uniform_on_the_unit_box():
    p = problems.get("power-tail", dim=2)
    x = p.sample_init(torch.Generator().manual_seed(3), batch=1000)
    assert x.shape == (1000, 2) and 0 <= float(x.min()) and float(x.max()) < 1
    assert float(x.mean()) == pytest.approx(0.5, abs=0.03)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (dict(p=1.0), r"problem 'power-tail': p must be > 1"),
        (dict(p=-2.0), r"problem 'power-tail': p must be > 0"),
        (dict(dim=0), r"problem 'power-tail': dim must be"),
    ],
)
def test_bad_parameters_name_the_problem(params, match):
    with pytest.raises(ConfigError, match=match):
        problems.get("power-tail", **params)


def test_parameters_are_normalized_like_every_other_problem():
    """dim = 2.0 or "2" (the command line's strings) is accepted as 2 and stored as an int;
    p as a float. (dim was stored unconverted: sample_init raised a TypeError.)"""
    for dim in (2.0, "2"):
        p = problems.get("power-tail", dim=dim, p="2")
        assert p.dim == 2 and type(p.dim) is int and p.p == 2.0 and type(p.p) is float
        x = p.sample_init(torch.Generator().manual_seed(0))
        assert x.shape == (2,) and float(p.f(x)) > 0
        assert p.params == {"dim": 2, "p": 2.0}


def test_gd_iterations_validates():
    p = problems.get("power-tail")
    with pytest.raises(ConfigError, match="start must be >= 1"):
        p.gd_iterations(1e-2, 0.5, start=0.5)
    with pytest.raises(ConfigError, match="eps must be > 0"):
        p.gd_iterations(0.0, 0.5)
    assert p.gd_iterations(2.0, 0.5) == 0.0
    assert math.isclose(p.gd_iterations(1e-2, 1.0), (1e-2 ** (-2.1 / 1.1) - 1) / 2.1)
