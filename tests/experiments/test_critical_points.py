"""critical-points (Dauphin et al. 2014 Fig. 1; Baldi & Hornik 1989; Kawaguchi 2016): the
linear nets' subset critical points against their closed forms and a dense Hessian, the MLP's
closed-form derivatives, the Levenberg–Marquardt search, and the verdict logic fed
contradicting data."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from saddlescape import experiments
from saddlescape.curvature import certify
from saddlescape.errors import ConfigError
from saddlescape.experiments import RunRecord
from saddlescape.experiments.critical_points import (
    DigitsMLP,
    LinearNet,
    levenberg_marquardt,
)


@pytest.fixture(scope="module")
def exp():
    return experiments.get("critical-points")


@pytest.mark.parametrize("depth", [2, 3])
def test_subset_points_are_critical_with_the_closed_form_loss_and_index(depth):
    net = LinearNet(depth, 5, 3, seed=1)
    A = net.target

    def f(x):
        return net.f(x, A)

    assert len(net.subsets()) == 26
    for s in net.subsets():
        x = net.point(s).requires_grad_(True)
        (g,) = torch.autograd.grad(f(x), x)
        assert float(g.norm()) < 1e-12
        assert math.isclose(float(f(x.detach())), net.loss_closed(s), rel_tol=1e-12)
        ev = torch.linalg.eigvalsh(torch.autograd.functional.hessian(f, x.detach()))
        count = int((ev < -1e-8 * float(ev.abs().max())).sum())
        assert count == net.index_closed(s), s
    top = (0, 1, 2)
    assert net.index_closed(top) == 0 and math.isclose(net.loss_closed(top), 0.4)
    # two layers: (p − k)(d − k) + inversions; three: inversions only
    assert net.index_closed(()) == (15 if depth == 2 else 0)
    assert net.index_closed((0, 1, 4)) == 2


def test_certify_agrees_and_three_layer_rank_deficient_points_descend_at_third_order():
    net = LinearNet(3, 5, 3, seed=0)
    A = net.target
    x = net.point((0, 1))  # top-2 with a free unit: index 0, but not a minimum
    c = certify(lambda z: net.f(z, A), x, eps=1e-10, tau=1e-3, tol=1e-8, seed=0)
    assert c.kind == "degenerate" and c.lambda_min > -1e-3
    assert net.third_order_descent((0, 1)) > 1e-4
    c = certify(lambda z: net.f(z, A), net.point((0, 2)), eps=1e-10, tau=1e-3, seed=0)
    assert c.kind == "saddle"
    assert math.isnan(net.third_order_descent((0, 1, 2)))


@pytest.mark.parametrize("case", ["linear-2", "linear-3"])
def test_linear_run_matches_everything(exp, case):
    m = exp.run(exp.config(case=case, seed=2)).metrics
    assert m["points"] == 26 and m["mismatches"] == 0 and m["bad_minima"] == 0
    assert m["global_index"] == 0 and m["spearman"] > 0
    assert m["third_order_saddles"] == (0 if case == "linear-2" else 3)  # (), (0,), (0, 1)


def test_mlp_closed_form_gradient_and_hessian_match_autograd():
    net = DigitsMLP(60, 6, 3, 1e-2)
    x = 2.0 * net.init(4)
    torch.testing.assert_close(net.grad(x), torch.func.grad(net.f)(x), rtol=0, atol=1e-13)
    torch.testing.assert_close(net.hessian(x), torch.func.hessian(net.f)(x), rtol=0, atol=1e-12)


def test_levenberg_marquardt_converges_from_near_a_critical_point():
    net = DigitsMLP(60, 6, 3, 1e-2)
    x = net.init(0)
    for _ in range(3000):
        x = x - 0.5 * net.grad(x)
    y, _ = levenberg_marquardt(net.grad, net.hessian, x, 60, 1e-12)
    assert float(net.grad(y).norm()) <= 1e-12
    g = torch.Generator().manual_seed(1)
    z = y + 1e-3 * torch.randn(y.shape, generator=g, dtype=torch.float64)
    w, its = levenberg_marquardt(net.grad, net.hessian, z, 60, 1e-12)
    assert float(net.grad(w).norm()) <= 1e-12 and its < 20
    assert float((w - y).norm()) < 1e-6  # back to the same point


def test_mlp_run_is_deterministic_and_classifies_every_start(exp):
    cfg = exp.config(case="mlp", trajectories=2, starts=3, gd_steps=200, n_samples=80)
    a, b = exp.run(cfg), exp.run(cfg)
    for k in a.arrays:
        np.testing.assert_array_equal(a.arrays[k], b.arrays[k])
    m = a.metrics
    assert m["starts"] == 6 == m["critical"] + m["gradient_flat"] + m["not_converged"]
    st = a.arrays["status"]
    assert (a.arrays["grad_norm"][st == 0] <= cfg.grad_tol).all()
    assert (a.arrays["grad_norm"][st != 0] > cfg.grad_tol).all()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("case", "linear-4"),
        ("linear_dim", 6),
        ("linear_width", 5),
        ("certify_tau", 0.0),
        ("n_samples", 5),
        ("hidden", 0),
        ("weight_decay", 0.0),
        ("trajectories", 0),
        ("starts", 0),
        ("lm_iters", 0),
        ("grad_tol", -1.0),
        ("flat_rel", 1.0),
        ("tau_rel", 0.0),
    ],
)
def test_bad_config_names_the_key(exp, key, value):
    with pytest.raises(ConfigError, match=key):
        exp.config(**{key: value})


# ----------------------------------------------------------------------- verdict logic
def _linear(case: str, **bad) -> RunRecord:
    metrics = {
        "points": 26,
        "max_grad": 1e-15,
        "max_loss_rel_err": 1e-16,
        "index_mismatches": 0,
        "certify_mismatches": 0,
        "strict_saddles": 25,
        "third_order_saddles": 0,
        "bad_minima": 0,
        "spearman": 0.9,
        "mismatches": 0,
    }
    metrics.update(bad)
    n = 26
    arrays = {
        "loss": np.linspace(0.4, 4.4, n),
        "loss_closed": np.linspace(0.4, 4.4, n),
        "index": np.linspace(0, 0.5, n),
        "index_count": np.arange(n, dtype=float),
        "index_closed": np.arange(n, dtype=float),
        "third_order_descent": np.full(n, np.nan),
    }
    return RunRecord(config={"case": case, "seed": 0}, metrics=metrics, arrays=arrays)


def _mlp(loss, index, status=None) -> RunRecord:
    loss, index = np.asarray(loss, float), np.asarray(index, float)
    st = np.zeros(loss.size, np.int64) if status is None else np.asarray(status, np.int64)
    arrays = {
        "loss": loss,
        "index": index,
        "index_count": np.round(index * 115),
        "status": st,
        "grad_norm": np.where(st == 0, 1e-12, 1e-4),
        "lm_iters": np.full(loss.size, 10.0),
    }
    return RunRecord(
        config={"case": "mlp", "seed": 0, "grad_tol": 1e-10}, metrics={}, arrays=arrays
    )


GOOD_LOSS = 0.26 + 0.004 * np.arange(40)
GOOD_INDEX = np.clip(np.arange(40) - 4, 0, None) / 115


def _good_mlp() -> RunRecord:
    """40 distinct critical points, index rising with loss, and 5 gradient-flat ends."""
    return _mlp(
        np.concatenate([GOOD_LOSS, [0.5] * 5]),
        np.concatenate([GOOD_INDEX, [0.3] * 5]),
        [0] * 40 + [1] * 5,
    )


def _records(mlp=None, **linear_bad):
    mlp = mlp if mlp is not None else _good_mlp()
    return [_linear("linear-2", **linear_bad), _linear("linear-3"), mlp]


def test_analyze_supports_good_data(exp):
    recs = _records()
    a = exp.analyze(recs)
    v = a.verdict
    assert v.supported, v.summary
    assert v.numbers["mlp distinct critical points"] == 40
    assert v.numbers["mlp gradient-flat ends"] == 5
    assert set(v.deciding) <= set(v.numbers)
    assert a.table and {"loss_vs_index", "grad_norm_hist"} <= set(a.figures)
    assert "mlp lowest-decile min lambda_min/lambda_max" not in v.numbers  # not recorded


def test_analyze_reports_how_negative_the_low_loss_curvature_is(exp):
    good = _good_mlp()
    n = good.arrays["loss"].size
    lam_min = np.where(np.arange(n) == 3, -0.02, 0.001)  # the 4th-lowest loss: λ_min −0.02
    arrays = dict(good.arrays, lambda_min=lam_min, lambda_max=np.full(n, 4.0))
    v = exp.analyze(_records(dataclasses.replace(good, arrays=arrays))).verdict
    assert v.numbers["mlp lowest-decile min lambda_min/lambda_max"] == -0.02 / 4.0
    assert "most negative λ_min/λ_max there -0.005" in v.summary


def test_analyze_rejects_negative_correlation(exp):
    v = exp.analyze(_records(_mlp(GOOD_LOSS, GOOD_INDEX[::-1]))).verdict
    assert not v.supported and "Spearman" in v.summary


def test_analyze_rejects_too_few_points_and_counts_duplicates_once(exp):
    v = exp.analyze(_records(_mlp(GOOD_LOSS[:29], GOOD_INDEX[:29]))).verdict
    assert not v.supported and "only 29 distinct" in v.summary
    dup = _mlp(np.repeat(GOOD_LOSS[:20], 2), np.repeat(GOOD_INDEX[:20], 2))
    v = exp.analyze(_records(dup)).verdict
    assert not v.supported and "only 20 distinct" in v.summary
    # gradient-flat ends are excluded, not counted
    flat = _mlp(GOOD_LOSS, GOOD_INDEX, [0] * 25 + [1] * 15)
    v = exp.analyze(_records(flat)).verdict
    assert not v.supported and "only 25 distinct" in v.summary


def test_analyze_rejects_a_low_loss_point_of_high_index(exp):
    index = GOOD_INDEX.copy()
    index[1] = 2 / 115  # in the lowest decile (4 of 40 points), 1.7 % > 1 %
    v = exp.analyze(_records(_mlp(GOOD_LOSS, index))).verdict
    assert not v.supported and "lowest-loss decile" in v.summary


@pytest.mark.parametrize(
    ("bad", "text"),
    [
        ({"index_mismatches": 2, "mismatches": 2}, "dense index(es) differ"),
        ({"max_loss_rel_err": 1e-6, "mismatches": 1}, "closed form by"),
        ({"max_grad": 1e-6, "mismatches": 1}, "‖∇f‖ up to"),
        ({"certify_mismatches": 1, "mismatches": 1}, "certificate(s) disagree"),
        ({"bad_minima": 1, "mismatches": 1}, "above the global loss"),
        ({"spearman": -0.2}, "Spearman(loss, index) = -0.2"),
    ],
)
def test_analyze_rejects_closed_form_mismatches(exp, bad, text):
    v = exp.analyze(_records(**bad)).verdict
    assert not v.supported and text in v.summary


def test_analyze_rejects_failed_and_missing_runs(exp):
    recs = [*_records(), RunRecord({"case": "mlp", "seed": 1}, {}, {}, "failed")]
    v = exp.analyze(recs).verdict
    assert not v.supported and "1 run(s) failed" in v.summary
    v = exp.analyze(_records()[:2]).verdict
    assert not v.supported and "no MLP run" in v.summary
    v = exp.analyze(_records()[1:]).verdict
    assert not v.supported and "no linear-2 run" in v.summary
