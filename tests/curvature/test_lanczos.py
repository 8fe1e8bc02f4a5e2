"""Lanczos against dense eigvalsh on hard spectra (hypothesis), restarts, counters, seeds."""

import pytest
import torch
from _spectra import SPECTRA, random_symmetric, spectrum
from hypothesis import given
from hypothesis import strategies as st

from saddlescape.curvature import DenseOperator, lanczos
from saddlescape.errors import ConfigError, CurvatureError


@given(
    kind=st.sampled_from(SPECTRA),
    n=st.integers(5, 200),
    which=st.sampled_from(["smallest", "largest", "both"]),
    k=st.integers(1, 3),
    seed=st.integers(0, 2**20),
    block=st.sampled_from(["default", "k"]),
)
def test_matches_dense_eigvalsh(kind, n, which, k, seed, block):
    """Both ways to find repeated eigenvalues — one vector then a search for copies (the
    default), or a block as wide as k — against eigvalsh; "repeated" and "clustered"
    spectra put a triple eigenvalue at the wanted end."""
    gen = torch.Generator().manual_seed(seed)
    A = random_symmetric(spectrum(kind, n, gen), gen)
    exact = torch.linalg.eigvalsh(A)
    norm = float(exact.abs().max())
    op = DenseOperator(A)
    tol = 1e-8
    size = None if block == "default" else k
    r = lanczos(op, k=k, which=which, tol=tol, seed=seed, max_hvps=20 * n, block_size=size)
    assert r.converged
    assert op.hvps == r.hvps  # every product counted, nothing else
    kk = min(k, n)
    idx = {
        "smallest": range(kk),
        "largest": range(n - kk, n),
        "both": sorted(set(range(kk)) | set(range(n - kk, n))),
    }[which]
    want = exact[list(idx)]
    got = r.eigenvalues
    assert got.shape == want.shape
    # residual ≤ tol·‖H‖ bounds the distance to the spectrum; with a block ≥ multiplicity
    # the i-th Ritz value matches the i-th eigenvalue
    assert torch.allclose(got, want, atol=tol * norm * 10 + 1e-12, rtol=0)
    assert bool((r.residuals <= tol * norm * 1.0001).all())
    # eigenvectors: unit, and the reported residuals are the true ones
    V = r.eigenvectors
    assert torch.allclose(V.norm(dim=0), torch.ones(V.shape[1], dtype=V.dtype), atol=1e-10)
    true_res = (A @ V - V * r.eigenvalues).norm(dim=0)
    assert torch.allclose(true_res, r.residuals, atol=1e-9 * norm)


def test_reported_residuals_in_a_degenerate_cluster():
    """Found by hypothesis: a block of 3 whose last step has room for one column only (30
    of 31 dimensions used) dropped the other columns' coupling to it, so two reported
    residuals were 1.2e-8 and 2.4e-9 where the true ones are 2.1e-8 and 1.6e-8."""
    seed, n = 521873, 31
    gen = torch.Generator().manual_seed(seed)
    A = random_symmetric(spectrum("clustered", n, gen), gen)
    r = lanczos(
        DenseOperator(A), k=3, which="smallest", tol=1e-8, seed=seed, max_hvps=20 * n, block_size=3
    )
    assert r.converged
    assert torch.allclose(r.eigenvalues, torch.linalg.eigvalsh(A)[:3], atol=1e-7, rtol=0)
    true_res = (A @ r.eigenvectors - r.eigenvectors * r.eigenvalues).norm(dim=0)
    assert torch.allclose(true_res, r.residuals, atol=1e-9 * 5)


