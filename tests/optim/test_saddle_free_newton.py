"""SaddleFreeNewton (Dauphin et al. 2014): steps against dense eigendecompositions, the
damped-Newton variant, counters, the monotone line search."""

from __future__ import annotations

import itertools

import pytest
import torch

from saddlescape.errors import ConfigError
from saddlescape.optim import SaddleFreeNewton


def _quadratic(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    lam = torch.linspace(-2.0, 3.0, n, dtype=torch.float64)
    H = q @ torch.diag(lam) @ q.T
    H = (H + H.T) / 2
    b = torch.randn(n, generator=g, dtype=torch.float64)
    x = torch.randn(n, generator=g, dtype=torch.float64)
    return H, b, x


def _abs(H: torch.Tensor) -> torch.Tensor:
    lam, Q = torch.linalg.eigh(H)
    return Q @ torch.diag(lam.abs()) @ Q.T


@pytest.mark.parametrize("absolute", [True, False])
def test_full_rank_step_equals_the_dense_formula(absolute):
    H, b, x0 = _quadratic(6)
    x = x0.clone().requires_grad_(True)
    lam = 0.3
    opt = SaddleFreeNewton(
        [x], rank=3, damping=lam, line_search=False, absolute=absolute, lanczos_tol=1e-12, seed=0
    )
    opt.step(lambda: 0.5 * x @ H @ x + b @ x)
    g = H @ x0 + b
    M = _abs(H) if absolute else H
    expected = x0 - torch.linalg.solve(M + lam * torch.eye(6, dtype=torch.float64), g)
    torch.testing.assert_close(x.detach(), expected, rtol=1e-9, atol=1e-9)
    assert opt.grad_evals == 1 and opt.f_evals == 0 and opt.hvps == opt.last_step.hvps > 0
    assert opt.last_step.subspace_fraction == pytest.approx(1.0, abs=1e-9)


def test_low_rank_step_uses_the_extreme_eigenpairs_and_a_safe_complement():
    n, lam = 40, 0.05
    d = torch.cat(
        [torch.tensor([-3.0, -2.0]), torch.linspace(0.1, 0.5, n - 4), torch.tensor([4.0, 5.0])]
    )
    d = d.to(torch.float64)
    g = torch.Generator().manual_seed(1)
    b = torch.randn(n, generator=g, dtype=torch.float64)
    x = torch.zeros(n, dtype=torch.float64, requires_grad=True)
    opt = SaddleFreeNewton([x], rank=2, damping=lam, line_search=False, lanczos_tol=1e-12, seed=0)
    opt.step(lambda: 0.5 * (d * x * x).sum() + b @ x)
    # the 2 + 2 extreme eigenpairs are e_0, e_1, e_{n-2}, e_{n-1}; the rest gets 1/(μ + λ)
    denom = torch.full((n,), 5.0 + lam, dtype=torch.float64)
    for i in (0, 1, n - 2, n - 1):
        denom[i] = abs(float(d[i])) + lam
    torch.testing.assert_close(x.detach(), -b / denom, rtol=1e-8, atol=1e-10)
    assert opt.last_step.lambda_min == pytest.approx(-3.0) and opt.last_step.rank == 4


def test_line_search_never_increases_f_and_counts_evaluations():
    H, b, x0 = _quadratic(8, seed=2)
    x = x0.clone().requires_grad_(True)

    def f():
        return 0.5 * x @ H @ x + b @ x + 0.1 * (x**4).sum()

    opt = SaddleFreeNewton([x], rank=2, damping=1e-2, n_damping=4, seed=0)
    values = []
    for _ in range(15):
        values.append(float(opt.step(f)))
    assert all(b2 <= a2 for a2, b2 in itertools.pairwise(values))
    assert values[-1] < values[0]
    assert opt.f_evals == 4 * 15 and opt.grad_evals == 15 and opt.iterations == 15
    assert opt.counters["hvps"] == opt.hvps


def test_an_exact_critical_point_is_left_alone():
    x = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    opt = SaddleFreeNewton([x], rank=1, seed=0)
    opt.step(lambda: x[0] ** 2 - x[1] ** 2)
    assert torch.equal(x.detach(), torch.zeros(2, dtype=torch.float64))
    assert opt.hvps == 0 and not opt.last_step.accepted


@pytest.mark.parametrize(
    ("key", "value"), [("rank", 0), ("damping", -1.0), ("n_damping", 0), ("absolute", 1)]
)
def test_bad_hyperparameters_are_refused_by_name(key, value):
    x = torch.zeros(2, requires_grad=True)
    with pytest.raises(ConfigError, match=key):
        SaddleFreeNewton([x], **{key: value})
