"""acceleration (Jin, Netrapalli, Jordan 2018): the test function against closed forms and a
dense Hessian, escape counts against the linear growth rates, and the verdict logic."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from saddlescape import experiments
from saddlescape.errors import ConfigError
from saddlescape.experiments import RunRecord
from saddlescape.experiments.acceleration import CubicSaddle


@pytest.fixture(scope="module")
def exp():
    return experiments.get("acceleration")


@pytest.mark.parametrize("kappa", [10.0, 1000.0])
def test_cubic_saddle_critical_points_match_the_closed_form(kappa):
    p = CubicSaddle(kappa, 12)
    a = p.diagonal()

    def f(x):
        return p.f(x.unsqueeze(0), a)[0]

    x_min = torch.zeros(12, dtype=torch.float64)
    x_min[0] = p.minimizer_norm
    x_min.requires_grad_(True)
    (g,) = torch.autograd.grad(f(x_min), x_min)
    assert float(g.norm()) < 1e-14
    assert math.isclose(float(f(x_min.detach())), p.f_min, rel_tol=1e-12)
    assert math.isclose(p.f_min, -2 * p.gamma / 3, rel_tol=1e-12)
    h_min = torch.autograd.functional.hessian(f, x_min.detach())
    assert float(torch.linalg.eigvalsh(h_min)[0]) > 0  # a minimum
    # at 0 the norm's derivative is 0/0 in autograd: a point 1e-9 away (cubic term O(ρ·1e-9))
    near = torch.full((12,), 1e-9 / math.sqrt(12), dtype=torch.float64)
    ev = torch.linalg.eigvalsh(torch.autograd.functional.hessian(f, near))
    assert math.isclose(float(ev[0]), -1 / kappa, rel_tol=1e-6)  # −γ
    assert math.isclose(float(ev[-1]), 1.0, rel_tol=1e-6)  # ℓ
    assert math.isclose(p.rho * p.eps, p.gamma**2, rel_tol=1e-12)  # √(ρε) = γ


def test_runs_are_deterministic_and_escape(exp):
    cfg = exp.config(kappa=30.0, optimizer="pagd", params="theory", n_runs=3, dim=20, seed=4)
    a, b = exp.run(cfg), exp.run(cfg)
    np.testing.assert_array_equal(a.arrays["iterations"], b.arrays["iterations"])
    np.testing.assert_array_equal(a.arrays["final_f"], b.arrays["final_f"])
    assert (a.arrays["iterations"] > 0).all() and a.metrics["censored"] == 0
    assert (a.arrays["final_f"] <= CubicSaddle(30.0, 20).f_min / 2).all()
    assert a.metrics["grad_evals"] >= a.metrics["iterations"]


def test_pgd_escape_follows_the_linear_growth_rate(exp):
    """GD with η = 1/ℓ multiplies the escape component by 1 + γ/ℓ per step, so the
    escape count times ln(1 + 1/κ) ≈ ln(distance/initial component) barely moves with κ."""
    logs = []
    for kappa in (10.0, 100.0):
        out = exp.run(exp.config(kappa=kappa, optimizer="pgd", n_runs=3, dim=20, seed=0))
        logs.append(out.metrics["median_iterations"] * math.log1p(1 / kappa))
    # ln(2/(r/√d)) ≈ 9; the nonlinear end of the escape adds a little
    assert 7 < logs[0] < 14 and 7 < logs[1] < 14
    assert abs(logs[0] - logs[1]) < 0.15 * logs[1]


@pytest.mark.parametrize(
    ("key", "value"),
    [("kappa", 1.0), ("optimizer", "adam"), ("params", "best"), ("n_runs", 0), ("radius", 2.0)],
)
def test_bad_config_names_the_key(exp, key, value):
    with pytest.raises(ConfigError, match=key):
        exp.config(**{key: value})


def _records(slopes: dict[tuple[str, str], float], censor: bool = False) -> list[RunRecord]:
    out = []
    for (opt, par), b in slopes.items():
        for kappa in (10.0, 100.0, 1000.0):
            hits = np.array([int(20 * kappa**b), int(22 * kappa**b)])
            if censor and opt == "pagd" and kappa == 1000.0:
                hits[:] = -1
            out.append(
                RunRecord(
                    config={"optimizer": opt, "params": par, "kappa": kappa, "seed": 0},
                    metrics={},
                    arrays={"iterations": hits, "grad_evals": 2 * hits},
                )
            )
    return out


LIKE_THEORY = {
    ("pgd", "tuned"): 1.0,
    ("pagd", "tuned"): 0.45,
    ("pgd", "theory"): 1.07,
    ("pagd", "theory"): 0.65,
}


def test_analyze_supports_sqrt_against_linear(exp):
    a = exp.analyze(_records(LIKE_THEORY))
    assert a.verdict.supported, a.verdict.summary
    assert abs(a.verdict.numbers["pagd tuned slope"] - 0.45) < 0.02
    assert abs(a.verdict.numbers["pgd theory slope"] - 1.07) < 0.02
    assert a.table and "escape_vs_kappa" in a.figures


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({("pagd", "tuned"): 1.0}, "PAGD's slope (tuned)"),
        ({("pgd", "tuned"): 0.5}, "PGD's slope (tuned)"),
        ({("pgd", "theory"): 0.6}, "PGD's slope (theory)"),
        ({("pagd", "theory"): 0.9}, "PAGD's slope (theory)"),
    ],
)
def test_analyze_rejects_contradicting_slopes(exp, change, message):
    v = exp.analyze(_records({**LIKE_THEORY, **change})).verdict
    assert not v.supported and message in v.summary


def test_analyze_rejects_censored_and_failed_runs(exp):
    v = exp.analyze(_records(LIKE_THEORY, censor=True)).verdict
    assert not v.supported and "did not escape" in v.summary
    recs = [*_records(LIKE_THEORY), RunRecord({"optimizer": "pgd"}, {}, {}, "failed")]
    v = exp.analyze(recs).verdict
    assert not v.supported and "1 run(s) failed" in v.summary
    v = exp.analyze([r for r in _records(LIKE_THEORY) if r.config["params"] == "tuned"]).verdict
    assert not v.supported and "fewer than two" in v.summary
