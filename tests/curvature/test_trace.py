"""Trace estimators against torch.trace of dense matrices."""

import math

import pytest
import torch
from _spectra import SPECTRA, spectrum
from _spectra import random_symmetric as with_spectrum
from hypothesis import given
from hypothesis import strategies as st

from saddlescape.curvature.trace import TraceResult, trace
from saddlescape.errors import ConfigError


class DenseOp:
    """A minimal operator: only matvec, shape and dtype (no matmat)."""

    def __init__(self, A):
        self.A, self.shape, self.dtype = A, tuple(A.shape), A.dtype

    def matvec(self, v):
        return self.A @ v


def random_symmetric(n, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, n, generator=g, dtype=dtype)
    return (X + X.T) / 2


def low_rank_plus_noise(n, rank, seed):
    g = torch.Generator().manual_seed(seed)
    U, _ = torch.linalg.qr(torch.randn(n, rank, generator=g, dtype=torch.float64))
    N = torch.randn(n, n, generator=g, dtype=torch.float64)
    return U @ torch.diag(torch.linspace(100, 50, rank, dtype=torch.float64)) @ U.T + 0.01 * (
        N + N.T
    )


@pytest.mark.parametrize("method", ["hutchinson", "hutch++"])
def test_estimate_within_standard_errors(method):
    A = random_symmetric(60, 1) + 3 * torch.eye(60, dtype=torch.float64)
    r = trace(DenseOp(A), method=method, num_matvecs=45, seed=3)
    assert isinstance(r, TraceResult) and r.method == method
    assert r.hvps == 45
    assert r.std_error > 0
    assert abs(r.estimate - float(torch.trace(A))) < 4 * r.std_error


@pytest.mark.parametrize("method", ["hutchinson", "hutch++"])
def test_standard_error_is_calibrated(method):
    A = random_symmetric(40, 7)
    A = A + torch.diag(torch.linspace(-5, 5, 40, dtype=torch.float64))
    true = float(torch.trace(A))
    z = torch.tensor(
        [(trace(A, method, num_matvecs=30, seed=s).estimate - true) for s in range(300)]
    )
    se = torch.tensor([trace(A, method, num_matvecs=30, seed=s).std_error for s in range(300)])
    zs = z / se
    assert abs(float(zs.mean())) < 0.25  # unbiased
    assert 0.8 < float(zs.std()) < 1.25  # the reported error has the right size
    assert float((zs.abs() < 1.96).double().mean()) > 0.88  # ~95% coverage


def test_hutch_plus_plus_beats_hutchinson_on_low_rank_plus_noise():
    A = low_rank_plus_noise(200, 10, 0)
    true = float(torch.trace(A))
    err = {
        m: sum(abs(trace(A, m, num_matvecs=60, seed=s).estimate - true) for s in range(20))
        for m in ("hutchinson", "hutch++")
    }
    assert err["hutch++"] < err["hutchinson"] / 10


def test_exact_when_sketch_spans_space_and_seeded_reproducible():
    A = random_symmetric(8, 2, dtype=torch.float32)
    r = trace(A, num_matvecs=30, seed=0)
    assert r.std_error == 0.0 and r.hvps == 16
    assert math.isclose(r.estimate, float(torch.trace(A)), rel_tol=1e-4, abs_tol=1e-4)
    B = random_symmetric(50, 2)
    assert trace(B, seed=5).estimate == trace(B, seed=5).estimate
    assert trace(B, seed=5).estimate != trace(B, seed=6).estimate
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert trace(B, "hutchinson", seed=g1).estimate == trace(B, "hutchinson", seed=g2).estimate


def test_bad_arguments():
    A = torch.eye(4)
    with pytest.raises(ConfigError, match="method"):
        trace(A, method="hutch")
    with pytest.raises(ConfigError, match="num_matvecs"):
        trace(A, num_matvecs=3)
    with pytest.raises(ConfigError, match="num_matvecs"):
        trace(A, "hutchinson", num_matvecs=1)
    with pytest.raises(ConfigError, match="square"):
        trace(torch.ones(3, 4))
    with pytest.raises(ConfigError, match="seed"):
        trace(A, seed="x")


