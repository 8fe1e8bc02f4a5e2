"""Stochastic Lanczos quadrature against dense eigenvalues."""

import numpy as np
import pytest
import torch

from saddlescape.curvature.density import (
    SpectralDensity,
    plot_spectral_density,
    spectral_density,
)
from saddlescape.errors import ConfigError


class DenseOp:
    def __init__(self, A):
        self.A, self.shape, self.dtype = A, tuple(A.shape), A.dtype

    def matvec(self, v):
        return self.A @ v


def spectrum_matrix(n=120, seed=0, dtype=torch.float64):
    """A symmetric matrix with a bulk near 0, a few outliers and negative eigenvalues."""
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    lam = torch.cat(
        [
            torch.randn(n - 5, generator=g, dtype=torch.float64) * 0.3,
            torch.tensor([-4.0, 6.0, 9.0, 15.0, 30.0], dtype=torch.float64),
        ]
    )
    return (Q @ torch.diag(lam) @ Q.T).to(dtype), lam


def hutchinson_std(B, probes):
    """Std of the mean of uᵀBu over `probes` normalized Rademacher vectors (exact formula)."""
    n = B.shape[0]
    var = 2 * (float((B**2).sum()) - float((torch.diagonal(B) ** 2).sum())) / n**2
    return (var / probes) ** 0.5


def test_integrates_to_one_and_moments_match_dense():
    A, lam = spectrum_matrix()
    d = spectral_density(DenseOp(A), num_probes=30, lanczos_steps=40, seed=1)
    assert isinstance(d, SpectralDensity)
    assert d.hvps == 30 * 40
    assert torch.allclose(d.weights.sum(dim=1), torch.ones(30, dtype=torch.float64))
    grid = np.linspace(-10, 40, 20001)
    assert np.trapezoid(d.evaluate(grid, sigma=0.2), grid) == pytest.approx(1.0, abs=1e-6)
    n = A.shape[0]
    for k, B in ((1, A), (2, A @ A)):
        true = float((lam**k).sum()) / n
        assert abs(d.moment(k) - true) < 4 * hutchinson_std(B, 30) + 1e-9
    # Gauss quadrature is exact per probe: the moment estimate equals the Hutchinson one
    # computed with the same probes (regenerated from the seed).
    g = torch.Generator().manual_seed(1)
    U = (torch.randint(0, 2, (n, 30), generator=g, dtype=torch.int8).double() * 2 - 1) / n**0.5
    hutch = float(((A @ A @ U) * U).sum() / 30)
    assert d.moment(2) == pytest.approx(hutch, rel=1e-10)


def test_extremes_and_mass_of_outliers():
    A, lam = spectrum_matrix()
    d = spectral_density(A, num_probes=10, lanczos_steps=60, seed=0)
    assert d.lambda_min == pytest.approx(float(lam.min()), abs=1e-6)
    assert d.lambda_max == pytest.approx(float(lam.max()), abs=1e-6)
    # the outlier at 30 carries mass ≈ 1/n on average
    w_out = float((d.weights * (d.nodes > 20)).sum() / d.num_probes)
    assert 0.1 / 120 < w_out < 4 / 120


def test_float32_and_closed_krylov_space():
    A = torch.diag(torch.tensor([1.0, 1.0, 1.0, 3.0, 3.0, -2.0]))
    d = spectral_density(A, num_probes=3, lanczos_steps=6, seed=0)
    # three distinct eigenvalues: each probe's Krylov space closes after 3 steps
    assert d.hvps == 9
    for j in range(3):
        nz = d.nodes[j][d.weights[j] > 0]
        assert torch.allclose(
            nz.sort().values, torch.tensor([-2.0, 1.0, 3.0], dtype=torch.float64), atol=1e-5
        )
    A32, lam = spectrum_matrix(60, 3, torch.float32)
    d32 = spectral_density(A32, num_probes=4, lanczos_steps=30, seed=2)
    assert d32.lambda_max == pytest.approx(float(lam.max()), rel=1e-4)


def test_seeded_and_plot(tmp_path):
    A, lam = spectrum_matrix(50, 4)
    d1 = spectral_density(A, num_probes=3, lanczos_steps=10, seed=7)
    d2 = spectral_density(A, num_probes=3, lanczos_steps=10, seed=7)
    assert torch.equal(d1.nodes, d2.nodes) and torch.equal(d1.weights, d2.weights)
    fig = plot_spectral_density(d1, mark=(float(lam.min()), float(lam.max())))
    out = tmp_path / "density.png"
    fig.savefig(out)
    assert out.stat().st_size > 1000
    ax = fig.axes[0]
    xs = sorted(line.get_xdata()[0] for line in ax.lines[1:])
    assert xs == pytest.approx(sorted([float(lam.min()), float(lam.max())]))
    fig2 = plot_spectral_density(d1, log=True)
    assert fig2.axes[0].get_yscale() == "log"


def test_bad_arguments():
    with pytest.raises(ConfigError, match="num_probes"):
        spectral_density(torch.eye(3), num_probes=0)
    with pytest.raises(ConfigError, match="lanczos_steps"):
        spectral_density(torch.eye(3), lanczos_steps=0)
    d = spectral_density(torch.eye(3), num_probes=1, lanczos_steps=2, seed=0)
    with pytest.raises(ConfigError, match="sigma"):
        d.evaluate([0.0], sigma=-1)


def test_probe_blocks_do_not_change_the_result(monkeypatch):
    import saddlescape.curvature.density as density

    A, _ = spectrum_matrix(40, 5)
    whole = spectral_density(A, num_probes=5, lanczos_steps=12, seed=3)
    monkeypatch.setattr(density, "_BASIS_BUDGET", 12 * 40 * 2)  # blocks of 2 probes
    parts = spectral_density(A, num_probes=5, lanczos_steps=12, seed=3)
    assert torch.allclose(whole.nodes, parts.nodes, atol=1e-12)
    assert torch.allclose(whole.weights, parts.weights, atol=1e-12)
    assert parts.hvps == whole.hvps == 60


class NanOp:
    """An operator whose products are not finite (as from a diverged loss)."""

    shape, dtype = (6, 6), torch.float64

    def matvec(self, v):
        return torch.full_like(v, float("nan"))


@pytest.mark.parametrize("op", [NanOp(), torch.full((6, 6), float("inf"), dtype=torch.float64)])
def test_non_finite_products_raise_divergence_error(op):
    from saddlescape.errors import DivergenceError

    with pytest.raises(DivergenceError, match=r"spectral_density.*not finite"):
        spectral_density(op, num_probes=2, lanczos_steps=4, seed=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_runs_are_not_closed_after_one_step(dtype):
    """The closure test was β ≤ 10·n·eps·scale: ≥ scale for float16 at n ≈ 100 (float32 at
    n ≈ 1e6, a network's size), so every probe stopped after one product and the density
    was a single node at the mean (λ_min = λ_max = 2.97 for a spectrum in [−1.96, 7.99])."""
    g = torch.Generator().manual_seed(0)
    ev = torch.rand(200, generator=g, dtype=torch.float64) * 10 - 2
    d = spectral_density(torch.diag(ev).to(dtype), num_probes=2, lanczos_steps=20, seed=0)
    assert d.hvps == 40 and bool((d.weights > 0).sum(dim=1).eq(20).all())
    assert d.lambda_min == pytest.approx(float(ev.min()), abs=0.1)
    assert d.lambda_max == pytest.approx(float(ev.max()), abs=0.1)
    assert d.moment(2) == pytest.approx(float((ev**2).mean()), rel=0.05)
