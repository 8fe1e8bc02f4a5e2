"""tensor-decomposition: the objective against a dense 4-tensor contraction, the listed
critical points against dense Hessians (d radial zeros from the normalisation), and Ge et
al.'s claim that every local minimum is a signed permutation, tested by descent."""

from __future__ import annotations

import itertools

import pytest
import torch

from saddlescape import problems
from saddlescape.errors import ConfigError
from saddlescape.problems.tensor import TensorDecomposition

TOL = 1e-8


def dense_hessian(p, x: torch.Tensor) -> torch.Tensor:
    return torch.autograd.functional.hessian(p.f, x)


def test_objective_matches_dense_tensor():
    p = TensorDecomposition(d=3, seed=1)
    T = p.tensor()
    x = p.sample_init(torch.Generator().manual_seed(0), batch=4)
    for row in x:
        U = p.normalize(row).reshape(3, 3)
        ref = sum(
            torch.einsum("ijkl,i,j,k,l->", T, U[i], U[i], U[j], U[j])
            for i in range(3)
            for j in range(3)
            if i != j
        )
        assert float(p.f(row)) == pytest.approx(float(ref), rel=1e-12)
    # orthonormal components; T(a_k, a_k, a_k, a_k) = 1
    A = p.components
    assert torch.allclose(A.T @ A, torch.eye(3, dtype=torch.float64), atol=1e-14)
    assert float(torch.einsum("ijkl,i,j,k,l->", T, A[:, 0], A[:, 0], A[:, 0], A[:, 0])) == (
        pytest.approx(1.0)
    )


@pytest.mark.parametrize("d", [2, 3, 4])
def test_critical_points(d):
    p = TensorDecomposition(d=d)
    pts = p.critical_points
    kinds = [c.kind for c in pts]
    assert kinds.count("minimum") == 3 and "saddle" in kinds and kinds[-1] == "maximum"
    for c in pts:
        x = c.x
        assert p.grad(x).norm() < TOL
        assert float(p.f(x)) == pytest.approx(c.value, abs=1e-12)
        ev = torch.linalg.eigvalsh(dense_hessian(p, x))
        neg, pos = int((ev < -TOL).sum()), int((ev > TOL).sum())
        zeros = p.dim - neg - pos
        assert zeros >= d  # the d radial directions
        if c.kind == "minimum":
            # strict on the manifold: only the radial zeros; tangent Hessian 4I
            assert neg == 0 and zeros == d
            assert torch.allclose(ev[ev > TOL], torch.full((pos,), 4.0, dtype=torch.float64))
        elif c.kind == "maximum":
            assert pos == 0 and zeros == d
            assert c.value == d * (d - 1)
            assert torch.allclose(ev[:neg], torch.full((neg,), -4.0 * (d - 1), dtype=torch.float64))
        else:
            assert neg > 0 and pos > 0


@pytest.mark.parametrize("d", [2, 3])
def test_every_signed_permutation_is_a_global_minimum(d):
    p = TensorDecomposition(d=d, seed=2)
    A = p.components
    for perm in itertools.permutations(range(d)):
        for signs in itertools.product([1.0, -1.0], repeat=d):
            x = torch.stack([s * A[:, k] for s, k in zip(signs, perm, strict=True)]).reshape(-1)
            assert abs(float(p.f(x))) < 1e-14 and p.grad(x).norm() < TOL


@pytest.mark.parametrize("d", [3, 4])
def test_descent_from_random_starts_ends_at_signed_permutations(d):
    """Numerical support for Ge et al.'s claim (THEORY.md: unverified): projected gradient
    descent from 32 random starts always reaches f = 0 at a signed permutation of a_k."""
    p = TensorDecomposition(d=d, seed=3)
    x = p.sample_init(torch.Generator().manual_seed(0), batch=32)
    for _ in range(300):
        x = p.normalize(x - 0.15 * p.grad(p.normalize(x)))
    assert p.f(x).max() < 1e-10
    C = (x.reshape(-1, d, d) @ p.components).abs()  # |a_kᵀu_i|
    P = (C > 0.5).double()
    assert torch.allclose(C, P, atol=1e-5)
    assert (P.sum(-1) == 1).all() and (P.sum(-2) == 1).all()


def test_scale_invariance_range_and_batch():
    p = TensorDecomposition(d=3)
    g = torch.Generator().manual_seed(4)
    x = p.sample_init(g, batch=8)
    scale = torch.rand(8, 3, 1, generator=g, dtype=torch.float64) * 5 + 0.1
    y = (x.reshape(8, 3, 3) * scale).reshape(8, 9)
    assert torch.allclose(p.f(x), p.f(y), rtol=1e-12)
    assert torch.allclose(p.f(x), torch.stack([p.f(r) for r in x]), rtol=1e-14)
    assert ((p.f(x) >= 0) & (p.f(x) <= 6)).all()
    # the gradient is orthogonal to every block w_i
    G = p.grad(x).reshape(8, 3, 3)
    assert (G * x.reshape(8, 3, 3)).sum(-1).abs().max() < 1e-12
    assert torch.equal(
        TensorDecomposition(seed=7).components, TensorDecomposition(seed=7).components
    )
    assert not torch.equal(TensorDecomposition(seed=7).components, TensorDecomposition().components)
    assert p.f_min == 0.0 and p.smoothness is None


@pytest.mark.parametrize("kw, bad", [(dict(d=1), "d"), (dict(seed=-2), "seed")])
def test_bad_parameters(kw, bad):
    with pytest.raises(ConfigError, match=rf"\b{bad}\b"):
        problems.get("tensor-decomposition", **kw)
