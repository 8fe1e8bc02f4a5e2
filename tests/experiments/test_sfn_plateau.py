"""saddle-free-newton (Dauphin et al. 2014): the two-layer linear network against its closed
forms and a dense Hessian, damped Newton converging to the saddle, saddle-free Newton
escaping, and the verdict logic fed contradicting data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from saddlescape import experiments
from saddlescape.errors import ConfigError
from saddlescape.experiments import RunRecord
from saddlescape.experiments.sfn_plateau import TwoLayerLinear


@pytest.fixture(scope="module")
def exp():
    return experiments.get("saddle-free-newton")


def test_two_layer_linear_saddle_and_minimum_match_the_closed_form():
    p = TwoLayerLinear(0.05)
    zero = torch.zeros(p.dim, dtype=torch.float64)
    assert math.isclose(float(p.f(zero)), p.f_saddle, rel_tol=1e-14)
    ev = torch.linalg.eigvalsh(torch.autograd.functional.hessian(p.f, zero))
    expected = torch.cat([-p.sigmas, p.sigmas]).repeat_interleave(4).sort().values
    torch.testing.assert_close(ev, expected)  # ±σᵢ, each 4 times: a strict saddle
    root = torch.diag(p.sigmas.sqrt()).reshape(-1)
    x_min = torch.cat([root, root])
    assert float(p.f(x_min)) < 1e-30
    h = torch.linalg.eigvalsh(torch.autograd.functional.hessian(p.f, x_min))
    assert math.isclose(float(h[-1]), 2.0, rel_tol=1e-12)  # ℓ = 2σ_max: GD's η = ½ = 1/ℓ
    assert float(h[0]) > -1e-12


def test_damped_newton_converges_to_the_saddle_and_is_certified(exp):
    out = exp.run(exp.config(sigma_min=0.01, optimizer="newton", seed=3))
    assert out.metrics["kind"] == "saddle"
    assert out.metrics["norm"] < 1e-10
    assert out.metrics["lambda_min"] < -0.001 and out.metrics["grad_norm"] <= 1e-10
    assert abs(out.metrics["f_minus_f_saddle"]) < 1e-12
    assert out.metrics["hvps"] > 0


def test_sfn_leaves_the_plateau_in_few_iterations_and_runs_are_deterministic(exp):
    cfg = exp.config(sigma_min=0.02, optimizer="sfn", seed=1)
    a, b = exp.run(cfg), exp.run(cfg)
    np.testing.assert_array_equal(a.arrays["loss"], b.arrays["loss"])
    assert a.metrics["censored"] == 0 and a.metrics["iterations_to_target"] < 40
    assert a.arrays["loss"][-1] <= a.metrics["target"]
    m = a.metrics
    assert math.isclose(m["grad_equivalents"], m["grad_evals"] + 1.5 * m["hvps"] + m["f_evals"])
    gd = exp.run(exp.config(sigma_min=0.02, optimizer="gd", seed=1))
    assert gd.metrics["grad_equivalents"] == gd.metrics["iterations_to_target"] > 200


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("sigma_min", 0.3),
        ("optimizer", "adam"),
        ("start_scale", 1.0),
        ("target_fraction", 1.5),
        ("lr", 1.0),
        ("rank", 0),
        ("hvp_cost", 0.0),
        ("newton_steps", 0),
        ("max_iter", 0),
    ],
)
def test_bad_config_names_the_key(exp, key, value):
    with pytest.raises(ConfigError, match=key):
        exp.config(**{key: value})


def _records(
    gd_cost: dict[float, int],
    sfn_cost: dict[float, int],
    sfn_iters: int = 20,
    newton_kind: str = "saddle",
    newton_norm: float = 1e-14,
    censor: bool = False,
) -> list[RunRecord]:
    out = []
    for s in gd_cost:
        for seed in (0, 1):
            for opt, its, ge in (
                ("gd", gd_cost[s], gd_cost[s]),
                ("pgd", gd_cost[s], gd_cost[s]),
                ("sfn", sfn_iters, sfn_cost[s]),
            ):
                hit = None if censor and opt == "sfn" else its + seed
                out.append(
                    RunRecord(
                        config={"optimizer": opt, "sigma_min": s, "seed": seed},
                        metrics={
                            "iterations_to_target": hit,
                            "grad_equivalents": None if hit is None else ge + seed,
                            "grad_evals": its,
                            "hvps": 32 * its if opt == "sfn" else 0,
                            "f_evals": 5 * its if opt == "sfn" else 0,
                        },
                        arrays={
                            "loss": np.geomspace(1.0, 1e-6, 10),
                            "grad_equivalents": np.linspace(0, ge, 10),
                        },
                    )
                )
            out.append(
                RunRecord(
                    config={"optimizer": "newton", "sigma_min": s, "seed": seed},
                    metrics={"kind": newton_kind, "norm": newton_norm, "iterations": 3},
                    arrays={"loss": np.ones(4), "norm": np.geomspace(1e-3, 1e-14, 4)},
                )
            )
    return out


GD = {0.05: 280, 0.01: 1240, 0.005: 2330}
SFN = {0.05: 860, 0.01: 1030, 0.005: 1080}


def test_analyze_supports_sfn_cheaper_on_the_long_plateau(exp):
    a = exp.analyze(_records(GD, SFN))
    v = a.verdict
    assert v.supported, v.summary
    assert "GD is cheaper at σ_min = 0.05" in v.summary
    assert v.numbers["largest σ_min where SFN is cheaper in every seed"] == 0.01
    assert v.numbers["SFN cheaper at every σ_min"] == 0.0
    median = (2330 / 1080 + 2331 / 1081) / 2  # the median of the per-seed ratios
    assert abs(v.numbers["GD/SFN cost ratio at σ_min=0.005 (median)"] - median) < 1e-12
    assert v.numbers["newton runs certified at the saddle"] == 6
    assert set(v.deciding) <= set(v.numbers)
    assert a.table and {"loss_curves", "cost_vs_sigma"} <= set(a.figures)


def test_analyze_rejects_sfn_dearer_on_the_longest_plateau(exp):
    v = exp.analyze(_records(GD, {**SFN, 0.005: 2400})).verdict
    assert not v.supported and "σ_min = 0.005 (the longest plateau)" in v.summary


def test_analyze_rejects_sfn_slower_in_iterations(exp):
    v = exp.analyze(_records(GD, SFN, sfn_iters=500)).verdict
    assert not v.supported and "fewer iterations than GD at σ_min = 0.05" in v.summary


@pytest.mark.parametrize(("kind", "norm"), [("minimum", 1e-14), ("saddle", 1e-3)])
def test_analyze_rejects_newton_away_from_the_saddle(exp, kind, norm):
    v = exp.analyze(_records(GD, SFN, newton_kind=kind, newton_norm=norm)).verdict
    assert not v.supported and "6 of 6 damped Newton run(s)" in v.summary


def test_analyze_rejects_censored_failed_and_missing_runs(exp):
    v = exp.analyze(_records(GD, SFN, censor=True)).verdict
    assert not v.supported and "did not reach the target" in v.summary
    recs = [*_records(GD, SFN), RunRecord({"optimizer": "gd"}, {}, {}, "failed")]
    v = exp.analyze(recs).verdict
    assert not v.supported and "1 run(s) failed" in v.summary
    v = exp.analyze([r for r in _records(GD, SFN) if r.config["optimizer"] != "newton"]).verdict
    assert not v.supported and "no damped Newton run" in v.summary
    v = exp.analyze([r for r in _records(GD, SFN) if r.config["optimizer"] != "sfn"]).verdict
    assert not v.supported and "no σ_min has both" in v.summary
