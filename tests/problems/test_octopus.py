"""The Du et al. 2017 octopus: the paper's formula in the tube, C² joins, the extension
outside it, ℓ and ρ, and gradient descent's exponential slowdown (THEORY.md)."""

from __future__ import annotations

import math

import pytest
import torch
from _checks import check_critical_points, hessians, max_hessian_norm, max_hessian_secant

from saddlescape import problems
from saddlescape.errors import ConfigError

TAU = math.e
SMALLEST_NORMAL = torch.finfo(torch.float64).smallest_normal


def paper_f(p, x: torch.Tensor) -> float:
    """THEORY.md's piecewise formula, one point at a time (valid inside the tube)."""
    L, g, t, nu, d = p.L, p.gamma, p.tau, p.nu, p.dim
    a = [abs(float(v)) for v in x]
    i = next((j for j in range(d) if a[j] <= 2 * t), None)
    if i is None:
        return sum(L * (aj - 4 * t) ** 2 for aj in a) - d * nu
    assert all(a[j] <= t for j in range(i + 1, d)), "outside the tube"
    head = sum(L * (a[j] - 4 * t) ** 2 for j in range(i)) - i * nu
    if a[i] <= t:
        return head - g * a[i] ** 2 + sum(L * a[j] ** 2 for j in range(i + 1, d))
    g1 = -g * a[i] ** 2 + (-14 * L + 10 * g) * (a[i] - t) ** 3 / (3 * t)
    g1 += (5 * L - 3 * g) * (a[i] - t) ** 4 / (2 * t * t)
    u = (a[i] - 2 * t) / t
    g2 = -g - (L + g) * (10 * u**3 + 15 * u**4 + 6 * u**5)
    rest = g2 * a[i + 1] ** 2 if i + 1 < d else 0.0
    return head + g1 + rest + sum(L * a[j] ** 2 for j in range(i + 2, d))


