"""Classic problems: critical points to full precision, completeness, ℓ, ρ, batching."""

from __future__ import annotations

import math

import pytest
import torch
from _checks import (
    box_points,
    check_critical_points,
    hessians,
    max_hessian_norm,
    max_hessian_secant,
)
from hypothesis import given
from hypothesis import strategies as st

from saddlescape import problems
from saddlescape.errors import ConfigError

BOXES = {
    "lee-2d": (2.0, 2.0),
    "monkey-saddle": (2.0, 2.0),
    "rosenbrock": (2.0, 2.0),
    "himmelblau": (5.0, 5.0),
    "six-hump-camel": (3.0, 2.0),
}
CLASSIC = [*BOXES, "quadratic-saddle"]


@pytest.mark.parametrize("name", CLASSIC)
def test_critical_points(name):
    check_critical_points(problems.get(name), gtol=1e-12)


@pytest.mark.parametrize(
    ("params", "kind"),
    [
        (dict(dim=5, n_negative=2, curvature=3.0), "saddle"),
        (dict(dim=3, n_negative=0), "minimum"),
        (dict(dim=3, n_negative=3, curvature=0.5), "maximum"),
    ],
)
def test_quadratic_saddle(params, kind):
    p = problems.get("quadratic-saddle", **params)
    check_critical_points(p)
    assert [c.kind for c in p.critical_points] == [kind]
    ev = torch.linalg.eigvalsh(p.hessian(torch.randn(p.dim, dtype=torch.float64)))
    assert torch.allclose(ev, p.eigenvalues.sort().values)
    assert p.smoothness == float(ev.abs().max())
    assert (p.f_min == -math.inf) == (params["n_negative"] > 0)


def test_quadratic_saddle_large_dim_is_cheap():
    p = problems.get("quadratic-saddle", dim=100_000, n_negative=10)
    x = torch.ones(100_000, dtype=torch.float64)
    assert float(p(x)) == pytest.approx(0.5 * (99_990 - 10))


@pytest.mark.parametrize(
    ("params", "word"),
    [
        (dict(dim=2, n_negative=3), "n_negative"),
        (dict(dim=0), "dim"),
        (dict(curvature=-1.0), "curvature"),
        (dict(positive_curvature=0.0), "positive_curvature"),
    ],
)
def test_quadratic_saddle_rejects_bad_parameters(params, word):
    with pytest.raises(ConfigError, match=word):
        problems.get("quadratic-saddle", **params)


def newton(problem, x, steps=60):
    """Batched Newton's method on ∇f = 0 (float64)."""
    for _ in range(steps):
        g = problem.grad(x)
        h = hessians(problem, x)
        step = torch.linalg.lstsq(h, g.unsqueeze(-1)).solution.squeeze(-1)
        x = x - step.clamp(-1.0, 1.0)
    return x


@pytest.mark.parametrize(
    ("name", "counts"), [("himmelblau", (4, 4, 1)), ("six-hump-camel", (6, 7, 2))]
)
def test_critical_point_lists_are_complete_and_exact(name, counts):
    p = problems.get(name)
    pts = torch.stack([c.x for c in p.critical_points])
    kinds = [c.kind for c in p.critical_points]
    assert (kinds.count("minimum"), kinds.count("saddle"), kinds.count("maximum")) == counts
    gaps = (pts[:, None, :] - pts[None, :, :]).norm(dim=-1) + torch.eye(len(pts))
    assert gaps.min() > 0.1  # all distinct
    # Exact to float64: one more Newton step moves no point by more than 1e-14.
    refined = newton(p, pts, steps=3)
    assert (refined - pts).abs().max() < 1e-14
    # Complete: Newton from a 20×20 grid on the box converges only to listed points.
    bx, by = BOXES[name]
    gx = torch.linspace(-bx, bx, 20, dtype=torch.float64)
    gy = torch.linspace(-by, by, 20, dtype=torch.float64)
    starts = torch.cartesian_prod(gx, gy)
    ends = newton(p, starts)
    ok = (p.grad(ends).norm(dim=-1) < 1e-9) & (ends[:, 0].abs() <= bx) & (ends[:, 1].abs() <= by)
    assert ok.sum() > 300
    dist = (ends[ok][:, None, :] - pts[None, :, :]).norm(dim=-1)
    assert dist.min(dim=1).values.max() < 1e-10
    found = dist.argmin(dim=1).unique()
    assert len(found) == len(pts)  # every listed point is reached from somewhere