def test_on_hessian_operator_of_a_function():
    from saddlescape.curvature import HessianOperator

    g = torch.Generator().manual_seed(4)
    B = random_symmetric(25, 4)
    x = torch.randn(25, generator=g, dtype=torch.float64)

    def f(z):
        return 0.5 * z @ B @ z + (z**4).sum() / 12  # Hessian B + diag(z²)

    op = HessianOperator.from_function(f, x)
    true = float(torch.trace(B) + (x**2).sum())
    r = trace(op, "hutch++", num_matvecs=90, seed=0)
    assert r.hvps == op.hvps <= 90
    assert abs(r.estimate - true) < 4 * r.std_error + 1e-9


def random_matrix(kind: str, n: int, seed: int) -> tuple[torch.Tensor, float]:
    """A random symmetric matrix with a spectrum of ``kind``, and its exact trace."""
    gen = torch.Generator().manual_seed(seed)
    A = with_spectrum(spectrum(kind, n, gen), gen)
    return A, float(torch.trace(A))


def random_cases(min_matvecs: int) -> dict:
    """Hypothesis arguments: a spectrum kind, a size, a product budget and a seed."""
    return {
        "kind": st.sampled_from(SPECTRA),
        "n": st.integers(3, 100),
        "m": st.integers(min_matvecs, 300),
        "seed": st.integers(0, 2**20),
    }


@given(**random_cases(60))
def test_hutchinson_within_four_standard_errors(kind, n, m, seed):
    A, exact = random_matrix(kind, n, seed)
    r = trace(DenseOp(A), "hutchinson", num_matvecs=m, seed=seed)
    assert r.hvps == m
    # Rademacher probes: Var(zᵀAz) = 2·Σ_{i≠j} A_ij², so the exact standard error is
    off = A - torch.diag(A.diagonal())
    sd = math.sqrt(2 * float(off.square().sum()) / m)
    tiny = 1e-12 * float(A.abs().sum())  # rounding
    assert abs(r.estimate - exact) <= 4 * sd + tiny
    assert r.std_error <= 2 * sd + tiny  # the reported one is its sample estimate


@given(**random_cases(90))
def test_hutch_plus_plus_within_four_standard_errors_or_exact(kind, n, m, seed):
    A, exact = random_matrix(kind, n, seed)
    r = trace(DenseOp(A), "hutch++", num_matvecs=m, seed=seed)
    frob = float(A.norm())
    if m // 3 >= n:  # the sketch spans R^n: exact, with 2n products
        assert r.std_error == 0.0 and r.hvps == 2 * n
        assert abs(r.estimate - exact) <= 1e-12 * n * frob
        return
    assert r.hvps == m
    # the deflated remainder (I − QQᵀ)A(I − QQᵀ) has ‖·‖_F ≤ ‖A‖_F: a bound on the exact
    # standard error of its m − 2⌊m/3⌋ Hutchinson probes (at least 30 here)
    sd = math.sqrt(2 / (m - 2 * (m // 3))) * frob
    assert abs(r.estimate - exact) <= 4 * sd
    assert r.std_error <= 2 * sd


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("method", ["hutchinson", "hutch++"])
def test_half_precision_operators(dtype, method):
    """Before, Hutch++ (the default) raised torch's raw NotImplementedError ("geqrf_cpu"),
    and Hutchinson summed probe values in float16 (inf past 65504: reported as a non-finite
    operator at n = 1e5) or bfloat16 (99840 for a trace of 100041, with std_error 0); and
    Hutch++ rounded its projected probes to bfloat16, 6 standard errors off."""
    g = torch.Generator().manual_seed(0)
    d = (torch.rand(70000, generator=g, dtype=torch.float64) + 0.5).to(dtype)
    exact = float(d.double().sum())

    class Diagonal:
        shape, dtype = (70000, 70000), d.dtype

        def matvec(self, v):
            return d * v

        def matmat(self, V):
            return d[:, None] * V

    r = trace(Diagonal(), method, num_matvecs=12, seed=0)
    assert r.hvps == 12
    assert abs(r.estimate - exact) <= max(4 * r.std_error, 1e-9 * exact)