def tube_points(d: int, n: int, seed: int = 0, tau: float = TAU, y_max: float = 1.0):
    """``n`` random points in each piece i of the tube (random signs); coordinates after
    the active one within ``y_max·τ``."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(d + 1):
        x = torch.empty(n, d, dtype=torch.float64)
        x[:, :i] = 2 * tau + 4 * tau * torch.rand(n, i, generator=gen, dtype=torch.float64)
        if i < d:
            x[:, i] = 2 * tau * (2 * torch.rand(n, generator=gen, dtype=torch.float64) - 1)
            rest = torch.rand(n, d - i - 1, generator=gen, dtype=torch.float64)
            x[:, i + 1 :] = y_max * tau * (2 * rest - 1)
        signs = torch.randint(0, 2, (n, d), generator=gen).to(torch.float64) * 2 - 1
        out.append(x * signs)
    return torch.cat(out)


def in_tube(x: torch.Tensor, tau: float = TAU) -> torch.Tensor:
    a = x.abs()
    past = torch.cumprod((a > 2 * tau).to(torch.int64), dim=-1).bool()  # before the active i
    active = torch.cat([torch.ones_like(past[..., :1]), past[..., :-1]], -1) & ~past
    after = torch.cumsum(active.to(torch.int64), -1).bool() & ~active
    return ((a <= tau) | ~after).all(-1)


def test_in_tube_helper():
    x = torch.tensor(
        [[0, 5, 0], [0, 0, 0], [6, 0, 0], [6, 3, 0], [6, 6, 3], [6, 6, 6], [6, 2, 3], [6, 5, 2]],
        dtype=torch.float64,
    )
    assert in_tube(x).tolist() == [False, True, True, True, True, True, False, True]


@pytest.mark.parametrize("d", [1, 2, 3, 5])
@pytest.mark.parametrize(("L", "gamma", "tau"), [(math.e, 1.0, math.e), (1.0, 2.0, 0.5)])
def test_matches_paper_formula_inside_the_tube(d, L, gamma, tau):
    p = problems.get("octopus", dim=d, L=L, gamma=gamma, tau=tau)
    x = tube_points(d, 40, tau=tau)
    assert in_tube(x, tau).all()
    ref = torch.tensor([paper_f(p, row) for row in x], dtype=torch.float64)
    assert torch.allclose(p(x), ref, rtol=1e-13, atol=1e-11)


def test_nu_joins_the_pieces():
    p = problems.get("octopus", L=2.0, gamma=3.0, tau=1.5)
    assert p.nu == pytest.approx((37 * 2 + 13 * 3) * 1.5**2 / 6)
    a = torch.tensor([p.tau, 2 * p.tau], dtype=torch.float64)
    assert p.g1(a).tolist() == pytest.approx([-p.gamma * p.tau**2, 4 * p.L * p.tau**2 - p.nu])
    assert p.g2(a).tolist() == pytest.approx([p.L, -p.gamma])


@pytest.mark.parametrize("outside", [False, True])
@pytest.mark.parametrize("d", [2, 3])
def test_c2_across_tau_and_2tau(d, outside):
    """f, ∇f and ∇²f agree on both sides of |x_i| = τ and 2τ (inside the tube and, for the
    extension, with later coordinates beyond τ)."""
    p = problems.get("octopus", dim=d)
    gen = torch.Generator().manual_seed(d)
    h = 1e-7
    for i in range(d):
        for boundary in (TAU, 2 * TAU):
            for sign in (1.0, -1.0):
                x = tube_points(d, 1, seed=int(boundary * 10) + i)[i * 1]
                if outside and i + 1 < d:
                    x[i + 1 :] = (1.1 + 4 * torch.rand(d - i - 1, generator=gen)) * TAU
                x[i] = sign * boundary
                lo, hi = x.clone(), x.clone()
                lo[i] -= sign * h
                hi[i] += sign * h
                assert abs(float(p(hi) - p(lo))) < 1e-4
                assert float((p.grad(hi) - p.grad(lo)).norm()) < 1e-4
                jump = (p.hessian(hi) - p.hessian(lo)).abs().max()
                # a jump in ∇²f would be O(1); continuity leaves O(h·‖D³f‖)
                assert float(jump) < 1e-3, (i, boundary, jump)


def test_c2_fails_for_a_discontinuous_function():
    """The C² check above can fail: a kink in the Hessian (|x|³ has none, x|x| has)."""
    x = torch.tensor([-1e-7, 1e-7], dtype=torch.float64)
    hess = [torch.func.hessian(lambda v: v * v.abs())(x[k : k + 1]) for k in range(2)]
    assert float((hess[1] - hess[0]).abs().max()) > 1.0


@pytest.mark.parametrize("d", [1, 2, 4])
def test_critical_points(d):
    p = problems.get("octopus", dim=d)
    check_critical_points(p)
    pts = p.critical_points
    first = "saddle" if d > 1 else "maximum"  # in 1-D, 0 has Hessian (−2γ)
    assert [c.kind for c in pts] == [first] + ["saddle"] * (d - 1) + ["minimum"]
    for i, c in enumerate(pts[:-1]):
        assert c.value == pytest.approx(-i * p.nu)
        ev = torch.linalg.eigvalsh(p.hessian(c.x))
        assert ev[0] == pytest.approx(-2 * p.gamma) and ev[1:].tolist() == pytest.approx(
            [2 * p.L] * (d - 1)
        )
    assert pts[-1].value == pytest.approx(p.f_min) and p.f_min == pytest.approx(-d * p.nu)
    # the sign copies are critical points of the same kind and value
    flipped = pts[-1].x * torch.tensor([(-1.0) ** k for k in range(d)], dtype=torch.float64)
    assert float(p.grad(flipped).norm()) < 1e-8 and float(p(flipped)) == pytest.approx(p.f_min)


def test_global_minimum_holds_outside_the_tube_too():
    p = problems.get("octopus", dim=3)
    gen = torch.Generator().manual_seed(0)
    x = (2 * torch.rand(200_000, 3, generator=gen, dtype=torch.float64) - 1) * 7 * TAU
    assert (~in_tube(x)).float().mean() > 0.3
    assert float(p(x).min()) >= p.f_min - 1e-9
    # and the extension is bounded below everywhere we look, with no value below f_min
    # even next to the minimum's sign copies
    near = p.critical_points[-1].x * torch.sign(torch.randn(1000, 3, generator=gen))
    near = near + 0.1 * torch.randn(1000, 3, generator=gen, dtype=torch.float64)
    assert float(p(near).min()) >= p.f_min


def test_smoothness_claim_checked():
    """THEORY's ℓ = max(2L, 2γ, 4Lτ, 2γτ) bounds the Hessian where GD goes, not on the
    whole tube; tube_smoothness does (documented in Octopus)."""
    p = problems.get("octopus", dim=3)
    assert p.smoothness == pytest.approx(4 * math.e**2)
    whole = max_hessian_norm(p, tube_points(3, 3000))
    assert p.smoothness < whole <= p.tube_smoothness
    assert whole >= 0.97 * p.tube_smoothness
    assert max_hessian_norm(p, tube_points(3, 3000, seed=1, y_max=0.85)) <= p.smoothness
    gd_like = max_hessian_norm(p, tube_points(3, 3000, seed=2, y_max=1e-3))
    assert gd_like <= 14.5 < p.smoothness


def test_hessian_lipschitz_on_the_tube():
    p = problems.get("octopus", dim=2)
    rho = max_hessian_secant(p, tube_points(2, 2000, seed=4), step=1e-5)
    assert 0.5 * p.hessian_lipschitz <= rho <= p.hessian_lipschitz
    # the supremum is in the (x_i, x_{i+1}) plane of the middle piece (at a_i = τ,
    # |x_{i+1}| = τ): scan a grid of it, edges included, and directions in the plane
    step = 1e-5
    a = torch.linspace(TAU + 2 * step, 2 * TAU - 2 * step, 21, dtype=torch.float64)
    x = torch.cartesian_prod(a, torch.linspace(-TAU, TAU, 21, dtype=torch.float64))
    best = 0.0
    for theta in torch.linspace(0, math.pi, 37, dtype=torch.float64)[:-1]:
        v = torch.stack([torch.cos(theta), torch.sin(theta)])
        diff = hessians(p, x + step * v) - hessians(p, x)
        best = max(best, float(torch.linalg.matrix_norm(diff, ord=2).max()) / step)
    assert 0.95 * p.hessian_lipschitz <= best <= p.hessian_lipschitz


def test_batched_equals_row_by_row_and_float32():
    p = problems.get("octopus", dim=4)
    gen = torch.Generator().manual_seed(0)
    x = (2 * torch.rand(64, 4, generator=gen, dtype=torch.float64) - 1) * 6 * TAU
    rows = torch.stack([p(r) for r in x])
    assert torch.allclose(p(x), rows, rtol=1e-14, atol=1e-11)
    assert p(x.float()).dtype == torch.float32
    assert torch.allclose(p(x.float()).double(), p(x), rtol=1e-4, atol=1e-2)
    g = p.grad(x)
    assert torch.allclose(g[3], p.grad(x[3]))


def test_hessian_matches_finite_differences_of_the_gradient():
    p = problems.get("octopus", dim=3)
    x = tube_points(3, 3, seed=5)
    h = 1e-6
    for row in x:
        H = p.hessian(row)
        fd = torch.stack(
            [(p.grad(row + h * e) - p.grad(row - h * e)) / (2 * h) for e in torch.eye(3).double()]
        )
        assert torch.allclose(H, fd, atol=1e-5)


def test_sample_init_uniform_and_seeded():
    p = problems.get("octopus", dim=5)
    a = p.sample_init(torch.Generator().manual_seed(0), batch=10_000)
    assert torch.equal(a, p.sample_init(torch.Generator().manual_seed(0), batch=10_000))
    assert a.abs().max() <= 1 and a.min() < -0.99 and a.max() > 0.99
    assert abs(float(a.mean())) < 0.02


@pytest.mark.parametrize(
    ("params", "word"),
    [
        (dict(dim=0), "dim"),
        (dict(L=0.0), "L"),
        (dict(gamma=-1.0), "gamma"),
        (dict(tau=math.nan), "tau"),
    ],
)
def test_bad_parameters_name_themselves(params, word):
    with pytest.raises(ConfigError, match=rf"octopus.*\b{word}\b"):
        problems.get("octopus", **params)


@pytest.mark.parametrize(
    ("params", "word"),
    [
        (dict(tau=1e-170), "tau"),  # τ² underflows: was a ZeroDivisionError
        (dict(tau=1e-160), "tau"),  # c₄ = inf: f = nan in the middle piece (a = 1.5τ)
        (dict(tau=1e160), "tau"),  # ν = inf: f_min = −inf, f = −inf at the minimum
        (dict(L=1e307), "L"),  # ν = inf, ∇f nan at the saddle z_1
        (dict(gamma=1e307), "gamma"),
    ],
)
def test_parameters_that_overflow_float64_are_refused(params, word):
    with pytest.raises(ConfigError, match=rf"octopus.*\b{word}\b"):
        problems.get("octopus", **params)
    assert math.isfinite(problems.get("octopus", tau=1e-150).f_min)


def gd_iterations(d: int, batch: int, max_iter: int) -> tuple[torch.Tensor, bool]:
    """Plain float64 GD x ← x − ∇f/ℓ from uniform [−1, 1]^d; iterations until
    ‖|x| − 4τ𝟙‖ ≤ 1e-2, and whether every iterate stayed in the tube."""
    p = problems.get("octopus", dim=d)
    x = p.sample_init(torch.Generator().manual_seed(0), batch=batch)
    done = torch.full((batch,), -1)
    stayed = True
    for it in range(max_iter):
        stayed &= bool(in_tube(x).all())
        reached = ((x.abs() - 4 * p.tau).norm(dim=-1) <= 1e-2) & (done < 0)
        done[reached] = it
        if (done >= 0).all():
            break
        x = x - p.grad(x) / p.smoothness
    return done, stayed


@pytest.mark.slow
def test_gd_takes_exponential_time_and_stays_in_the_tube():
    """THEORY.md measured 229 and 861 iterations for d = 2, 3 (one seed)."""
    it2, stayed2 = gd_iterations(2, 8, 2000)
    it3, stayed3 = gd_iterations(3, 8, 4000)
    assert stayed2 and stayed3
    assert (it2 > 0).all() and (it3 > 0).all()
    m2, m3 = float(it2.double().median()), float(it3.double().median())
    assert 229 / 2 <= m2 <= 229 * 2
    assert 861 / 2 <= m3 <= 861 * 2
    assert m3 >= 3 * m2


def _mixed_points(d: int, n: int, seed: int) -> torch.Tensor:
    """Tube points of every piece, points outside the tube, points on the joins |x_j| = τ,
    2τ, and subnormal or zero coordinates (the ones gradient descent still has to escape)."""
    gen = torch.Generator().manual_seed(seed)
    outside = (2 * torch.rand(n, d, generator=gen, dtype=torch.float64) - 1) * 7 * TAU
    joins = tube_points(d, max(n // (d + 1), 1), seed=seed)
    pick = torch.rand(joins.shape, generator=gen) < 0.3
    joins[pick] = (
        torch.sign(joins[pick]) * TAU * torch.randint(1, 3, joins.shape, generator=gen)[pick]
    )
    x = torch.cat([tube_points(d, n, seed=seed), outside, joins])
    tiny = torch.rand(x.shape, generator=gen) < 0.25
    scale = 10.0 ** -torch.randint(300, 323, x.shape, generator=gen).double()
    x[tiny] *= scale[tiny]
    x[torch.rand(x.shape, generator=gen) < 0.03] = 0.0
    assert (x.abs() < 2.3e-308).logical_and(x != 0).any()  # subnormals present
    return x[torch.randperm(len(x), generator=gen)]


def _fast_and_reference(p, x: torch.Tensor):
    xa = x.clone().requires_grad_(True)
    fa = p.f(xa)
    assert "OctopusValue" in type(fa.grad_fn).__name__  # the analytic path ran
    (ga,) = torch.autograd.grad(fa.sum(), xa)
    xr = x.clone().requires_grad_(True)
    fr = p._f_autograd(xr)
    (gr,) = torch.autograd.grad(fr.sum(), xr)
    return fa.detach(), ga, fr.detach(), gr


@pytest.mark.parametrize("d", [1, 2, 5, 10])
def test_analytic_gradient_equals_autograd_of_the_reference(d):
    """The custom autograd.Function gives the same f (bit for bit) and ∇f to 1e-12 relative
    as autograd through the ~100 ops of _f_autograd, for single points, small batches
    (numpy) and large ones (torch). Relative per coordinate to |∂_j f| + |x_j|·(L + γ) (a
    coordinate's gradient is x_j times a sum of O(L + γ) weights) + the smallest normal."""
    p = problems.get("octopus", dim=d)
    x = _mixed_points(d, 300, seed=d)
    batches = [x[k] for k in range(12)] + list(x.split(7)) + [x.repeat(4, 1)[:2000]]
    assert 2000 * d > 1024  # the torch branch runs too
    for xb in batches:
        fa, ga, fr, gr = _fast_and_reference(p, xb)
        assert fa.shape == fr.shape and ga.shape == gr.shape == xb.shape
        assert torch.equal(fa, fr)
        # (below the smallest normal double, relative precision is lost to the format)
        tol = 1e-12 * (gr.abs() + xb.abs() * (p.L + p.gamma) + SMALLEST_NORMAL)
        assert ((ga - gr).abs() <= tol).all(), float(((ga - gr).abs() / tol).max())
        # subnormal coordinates: their gradient is a subnormal multiple of x_j, not 0
        sub = (xb.abs() < 1e-300) & (xb != 0)
        assert torch.equal(ga[sub] == 0, gr[sub] == 0)


def test_analytic_gradient_other_parameters_float32_and_grad_output():
    p = problems.get("octopus", dim=4, L=1.0, gamma=2.0, tau=0.5)
    x = _mixed_points(4, 50, seed=7) * (0.5 / TAU)
    fa, ga, fr, gr = _fast_and_reference(p, x)
    assert torch.equal(fa, fr)
    assert ((ga - gr).abs() <= 1e-12 * (gr.abs() + 3 * x.abs() + SMALLEST_NORMAL)).all()
    # float32 takes the torch branch; weighted outputs scale each row's gradient
    x32 = x[:40].float().requires_grad_(True)
    w = torch.linspace(-2, 3, 40)
    (g32,) = torch.autograd.grad((p.f(x32) * w).sum(), x32)
    assert g32.dtype == torch.float32
    assert torch.allclose(g32.double(), w[:, None].double() * gr[:40], rtol=1e-3, atol=1e-3)


def test_double_backward_hvp_and_transforms_still_work():
    """HVPs by double backward, torch.func.hessian and torch.func.grad go through the
    differentiable path and match the reference Hessian."""
    p = problems.get("octopus", dim=5)
    gen = torch.Generator().manual_seed(3)
    for x in tube_points(5, 3, seed=3)[::2]:
        v = torch.randn(5, generator=gen, dtype=torch.float64)
        H = torch.func.hessian(p._f_autograd)(x)
        xg = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(p.f(xg), xg, create_graph=True)
        (hv,) = torch.autograd.grad(g @ v, xg)
        assert torch.allclose(hv, H @ v, rtol=1e-12, atol=1e-12)
        assert torch.allclose(p.hessian(x), H, rtol=1e-12, atol=1e-12)
        assert torch.allclose(torch.func.grad(p.f)(x), g.detach(), rtol=1e-12, atol=1e-12)
    X = tube_points(5, 4, seed=9).requires_grad_(True)
    (G,) = torch.autograd.grad(p.f(X).sum(), X, create_graph=True)
    (HV,) = torch.autograd.grad((G * X.detach()).sum(), X)
    ref = torch.stack([torch.func.hessian(p._f_autograd)(r) @ r for r in X.detach()])
    assert torch.allclose(HV, ref, rtol=1e-12, atol=1e-10)


def test_in_place_change_before_backward_is_caught():
    p = problems.get("octopus", dim=3)
    x = torch.ones(2, 3, dtype=torch.float64, requires_grad=True)
    y = x * 1.0
    f = p.f(y)
    with torch.no_grad():
        y.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        f.sum().backward()
