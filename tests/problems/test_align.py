"""``Problem.align``: distances to listed critical points are measured to their symmetry
orbits, so a run that ends at an unlisted symmetric copy reports the right point."""

import pytest
import torch

from saddlescape import optim, problems

CASES = [
    ("octopus", {"dim": 5}),
    ("matrix-factorization", {}),
    ("phase-retrieval", {"dim": 4}),
    ("phase-retrieval", {"dim": 4, "n_measurements": 40}),
    ("tensor-decomposition", {"d": 3}),
    ("lee-2d", {}),
]


def _symmetric_copy(p, x, g):
    """A random image of x under a symmetry of f."""
    if p.name == "octopus":
        return x * (torch.randint(0, 2, x.shape, generator=g) * 2 - 1)
    if p.name == "matrix-factorization":
        Q, _ = torch.linalg.qr(torch.randn(p.r, p.r, generator=g, dtype=torch.float64))
        return (x.reshape(p.n, p.r) @ Q).reshape(-1)
    if p.name == "phase-retrieval":
        return -x
    if p.name == "tensor-decomposition":
        W = x.reshape(p.d, p.d)[torch.randperm(p.d, generator=g)]
        scale = torch.rand(p.d, 1, generator=g, dtype=torch.float64) + 0.5
        return (W * scale * (torch.randint(0, 2, (p.d, 1), generator=g) * 2 - 1)).reshape(-1)
    return x


@pytest.mark.parametrize(("name", "params"), CASES)
def test_align_keeps_f_and_maps_copies_of_listed_points_onto_them(name, params):
    p = problems.get(name, **params)
    g = torch.Generator().manual_seed(0)
    x = p.sample_init(g)
    for c in p.critical_points:
        y = p.align(x, c.x)
        assert float(p.f(y)) == pytest.approx(float(p.f(x)), rel=1e-10, abs=1e-12)
        # the aligned copy is no farther from c than x itself
        assert float((y - c.x).norm()) <= float((x - c.x).norm()) + 1e-12
        copy = _symmetric_copy(p, c.x, g)
        cp, dist = optim.nearest_critical_point(p, copy)
        assert dist < 1e-8 and cp.value == pytest.approx(c.value, abs=1e-9)


def test_octopus_sign_flipped_minimum_is_reported_as_the_minimum():
    p = problems.get("octopus", dim=5)
    x = torch.full((5,), 4 * p.tau, dtype=torch.float64) * torch.tensor([1, 1, -1, -1, -1])
    cp, dist = optim.nearest_critical_point(p, x)
    assert cp.kind == "minimum" and dist == 0.0


def test_octopus_pgd_reports_the_global_minimum():
    """The audit's case: PGD ends at a sign-flipped copy of 4τ𝟙 (f − f_min ≈ 1e-8), which
    used to be reported as the saddle (4τ, 4τ, 0, 0, 0) at distance 18.8."""
    p = problems.get("octopus", dim=5)
    tr = optim.run(p, "pgd", 1000, seed=0)
    assert tr.f - p.f_min < 1e-6 and bool((tr.x < 0).any())
    cp, dist = tr.nearest(p)
    assert cp.kind == "minimum" and dist < 1e-3
