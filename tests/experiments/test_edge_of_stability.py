"""edge-of-stability (Cohen et al. 2021): loss convention, sharpness measurement, verdict."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from saddlescape import experiments
from saddlescape.errors import ConfigError
from saddlescape.experiments import RunRecord
from saddlescape.problems.networks import load_digits_tensors, make_loss, make_mlp


@pytest.fixture(scope="module")
def exp():
    return experiments.get("edge-of-stability")


@pytest.mark.slow
def test_initial_sharpness_matches_theory(exp):
    # THEORY.md: 64-200-200-10 tanh, ½·sum/n MSE, all digits: sharpness 11.5 at the start
    out = exp.run(exp.config(steps=1, every=1, lanczos_tol=1e-2))
    assert abs(out.metrics["sharpness_initial"] - 11.5) < 0.15


def test_sharpness_matches_a_dense_reference(exp):
    # a small net checked against the dense Hessian (torch.linalg.eigvalsh)
    out = exp.run(exp.config(hidden="6", n_samples=100, steps=1, every=1, dtype="float64"))
    X, y = load_digits_tensors(100, dtype=torch.float64)
    net = make_mlp((64, 6, 10), seed=0, dtype=torch.float64)
    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for p in net.parameters()]
    theta = torch.nn.utils.parameters_to_vector(net.parameters()).detach()

    def f(th):
        parts, i = {}, 0
        for n, s in zip(names, shapes, strict=True):
            parts[n] = th[i : i + s.numel()].reshape(s)
            i += s.numel()
        return make_loss("mse")(torch.func.functional_call(net, parts, (X,)), y)

    lam = torch.linalg.eigvalsh(torch.func.hessian(f)(theta))[-1].item()
    assert out.metrics["sharpness_initial"] == pytest.approx(lam, rel=1e-3)


@pytest.mark.parametrize(
    "key,value", [("lr", -0.1), ("hidden", "a,b"), ("dtype", "float16"), ("every", 0)]
)
def test_bad_config_names_the_key(exp, key, value):
    with pytest.raises(ConfigError, match=key):
        exp.config(**{key: value})


def _record(lr: float, ratios: list[float], loss: np.ndarray, every: int = 100) -> RunRecord:
    steps = np.arange(len(ratios)) * every
    return RunRecord(
        config={"lr": lr, "seed": 0},
        metrics={},
        arrays={"steps": steps, "sharpness": np.array(ratios) * 2 / lr, "loss": loss},
    )


def _oscillating(n: int) -> np.ndarray:
    t = np.arange(n)
    return 0.5 * np.exp(-t / n) + 0.01 * (t % 2)  # decreasing overall, up every other step


# ratios λ_max/(2/η) every 100 steps, like the measured runs: sharpening, then hovering
SHARPEN_THEN_HOVER = [0.58, 0.73, 0.9, 1.03, 1.1, 0.98, 1.02, 1.05, 1.01, 1.04, 1.03, 1.06, 1.02]
LOSS = _oscillating(1201)


def test_analyze_supports_theory_like_runs(exp):
    recs = [
        _record(0.1, SHARPEN_THEN_HOVER, LOSS),
        _record(0.12, [0.69, 0.95, 1.12, 0.97, 1.05, *[1.04, 1.06, 1.03] * 2, 1.05, 1.04], LOSS),
        _record(0.14, [0.81, 1.06, 1.14, *[1.03, 1.05] * 5], LOSS),
    ]
    a = exp.analyze(recs)
    assert a.verdict.supported, a.verdict.summary
    n = a.verdict.numbers
    assert n["lr=0.1 edge step"] == 200
    assert n["lr=0.1 ratio at step 0"] == pytest.approx(0.58)
    assert n["lr=0.1 late median"] == pytest.approx(1.03)  # steps 800–1200
    assert n["lr=0.1 late spread"] == pytest.approx(0.05)
    assert abs(n["lr=0.14 late drift"]) < 0.05
    assert [row["lr"] for row in a.table] == [0.1, 0.12, 0.14]
    assert "η=0.12: r(0) = 0.69" in a.verdict.summary
    assert set(a.figures) == {"sharpness", "loss"}


HOVER = [1.0, 1.02, 1.01, 1.03, 1.0, 1.02, 1.01]  # a run hovering at the edge


@pytest.mark.parametrize(
    "ratios,loss,message",
    [
        # starts above 2/η and falls into the band (the old η = 0.4 run): no sharpening
        ([2.3, 1.17, 1.19, 1.11, 1.15, 1.16, 1.15, 1.14, 1.15, 1.16], None, "at or above the edge"),
        # starts just at the edge: nothing to sharpen
        ([0.95, *HOVER, 1.0, 1.02], None, "at or above the edge"),
        # sharpens but never reaches the band
        ([0.3, 0.4, 0.5, 0.55, 0.6, 0.62, 0.65, 0.66, 0.67, 0.68], None, "never reached"),
        # reaches the band only in the late window (steps 600–900)
        ([0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.95, 1.0], None, "inside the late window"),
        # still sharpening through the late window (like the old 600-step quick run at η = 0.1)
        ([0.58, 0.73, 0.9, 0.95, 0.99, 1.03, 1.07, 1.11, 1.15, 1.19], None, "drifted"),
        # blows past 2/η and stays far above it
        ([0.8, 0.95, 1.6, 2.0, 2.2, 2.4, 2.5, 2.5, 2.5, 2.5], None, "outside"),
        # touches the band, then hovers at 0.8 × 2/η
        ([0.6, 0.92, 0.8, 0.8, 0.81, 0.79, 0.8, 0.8, 0.8, 0.8], None, "outside"),
        # jumps around instead of hovering
        ([0.6, 0.92, 1.0, 1.2, 0.9, 1.2, 0.9, 1.2, 0.9, 1.2], None, "spread"),
        ([0.8, 0.95, *HOVER, 1.0], np.linspace(0.5, 0.1, 901), "monotonically"),
        (
            [0.8, 0.95, *HOVER, 1.0],
            np.r_[np.linspace(0.5, 0.1, 450), np.linspace(0.1, 0.9, 451)],
            "did not decrease",
        ),
    ],
)
def test_analyze_rejects_contradicting_runs(exp, ratios, loss, message):
    loss = _oscillating(100 * (len(ratios) - 1) + 1) if loss is None else loss
    v = exp.analyze([_record(0.1, ratios, loss)]).verdict
    assert not v.supported and message in v.summary, v.summary


def test_too_few_late_measurements_give_no_verdict(exp):
    v = exp.analyze([_record(0.1, [0.6, 0.95, 1.0, 1.02, 1.01], _oscillating(401))]).verdict
    assert not v.supported and "measurements in the late window" in v.summary


def test_one_contradicting_eta_rejects_the_sweep(exp):
    recs = [
        _record(0.1, SHARPEN_THEN_HOVER, LOSS),
        _record(
            0.4, [2.3, 1.17, 1.19, 1.11, 1.15, 1.16, 1.15, 1.14, 1.15, 1.1, 1.1, 1.1, 1.1], LOSS
        ),
    ]
    v = exp.analyze(recs).verdict
    assert not v.supported
    assert "η=0.4, seed 0: started at r = 2.30" in v.summary
    assert v.numbers["lr=0.1 late median"] == pytest.approx(1.03)


@pytest.mark.slow
def test_tiny_run_shows_the_edge(exp):
    # a 64-64-64-10 net on 500 digits: sharpening from 0.7×2/η, then hovering at the edge
    cfg = exp.config(hidden="64,64", n_samples=500, lr=0.2, steps=250, every=25)
    out = exp.run(cfg)
    rec = RunRecord(vars(cfg), out.metrics, out.arrays)
    a = exp.analyze([rec])
    assert a.verdict.supported, a.verdict.summary
    assert out.metrics["sharpness_initial"] < 0.8 * 2 / cfg.lr
    assert out.metrics["hvps"] > 0 and out.metrics["lanczos_converged"]
