"""hessian-outliers (Sagun et al. 2016/2017; Papyan 2019/2020): a run against a dense float64
Hessian, determinism, config validation, the outlier-count rule on hand-made spectra, and
the verdict logic fed contradicting data."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from saddlescape import experiments
from saddlescape.errors import ConfigError
from saddlescape.experiments import RunRecord
from saddlescape.experiments.hessian_outliers import outlier_count, slq_distance

TINY = {"classes": 3, "width": 4, "per_class": 20, "slq_steps": 20}


@pytest.fixture(scope="module")
def exp():
    return experiments.get("hessian-outliers")


@pytest.fixture(scope="module")
def tiny(exp):
    return exp.run(exp.config(**TINY))


def test_run_matches_a_dense_float64_hessian(exp, tiny):
    from saddlescape.experiments.hessian_outliers import _class_data
    from saddlescape.problems.networks import make_loss, make_mlp

    m, a = tiny.metrics, tiny.arrays
    assert m["n_params"] == 64 * 4 + 4 + 4 * 3 + 3 and m["n_examples"] == 60
    # an independent dense Hessian: autograd's hessian of the flat-parameter loss, rebuilt
    # by training the same net the same way
    X, y = _class_data(3, 20)
    model = make_mlp((64, 4, 3), "relu", 0)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(100):
        opt.zero_grad()
        make_loss("cross-entropy")(model(X), y).backward()
        opt.step()
    theta = torch.nn.utils.parameters_to_vector(model.parameters()).detach().double()
    net = make_mlp((64, 4, 3), "relu", 0, torch.float64)
    shapes = [p.shape for p in net.parameters()]

    def loss(flat: torch.Tensor) -> torch.Tensor:
        parts, i = [], 0
        for s in shapes:
            parts.append(flat[i : i + s.numel()].view(s))
            i += s.numel()
        h = torch.relu(X.double() @ parts[0].T + parts[1])
        return torch.nn.functional.cross_entropy(h @ parts[2].T + parts[3], y)

    H = torch.autograd.functional.hessian(loss, theta)
    ev = torch.linalg.eigvalsh(H).numpy()[::-1]
    np.testing.assert_allclose(a["dense"], ev, rtol=0, atol=1e-10 * ev[0])
    top = a["top"]
    assert top.size == 9
    assert np.max(np.abs(top - ev[:9])) <= 1e-6 * ev[0]
    assert np.all(np.abs(top - ev[:9]) <= 1e-6 * np.abs(ev[:9]) + 1e-12)
    assert m["lanczos_rel_error"] <= 1e-6
    assert m["count"] == m["count_dense"] == outlier_count(ev, 3)[0]
    assert 0 <= m["slq_w1"] < 0.05
    w = a["slq_weights"]
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-12)


def test_runs_are_deterministic(exp, tiny):
    again = exp.run(exp.config(**TINY))
    assert set(again.arrays) == set(tiny.arrays)
    for key, value in tiny.arrays.items():
        np.testing.assert_array_equal(again.arrays[key], value)
    for key in ("count", "gap_ratio", "lambda_max", "final_loss", "slq_w1"):
        assert again.metrics[key] == tiny.metrics[key]


def test_no_dense_reference_above_dense_max_params(exp):
    m = exp.run(exp.config(**TINY, dense_max_params=100)).metrics
    assert m["dense"] is False and m["slq_w1"] is None and m["count_dense"] is None


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("classes", 1),
        ("classes", 11),
        ("width", 0),
        ("activation", "sigmoid"),
        ("per_class", 1),
        ("per_class", 500),
        ("steps", 0),
        ("lr", 0.0),
        ("lr", 2.0),
        ("lanczos_tol", 0.5),
        ("slq_probes", 0),
        ("slq_steps", 1),
        ("dense_max_params", -1),
    ],
)
def test_bad_config_names_the_key(exp, key, value):
    with pytest.raises(ConfigError, match=key):
        exp.config(**{key: value})


# ------------------------------------------------------------------ the rule
def test_outlier_count_on_hand_made_spectra():
    bulk = list(np.geomspace(0.1, 0.01, 40))
    # C outliers well above a smooth bulk
    assert outlier_count([8.0, 6.0, 5.0, 4.0, *bulk], 4)[0] == 4
    # C - 1 outliers
    count, ratio = outlier_count([8.0, 6.0, 5.0, *bulk], 4)
    assert count == 3 and math.isclose(ratio, 50.0)
    # only the window of the 3C largest is read: a gap further down is ignored
    assert outlier_count([1.0, 0.5, 0.45, 0.4, 0.38, 0.36, 1e-6, 1e-7], 2) == (1, 2.0)
    # negative and zero eigenvalues are dropped
    assert outlier_count([3.0, 1.0, 0.0, -5.0], 2) == (1, 3.0)
    assert outlier_count([1.0, -1.0], 2)[0] == 1
    assert outlier_count([-1.0, -2.0], 2)[0] == 0
    # order of the input does not matter; ties go to the first gap
    assert outlier_count([0.5, 4.0, 1.0, 2.0], 2) == (1, 2.0)


def test_slq_distance_is_zero_for_the_same_measure_and_grows_with_a_shift():
    ev = np.linspace(0.0, 1.0, 11)
    nodes, weights = ev[None, :], np.full((1, 11), 1 / 11)
    assert slq_distance(nodes, weights, ev) < 1e-12
    assert math.isclose(slq_distance(nodes + 0.1, weights, ev), 0.1, rel_tol=1e-9)
    # two probes average; padded zero weights are ignored
    nodes2 = np.vstack([np.append(ev, 99.0), np.append(ev, -99.0)])
    weights2 = np.hstack([np.vstack([weights, weights]), np.zeros((2, 1))])
    assert slq_distance(nodes2, weights2, ev) < 1e-12


# ------------------------------------------------------------------ the verdict
def _records(
    count=lambda C: C - 1,
    widths=(16, 32),
    seeds=(0, 1),
    slq_w1: float = 1e-3,
    rel: float = 1e-14,
    dense_shift: int = 0,
    dense: bool = True,
) -> list[RunRecord]:
    out = []
    rng = np.random.default_rng(0)
    for w in widths:
        for C in (2, 3, 5, 7, 10):
            for seed in seeds:
                k = int(count(C))
                top = np.concatenate(
                    [np.geomspace(3.0, 1.0, k), np.geomspace(0.2, 0.05, 3 * C - k)]
                )
                has_dense = dense and w == min(widths)
                ev = np.concatenate([top, rng.normal(0, 1e-3, 200)])
                metrics = {
                    "classes": C,
                    "width": w,
                    "n_params": (65 * w + (w + 1) * C),
                    "count": k,
                    "gap_ratio": 5.0,
                    "lambda_max": 3.0,
                    "bulk_edge": 0.2,
                    "train_accuracy": 0.99,
                    "dense": has_dense,
                    "count_dense": k + dense_shift if has_dense else None,
                    "slq_w1": slq_w1 if has_dense else None,
                    "lanczos_rel_error": rel if has_dense else None,
                }
                arrays = {
                    "top": top,
                    "slq_nodes": np.sort(ev)[None, ::4],
                    "slq_weights": np.full((1, ev.size // 4 + (ev.size % 4 > 0)), 1.0),
                }
                arrays["slq_weights"] /= arrays["slq_weights"].sum()
                if has_dense:
                    arrays["dense"] = np.sort(ev)[::-1]
                out.append(RunRecord({"classes": C, "width": w, "seed": seed}, metrics, arrays))
    return out


def _verdict(exp, records):
    a = exp.analyze(records)
    for fig in a.figures.values():
        plt.close(fig)
    return a


def test_analyze_supports_c_minus_one_outliers(exp):
    a = _verdict(exp, _records())
    v = a.verdict
    assert v.supported, v.summary
    assert math.isclose(v.numbers["width 16 slope"], 1.0) and math.isclose(
        v.numbers["width 32 intercept"], -1.0
    )
    assert v.numbers["runs with count outside C ± 1"] == 0
    assert set(v.deciding) <= set(v.numbers)
    assert len(a.table) == 10 and a.table[0]["outliers per seed"] == "1 1"
    assert {"top_eigenvalues", "count_vs_classes", "slq_vs_dense"} <= set(a.figures)
    assert _verdict(exp, _records(count=lambda C: C)).verdict.supported


def test_analyze_rejects_a_count_constant_in_c(exp):
    v = _verdict(exp, _records(count=lambda C: 3)).verdict
    assert not v.supported
    assert "is outside [0.8, 1.2]" in v.summary and "count outside C ± 1" in v.summary
    assert abs(v.numbers["largest slope"]) < 1e-9


def test_analyze_rejects_a_slope_out_of_range_even_within_c_plus_minus_one(exp):
    # C - 1 at small C, C + 1 at large C: every count within C ± 1, slope 1.25
    v = _verdict(exp, _records(count=lambda C: C - 1 if C < 5 else C + 1)).verdict
    assert not v.supported and v.numbers["runs with count outside C ± 1"] == 0
    assert "slope 1.2" in v.summary and "outside [0.8, 1.2]" in v.summary


def test_analyze_rejects_counts_far_from_c(exp):
    v = _verdict(exp, _records(count=lambda C: C - 2 if C > 2 else 1)).verdict
    assert not v.supported and v.numbers["runs with count outside C ± 1"] == 16


def test_analyze_rejects_a_bad_density_or_lanczos_or_dense_count(exp):
    v = _verdict(exp, _records(slq_w1=0.05)).verdict
    assert not v.supported and "SLQ density is W1 = 0.05" in v.summary
    v = _verdict(exp, _records(rel=1e-4)).verdict
    assert not v.supported and "Lanczos eigenvalues differ" in v.summary
    v = _verdict(exp, _records(dense_shift=1)).verdict
    assert not v.supported and "dense spectrum gives another count" in v.summary
    v = _verdict(exp, _records(dense=False)).verdict
    assert not v.supported and "no net had a dense reference" in v.summary
    assert set(v.deciding) <= set(v.numbers)


def test_analyze_rejects_failed_and_missing_runs(exp):
    recs = [*_records(), RunRecord({"classes": 2, "width": 16, "seed": 5}, {}, {}, "failed")]
    v = _verdict(exp, recs).verdict
    assert not v.supported and "1 run(s) failed" in v.summary
    v = _verdict(exp, [r for r in _records() if r.config["classes"] == 5]).verdict
    assert not v.supported and "fewer than two class counts" in v.summary
    v = _verdict(exp, []).verdict
    assert not v.supported and "no successful runs" in v.summary