def _with_copies(n: int = 400, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """A Hessian-like spectrum (a few outliers over a bulk near 0) whose top eigenvalue is
    double, third eigenvalue triple, and most negative eigenvalue double."""
    gen = torch.Generator().manual_seed(seed)
    bulk = 0.5 * torch.rand(n - 9, generator=gen, dtype=torch.float64) - 0.1
    ends = torch.tensor([100.0, 100.0, 50.0, 40.0, 40.0, 40.0, 30.0, -20.0, -20.0])
    ev = torch.cat([ends.to(torch.float64), bulk])
    return random_symmetric(ev, gen), ev.sort().values


@pytest.mark.parametrize("which", ["largest", "smallest", "both"])
def test_default_finds_every_copy_of_a_repeated_eigenvalue(which):
    A, exact = _with_copies()
    op = DenseOperator(A)
    r = lanczos(op, k=6, which=which, tol=1e-6, seed=3)
    want = {
        "largest": exact[-6:],
        "smallest": exact[:6],
        "both": torch.cat([exact[:6], exact[-6:]]),
    }[which]
    assert r.converged and op.hvps == r.hvps
    torch.testing.assert_close(r.eigenvalues, want, atol=1e-6 * 100 * 10, rtol=0)
    V = r.eigenvectors
    torch.testing.assert_close(V.T @ V, torch.eye(V.shape[1], dtype=V.dtype), atol=1e-8, rtol=0)
    true_res = (A @ V - V * r.eigenvalues).norm(dim=0)
    torch.testing.assert_close(r.residuals, true_res, atol=1e-12 * 100, rtol=0)
    if which == "largest":  # here one start vector alone returns one copy of each
        single = lanczos(DenseOperator(A), k=6, which=which, tol=1e-6, seed=3, block_size=1)
        assert single.eigenvalues.unique().numel() == 6
        assert not torch.allclose(single.eigenvalues, want, atol=1e-3, rtol=0)


def test_thick_restart_keeps_converging():
    gen = torch.Generator().manual_seed(3)
    A = random_symmetric(spectrum("random", 150, gen), gen)
    op = DenseOperator(A)
    exact = torch.linalg.eigvalsh(A)
    r = lanczos(op, k=2, which="both", tol=1e-9, seed=0, max_basis=16, max_hvps=3000)
    assert r.restarts > 0 and r.converged
    assert torch.allclose(r.eigenvalues, exact[[0, 1, -2, -1]], atol=1e-7)


def test_budget_exhausted_is_not_converged():
    gen = torch.Generator().manual_seed(1)
    A = random_symmetric(spectrum("clustered", 100, gen), gen)
    r = lanczos(DenseOperator(A), k=1, which="smallest", tol=1e-12, max_hvps=4, seed=0)
    assert not r.converged and r.hvps == 4


def test_same_seed_same_bits_and_warm_start():
    gen = torch.Generator().manual_seed(2)
    A = random_symmetric(spectrum("random", 80, gen), gen)
    a = lanczos(DenseOperator(A), k=1, tol=1e-6, seed=7)
    b = lanczos(DenseOperator(A), k=1, tol=1e-6, seed=7)
    assert torch.equal(a.eigenvalues, b.eigenvalues) and a.hvps == b.hvps
    w = lanczos(DenseOperator(A), k=1, tol=1e-6, v0=a.eigenvectors[:, 0])
    assert w.hvps < a.hvps and abs(float(w.eigenvalues[0] - a.eigenvalues[0])) < 1e-5


def test_breakdown_at_an_eigenvector_start_continues():
    A = torch.diag(torch.tensor([-2.0, 0.0, 1.0, 3.0], dtype=torch.float64))
    r = lanczos(DenseOperator(A), k=1, which="largest", tol=1e-10, v0=torch.tensor([0, 0, 1.0, 0]))
    assert float(r.eigenvalues[0]) == pytest.approx(3.0)


def test_float32_operator_runs_in_float64():
    gen = torch.Generator().manual_seed(4)
    A = random_symmetric(spectrum("random", 60, gen), gen)
    r = lanczos(DenseOperator(A.float()), k=1, which="smallest", tol=1e-5, seed=0)
    assert r.eigenvalues.dtype == torch.float64
    assert float(r.eigenvalues[0]) == pytest.approx(float(torch.linalg.eigvalsh(A)[0]), abs=1e-4)


def test_relative_to_eigenvalue_resolves_a_small_lambda_min():
    ev = torch.cat([torch.tensor([-1e-3]), torch.linspace(0, 3, 99)]).double()
    gen = torch.Generator().manual_seed(5)
    A = random_symmetric(ev, gen)
    r = lanczos(DenseOperator(A), which="smallest", tol=1e-3, relative_to="eigenvalue", seed=0)
    assert r.converged and float(r.residuals[0]) <= 1e-3 * 1e-3 * 1.001
    assert float(r.eigenvalues[0]) == pytest.approx(-1e-3, rel=1e-3)


def test_bad_input():
    op = DenseOperator(torch.eye(3))
    with pytest.raises(ConfigError, match="which"):
        lanczos(op, which="middle")
    with pytest.raises(ConfigError, match="k"):
        lanczos(op, k=0)
    with pytest.raises(CurvatureError, match="v0"):
        lanczos(op, v0=torch.ones(4))
    with pytest.raises(CurvatureError, match="matvec"):
        lanczos(object())


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"tol": -1.0}, "tol"),
        ({"tol": float("nan")}, "tol"),
        ({"tol": float("inf")}, "tol"),
        ({"max_hvps": 0}, "max_hvps"),
        ({"max_hvps": 2.5}, "max_hvps"),
        ({"max_hvps": True}, "max_hvps"),
    ],
)
def test_bad_tolerance_and_budget_spend_nothing(kwargs, name):
    op = DenseOperator(torch.eye(3, dtype=torch.float64))
    with pytest.raises(ConfigError, match=name):
        lanczos(op, **kwargs)
    assert op.hvps == 0


