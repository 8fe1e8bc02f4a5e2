"""certify-network: certificates of trained MLPs against a dense Hessian; verdict logic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from saddlescape import experiments, problems
from saddlescape.errors import ConfigError
from saddlescape.experiments import RunRecord


@pytest.fixture(scope="module")
def exp():
    return experiments.get("certify-network")


def _tiny(exp, **kw):
    values = dict(hidden="4", n_samples=200, steps=150, lr=0.5, tau=1e-3)
    values.update(kw)
    return exp.config(**values)


def test_certificate_matches_the_dense_hessian(exp):
    cfg = _tiny(exp, optimizer="gd")
    out = exp.run(cfg)
    m = out.metrics
    p = problems.get("mlp-digits", hidden="4", n_samples=200)
    theta = torch.as_tensor(out.arrays["theta"])
    eig = torch.linalg.eigvalsh(p.hessian(theta))
    assert m["lambda_max"] == pytest.approx(eig[-1].item(), rel=1e-5)
    assert m["lambda_min"] == pytest.approx(eig[0].item(), abs=1e-5 * eig[-1].item())
    assert m["grad_norm"] == pytest.approx(p.grad(theta).norm().item(), rel=1e-6)
    assert m["final_loss"] == pytest.approx(p.f(theta).item(), rel=1e-9)
    assert m["train_accuracy"] > 0.8 and m["hvps"] > 0
    assert m["tau"] == 1e-3 and m["kind"] in ("minimum", "saddle", "degenerate", "not stationary")


def test_perturbed_optimizers_perturb_and_sgd_is_deterministic(exp):
    pgd = exp.run(_tiny(exp, optimizer="pgd", grad_threshold=1.0, steps=60))
    assert pgd.metrics["perturbations"] > 0
    a = exp.run(_tiny(exp, optimizer="sgd", steps=50))
    b = exp.run(_tiny(exp, optimizer="sgd", steps=50))
    np.testing.assert_array_equal(a.arrays["theta"], b.arrays["theta"])


def test_tau_from_estimated_rho(exp):
    out = exp.run(_tiny(exp, optimizer="gd", tau=0.0, steps=20, rho_radius=0.5))
    m = out.metrics
    assert m["rho"] > 0 and m["tau"] == pytest.approx((m["rho"] * m["eps"]) ** 0.5)


@pytest.mark.parametrize("key,value", [("optimizer", "adam"), ("loss", "hinge"), ("eps", 0.0)])
def test_bad_config_names_the_key(exp, key, value):
    with pytest.raises(ConfigError, match=key):
        exp.config(**{key: value})


def _record(opt: str, acc: float, lam_min: float, tau: float = 1e-2) -> RunRecord:
    metrics = {
        "final_loss": 0.01, "train_accuracy": acc, "grad_norm": 1e-3, "lambda_min": lam_min,
        "lambda_max": 1.0, "kind": "degenerate", "is_sosp": lam_min >= -tau, "hvps": 10,
        "eps": 1e-2, "tau": tau, "rho": 0.01,
    }  # fmt: skip
    arrays = {"loss_curve": np.array([1.0, 0.1]), "curve_steps": np.array([0, 10])}
    return RunRecord({"optimizer": opt, "seed": 0}, metrics, arrays)


def test_analyze_verdict_can_fail(exp):
    good = [_record(o, 0.99, -1e-4) for o in ("gd", "sgd", "pgd", "noisy")]
    a = exp.analyze(good)
    assert a.verdict.supported, a.verdict.summary
    assert [r["optimizer"] for r in a.table] == ["gd", "sgd", "pgd", "noisy"]
    assert "certificates" in a.figures
    saddle = [*good[:3], _record("noisy", 0.99, -0.5)]
    v = exp.analyze(saddle).verdict
    assert not v.supported and "noisy ended with λ_min" in v.summary
    v = exp.analyze([*good[1:], _record("gd", 0.6, 0.0)]).verdict
    assert not v.supported and "gd reached train accuracy 0.600" in v.summary


def test_an_unconverged_certificate_does_not_support_the_claim(exp):
    good = [_record(o, 0.99, -1e-4) for o in ("gd", "sgd", "pgd", "noisy")]
    undecided = _record("pgd", 0.99, 1e-3)  # a Ritz value ≥ −τ is only an upper bound
    undecided.metrics.update(kind="undecided", certificate_converged=False, is_sosp=False)
    v = exp.analyze([*good[:2], undecided, good[3]]).verdict
    assert not v.supported and "pgd: the certificate did not converge" in v.summary