def test_himmelblau_matches_theory():
    theory = {
        (-2.805118, 3.131313): 0.0,
        (-3.779310, -3.283186): 0.0,
        (3.584428, -1.848127): 0.0,
        (-0.270845, -0.923039): 181.617,
        (0.086678, 2.884255): 67.719,
        (-3.073026, -0.081353): 104.015,
        (3.385154, 0.073852): 13.312,
        (-0.127961, -1.953715): 178.337,
    }
    pts = problems.get("himmelblau").critical_points
    for (x, y), value in theory.items():
        match = [c for c in pts if abs(c.x[0] - x) < 1e-6 and abs(c.x[1] - y) < 1e-6]
        assert len(match) == 1
        assert match[0].value == pytest.approx(value, abs=1e-3)


def test_six_hump_camel_matches_theory():
    p = problems.get("six-hump-camel")
    assert p.f_min == pytest.approx(-1.031628, abs=1e-6)
    by_kind = {}
    for c in p.critical_points:
        by_kind.setdefault(c.kind, []).append(c)
    assert by_kind["minimum"][0].x.abs().tolist() == pytest.approx([0.089842, 0.712656], abs=1e-6)
    assert sorted({round(c.value, 5) for c in by_kind["minimum"]}) == [-1.03163, -0.21546, 2.10425]
    assert by_kind["maximum"][0].x.abs().tolist() == pytest.approx([1.23023, 0.162335], abs=1e-5)
    origin = [c for c in by_kind["saddle"] if float(c.x.abs().max()) == 0.0]
    assert len(origin) == 1
    ev = torch.linalg.eigvalsh(p.hessian(origin[0].x))
    assert ev.tolist() == pytest.approx([-math.sqrt(65), math.sqrt(65)])


def test_rosenbrock_and_lee_match_theory():
    r = problems.get("rosenbrock")
    ev = torch.linalg.eigvalsh(r.hessian(r.critical_points[0].x))
    assert ev.tolist() == pytest.approx([0.399, 1001.6], abs=1e-3)
    lee = problems.get("lee-2d")
    assert [c.x.tolist() for c in lee.critical_points] == [[0, 0], [0, 1], [0, -1]]


@pytest.mark.parametrize("name", list(BOXES))
def test_smoothness_and_hessian_lipschitz_on_the_box(name):
    p = problems.get(name)
    bx, by = BOXES[name]
    hi = torch.tensor([bx, by], dtype=torch.float64)
    x = box_points(-hi, hi, 400)
    ell = max_hessian_norm(p, x)
    assert ell <= p.smoothness * (1 + 1e-12)
    assert ell >= 0.999 * p.smoothness  # the bound is attained (at a corner)
    # ρ: secants of the Hessian; at the corners the bound is attained for the cubic ones.
    inner = box_points(-hi * 0.999, hi * 0.999, 400, seed=3)
    rho = max_hessian_secant(p, inner)
    assert rho <= p.hessian_lipschitz * (1 + 1e-3)
    assert rho >= 0.5 * p.hessian_lipschitz


@pytest.mark.parametrize("name", list(BOXES))
def test_f_min_is_a_lower_bound(name):
    p = problems.get(name)
    bx, by = BOXES[name]
    hi = torch.tensor([bx, by], dtype=torch.float64)
    values = p(box_points(-hi, hi, 5000))
    assert float(values.min()) >= p.f_min - 1e-12


@pytest.mark.parametrize("name", CLASSIC)
@given(rows=st.lists(st.tuples(st.floats(-4, 4), st.floats(-4, 4)), min_size=1, max_size=8))
def test_batched_f_equals_row_by_row(name, rows):
    p = problems.get(name)
    x = torch.tensor(rows, dtype=torch.float64)
    batched = p(x)
    assert batched.shape == (len(rows),)
    single = torch.stack([p(row) for row in x])
    assert torch.allclose(batched, single, rtol=1e-14, atol=1e-12)


@pytest.mark.parametrize("name", CLASSIC)
def test_sample_init_is_seeded(name):
    p = problems.get(name)
    a = p.sample_init(torch.Generator().manual_seed(7), batch=5)
    b = p.sample_init(torch.Generator().manual_seed(7), batch=5)
    c = p.sample_init(torch.Generator().manual_seed(8), batch=5)
    assert a.shape == (5, 2) and a.dtype == torch.float64
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert p.sample_init(torch.Generator().manual_seed(7)).shape == (2,)
    if name in ("rosenbrock", "himmelblau", "six-hump-camel"):
        hi = torch.tensor(BOXES[name], dtype=torch.float64)
        assert (p.sample_init(torch.Generator().manual_seed(0), batch=500).abs() <= hi).all()


def test_float32_inputs_stay_float32():
    p = problems.get("himmelblau")
    assert p(torch.zeros(3, 2)).dtype == torch.float32