@pytest.mark.parametrize("case", ["float64 operator, float32 v0", "float32 operator"])
@pytest.mark.parametrize(("which", "want"), [("smallest", -2.0), ("largest", 3.0)])
def test_a_start_that_is_an_eigenvector_up_to_rounding_is_not_the_answer(case, which, want):
    """v0 = a bulk eigenvector rounded to float32 (or exact for a float32 operator) couples
    to the rest of the space only by rounding, so its own Ritz pair converged at once:
    before, λ = −0.59 was returned as converged for both ends (26 of 40 seeded runs)."""
    for seed in range(5):
        gen = torch.Generator().manual_seed(seed)
        Q, _ = torch.linalg.qr(torch.randn(50, 50, generator=gen, dtype=torch.float64))
        ev = torch.linspace(-1.0, 1.0, 50, dtype=torch.float64)
        ev[0], ev[-1] = -2.0, 3.0
        A = (Q * ev) @ Q.T
        A = (A + A.T) / 2
        if case == "float32 operator":
            op, v0, tol = DenseOperator(A.float()), torch.linalg.eigh(A.float())[1][:, 10], 1e-6
        else:
            op, v0, tol = DenseOperator(A), Q[:, 10].float(), 1e-8
        r = lanczos(op, k=1, which=which, tol=tol, seed=seed, v0=v0)
        assert r.converged and abs(float(r.eigenvalues[0]) - want) < 1e-4, (seed, r)
        assert r.hvps == op.hvps


@pytest.mark.parametrize(
    ("dtype", "tol"), [(torch.float32, 1e-10), (torch.float16, 1e-6), (torch.bfloat16, 1e-4)]
)
def test_a_tolerance_finer_than_the_products_is_refused(dtype, tol):
    """Before, a float16 operator at tol=1e-6 returned converged=True with residuals of
    2e-6 (true 3e-4) and λ 1.5e-4 off, bfloat16 1e-3 off, float32 at 1e-10 1e-8 off."""
    from saddlescape.curvature import certify, has_negative_curvature

    gen = torch.Generator().manual_seed(0)
    A = random_symmetric(spectrum("random", 40, gen), gen).to(dtype)
    op = DenseOperator(A)
    with pytest.raises(ConfigError, match=f"below what {dtype} products can resolve"):
        lanczos(op, k=1, which="both", tol=tol, seed=0)
    with pytest.raises(ConfigError, match="below what"):
        has_negative_curvature(op, tau=0.1, tol=tol, seed=0)
    assert op.hvps == 0
    x = torch.zeros(40, dtype=dtype)
    with pytest.raises(ConfigError, match="below what"):
        certify(lambda z: 0.5 * z @ (A @ z), x, eps=1e-3, tau=0.1, tol=tol)
    r = lanczos(op, k=1, which="both", tol=1e-3, seed=0)  # the default tolerance passes
    exact = torch.linalg.eigvalsh(A.double())
    assert r.converged
    assert float((r.eigenvalues - exact[[0, -1]]).abs().max()) <= 1e-3 * float(exact.abs().max())


@pytest.mark.parametrize("tol", [1e-3, 1e-6, 1e-10])
def test_a_start_orthogonal_to_the_wanted_end_still_finds_it(tol):
    """A diagonal (separable) Hessian and a v0 with exact zeros at both ends: every product
    keeps the zeros, so the Krylov space never held λ_max = 3 or λ_min = −2. Before, λ =
    ±0.999 came back converged (n = 2000), and has_negative_curvature said False for τ =
    1.5 (the true λ_min is −2)."""
    from saddlescape.curvature import has_negative_curvature

    n = 2000
    d = torch.linspace(-1.0, 1.0, n, dtype=torch.float64)
    d[0], d[-1] = -2.0, 3.0
    v0 = torch.ones(n, dtype=torch.float64)
    v0[0] = v0[-1] = 0.0

    class Diagonal:
        shape, dtype = (n, n), torch.float64

        def matvec(self, v):
            return d * v

    r = lanczos(Diagonal(), k=1, which="both", tol=tol, seed=0, v0=v0)
    assert r.converged
    assert r.eigenvalues.tolist() == pytest.approx([-2.0, 3.0], abs=max(3 * tol, 1e-8))
    neg = has_negative_curvature(Diagonal(), tau=1.5, tol=max(tol, 1e-8), seed=0, v0=v0)
    assert neg.negative is True


def test_a_warm_start_that_is_the_answer_stays_cheap():
    gen = torch.Generator().manual_seed(2)
    A = random_symmetric(spectrum("random", 80, gen), gen)
    for tol in (1e-3, 1e-6):
        cold = lanczos(DenseOperator(A), k=1, tol=tol, seed=7)
        warm = lanczos(DenseOperator(A), k=1, tol=tol, seed=3, v0=cold.eigenvectors[:, 0])
        assert warm.converged and warm.hvps <= 3 and warm.hvps < cold.hvps / 5
