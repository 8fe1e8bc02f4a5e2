"""Power iteration against known spectra."""

import pytest
import torch

from saddlescape.curvature import DenseOperator, power_iteration


def test_finds_largest_magnitude_even_if_negative():
    A = torch.diag(torch.tensor([-5.0, 1.0, 3.0, 0.5], dtype=torch.float64))
    op = DenseOperator(A)
    r = power_iteration(op, tol=1e-8, seed=0, max_hvps=500)
    assert r.converged and r.eigenvalue == pytest.approx(-5.0, abs=1e-6)
    assert r.hvps == op.hvps == r.iterations
    v = r.eigenvectors[:, 0]
    assert float((A @ v - r.eigenvalue * v).norm()) == pytest.approx(
        float(r.residuals[0]), abs=1e-12
    )


def test_budget_and_determinism():
    A = torch.diag(torch.tensor([1.0, 0.999, 0.1], dtype=torch.float64))
    a = power_iteration(DenseOperator(A), tol=1e-10, max_hvps=20, seed=3)
    b = power_iteration(DenseOperator(A), tol=1e-10, max_hvps=20, seed=3)
    assert not a.converged and a.hvps == 20
    assert torch.equal(a.eigenvalues, b.eigenvalues)


@pytest.mark.parametrize("tol", [1e-3, 1e-8])
def test_a_start_at_another_eigenvector_is_left(tol):
    """Before, v0 = the eigenvector of −0.59 gave λ = −0.59, converged, after one product
    (the dominant eigenvalue is 3). A warm start at the answer stays cheap."""
    g = torch.Generator().manual_seed(0)
    Q, _ = torch.linalg.qr(torch.randn(50, 50, dtype=torch.float64, generator=g))
    ev = torch.linspace(-1.0, 1.0, 50, dtype=torch.float64)
    ev[0], ev[-1] = -2.0, 3.0
    op = DenseOperator((Q * ev) @ Q.T)
    r = power_iteration(op, v0=Q[:, 10], tol=tol, seed=0)
    assert r.converged and r.eigenvalue == pytest.approx(3.0, abs=10 * tol)
    warm = power_iteration(op, v0=Q[:, -1], tol=tol, seed=1)
    assert warm.converged and warm.hvps <= 10 and warm.eigenvalue == pytest.approx(3.0, abs=tol)
