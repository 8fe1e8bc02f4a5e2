"""Statistical checks of the ball and sphere samplers (Jin et al. 2017 need ξ uniform in B(r))."""

import math

import pytest
import torch

from saddlescape.optim import gaussian, uniform_ball, uniform_sphere

N = 40_000


@pytest.mark.parametrize("d", [1, 2, 3, 5, 8])
def test_ball_radius_distribution_is_uniform_in_volume(d):
    g = torch.Generator().manual_seed(d)
    (xi,) = uniform_ball([torch.zeros(N, d, dtype=torch.float64)], 2.0, generator=g, batched=True)
    norms = xi.norm(dim=1)
    assert float(norms.max()) <= 2.0
    for frac in (0.5, 0.8):  # P(‖ξ‖ ≤ frac·r) = frac^d for a uniform point
        p = frac**d
        observed = float((norms <= 2.0 * frac).double().mean())
        assert abs(observed - p) <= 5 * math.sqrt(p * (1 - p) / N) + 1e-4, (frac, observed, p)
    # a radius drawn as r·U (the bug THEORY.md warns about) would give 1/2 here for all d
    assert abs(float((norms <= 1.0).double().mean()) - 0.5) > 0.1 or d == 1


def test_ball_direction_is_isotropic():
    g = torch.Generator().manual_seed(0)
    (xi,) = uniform_ball([torch.zeros(N, 3, dtype=torch.float64)], 1.0, generator=g, batched=True)
    u = xi / xi.norm(dim=1, keepdim=True)
    assert u.mean(0).abs().max() < 5 / math.sqrt(N)
    cov = u.T @ u / N  # E[uuᵀ] = I/3
    assert torch.allclose(cov, torch.eye(3, dtype=torch.float64) / 3, atol=0.01)


def test_ball_spans_all_tensors_of_a_group():
    """The ball is in the space of the whole group: norms add over its tensors."""
    g = torch.Generator().manual_seed(1)
    like = [torch.zeros(N, 2, dtype=torch.float64), torch.zeros(N, 1, 2, dtype=torch.float64)]
    a, b = uniform_ball(like, 1.0, generator=g, batched=True)
    norms = (a.square().sum(1) + b.square().sum((1, 2))).sqrt()
    assert float(norms.max()) <= 1.0
    observed = float((norms <= 0.5).double().mean())
    assert abs(observed - 0.5**4) < 5 * math.sqrt(0.5**4 / N)


def test_unbatched_ball_and_sphere_draw_one_vector():
    g = torch.Generator().manual_seed(2)
    like = [torch.zeros(3, 4, dtype=torch.float64), torch.zeros(5, dtype=torch.float64)]
    s = uniform_sphere(like, 0.3, generator=g)
    total = math.sqrt(sum(float(t.square().sum()) for t in s))
    assert total == pytest.approx(0.3, rel=1e-12)
    b = uniform_ball(like, 0.3, generator=g)
    assert math.sqrt(sum(float(t.square().sum()) for t in b)) <= 0.3


def test_sphere_per_run_norm_and_gaussian_std():
    g = torch.Generator().manual_seed(3)
    (s,) = uniform_sphere([torch.zeros(100, 7)], 2.5, generator=g, batched=True)
    assert torch.allclose(s.norm(dim=1), torch.full((100,), 2.5), rtol=1e-5)
    (n,) = gaussian([torch.zeros(N, dtype=torch.float64)], 0.1, generator=g)
    assert float(n.std()) == pytest.approx(0.1, rel=0.03)


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_complex_draws_are_vectors_of_r_2n(dtype):
    """The issue: for radius 1 and n = 1000 complex entries the samplers gave ‖ball‖ = 4.0
    and ‖sphere‖ = 8.7. A complex tensor is its 2n real parts (view_as_real): the sphere
    draw has norm exactly r, the ball's radius r·U^{1/(2n)} ≤ r, and the real and
    imaginary parts are equally spread."""
    g = torch.Generator().manual_seed(0)
    like = [torch.zeros(1000, dtype=dtype)]
    (s,) = uniform_sphere(like, 1.0, generator=g)
    (b,) = uniform_ball(like, 1.0, generator=g)
    assert s.dtype == dtype and b.dtype == dtype
    assert float(torch.view_as_real(s).double().norm()) == pytest.approx(1.0, rel=1e-6)
    nb = float(torch.view_as_real(b).double().norm())
    assert 0.99 < nb <= 1.0 + 1e-6  # U^{1/2000} is within 1 % of 1 w.p. > 1 − 1e-8
    ratio = float(s.real.square().sum() / s.imag.square().sum())
    assert 0.8 < ratio < 1.25
